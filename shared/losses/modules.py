"""Thin ``nn.Module`` wrappers of :mod:`shared.losses.functional`.

They hold hyper-parameters and state only: distributed gathering (``gather_distributed``) and
MoCo's negative queue (:class:`InfoNCELoss`). With ``gather_distributed=True`` under
``torchrun``, each rank's anchors are contrasted with the candidates of every rank; see
:mod:`shared.distributed` for the gradient convention.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from shared import distributed as dist
from shared.losses import functional as LF
from shared.validation import check_dim, check_ndim, check_positive, check_reduction

__all__ = [
    "AlignmentLoss",
    "DCLLoss",
    "DCLWLoss",
    "InfoNCELoss",
    "NTXentLoss",
    "SupConLoss",
    "UniformityLoss",
]


class _ContrastiveLoss(nn.Module):
    def __init__(
        self, temperature: float, normalize: bool, reduction: str, gather_distributed: bool
    ) -> None:
        super().__init__()
        check_positive(temperature, "temperature")
        check_reduction(reduction)
        self.temperature = temperature
        self.normalize = normalize
        self.reduction = reduction
        self.gather_distributed = gather_distributed

    def _gather(self) -> bool:
        return self.gather_distributed and dist.world_size() > 1

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, normalize={self.normalize}, "
            f"reduction={self.reduction!r}, gather_distributed={self.gather_distributed}"
        )


class NTXentLoss(_ContrastiveLoss):
    """Module form of :func:`~shared.losses.functional.nt_xent` (SimCLR).

    Args:
        temperature: Softmax temperature.
        normalize: Cosine similarity if True, else the dot product.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        gather_distributed: Contrast with the views of every rank (all_gather with gradients).

    Shape:
        - z1, z2: (B, D).
        - Output: scalar, or (2B,) for ``"none"``.

    Examples:
        >>> NTXentLoss()(torch.randn(4, 8), torch.randn(4, 8)).shape
        torch.Size([])
    """

    def __init__(
        self,
        temperature: float = 0.5,
        normalize: bool = True,
        reduction: str = "mean",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(temperature, normalize, reduction, gather_distributed)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Compute the loss of this rank's anchors. Shapes: (B, D), (B, D)."""
        if not self._gather():
            return LF.nt_xent(
                z1, z2, self.temperature, normalize=self.normalize, reduction=self.reduction
            )
        return LF.nt_xent(
            z1,
            z2,
            self.temperature,
            normalize=self.normalize,
            reduction=self.reduction,
            z1_all=dist.gather(z1),
            z2_all=dist.gather(z2),
            offset=dist.local_offset(z1.shape[0]),
        )


class DCLLoss(_ContrastiveLoss):
    """Module form of :func:`~shared.losses.functional.dcl` (decoupled contrastive loss).

    Args:
        temperature: Softmax temperature.
        normalize: Cosine similarity if True, else the dot product.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        gather_distributed: Contrast with the views of every rank.

    Shape:
        - z1, z2: (B, D).
        - Output: scalar, or (2B,) for ``"none"``.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        normalize: bool = True,
        reduction: str = "mean",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(temperature, normalize, reduction, gather_distributed)

    def _kwargs(self, z1: torch.Tensor, z2: torch.Tensor) -> dict:
        kw: dict = {"normalize": self.normalize, "reduction": self.reduction}
        if self._gather():
            kw.update(
                z1_all=dist.gather(z1),
                z2_all=dist.gather(z2),
                offset=dist.local_offset(z1.shape[0]),
            )
        return kw

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Compute the loss of this rank's anchors. Shapes: (B, D), (B, D)."""
        return LF.dcl(z1, z2, self.temperature, **self._kwargs(z1, z2))


class DCLWLoss(DCLLoss):
    """Module form of :func:`~shared.losses.functional.dclw` (weighted DCL).

    Args:
        temperature: Softmax temperature.
        sigma: Weighting temperature of the von Mises-Fisher weights.
        normalize: Cosine similarity if True, else the dot product.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        gather_distributed: Contrast with the views of every rank (the weights use the global
            batch mean).

    Shape:
        - z1, z2: (B, D).
        - Output: scalar, or (2B,) for ``"none"``.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        sigma: float = 0.5,
        normalize: bool = True,
        reduction: str = "mean",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(temperature, normalize, reduction, gather_distributed)
        check_positive(sigma, "sigma")
        self.sigma = sigma

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Compute the loss of this rank's anchors. Shapes: (B, D), (B, D)."""
        return LF.dclw(z1, z2, self.temperature, self.sigma, **self._kwargs(z1, z2))


