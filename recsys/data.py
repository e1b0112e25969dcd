r"""Data sets for sequential recommendation: RecBole's ml-100k, atomic-file folders, text files.

Three kinds of ``--dataset`` are accepted:

* ``ml-100k``: the copy RecBole ships in its package (``recbole/dataset_example/ml-100k``);
  nothing is downloaded.
* A RecBole atomic-file folder ``DIR`` holding ``DIR/<name>.inter`` where ``<name>`` is the
  folder's name, with ``user_id``, ``item_id`` and ``timestamp`` columns.
* A text file with one user per line, ``user item item ...``, items in time order (the
  Amazon/Yelp files of the CoSeRec / ICLRec / MCLRec papers). It is converted by
  :func:`convert_text_to_atomic` into an atomic folder whose ``timestamp`` is the position of the
  item in the line.

Every user needs at least two interactions to give a training example: users with one are
dropped with a warning. Bad input raises :class:`shared.errors.InputError` naming the file (and
the line) and what was expected.

Examples:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "toy.txt").write_text("u1 1 2 3\nu2 2 3\n")
    >>> info = convert_text_to_atomic(folder / "toy.txt", folder / "atomic")
    >>> (info.n_users, info.n_items, info.n_interactions)
    (2, 3, 5)
    >>> (info.folder / "toy.inter").read_text().splitlines()[1].split("\t")
    ['u1', '1', '0']
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.errors import InputError
from shared.io import atomic_open

logger = logging.getLogger(__name__)

__all__ = [
    "BUILTIN_DATASETS",
    "AtomicInfo",
    "DatasetInfo",
    "DatasetSource",
    "builtin_file",
    "check_atomic_folder",
    "convert_text_to_atomic",
    "dataset_name",
    "inspect_dataset",
    "read_sequences",
    "resolve_dataset",
]

#: Data sets that RecBole ships inside its package (no download).
BUILTIN_DATASETS = ("ml-100k",)

_REQUIRED_FIELDS = ("user_id", "item_id", "timestamp")
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class AtomicInfo:
    """What :func:`convert_text_to_atomic` or :func:`check_atomic_folder` found.

    Attributes:
        folder: The atomic-file folder (``folder / f"{name}.inter"`` exists).
        name: The data set name RecBole sees.
        n_users: Users kept (at least two interactions).
        n_items: Distinct items among the kept users.
        n_interactions: Interactions of the kept users.
        dropped_users: Users with a single interaction (dropped, with a warning).
    """

    folder: Path
    name: str
    n_users: int
    n_items: int
    n_interactions: int
    dropped_users: int = 0


@dataclass(frozen=True)
class DatasetSource:
    """Where RecBole finds a data set: ``data_path / name / f"{name}.inter"``.

    Attributes:
        name: The data set name (``config["dataset"]``), also used to pick per-data-set defaults.
        data_path: The parent of the atomic folder (ignored by RecBole for ``ml-100k``).
        kind: ``"builtin"``, ``"atomic"`` or ``"text"``.
        origin: What the user gave (``ml-100k``, a folder or a text file).
        min_user_inter: Users with fewer interactions are filtered by RecBole (2 when the
            folder holds single-interaction users, otherwise 0 = no filter).
        n_users: Users kept (None for a built-in data set: not counted).
        n_items: Distinct items of the kept users (None for a built-in data set).
    """

    name: str
    data_path: Path
    kind: str
    origin: str
    min_user_inter: int = 0
    n_users: int | None = None
    n_items: int | None = None

    def recbole_settings(self) -> dict[str, object]:
        """The RecBole config entries that point at this data set."""
        settings: dict[str, object] = {
            "data_path": str(self.data_path),
            "USER_ID_FIELD": "user_id",
            "ITEM_ID_FIELD": "item_id",
            "TIME_FIELD": "timestamp",
            "load_col": {"inter": list(_REQUIRED_FIELDS)},
        }
        if self.min_user_inter > 1:
            settings["user_inter_num_interval"] = f"[{self.min_user_inter},inf)"
        return settings


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8") as handle:
            yield from enumerate(handle, 1)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: expected a UTF-8 text file with one user per line "
            f"('user item item ...'), but it is not text ({exc.reason} at byte {exc.start})."
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file: {exc.strerror or exc}.") from None


def _fields(line: str, path: Path, number: int) -> list[str]:
    """A line's ids: split on tabs when it has any (refusing ids with spaces), else on spaces."""
    text = line.strip()
    if "\t" not in text:
        return text.split()
    fields = [f.strip() for f in text.split("\t")]
    spaced = [f for f in fields if " " in f]
    if spaced:
        raise InputError(
            f"{path}, line {number}: tab-separated ids with spaces inside ({spaced[0][:40]!r}) "
            "are ambiguous; expected ids without spaces, separated by spaces or by tabs."
        )
    return [f for f in fields if f]


