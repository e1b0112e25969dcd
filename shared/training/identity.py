"""Identities of runs and their inputs: config differences, data fingerprints, weight stamps.

Split out of :mod:`shared.training.run`, which re-exports every public name here.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn  # noqa: F401  (nn: the doctests)

from shared.errors import InputError

__all__ = ["SAFE_KEYS", "data_fingerprint", "describe_diff", "run_id_of", "stamp_run_id"]

SAFE_KEYS = frozenset(
    {
        "trainer.progress",
        "trainer.log_every",
        "trainer.device",
        "trainer.threads",
        "trainer.find_unused_parameters",
    }
)
_RUN_ID_KEY = "contrasuite_run_id"


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_diff(
    saved: Mapping[str, Any], current: Mapping[str, Any], ignore: frozenset[str] = SAFE_KEYS
) -> str:
    """Name the leaf keys that differ between two plain configs, in one short line.

    Args:
        saved: The run's config.
        current: This command's config.
        ignore: Dotted keys (or key prefixes ending in ``.``) that may differ.

    Returns:
        ``""`` when equal, else e.g. ``"trainer.lr (0.001 -> 0.01) and 2 more"`` (at most
        three keys shown).

    Examples:
        >>> describe_diff({"a": {"lr": 0.1}, "b": 1}, {"a": {"lr": 0.2}, "b": 1})
        'a.lr (0.1 -> 0.2)'
    """
    old, new = _flatten(saved), _flatten(current)
    keys = [
        k
        for k in sorted(set(old) | set(new))
        if old.get(k, "<absent>") != new.get(k, "<absent>")
        and k not in ignore
        and not any(p.endswith(".") and k.startswith(p) for p in ignore)
    ]
    shown = ", ".join(
        f"{k} ({_short(old.get(k, '<absent>'))} -> {_short(new.get(k, '<absent>'))})"
        for k in keys[:3]
    )
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _hash_file(h: Any, path: Path) -> None:
    size = path.stat().st_size
    h.update(f"{path.name}:{size}".encode())
    with path.open("rb") as f:
        if size <= 64 << 20:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        else:  # large files: head, tail and size
            h.update(f.read(8 << 20))
            f.seek(-(8 << 20), os.SEEK_END)
            h.update(f.read())


def data_fingerprint(*items: Any) -> str:
    """A short content hash of a run's input data.

    Args:
        *items: Files and folders (hashed by relative name and content; files over 64 MiB by
            their size, first and last 8 MiB), numpy arrays and tensors (shape, dtype,
            bytes), and plain strings or numbers.

    Returns:
        16 hex digits.

    Raises:
        InputError: If a path does not exist.

    Examples:
        >>> data_fingerprint(np.arange(3)) == data_fingerprint(np.arange(3))
        True
        >>> data_fingerprint(np.arange(3)) == data_fingerprint(np.arange(4))
        False
    """
    h = hashlib.sha1()
    for item in items:
        if isinstance(item, Tensor):
            item = item.detach().cpu().numpy()
        if isinstance(item, np.ndarray):
            arr = np.ascontiguousarray(item)
            h.update(f"array:{arr.shape}:{arr.dtype}".encode())
            h.update(arr.tobytes())
        elif isinstance(item, (os.PathLike, Path)):
            path = Path(item)
            if path.is_dir():
                for file in sorted(p for p in path.rglob("*") if p.is_file()):
                    h.update(str(file.relative_to(path)).encode())
                    _hash_file(h, file)
            elif path.is_file():
                _hash_file(h, path)
            else:
                raise InputError(f"Expected input data at {path}, but it does not exist.")
        else:
            h.update(f"{type(item).__name__}:{item!r}".encode())
    return h.hexdigest()[:16]


def stamp_run_id(state_dict: Mapping[str, Tensor], run_id: str) -> OrderedDict[str, Tensor]:
    """Return a copy of ``state_dict`` that carries ``run_id`` in its ``_metadata``.

    ``load_state_dict`` ignores the extra metadata, so the file still loads into a plain
    module with ``torch.load(path, weights_only=True)``.

    Examples:
        >>> sd = stamp_run_id(nn.Linear(2, 2).state_dict(), "abc")
        >>> run_id_of(sd)
        'abc'
    """
    out: OrderedDict[str, Tensor] = OrderedDict(state_dict)
    meta = getattr(state_dict, "_metadata", None)
    metadata: OrderedDict[str, Any] = OrderedDict(
        (k, dict(v)) for k, v in (meta or {"": {}}).items()
    )
    metadata.setdefault("", {})[_RUN_ID_KEY] = run_id
    out._metadata = metadata  # type: ignore[attr-defined]
    return out


def run_id_of(state_dict: Any) -> str | None:
    """The run id stamped by :func:`stamp_run_id`, or ``None``."""
    meta = getattr(state_dict, "_metadata", None) or {}
    value = meta.get("", {}).get(_RUN_ID_KEY)
    return str(value) if value is not None else None