class SupConLoss(_ContrastiveLoss):
    """Module form of :func:`~shared.losses.functional.sup_con`.

    Args:
        temperature: Softmax temperature.
        base_temperature: Optional loss scale ``temperature / base_temperature``.
        normalize: Cosine similarity if True, else the dot product.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        gather_distributed: Contrast with the views (and labels) of every rank.

    Shape:
        - features: (B, V, D); labels: (B,) or None.
        - Output: scalar, or (V * B,) for ``"none"``.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        base_temperature: float | None = None,
        normalize: bool = True,
        reduction: str = "mean",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(temperature, normalize, reduction, gather_distributed)
        self.base_temperature = base_temperature

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Compute the loss of this rank's anchors. Shapes: (B, V, D), (B,)."""
        kw: dict = {}
        if self._gather():
            kw = {
                "features_all": dist.gather(features),
                "labels_all": None if labels is None else dist.gather_no_grad(labels),
                "offset": dist.local_offset(features.shape[0]),
            }
        return LF.sup_con(
            features,
            labels,
            self.temperature,
            base_temperature=self.base_temperature,
            normalize=self.normalize,
            reduction=self.reduction,
            **kw,
        )


class InfoNCELoss(_ContrastiveLoss):
    """Module form of :func:`~shared.losses.functional.info_nce`, with an optional MoCo queue.

    With ``queue_size > 0`` the module keeps a FIFO queue of past (detached, gathered) keys as
    extra negatives (He et al., MoCo, CVPR 2020). Pass ``keys`` to :meth:`forward` to use the
    MoCo form: anchor ``i``'s positive is key ``i`` (of this rank), every other key of the
    (global) batch and every queue entry is a negative; the keys are then enqueued.

    Args:
        temperature: Softmax temperature.
        normalize: Cosine similarity if True, else the dot product.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        gather_distributed: Gather candidates (and enqueue keys) from every rank.
        queue_size: Number K of past keys kept as negatives (0 = none).
        dim: Embedding dimension D; required with a queue.

    Shape:
        - anchors: (B, D); candidates: (M, D); positive_mask: (B, M), bool.
        - Output: scalar, or (B,) for ``"none"``.

    Examples:
        >>> loss = InfoNCELoss(temperature=0.2, queue_size=8, dim=4)
        >>> q, k = torch.randn(2, 4), torch.randn(2, 4)
        >>> loss.moco(q, k).shape, int(loss.queue_len)
        (torch.Size([]), 2)
    """

    queue: torch.Tensor
    queue_ptr: torch.Tensor
    queue_len: torch.Tensor

    def __init__(
        self,
        temperature: float = 0.1,
        normalize: bool = True,
        reduction: str = "mean",
        gather_distributed: bool = False,
        queue_size: int = 0,
        dim: int | None = None,
    ) -> None:
        super().__init__(temperature, normalize, reduction, gather_distributed)
        if queue_size < 0:
            raise ValueError(f"Expected `queue_size` to be >= 0, but got {queue_size}.")
        if queue_size > 0 and dim is None:
            raise ValueError("Expected `dim` (the embedding size D) with `queue_size` > 0.")
        self.queue_size = queue_size
        self.register_buffer("queue", torch.zeros(queue_size, dim or 0))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue_len", torch.zeros((), dtype=torch.long))

    def negatives(self) -> torch.Tensor | None:
        """The queued negatives. Shape: (K', D), K' <= K; None while empty."""
        n = int(self.queue_len)
        return self.queue[:n] if n > 0 else None

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Push ``keys`` (gathered from every rank if ``gather_distributed``). Shape: (B, D)."""
        if self.queue_size == 0:
            return
        check_ndim(keys, 2, "keys", "(B, D)")
        check_dim(keys, 1, self.queue.shape[1], "keys", "(B, D)")
        keys = keys.detach()
        if self._gather():
            keys = dist.gather_no_grad(keys)
        if self.normalize:
            keys = torch.nn.functional.normalize(keys, dim=1)
        keys = keys[-self.queue_size :]
        idx = (
            int(self.queue_ptr) + torch.arange(keys.shape[0], device=keys.device)
        ) % self.queue_size
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr.fill_((int(self.queue_ptr) + keys.shape[0]) % self.queue_size)
        self.queue_len.fill_(min(self.queue_size, int(self.queue_len) + keys.shape[0]))

    def forward(
        self,
        anchors: torch.Tensor,
        candidates: torch.Tensor,
        positive_mask: torch.Tensor,
        exclude_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """InfoNCE of this rank's anchors against the candidates (gathered if enabled).

        With gathering, ``positive_mask``/``exclude_mask`` refer to the local candidates
        (B, M) and are placed at this rank's offset among the gathered columns.
        """
        if self._gather():
            m = candidates.shape[0]
            candidates = dist.gather(candidates)
            positive_mask = _pad_columns(positive_mask, dist.local_offset(m), candidates.shape[0])
            if exclude_mask is not None:
                exclude_mask = _pad_columns(exclude_mask, dist.local_offset(m), candidates.shape[0])
        return LF.info_nce(
            anchors,
            candidates,
            positive_mask,
            self.temperature,
            normalize=self.normalize,
            exclude_mask=exclude_mask,
            extra_negatives=self.negatives(),
            reduction=self.reduction,
        )

    def moco(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """MoCo's loss: query ``i``'s positive is key ``i``; then enqueue the keys.

        Args:
            queries: Shape: (B, D).
            keys: Shape: (B, D) (usually from a momentum encoder, detached by the caller).

        Returns:
            The loss; shape (B,) for ``"none"``.
        """
        eye = torch.eye(queries.shape[0], dtype=torch.bool, device=queries.device)
        loss = self(queries, keys, eye)
        self.enqueue(keys)
        return loss


def _pad_columns(mask: torch.Tensor, offset: int, total: int) -> torch.Tensor:
    out = torch.zeros(mask.shape[0], total, dtype=torch.bool, device=mask.device)
    out[:, offset : offset + mask.shape[1]] = mask
    return out


class AlignmentLoss(nn.Module):
    """Module form of :func:`~shared.losses.functional.alignment`.

    Shape:
        - x, y: (B, D).
        - Output: scalar, or (B,) for ``"none"``.
    """

    def __init__(self, alpha: float = 2, normalize: bool = True, reduction: str = "mean") -> None:
        super().__init__()
        check_positive(alpha, "alpha")
        check_reduction(reduction)
        self.alpha, self.normalize, self.reduction = alpha, normalize, reduction

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Alignment of the pairs ``(x_i, y_i)``."""
        return LF.alignment(x, y, self.alpha, normalize=self.normalize, reduction=self.reduction)