def read_sequences(path: str | Path) -> tuple[dict[str, list[str]], list[str]]:
    """Read a one-user-per-line text file (``user item item ...``, items in time order).

    Blank lines are skipped. Users with a single item are returned separately (they cannot give
    a training example) and a warning is logged.

    Args:
        path: The text file.

    Returns:
        ``(sequences, dropped)``: ``{user: [item, ...]}`` for users with at least two items, in
        file order, and the ids of the users with a single item.

    Raises:
        InputError: If the file is missing, not UTF-8 text, empty, has a line without items, has
            a user on two lines, or keeps no user with two or more items. The message names the
            file and the line.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"Expected a data set file at {path}, but it does not exist.")
    if not path.is_file():
        raise InputError(f"Expected {path} to be a text file, but it is not a regular file.")
    sequences: dict[str, list[str]] = {}
    dropped: list[str] = []
    seen_line: dict[str, int] = {}
    for number, line in _lines(path):
        fields = _fields(line, path, number)
        if not fields:
            continue
        if len(fields) < 2:
            raise InputError(
                f"{path}, line {number}: expected 'user item item ...' separated by spaces, "
                f"but got {line.strip()[:60]!r} (a user without items)."
            )
        user, items = fields[0], fields[1:]
        if user in seen_line:
            raise InputError(
                f"{path}, line {number}: user {user!r} already has line {seen_line[user]}; "
                "expected one line per user."
            )
        seen_line[user] = number
        if len(items) < 2:
            dropped.append(user)
        else:
            sequences[user] = items
    if not seen_line:
        raise InputError(
            f"{path}: the file is empty; expected one line per user: 'user item item ...'."
        )
    if dropped:
        example = ", ".join(dropped[:5]) + (" ..." if len(dropped) > 5 else "")
        logger.warning(
            "%s: %d user(s) with a single interaction dropped (they give no training example): %s",
            path,
            len(dropped),
            example,
        )
    if not sequences:
        raise InputError(
            f"{path}: no user has two or more interactions; sequential recommendation needs at "
            "least two per user."
        )
    return sequences, dropped


def _check_name(name: str, origin: Path) -> str:
    """An atomic folder's name is RecBole's data set name: it cannot be mapped, only checked."""
    if not _NAME_OK.match(name):
        raise InputError(
            f"{origin}: the folder name {name!r} is the data set name RecBole reads, and must "
            "start with an ASCII letter or digit and hold only ASCII letters (A-Z, a-z), digits, "
            "'_', '-' and '.'; rename the folder and its .inter file."
        )
    return name


def dataset_name(stem: str, origin: Path) -> str:
    """RecBole's data set name for a text file's stem: accents dropped, other characters '_'.

    Examples:
        >>> dataset_name("Beauté", Path("Beauté.txt"))
        'Beaute'
        >>> dataset_name("my data (v2)", Path("x"))
        'my_data_v2'
    """
    ascii_name = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", ascii_name).strip("_.-")
    if not name:
        raise InputError(
            f"{origin}: no data set name can be made from the file name {stem!r}; use a file "
            "name with ASCII letters or digits."
        )
    return name


def convert_text_to_atomic(
    text_path: str | Path, out_folder: str | Path, *, name: str | None = None
) -> AtomicInfo:
    """Convert a one-user-per-line text file into a RecBole atomic folder.

    Writes ``out_folder / f"{name}.inter"`` (atomically) with the columns ``user_id:token``,
    ``item_id:token`` and ``timestamp:float``; the timestamp is the item's position in its line
    (0, 1, ...), so RecBole's time ordering (``order: TO``) keeps the file's order.

    Args:
        text_path: The text file (see :func:`read_sequences`).
        out_folder: The atomic folder to write (created). Its name should be ``name``.
        name: The data set name; defaults to the text file's stem.

    Returns:
        What was written.

    Raises:
        InputError: On a bad text file (see :func:`read_sequences`) or an unusable name.
    """
    text_path = Path(text_path)
    out_folder = Path(out_folder)
    name = _check_name(name or dataset_name(text_path.stem, text_path), text_path)
    sequences, dropped = read_sequences(text_path)
    items: set[str] = set()
    n_inter = 0
    with atomic_open(out_folder / f"{name}.inter", "w") as handle:
        handle.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for user, seq in sequences.items():
            items.update(seq)
            n_inter += len(seq)
            handle.writelines(f"{user}\t{item}\t{t}\n" for t, item in enumerate(seq))
    return AtomicInfo(out_folder, name, len(sequences), len(items), n_inter, len(dropped))


def check_atomic_folder(folder: str | Path) -> AtomicInfo:
    """Check a RecBole atomic-file folder and count its users, items and interactions.

    Args:
        folder: A folder ``DIR`` holding ``DIR/<DIR name>.inter``.

    Returns:
        What the ``.inter`` file holds (``dropped_users`` = users with one interaction, which
        RecBole is then told to filter).

    Raises:
        InputError: If the ``.inter`` file is missing or empty, its header lacks ``user_id``,
            ``item_id`` or ``timestamp`` (``name:type`` columns separated by tabs), a row has
            the wrong number of columns, or a ``float`` column holds something else.
    """
    folder = Path(folder)
    name = _check_name(folder.name, folder)
    inter = folder / f"{name}.inter"
    if not inter.is_file():
        present = sorted(p.name for p in folder.glob("*.inter"))
        hint = f" It holds {', '.join(present)}: rename it to {name}.inter." if present else ""
        raise InputError(
            f"Expected the atomic-file folder {folder} to hold {name}.inter (the folder's name "
            f"+ '.inter'), but it does not.{hint}"
        )
    header: list[str] | None = None
    columns: dict[str, int] = {}
    numeric: list[tuple[int, str]] = []
    counts: dict[str, int] = {}
    items: set[str] = set()
    n_rows = 0
    for number, line in _lines(inter):
        if not line.strip():
            continue
        cells = line.rstrip("\n").rstrip("\r").split("\t")
        if header is None:
            header = cells
            names = [cell.split(":", 1)[0] for cell in cells]
            missing = [f for f in _REQUIRED_FIELDS if f not in names]
            if missing or any(":" not in cell for cell in cells):
                raise InputError(
                    f"{inter}, line 1: expected a tab-separated header of name:type columns "
                    f"with {', '.join(_REQUIRED_FIELDS)} (e.g. 'user_id:token\\titem_id:token"
                    f"\\ttimestamp:float'), but got {line.strip()[:80]!r}."
                )
            columns = {n: i for i, n in enumerate(names)}
            numeric = [(i, cell) for i, cell in enumerate(cells) if cell.endswith(":float")]
            continue
        if len(cells) != len(header):
            raise InputError(
                f"{inter}, line {number}: expected {len(header)} tab-separated columns, "
                f"but got {len(cells)}."
            )
        for i, column in numeric:
            try:
                float(cells[i])
            except ValueError:
                raise InputError(
                    f"{inter}, line {number}: expected a number in column {column!r}, but got "
                    f"{cells[i][:40]!r}."
                ) from None
        user = cells[columns["user_id"]]
        counts[user] = counts.get(user, 0) + 1
        items.add(cells[columns["item_id"]])
        n_rows += 1
    if header is None or n_rows == 0:
        raise InputError(f"{inter}: the file holds no interactions.")
    single = [u for u, c in counts.items() if c < 2]
    if single:
        logger.warning(
            "%s: %d user(s) with a single interaction will be filtered (they give no training "
            "example): %s",
            inter,
            len(single),
            ", ".join(single[:5]) + (" ..." if len(single) > 5 else ""),
        )
    if len(single) == len(counts):
        raise InputError(
            f"{inter}: no user has two or more interactions; sequential recommendation needs at "
            "least two per user."
        )
    return AtomicInfo(
        folder,
        name,
        len(counts) - len(single),
        len(items),
        n_rows - len(single),
        len(single),
    )


def builtin_file(name: str) -> Path:
    """The ``.inter`` file RecBole ships for a built-in data set (e.g. ``ml-100k``)."""
    import recbole

    return Path(recbole.__file__).parent / "dataset_example" / name / f"{name}.inter"


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`inspect_dataset` found, before anything is written.

    Attributes:
        kind: ``"builtin"``, ``"atomic"`` or ``"text"``.
        name: The data set name RecBole will see.
        origin: What the user gave.
        files: The input files (for the run's data fingerprint).
        n_users: Users with at least two interactions (None for a built-in data set).
        n_items: Their distinct items (None for a built-in data set).
    """

    kind: str
    name: str
    origin: str
    files: tuple[Path, ...]
    n_users: int | None = None
    n_items: int | None = None


