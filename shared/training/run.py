"""One run folder for every domain: ownership, resume checks, stages, log, weights.

A run folder is any folder a train/evaluate command writes. It holds a marker,
``.contrasuite.json``, that says which domain and command made it, its run id, the config it
was started with, a fingerprint of its input data, and which named stages have finished. The
marker, not file names, decides whether a folder is ours:

* :meth:`RunFolder.prepare` checks everything and writes **nothing**: a folder that is a file,
  not empty and not ours, ours but of another domain or command, of another config (outside
  the keys that are safe to change on resume), or of other input data is refused with an
  :class:`~shared.errors.InputError` whose one line says what differs.
* :meth:`RunFolder.create` then makes the folder and writes the marker and ``config.yaml``.
* :meth:`RunFolder.open_existing` opens a finished or running run for evaluate/predict/explain.

Weights carry their run's id in the state_dict's ``_metadata`` (invisible to
``load_state_dict``), so that ``weights.pt`` copied from another run is refused on load.

Under ``torch.distributed`` (``torchrun``, once the process group is initialised) a run folder
is shared by every rank: rank 0 alone checks (:meth:`RunFolder.prepare`), creates and writes;
its run id, ``resumed`` flag and any :class:`~shared.errors.InputError` reach every rank, so
all ranks go on with the same run or all stop with the same message. :meth:`RunFolder.create`
and :meth:`RunFolder.mark_finished` end with a barrier, so every rank sees the folder and knows
which stages finished; :meth:`RunFolder.write_json`, :meth:`RunFolder.write_text`,
:meth:`RunFolder.save_weights` and :meth:`RunFolder.logging` act on rank 0 only.

Layout (files written by the :class:`~shared.training.trainer.Trainer` and the domains)::

    RUN/.contrasuite.json  config.yaml  metrics.json  history.csv  log.txt  weights.pt  state.pt
    RUN/<stage>/...        (a Trainer run folder per named stage, when a run has stages)

Examples:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> run = RunFolder.prepare(out, domain="demo", command="train", config={"lr": 0.1})
    >>> out.exists()
    False
    >>> run.create().resumed
    False
    >>> RunFolder.prepare(out, domain="demo", command="train", config={"lr": 0.1}).resumed
    True
    >>> RunFolder.prepare(out, domain="demo", command="train", config={"lr": 0.2})
    Traceback (most recent call last):
    ...
    shared.errors.InputError: ... holds a demo train run with another config: lr (0.1 -> 0.2); ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import torch.distributed as dist
from torch import Tensor, nn

from shared.config import dump_yaml, to_dict
from shared.distributed import is_main_process, on_rank0, world_size
from shared.errors import InputError
from shared.io import (
    PathLike,
    atomic_torch_save,
    atomic_write_text,
    jsonable,
    read_csv,
    read_json,
    write_csv,
    write_json,
)
from shared.runtime import log_to_file
from shared.training.identity import (
    SAFE_KEYS,
    data_fingerprint,
    describe_diff,
    run_id_of,
    stamp_run_id,
)

__all__ = [
    "MARKER",
    "RUN_FORMAT",
    "SAFE_KEYS",
    "FolderFiles",
    "OutputFolder",
    "RunFolder",
    "check_output_path",
    "data_fingerprint",
    "describe_diff",
    "run_id_of",
    "stamp_run_id",
]

logger = logging.getLogger(__name__)

MARKER = ".contrasuite.json"
RUN_FORMAT = 1
#: Settings that may change between a run and its resume without changing its results.
_T = TypeVar("_T")


def _barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def _plain_config(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = to_dict(config)
    return jsonable(dict(config or {}))


def _a(word: Any) -> str:
    """``word`` with its indefinite article ("an ecg", "a sepclr")."""
    text = str(word)
    return f"{'an' if text[:1].lower() in 'aeio' else 'a'} {text}"


def check_output_path(
    path: PathLike, *, option: str = "--out", inputs: tuple[PathLike, ...] = ()
) -> Path:
    """Refuse an output path that lies inside a run folder or is one of the inputs.

    For commands whose output is not a run folder (reports, predictions, upscaled images,
    generated data): writing into a run folder would mix foreign files into it (or replace
    its ``weights.pt``), and writing into an input folder would feed the outputs back in.

    Args:
        path: The output file or folder.
        option: The option that named it, for the message.
        inputs: Input files or folders it must not equal or lie inside of.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: If ``path`` is or lies inside a run folder, or is or lies inside an input
            folder, or is an input file.

    Examples:
        >>> import tempfile, pathlib
        >>> base = pathlib.Path(tempfile.mkdtemp())
        >>> check_output_path(base / "out", inputs=(base / "in",)).name
        'out'
        >>> check_output_path(base / "in" / "x", inputs=(base / "in",))
        Traceback (most recent call last):
        ...
        shared.errors.InputError: --out ...: it lies inside the input ...; choose a separate ...
    """
    out = Path(path).absolute()
    for node in (out, *out.parents):
        if (node / MARKER).is_file():
            raise InputError(
                f"{option} {path}: it lies inside the run folder {node}; choose a path "
                "outside run folders (they hold only what their command writes)."
            )
    for item in inputs:
        source = Path(item).absolute()
        if out == source or source in out.parents:
            raise InputError(
                f"{option} {path}: it lies inside the input {item}; choose a separate output "
                "folder."
            )
    return Path(path)


def _nearest_existing(path: Path) -> Path:
    node = path.absolute()
    while not node.exists() and node != node.parent:
        node = node.parent
    return node


class FolderFiles:
    """Atomic file writes and ``log.txt`` in a folder (rank 0 writes): what every writer shares.

    The base of :class:`RunFolder` and :class:`OutputFolder`, so that code that writes results
    (an evaluation's ``metrics.json``, ``results.md``, log) takes either.

    Attributes:
        path: The folder.
    """

    path: Path

    @contextlib.contextmanager
    def logging(self, *names: str) -> Iterator[None]:
        """Copy the INFO records of the loggers ``names`` to ``<folder>/log.txt`` (on rank 0)."""
        if not is_main_process():
            yield
            return
        with log_to_file(self.path / "log.txt", names or ("shared",)):
            yield

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``<folder>/<name>`` as JSON, atomically (rank 0); returns the path."""
        if is_main_process():
            write_json(self.path / name, obj)
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        """Write ``<folder>/<name>``, atomically (rank 0); returns the path."""
        if is_main_process():
            atomic_write_text(self.path / name, text)
        return self.path / name


class OutputFolder(FolderFiles):
    """The ``--out DIR`` of an evaluate command: its files go there instead of into its run.

    A plain folder (no marker: it is not a run), checked by :meth:`prepare` before anything is
    read or written, and made by :meth:`create`, which writes ``config.yaml`` (the command's
    resolved settings). Files in it that this command does not write are left alone; the run
    it evaluates is only read, so it may be read-only.

    Examples:
        >>> import tempfile, pathlib
        >>> base = pathlib.Path(tempfile.mkdtemp())
        >>> out = OutputFolder.prepare(base / "eval", config={"seed": 7})
        >>> out.path.exists()
        False
        >>> sorted(p.name for p in out.create().path.iterdir())
        ['config.yaml']
        >>> RunFolder.prepare(base / "run", domain="demo", command="train").create().path.name
        'run'
        >>> OutputFolder.prepare(base / "run" / "eval")
        Traceback (most recent call last):
        ...
        shared.errors.InputError: --out ...: it lies inside the run folder ...
    """

    def __init__(self, path: PathLike, config: Any = None) -> None:
        self.path = Path(path)
        self._config = config

    @classmethod
    def prepare(
        cls,
        path: PathLike,
        *,
        config: Any = None,
        option: str = "--out",
        inputs: tuple[PathLike, ...] = (),
    ) -> OutputFolder:
        """Check that ``path`` can be made and written; writes nothing.

        Args:
            path: The folder.
            config: The resolved settings (a dataclass or a mapping) for ``config.yaml``;
                ``None``: no ``config.yaml``.
            option: The option that named it, for messages.
            inputs: Input files or folders it must not be or lie inside of.

        Returns:
            The folder, not yet created.

        Raises:
            InputError: If ``path`` lies inside a run folder or an input, is a file, or cannot
                be created or written.
        """
        check_output_path(path, option=option, inputs=inputs)
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{option} {folder}: expected a folder, but it is a file.")
        base = _nearest_existing(folder)
        if not base.is_dir():
            raise InputError(f"{option} {folder}: {base} is a file, so the folder cannot be made.")
        if not os.access(base, os.W_OK | os.X_OK):
            raise InputError(f"{option} {folder}: cannot write in {base} (permission denied).")
        return cls(folder, config)

    def create(self) -> OutputFolder:
        """Make the folder and write ``config.yaml`` (rank 0); returns ``self``.

        Raises:
            InputError: If the folder cannot be created or written.
        """
        if not is_main_process():
            return self
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if self._config is not None:
                atomic_write_text(self.path / "config.yaml", dump_yaml(_plain_config(self._config)))
        except PermissionError as err:
            raise InputError(f"{self.path}: cannot write the folder ({err.strerror}).") from None
        return self

    def __repr__(self) -> str:
        return f"OutputFolder({str(self.path)!r})"


class RunFolder(FolderFiles):
    """A run folder of one domain command; see the module docstring for the rules.

    Use :meth:`prepare` (checks, no writes), then :meth:`create`; or :meth:`open_existing`.

    Attributes:
        path: The folder.
        domain: The domain that owns it (``"ecg"``, ``"prostate"``, ``"trainer"``, ...).
        command: The command that made it (``"train"``).
        run_id: A unique id, kept for the life of the run.
        resumed: Whether the folder already held this run when it was prepared.
    """

    def __init__(self, path: Path, marker: dict[str, Any], resumed: bool) -> None:
        self.path = path
        self._marker = marker
        self.resumed = resumed

    # ------------------------------------------------------------------ opening

    @classmethod
    def prepare(
        cls,
        path: PathLike,
        *,
        domain: str,
        command: str,
        config: Any = None,
        data: str | None = None,
        safe_keys: frozenset[str] = frozenset(),
        option: str = "--out",
    ) -> RunFolder:
        """Check that ``path`` can hold (or already holds) this run; write nothing.

        Args:
            path: The run folder; it may not exist yet.
            domain: The owning domain.
            command: The command.
            config: The run's resolved config (a dataclass or a plain mapping).
            data: A fingerprint of the input data (:func:`data_fingerprint`), or ``None``.
            safe_keys: Dotted keys (beyond :data:`SAFE_KEYS`) that may change on resume.
            option: The command-line option that named ``path``, for messages.

        Returns:
            The run folder (``resumed`` tells whether it already held this run).

        Raises:
            InputError: If the folder cannot be used; the message says why and what to do.
                Under ``torch.distributed`` rank 0 checks and every rank gets its answer.
        """
        marker, resumed = on_rank0(
            lambda: cls._check(Path(path), domain, command, config, data, safe_keys, option)
        )
        return cls(Path(path), marker, resumed=resumed)

    @classmethod
    def _check(
        cls,
        folder: Path,
        domain: str,
        command: str,
        config: Any,
        data: str | None,
        safe_keys: frozenset[str],
        option: str,
    ) -> tuple[dict[str, Any], bool]:
        """The checks of :meth:`prepare` on this process: (marker, resumed)."""
        where = f"{option} {folder}"
        plain = _plain_config(config)
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{where}: expected a folder for the run, but it is a file.")
        marker_path = folder / MARKER
        if folder.is_dir() and marker_path.is_file():
            marker = cls._read_marker(marker_path, where)
            if (marker.get("domain"), marker.get("command")) != (domain, command):
                raise InputError(
                    f"{where} holds {_a(marker.get('domain'))} {marker.get('command')} run, not "
                    f"{_a(domain)} {command} run; use another {option} folder."
                )
            diff = describe_diff(marker.get("config", {}), plain, SAFE_KEYS | safe_keys)
            if diff:
                raise InputError(
                    f"{where} holds {_a(domain)} {command} run with another config: {diff}; "
                    f"use another {option} folder, or delete {folder} to start over."
                )
            if data is not None and marker.get("data") not in (None, data):
                raise InputError(
                    f"{where} holds a run on other input data (fingerprint {marker.get('data')}, "
                    f"now {data}): the data changed since the run started; use another {option} "
                    f"folder, or delete {folder} to start over."
                )
            marker = {**marker, "config": plain}  # safe keys take their new values
            processes = int(marker.get("processes", 1))
            if processes != world_size() and domain != "trainer":  # once, for the whole run
                logger.warning(
                    "%s: resuming a run started with %d process(es) with %d: the global batch "
                    "and each process's share of the data change from here on, so the run is "
                    "no longer what one uninterrupted run would give.",
                    folder,
                    processes,
                    world_size(),
                )
            marker["processes"] = world_size()
            if data is not None:
                marker["data"] = data
            return marker, True
        if folder.is_dir():
            entries = sorted(p.name for p in folder.iterdir())
            if entries:
                raise InputError(
                    f"{where}: the folder is not empty and holds no contrasuite run "
                    f"({len(entries)} entries, e.g. {entries[0]!r}); choose a new or empty folder."
                )
        base = _nearest_existing(folder)
        if not base.is_dir():
            raise InputError(f"{where}: {base} is a file, so the folder cannot be created.")
        if not os.access(base, os.W_OK | os.X_OK):
            raise InputError(f"{where}: cannot write in {base} (permission denied).")
        marker = {
            "format": RUN_FORMAT,
            "domain": domain,
            "command": command,
            "run_id": uuid.uuid4().hex,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "data": data,
            "config": plain,
            "processes": world_size(),
            "stages": {},
        }
        return marker, False

    @classmethod
    def open_existing(
        cls, path: PathLike, *, domain: str, command: str | None = None, option: str = "--run"
    ) -> RunFolder:
        """Open a run folder written by ``domain`` (e.g. for evaluate, predict, explain).

        Raises:
            InputError: If the path is missing, a file, not a contrasuite run, or a run of
                another domain (or command, when given).
        """
        folder = Path(path)
        where = f"{option} {folder}"
        if not folder.exists():
            raise InputError(f"{where}: expected a run folder, but it does not exist.")
        if not folder.is_dir():
            raise InputError(f"{where}: expected a run folder, but it is a file.")
        marker_path = folder / MARKER
        if not marker_path.is_file():
            raise InputError(
                f"{where}: expected {_a(domain)} run folder, but it holds no {MARKER} "
                "(it was not written by a contrasuite train command)."
            )
        marker = cls._read_marker(marker_path, where)
        if marker.get("domain") != domain or (command and marker.get("command") != command):
            raise InputError(
                f"{where} holds {_a(marker.get('domain'))} {marker.get('command')} run, "
                f"expected {_a(domain)} {command or ''} run.".replace("  ", " ")
            )
        return cls(folder, marker, resumed=True)

    @staticmethod
    def _read_marker(path: Path, where: str) -> dict[str, Any]:
        try:
            marker = read_json(path)
        except InputError:
            marker = None
        if not isinstance(marker, dict) or marker.get("format") != RUN_FORMAT:
            raise InputError(
                f"{where}: {path.name} is corrupt or of another format (expected format "
                f"{RUN_FORMAT}); use another folder."
            )
        return marker

    def create(self) -> RunFolder:
        """Make the folder and write the marker and ``config.yaml`` (idempotent).

        Returns:
            ``self``.

        Raises:
            InputError: If the folder cannot be created or written (on every rank).
        """

        def create() -> None:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                self._write_marker()
                atomic_write_text(self.path / "config.yaml", dump_yaml(self.config))
            except PermissionError as err:
                raise InputError(
                    f"{self.path}: cannot write the run folder ({err.strerror})."
                ) from None

        on_rank0(create)  # its broadcast is the barrier: every rank sees the folder
        return self

    def _write_marker(self) -> None:
        write_json(self.path / MARKER, self._marker)

    # ------------------------------------------------------------------ properties

    @property
    def domain(self) -> str:
        """The owning domain."""
        return str(self._marker["domain"])

    @property
    def command(self) -> str:
        """The command that made the run."""
        return str(self._marker["command"])

    @property
    def run_id(self) -> str:
        """The run's unique id."""
        return str(self._marker["run_id"])

    @property
    def config(self) -> dict[str, Any]:
        """The run's config as plain data."""
        return dict(self._marker.get("config", {}))

    @property
    def data(self) -> str | None:
        """The fingerprint of the run's input data, if recorded."""
        value = self._marker.get("data")
        return None if value is None else str(value)

    # ------------------------------------------------------------------ stages

    def stage_dir(self, name: str) -> Path:
        """The folder of stage ``name`` (``RUN/<name>``), e.g. a Trainer's ``run_dir``."""
        return self.path / name

    def is_finished(self, name: str) -> bool:
        """Whether stage ``name`` has been marked finished."""
        return bool(self._marker.get("stages", {}).get(name, {}).get("finished"))

    def stage_info(self, name: str) -> dict[str, Any]:
        """What :meth:`mark_finished` recorded for stage ``name`` (empty if unfinished)."""
        return dict(self._marker.get("stages", {}).get(name, {}))

    def mark_finished(self, name: str, **info: Any) -> None:
        """Record that stage ``name`` finished (atomically), with optional plain ``info``."""
        self._marker.setdefault("stages", {})[name] = {"finished": True, **jsonable(info)}
        if is_main_process():
            self._write_marker()
        _barrier()

    def check_data(self, data: str, what: str = "the data") -> None:
        """Refuse ``data`` (a fingerprint) if it is not the run's input data.

        Raises:
            InputError: If the run recorded another fingerprint.
        """
        if self.data is not None and data != self.data:
            raise InputError(
                f"{what} is not the data the run in {self.path} was trained on "
                f"(fingerprint {data}, the run's {self.data})."
            )

    # ------------------------------------------------------------------ files

    def write_stage_history(self, stages: Sequence[str], column: str = "stage") -> Path:
        """Write ``RUN/history.csv``: every stage's ``history.csv`` rows, in order (rank 0).

        A run of several Trainer stages (``RUN/<stage>/history.csv``) gets one top-level history
        like a single-stage run, with ``column`` (e.g. ``stage`` or ``method``) naming each row's
        stage first; a stage without a history yet adds no rows.

        Args:
            stages: The stage names, in the order their rows go.
            column: The name of the column that names the stage.

        Returns:
            ``RUN/history.csv``.
        """
        rows = [
            {column: name, **row}
            for name in stages
            for row in read_csv(self.stage_dir(name) / "history.csv", missing_ok=True)
        ]
        if is_main_process():
            write_csv(self.path / "history.csv", rows)
        return self.path / "history.csv"

    def save_weights(self, state_dict: Mapping[str, Tensor], name: str = "weights.pt") -> Path:
        """Write a state_dict stamped with this run's id to ``RUN/<name>``, atomically (rank 0)."""
        path = self.path / name
        if is_main_process():
            atomic_torch_save(stamp_run_id(state_dict, self.run_id), path)
        return path

    def load_weights(
        self, module: nn.Module, name: str = "weights.pt", *, strict: bool = True
    ) -> nn.Module:
        """Load ``RUN/<name>`` into ``module`` after checking it belongs to this run.

        Raises:
            InputError: If the file is missing or corrupt, was written by another run, or does
                not fit ``module``.
        """
        from shared.training.checkpoint import load_weights

        return load_weights(self.path / name, module, strict=strict, run_id=self.run_id)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r}, {self.domain} {self.command}, id={self.run_id})"
