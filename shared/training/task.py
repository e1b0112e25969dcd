"""The ``Task``: what one training or validation step means for a domain (timm's TrainingTask).

The :class:`~shared.training.trainer.Trainer` owns the loop (devices, AMP, optimizer, checkpoints);
a ``Task`` owns the model(s) and the maths of one step. Domains subclass ``Task`` instead of the
Trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Task", "move_to"]


def move_to(data: Any, device: torch.device | str) -> Any:
    """Move every tensor inside nested tuples, lists and dicts to ``device``.

    Named tuples keep their type; other objects are returned unchanged.

    Args:
        data: A tensor, or a (nested) tuple, list or mapping holding tensors.
        device: The target device.

    Returns:
        The same structure with its tensors on ``device``.

    Examples:
        >>> move_to({"x": torch.zeros(2), "ids": [torch.ones(1)], "name": "a"}, "cpu")["name"]
        'a'
    """
    if isinstance(data, Tensor):
        non_blocking = torch.device(device).type == "cuda"
        return data.to(device, non_blocking=non_blocking)
    if isinstance(data, Mapping):
        return type(data)({k: move_to(v, device) for k, v in data.items()})  # type: ignore[call-arg]
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # named tuple
        return type(data)(*(move_to(v, device) for v in data))
    if isinstance(data, (list, tuple)):
        return type(data)(move_to(v, device) for v in data)
    return data


class Task(nn.Module):
    """Base class of every trainable task: holds the model(s) and computes one step.

    Subclasses implement :meth:`training_step` and, to be validated, :meth:`validation_step`
    (and :meth:`validation_epoch_end` for whole-set metrics such as AUROC).

    ``forward(batch)`` calls :meth:`training_step`, so that when the Trainer wraps the task in
    ``DistributedDataParallel`` the step runs through DDP's forward hooks.

    Examples:
        >>> class Regression(Task):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.net = nn.Linear(3, 1)
        ...     def training_step(self, batch):
        ...         x, y = batch
        ...         mse = (self.net(x).squeeze(-1) - y).pow(2).mean()
        ...         return {"loss": mse, "loss/mse": mse.detach()}
        >>> out = Regression()((torch.zeros(4, 3), torch.zeros(4)))
        >>> sorted(out)
        ['loss', 'loss/mse']
    """

    def training_step(self, batch: Any) -> dict[str, Tensor]:
        """Compute the training loss of one batch.

        Args:
            batch: One batch from the training loader, already on the task's device.

        Returns:
            ``{"loss": scalar to backpropagate, "loss/<part>": detached parts, ...}``. Every key
            is averaged over the epoch and written to ``history.csv`` as ``train/<key>``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement training_step().")

    def validation_step(self, batch: Any) -> Mapping[str, Tensor | float]:
        """Compute validation outputs of one batch (runs under ``torch.no_grad`` in eval mode).

        Args:
            batch: One batch from the validation loader, already on the task's device.

        Returns:
            Scalars to average (``{"loss": ..., "acc": ...}``), or any tensors that
            :meth:`validation_epoch_end` combines (scores and labels for AUROC). The Trainer
            detaches them and moves them to the CPU.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement validation_step().")

    def validation_epoch_end(self, outputs: list[Mapping[str, Tensor | float]]) -> dict[str, float]:
        """Combine the outputs of every validation batch into the epoch's metrics.

        The default averages each key over batches (each batch counts once, whatever its size);
        override it for whole-set metrics.

        Args:
            outputs: What :meth:`validation_step` returned, one entry per batch.

        Returns:
            Metric name -> value. They appear in ``history.csv`` as ``val/<name>``.
        """
        keys = dict.fromkeys(k for out in outputs for k in out)
        return {
            key: sum(float(torch.as_tensor(o[key]).double().mean()) for o in outputs if key in o)
            / sum(1 for o in outputs if key in o)
            for key in keys
        }

    def move_batch(self, batch: Any, device: torch.device) -> Any:
        """Move a batch to ``device`` (default: :func:`move_to`); override for custom batches."""
        return move_to(batch, device)

    @property
    def has_validation(self) -> bool:
        """Whether this task overrides :meth:`validation_step`."""
        return type(self).validation_step is not Task.validation_step

    def forward(self, batch: Any) -> dict[str, Tensor]:
        """Run :meth:`training_step` (what DDP calls)."""
        return self.training_step(batch)
