"""Atomic file writes: a reader sees either the old file or the new one, never half of one.

Every writer goes through :func:`atomic_open`: write to a temporary file in the same folder,
flush and ``fsync`` it, then ``os.replace`` it over the target (the timm recipe). If anything
fails before the rename, the temporary file is removed and the old file is left untouched.

Examples:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_json(folder / "metrics.json", {"auc": 0.5, "n": 3})
    >>> read_json(folder / "metrics.json")
    {'auc': 0.5, 'n': 3}
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePath
from typing import IO, Any

import numpy as np
import torch

from shared.errors import InputError

__all__ = [
    "atomic_open",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "jsonable",
    "read_csv",
    "read_json",
    "write_csv",
    "write_json",
]

PathLike = str | os.PathLike[str]


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the ``with`` block ends without error.

    Missing parent folders are created. A new file gets mode ``0o644``; an existing file keeps
    its permissions.

    Args:
        path: The final file.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding: Text encoding for ``"w"``.

    Yields:
        The open temporary file.

    Raises:
        ValueError: If ``mode`` is neither ``"w"`` nor ``"wb"``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"Expected `mode` to be 'w' or 'wb', but got {mode!r}.")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        handle: IO[Any] = os.fdopen(fd, mode, encoding=encoding if mode == "w" else None)
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else 0o644)
        except OSError:
            pass
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`); returns the path."""
    with atomic_open(path, "w", encoding=encoding) as handle:
        handle.write(text)
    return Path(path)


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save(obj, path)``, atomically: the old file survives a failure or a kill.

    Args:
        obj: What to save. Keep it to tensors and plain types so that it loads with
            ``torch.load(path, weights_only=True)``.
        path: The final file.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def jsonable(obj: Any) -> Any:
    """Turn ``obj`` into strict-JSON data.

    numpy and torch scalars become Python numbers, arrays and tensors nested lists, tuples
    lists, paths strings, and NaN or infinite floats ``None`` (strict JSON has no NaN).

    Args:
        obj: Nested mappings, sequences and scalars.

    Returns:
        Data that ``json.dumps(..., allow_nan=False)`` accepts.

    Raises:
        TypeError: For objects of any other type.
    """
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, PurePath):
        return str(obj)
    raise TypeError(f"Cannot write a {type(obj).__name__} as JSON: {obj!r}.")


def write_json(path: PathLike, obj: Any, indent: int = 2) -> None:
    """Write ``jsonable(obj)`` to ``path`` atomically, as strict JSON ending in a newline."""
    text = json.dumps(jsonable(obj), indent=indent, allow_nan=False)
    atomic_write_text(path, text + "\n")


def read_json(path: PathLike) -> Any:
    """Read a JSON file.

    Raises:
        InputError: If the file is missing or is not valid JSON (the message names the file).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise InputError(f"Expected a JSON file at {path}, but it does not exist.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"Expected {path} to hold valid JSON, but got: {exc}") from None


def read_csv(path: PathLike, *, missing_ok: bool = False) -> list[dict[str, str]]:
    """The rows of a CSV file with a header, as dicts of strings.

    Args:
        path: The CSV file (as :func:`write_csv` writes it).
        missing_ok: Return no rows for a missing file instead of raising.

    Returns:
        One dict per row, keyed by the header's column names.

    Raises:
        InputError: If the file is missing (unless ``missing_ok``) or not readable as text.
    """
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return []
        raise InputError(f"{path}: expected a CSV file, but it does not exist.")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"Expected {path} to hold CSV text, but got: {exc}") from None


def write_csv(path: PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rewrite a whole CSV file atomically from a list of rows (dicts).

    The columns are the union of the rows' keys, in first-seen order; a row without a column
    leaves its cell empty. Rewriting the whole file (instead of appending) keeps it consistent
    with the rows a resumed run restores.

    Args:
        path: The CSV file.
        rows: One mapping per row.
    """
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    with atomic_open(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
