"""Living with RecBole 1.2.1 inside a larger application (benchmarks.md A.4 and H).

RecBole was written to own the process: its ``Config`` reads ``sys.argv`` and sets
``CUDA_VISIBLE_DEVICES``, its classes log through the *root* logger, its ``Trainer`` opens a
TensorBoard writer under ``./log_tensorboard`` and creates ``./saved``. :func:`recbole_scope`
confines all of that for the duration of a ``with`` block:

* ``sys.argv`` is replaced by ``[argv0]`` (no ``--key=value`` leaks into RecBole's config);
* ``logging.getLogger()`` calls inside RecBole's modules return the ``recsys.recbole`` logger
  (so the user's root logger is never configured by RecBole, and its chatter can be silenced);
* ``get_tensorboard`` returns a writer that writes nothing;
* ``CUDA_VISIBLE_DEVICES`` is restored afterwards;
* pandas' chained-assignment ``FutureWarning`` raised inside RecBole's ``dataset.py`` is hidden
  (harmless with pandas < 3, which the suite pins).

``recbole.quick_start`` is never imported (it imports ray).

Importing this module also imports RecBole's sequential models **without** the global side effect
of ``recbole/model/sequential_recommender/sine.py``, which calls
``torch.autograd.set_detect_anomaly(True)`` at import time: anomaly mode checks every backward
output for NaNs and made a SASRec training step about twice as slow here. The previous anomaly
setting is restored right after the import (:mod:`recsys` imports this module first).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any
from unittest import mock

import torch

__all__ = ["RECBOLE_LOGGER", "NullWriter", "recbole_scope"]


def _import_sequential_models() -> None:
    name = "recbole.model.sequential_recommender"
    if name in sys.modules:
        return
    enabled = torch.is_anomaly_enabled()
    importlib.import_module(name)
    torch.autograd.set_detect_anomaly(enabled)


_import_sequential_models()

#: The logger that RecBole's messages go to while inside :func:`recbole_scope`.
RECBOLE_LOGGER = logging.getLogger("recsys.recbole")

# Modules of RecBole 1.2.1 that do ``from logging import getLogger`` and call ``getLogger()``.
_LOGGER_MODULES = (
    "recbole.config.configurator",
    "recbole.data.utils",
    "recbole.data.dataset.dataset",
    "recbole.data.dataloader.abstract_dataloader",
    "recbole.data.dataloader.general_dataloader",
    "recbole.model.abstract_recommender",
    "recbole.evaluator.metrics",
    "recbole.trainer.trainer",
)


class NullWriter:
    """Stands in for TensorBoard's ``SummaryWriter``: accepts every call, writes nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _null_tensorboard(logger: logging.Logger) -> NullWriter:
    return NullWriter()


def _get_logger(name: str | None = None) -> logging.Logger:
    return RECBOLE_LOGGER if not name else logging.getLogger(name)


@contextlib.contextmanager
def recbole_scope() -> Iterator[None]:
    """Run RecBole code without side effects on the process (see the module docstring).

    Yields:
        Nothing; use as ``with recbole_scope(): ...``.
    """
    saved_argv = sys.argv
    saved_cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    with contextlib.ExitStack() as stack:
        for name in _LOGGER_MODULES:
            module = importlib.import_module(name)
            if hasattr(module, "getLogger"):
                stack.enter_context(mock.patch.object(module, "getLogger", _get_logger))
        trainer_module = importlib.import_module("recbole.trainer.trainer")
        stack.enter_context(mock.patch.object(trainer_module, "get_tensorboard", _null_tensorboard))
        stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
        sys.argv = [saved_argv[0] if saved_argv else "contrasuite"]
        try:
            yield
        finally:
            sys.argv = saved_argv
            if saved_cuda is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = saved_cuda