def inspect_dataset(spec: str) -> DatasetInfo:
    """Check a ``--dataset`` value and count its users and items; write nothing.

    Args:
        spec: ``ml-100k``, an atomic-file folder, or a one-user-per-line text file.

    Returns:
        What was found.

    Raises:
        InputError: As :func:`resolve_dataset`.
    """
    if spec in BUILTIN_DATASETS:
        return DatasetInfo("builtin", spec, spec, (builtin_file(spec),))
    path = Path(spec).expanduser()
    if path.is_dir():
        info = check_atomic_folder(path)
        return DatasetInfo(
            "atomic", info.name, spec, (path / f"{info.name}.inter",), info.n_users, info.n_items
        )
    if path.is_file():
        name = dataset_name(path.stem, path)
        sequences, _ = read_sequences(path)
        items = {item for seq in sequences.values() for item in seq}
        return DatasetInfo("text", name, spec, (path,), len(sequences), len(items))
    hint = _close_builtin(spec)
    raise InputError(
        f"--dataset {spec!r}: expected {' or '.join(BUILTIN_DATASETS)}, a RecBole atomic-file "
        f"folder, or a text file with one user per line, but no such file or folder exists." + hint
    )


def resolve_dataset(spec: str, work_dir: str | Path) -> DatasetSource:
    """Turn a ``--dataset`` value into a :class:`DatasetSource`, converting a text file.

    Args:
        spec: ``ml-100k``, an atomic-file folder, or a one-user-per-line text file.
        work_dir: Where a converted text file is written (``work_dir / "data" / name``).

    Returns:
        The source to hand to RecBole.

    Raises:
        InputError: If ``spec`` is neither a built-in name nor an existing folder or file, or
            the data in it is bad (see :func:`check_atomic_folder` and :func:`read_sequences`).
    """
    if spec in BUILTIN_DATASETS:
        return DatasetSource(spec, Path("."), "builtin", spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        info = check_atomic_folder(path)
        return DatasetSource(
            info.name,
            path.resolve().parent,
            "atomic",
            spec,
            min_user_inter=2 if info.dropped_users else 0,
            n_users=info.n_users,
            n_items=info.n_items,
        )
    if path.is_file():
        name = dataset_name(path.stem, path)
        folder = Path(work_dir) / "data" / name
        info = convert_text_to_atomic(path, folder, name=name)
        logger.info(
            "converted %s -> %s (%d users, %d items, %d interactions)",
            path,
            folder / f"{name}.inter",
            info.n_users,
            info.n_items,
            info.n_interactions,
        )
        return DatasetSource(
            name,
            folder.resolve().parent,
            "text",
            spec,
            n_users=info.n_users,
            n_items=info.n_items,
        )
    hint = _close_builtin(spec)
    raise InputError(
        f"--dataset {spec!r}: expected {' or '.join(BUILTIN_DATASETS)}, a RecBole atomic-file "
        f"folder, or a text file with one user per line, but no such file or folder exists." + hint
    )


def _close_builtin(spec: str, options: Sequence[str] = BUILTIN_DATASETS) -> str:
    from shared.validation import closest

    hint = closest(spec, options)
    return f" Did you mean {hint!r}?" if hint else ""
