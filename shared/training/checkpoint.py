"""Checkpoint helpers: safe loading, RNG states as plain data, and run-folder readers.

Run folder layout written by the :class:`~shared.training.trainer.Trainer`:

* ``weights.pt``: the task's ``state_dict`` (no ``module.`` prefix) of the epoch chosen by
  ``TrainerConfig.weights`` (``"best"`` by the monitored metric, or ``"last"``).
* ``state.pt``: everything needed to resume (``format_version``, config as a plain dict,
  completed epochs, last and best weights, optimizer, scheduler, GradScaler, early-stopping and
  callback states, history rows, RNG states). Tensors and plain types only.
* ``history.csv``, ``metrics.json``, ``config.yaml``, ``log.txt``.

Both ``.pt`` files load with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import os
import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shared.errors import InputError
from shared.io import read_json

__all__ = [
    "FORMAT_VERSION",
    "config_diff",
    "get_rng_state",
    "load_weights",
    "read_metrics",
    "safe_load",
    "set_rng_state",
]

FORMAT_VERSION = 1


def safe_load(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with readable errors.

    Raises:
        InputError: If the file is missing, corrupt, or holds pickled objects other than
            tensors and plain types.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except FileNotFoundError:
        raise InputError(f"Expected a checkpoint at {path}, but it does not exist.") from None
    except IsADirectoryError:
        raise InputError(f"Expected a checkpoint file at {path}, but it is a folder.") from None
    # torch.save writes a zip archive (PK..) or, in the legacy format, a pickle (0x80 ...).
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise InputError(
            f"Expected {path} to be a torch checkpoint, but it is not one "
            f"({'empty' if not head else 'text or another format'})."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            f"Expected {path} to hold only tensors and plain types (weights_only=True), "
            f"but it does not: {first[:160]}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            f"Expected {path} to be a torch checkpoint, but it is corrupt or truncated: "
            f"{first.split('. ')[0][:160]}."
        ) from None


def load_weights(
    path: str | os.PathLike[str],
    module: nn.Module,
    *,
    strict: bool = True,
    run_id: str | None = None,
) -> nn.Module:
    """Load a ``state_dict`` saved by the Trainer (``weights.pt``) into ``module``, safely.

    A ``module.`` prefix left by ``DistributedDataParallel`` is removed.

    Args:
        path: The weights file.
        module: The module (usually the task) to load into, in place.
        strict: Whether every key must match.
        run_id: When given, the file must carry this run id (stamped by
            :meth:`shared.training.run.RunFolder.save_weights` and the Trainer).

    Returns:
        ``module``.

    Raises:
        InputError: If the file cannot be read, holds no state_dict, or its keys or shapes do
            not match ``module`` (the message names missing and unexpected keys), or was
            written by another run than ``run_id``.
    """
    from shared.training.run import run_id_of

    state = safe_load(path)
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise InputError(f"Expected {path} to hold a state_dict (names -> tensors).")
    if run_id is not None and run_id_of(state) != run_id:
        found = run_id_of(state)
        raise InputError(
            f"{path} was written by "
            + (f"another run (id {found})" if found else "no contrasuite run")
            + f", not by the run in {Path(path).parent} (id {run_id}); copy whole run folders, "
            "never single weight files."
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    own = set(module.state_dict())
    missing = sorted(own - set(state))
    unexpected = sorted(set(state) - own)
    if strict and (missing or unexpected):
        raise InputError(
            f"The weights in {path} do not fit {type(module).__name__}: "
            f"missing keys {_short(missing)}, unexpected keys {_short(unexpected)}."
        )
    try:
        module.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise InputError(
            f"The weights in {path} do not fit {type(module).__name__}: {exc}"
        ) from None
    return module


def _short(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit]) or "none"
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def read_metrics(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``metrics.json`` of a run folder.

    Raises:
        InputError: If the folder has no readable ``metrics.json``.
    """
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise InputError(f"Expected {path} to exist; has the run in {run_dir} finished an epoch?")
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"Expected {path} to hold a JSON object, but got {type(data).__name__}.")
    return data


def get_rng_state() -> dict[str, Any]:
    """Capture the RNG states of python, numpy, torch (and CUDA) as tensors and plain types."""
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    version, py_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else [],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": int(version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore RNG states captured by :func:`get_rng_state`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002 - the global RNG that user code draws from
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))


def config_diff(
    saved: Mapping[str, Any], current: Mapping[str, Any], ignore: frozenset[str] = frozenset()
) -> list[str]:
    """List the differences between two plain config dicts as ``"key: old -> new"`` lines.

    Args:
        saved: The config stored in a checkpoint.
        current: The config of this run.
        ignore: Dotted keys that may differ (e.g. ``"trainer.progress"``).

    Returns:
        One line per differing leaf key, sorted; empty when equal.

    Examples:
        >>> config_diff({"a": {"lr": 0.1}, "b": 1}, {"a": {"lr": 0.2}, "b": 1})
        ['a.lr: 0.1 -> 0.2']
    """
    out: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if path in ignore:
            return
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in sorted(set(a) | set(b), key=str):
                walk(
                    a.get(key, "<absent>"),
                    b.get(key, "<absent>"),
                    f"{path}.{key}" if path else str(key),
                )
        elif a != b:
            out.append(f"{path}: {a!r} -> {b!r}")

    walk(saved, current, "")
    return out
