"""An on-disk array cache: ``.npy`` files read back as read-only memory maps.

Any domain whose preprocessing is slow stores its result once and memory-maps it afterwards:
reading PTB-XL with wfdb costs a few milliseconds per record (about 90 s for the 21,799 records
at 100 Hz), and a later run opens the stored ``.npy`` with ``np.load(..., mmap_mode="r")`` in
milliseconds. An entry is a pair of files:

* ``<name>.npy``: the array, written to a temporary file in the same folder and renamed into
  place (a killed run never leaves a half-written entry behind);
* ``<name>.json``: what the entry holds (shape, dtype, the key's parts, anything the caller
  adds), written atomically after the array, so its presence marks a complete entry.

The entry's name holds a hash of its *key*: everything the array depends on (the csv's content
hash, the sampling rate, the filter settings, a format version). A different key is a different
file; stale entries are never read, and deleting the folder is always safe.

Where: ``cache_dir`` when given, else ``$CONTRASUITE_CACHE``, else
``$XDG_CACHE_HOME/contrasuite`` (``~/.cache/contrasuite``), each with a sub-folder per domain.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shared.io import read_json, write_json

logger = logging.getLogger(__name__)

__all__ = [
    "ArrayCache",
    "default_cache_dir",
    "file_sha256",
    "files_fingerprint",
    "stable_hash",
    "stat_files",
]

PathLike = str | os.PathLike[str]


def default_cache_dir(domain: str = "ecg") -> Path:
    """The folder for a domain's cache entries when the caller gives none.

    ``$CONTRASUITE_CACHE/<domain>`` if that variable is set, else
    ``$XDG_CACHE_HOME/contrasuite/<domain>``, else ``~/.cache/contrasuite/<domain>``.

    Args:
        domain: The sub-folder, one per domain.

    Returns:
        The folder (not created here).
    """
    root = os.environ.get("CONTRASUITE_CACHE")
    if root:
        return Path(root).expanduser() / domain
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "contrasuite" / domain


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short hex digest of JSON-able data, independent of dict order.

    Args:
        obj: Nested dicts, lists, strings and numbers.
        length: Number of hex digits to keep.

    Returns:
        The first ``length`` hex digits of the SHA-256 of the canonical JSON text.

    Examples:
        >>> stable_hash({"b": 1, "a": [1, 2]}) == stable_hash({"a": [1, 2], "b": 1})
        True
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def file_sha256(path: PathLike) -> str:
    """The SHA-256 hex digest of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stat_files(paths: Sequence[PathLike]) -> list[os.stat_result | None]:
    """``os.stat`` of each path, ``None`` where the file is missing or unreadable."""
    out: list[os.stat_result | None] = []
    for path in paths:
        try:
            out.append(os.stat(path))
        except OSError:
            out.append(None)
    return out


def files_fingerprint(
    paths: Sequence[PathLike], stats: Sequence[os.stat_result | None] | None = None
) -> str:
    """A cheap digest of many files' existence, sizes and modification times.

    Used to notice that a record file changed after its cache entry was written (a ``stat``
    per file: about 0.1 s for the 43,598 files of the full PTB-XL release).

    Args:
        paths: The files, in a fixed order.
        stats: Their :func:`stat_files` results when already at hand.

    Returns:
        A hex digest; a missing file counts as a distinct state.
    """
    if stats is None:
        stats = stat_files(paths)
    digest = hashlib.sha256()
    for path, st in zip(paths, stats):
        name = os.path.basename(path)
        if st is None:
            digest.update(f"{name}:missing;".encode())
        else:
            digest.update(f"{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


class ArrayCache:
    """A folder of ``.npy`` + ``.json`` entries (see the module docstring).

    Args:
        folder: Where the entries live; created on the first write.

    Examples:
        >>> import tempfile
        >>> cache = ArrayCache(tempfile.mkdtemp())
        >>> with cache.writer("demo", (2, 3), np.float32, {"k": 1}) as array:
        ...     array[:] = 1.0
        >>> hit = cache.load("demo")
        >>> hit[0].shape, float(hit[0].sum()), hit[1]["k"]
        ((2, 3), 6.0, 1)
    """

    def __init__(self, folder: PathLike) -> None:
        self.folder = Path(folder).expanduser()

    def array_path(self, name: str) -> Path:
        """The ``.npy`` file of entry ``name``."""
        return self.folder / f"{name}.npy"

    def meta_path(self, name: str) -> Path:
        """The ``.json`` file of entry ``name``."""
        return self.folder / f"{name}.json"

    def load(self, name: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        """Open entry ``name`` as a read-only memory map.

        Args:
            name: The entry's name.

        Returns:
            ``(array, meta)``, or ``None`` when the entry is absent, incomplete or unreadable
            (a damaged entry is logged and treated as a miss, so it is simply rebuilt).
        """
        array_file, meta_file = self.array_path(name), self.meta_path(name)
        if not (array_file.is_file() and meta_file.is_file()):
            return None
        try:
            meta = read_json(meta_file)
            array = np.load(array_file, mmap_mode="r")
        except (OSError, ValueError) as exc:
            logger.warning("ignoring damaged cache entry %s (%s); rebuilding it", array_file, exc)
            return None
        if not isinstance(meta, dict) or list(array.shape) != meta.get("shape"):
            logger.warning("ignoring inconsistent cache entry %s; rebuilding it", array_file)
            return None
        return array, meta

    @contextlib.contextmanager
    def writer(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: Any,
        meta: Mapping[str, Any],
    ) -> Iterator[np.ndarray]:
        """Create entry ``name``: yield a writable memory map, publish it when the block ends.

        The array is a temporary ``.npy`` in the cache folder; on success it is flushed and
        renamed into place, then the ``.json`` is written (with ``shape`` and ``dtype`` added to
        ``meta``). On any exception the temporary file is deleted and nothing is published.

        Args:
            name: The entry's name.
            shape: The array's shape.
            dtype: The array's dtype.
            meta: JSON-able description stored beside the array.

        Yields:
            The writable array (zeros), to be filled by the caller.

        Raises:
            OSError: If the folder cannot be created or written.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.", suffix=".npy.tmp")
        os.close(fd)
        try:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            yield array
            array.flush()
            del array
            os.replace(tmp, self.array_path(name))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        info = dict(meta)
        info["shape"] = list(shape)
        info["dtype"] = np.dtype(dtype).str
        write_json(self.meta_path(name), info)