class UniformityLoss(nn.Module):
    """Module form of :func:`~shared.losses.functional.uniformity`.

    With ``gather_distributed``, the pairs span the global batch and every rank returns the
    global value (for ``"mean"``) or its rows' terms (``"none"``/``"sum"``).

    Shape:
        - x: (B, D).
        - Output: scalar, or (B,) for ``"none"``.
    """

    def __init__(
        self,
        t: float = 2,
        normalize: bool = True,
        reduction: str = "mean",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        check_positive(t, "t")
        check_reduction(reduction)
        self.t, self.normalize, self.reduction = t, normalize, reduction
        self.gather_distributed = gather_distributed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Uniformity of the (global) batch."""
        if not (self.gather_distributed and dist.world_size() > 1):
            return LF.uniformity(x, self.t, normalize=self.normalize, reduction=self.reduction)
        x_all = dist.gather(x)
        offset = dist.local_offset(x.shape[0])
        if self.reduction != "mean":
            return LF.uniformity(
                x,
                self.t,
                normalize=self.normalize,
                reduction=self.reduction,
                x_all=x_all,
                offset=offset,
            )
        # Per-row log-sum-exps of every rank, combined into the global log-mean.
        rows = LF.uniformity(
            x, self.t, normalize=self.normalize, reduction="none", x_all=x_all, offset=offset
        )
        n = x_all.shape[0]
        all_rows = dist.gather(rows) + math.log(n - 1)
        # Every rank returns the global value; gather's backward sums the ranks' gradients,
        # which DDP's averaging turns back into the global gradient.
        return torch.logsumexp(all_rows, dim=0) - math.log(n * (n - 1))
