"""Callbacks: cross-cutting features plugged into the Trainer's loop through five hooks.

Every hook receives the :class:`~shared.training.trainer.Trainer` first; useful attributes are
``trainer.config``, ``trainer.epoch`` (0-based, the epoch running), ``trainer.global_step``
(optimizer steps so far), ``trainer.history`` (rows of finished epochs), ``trainer.run_dir``,
``trainer.optimizer`` and ``trainer.should_stop`` (set it to True to stop after this epoch).

A callback with state that must survive a resume returns it from :meth:`Callback.state_dict`
(tensors and plain types only: ``state.pt`` loads with ``weights_only=True``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from torch import Tensor

from shared.errors import InputError
from shared.validation import closest

if TYPE_CHECKING:
    from shared.training.task import Task
    from shared.training.trainer import Trainer

__all__ = ["Callback", "EarlyStopping"]


class Callback:
    """Base class with no-op hooks; override the ones you need."""

    def on_fit_start(self, trainer: Trainer, task: Task) -> None:
        """Called once before the first epoch (also when resuming)."""

    def on_train_batch_end(
        self, trainer: Trainer, task: Task, outputs: Mapping[str, Tensor], batch_idx: int
    ) -> None:
        """Called after each training batch with the (detached) loss dict of the step."""

    def on_validation_end(self, trainer: Trainer, task: Task, metrics: Mapping[str, float]) -> None:
        """Called after each evaluated epoch with that epoch's row.

        ``metrics`` holds ``train/<loss key>`` averages and, on epochs with a validation pass,
        ``val/<metric>`` values. Without a validation loader it is called every epoch.
        """

    def on_checkpoint(self, trainer: Trainer, state: Mapping[str, Any]) -> None:
        """Called at the end of each epoch, after ``state`` was saved to ``state.pt``.

        Without a run folder nothing is saved, but the hook still runs with the same ``state``.
        """

    def on_fit_end(self, trainer: Trainer, task: Task, metrics: Mapping[str, float]) -> None:
        """Called once after training with the final metrics that ``fit`` returns."""

    def state_dict(self) -> dict[str, Any]:
        """Return what must survive a resume (plain types and tensors only)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class EarlyStopping(Callback):
    """Track the best value of one metric, and stop after ``patience`` epochs without progress.

    The Trainer builds one from its config (``monitor``, ``mode``, ``patience``, ``min_delta``)
    and uses it to choose the best epoch; extra instances passed as callbacks also stop training.
    NaN never counts as an improvement.

    Args:
        monitor: A key of the epoch row, e.g. ``"val/auroc"`` or ``"train/loss"``.
        mode: ``"min"`` if lower is better, ``"max"`` if higher is better.
        patience: Epochs without improvement before stopping; ``None`` never stops.
        min_delta: How much better than the best a value must be to count as an improvement.

    Raises:
        ValueError: If ``mode`` is invalid or ``patience``/``min_delta`` is negative.

    Examples:
        >>> stop = EarlyStopping("val/acc", mode="max", patience=1)
        >>> [stop.update(v, epoch) for epoch, v in enumerate([0.5, 0.7, 0.6])]
        [True, True, False]
        >>> stop.should_stop, stop.best, stop.best_epoch
        (True, 0.7, 1)
    """

    def __init__(
        self,
        monitor: str,
        mode: Literal["min", "max"] = "min",
        patience: int | None = None,
        min_delta: float = 0.0,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"Expected `mode` to be 'min' or 'max', but got {mode!r}.")
        if patience is not None and patience < 0:
            raise ValueError(f"Expected `patience` to be >= 0 or None, but got {patience}.")
        if min_delta < 0:
            raise ValueError(f"Expected `min_delta` to be >= 0, but got {min_delta}.")
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.best: float | None = None
        self.best_epoch = -1
        self.bad_epochs = 0
        self.improved = False

    @property
    def should_stop(self) -> bool:
        """Whether ``patience`` epochs in a row brought no improvement."""
        return self.patience is not None and self.bad_epochs >= max(self.patience, 1)

    def update(self, value: float, epoch: int) -> bool:
        """Record ``value`` of (0-based) ``epoch``; return whether it is a new best."""
        better = not math.isnan(value) and (
            self.best is None
            or (value < self.best - self.min_delta if self.mode == "min"
                else value > self.best + self.min_delta)
        )  # fmt: skip
        if better:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        self.improved = better
        return better

    def on_validation_end(self, trainer: Trainer, task: Task, metrics: Mapping[str, float]) -> None:
        """Update from ``metrics[self.monitor]`` and ask the trainer to stop when patience ends.

        Raises:
            InputError: If ``monitor`` is not a key of ``metrics`` (names the closest key).
        """
        if self.monitor not in metrics:
            keys = [k for k in metrics if k.startswith(("train/", "val/"))]
            hint = closest(self.monitor, keys)
            did_you_mean = f" Did you mean `{hint}`?" if hint else ""
            raise InputError(
                f"Expected the monitored metric `{self.monitor}` to be one of "
                f"{', '.join(keys)}, but it is missing.{did_you_mean} "
                "Set trainer.monitor to a validation metric (or a training loss key)."
            )
        self.update(float(metrics[self.monitor]), trainer.epoch)
        if self.should_stop:
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        """Return the best value, its epoch and the count of epochs without progress."""
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.best = None if state["best"] is None else float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
