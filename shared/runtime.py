"""Process-level helpers every pipeline needs: device choice, CPU threads, a run's log file."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from shared.errors import InputError

__all__ = ["LOG_FORMAT", "log_to_file", "resolve_device", "torch_threads"]

#: Line format of every run folder's ``log.txt``.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as given.

    A bare ``"cuda"`` (or ``"auto"`` on a GPU machine) is the GPU of this process's
    ``LOCAL_RANK`` under ``torchrun`` (GPU 0 otherwise), made the current device. The one place
    that turns a ``--device`` or ``trainer.device`` value into a device.

    Args:
        name: The ``--device`` value.

    Returns:
        The device.

    Raises:
        InputError: If CUDA is asked for but not available, the GPU index does not exist, or
            the name is unknown.

    Examples:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if name not in ("auto", "cuda") and not name.startswith("cuda:"):
        from shared.validation import closest

        hint = closest(name, ("auto", "cpu", "cuda"))
        raise InputError(
            f"--device {name}: expected auto, cpu, cuda or cuda:N."
            + (f" Did you mean {hint!r}?" if hint else "")
        )
    if not torch.cuda.is_available():
        raise InputError(
            f"--device {name}: CUDA is not available on this machine (torch "
            f"{torch.__version__} finds no GPU); use --device cpu or --device auto."
        )
    index_text = name.partition(":")[2]
    if index_text and not index_text.isdigit():
        raise InputError(f"--device {name}: expected cuda:N with a GPU index N.")
    index = int(index_text) if index_text else int(os.environ.get("LOCAL_RANK", 0))
    if index >= torch.cuda.device_count():
        raise InputError(
            f"--device {name}: expected a GPU index below {torch.cuda.device_count()}."
        )
    device = torch.device("cuda", index)
    torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` intra-op CPU threads inside the block (``None`` or 0: leave torch's setting).

    Args:
        n: Number of threads.

    Examples:
        >>> before = torch.get_num_threads()
        >>> with torch_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _already_logs_to(logger: logging.Logger, path: Path) -> bool:
    node: logging.Logger | None = logger
    while node is not None:
        if any(
            isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path
            for h in node.handlers
        ):
            return True
        node = node.parent if node.propagate else None
    return False


@contextlib.contextmanager
def log_to_file(path: str | Path, names: Sequence[str]) -> Iterator[None]:
    """Append the INFO (and louder) records of the loggers ``names`` to ``path`` in the block.

    Loggers quieter than INFO are lowered to INFO for the block (the console keeps its own
    level). A logger that already writes to ``path`` (itself or through a parent) is left
    alone, so nested pipelines do not write each line twice.

    Args:
        path: The log file; its folder is created.
        names: Logger names, e.g. ``["medical.ecg", "shared.training"]``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path = path.resolve()
    loggers = [lg for lg in map(logging.getLogger, names) if not _already_logs_to(lg, path)]
    if not loggers:
        yield
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
        lg.addHandler(handler)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()
