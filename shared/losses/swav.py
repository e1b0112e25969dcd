r"""SwAV: swapped prediction of Sinkhorn-Knopp codes over multi-crop views.

Caron, Misra, Mairal, Goyal, Bojanowski, Joulin, "Unsupervised Learning of Visual Features by
Contrasting Cluster Assignments", NeurIPS 2020. The formulas follow the authors' code
(facebookresearch/swav, ``main_swav.py``: ``train`` and ``distributed_sinkhorn``):

* codes :math:`q` come from the prototype scores of the crops in ``crops_for_assign`` (the two
  high-resolution crops by default) through ``sinkhorn_iterations`` Sinkhorn-Knopp steps with
  regularisation :math:`\varepsilon`, without gradient;
* every other crop :math:`v` predicts them,
  :math:`-\sum_k q_k \log \mathrm{softmax}(s_v/\tau)_k`, averaged over the other crops and
  over the assignment crops.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from shared.distributed import all_reduce_sum_, gather_no_grad, world_size
from shared.validation import (
    check_dim,
    check_ndim,
    check_positive,
    check_reduction,
    reduce,
)

__all__ = ["SwAVLoss", "sinkhorn_knopp", "swav"]


def _upcast(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_iterations(iterations: int) -> None:
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(
            f"Expected `sinkhorn_iterations` to be an int >= 1, but got {iterations!r}."
        )


@torch.no_grad()
def sinkhorn_knopp(
    scores: torch.Tensor,
    epsilon: float = 0.05,
    iterations: int = 3,
    *,
    gather_distributed: bool = False,
) -> torch.Tensor:
    r"""Soft codes of SwAV's equipartitioned assignment problem (no gradient).

    Starts from :math:`Q = \exp(S^\top/\varepsilon)` (prototypes x samples), scales it to sum
    to 1, then alternates ``iterations`` times: every prototype row to total :math:`1/K`,
    every sample column to :math:`1/B`; finally the columns are rescaled to sum to 1. With
    ``gather_distributed`` the sums over samples are all-reduced across ranks and :math:`B` is
    the global batch, exactly as in the authors' ``distributed_sinkhorn``.

    For stability each prototype's row is shifted by its (global) maximum score before the
    exponential. The first row normalisation cancels any per-row factor, so the codes are
    exactly those of the unshifted algorithm, but no ``exp`` overflows.

    Args:
        scores: Prototype scores of the samples to assign. Shape: (B, K), float.
        epsilon: Entropic regularisation :math:`\varepsilon > 0` (the paper's 0.05).
        iterations: Number of Sinkhorn-Knopp iterations, >= 1 (the paper's 3).
        gather_distributed: All-reduce the sums over samples across ranks.

    Returns:
        Codes whose rows sum to 1. Shape: (B, K), float32 (float64 for float64 input).

    Raises:
        ValueError: If ``scores`` is not 2-D or a hyper-parameter is invalid.

    Examples:
        >>> q = sinkhorn_knopp(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        >>> q.sum(dim=1).tolist()
        [1.0, 1.0]
        >>> bool(q[0, 0] > q[0, 1])
        True
    """
    check_ndim(scores, 2, "scores", "(B, K)")
    check_positive(epsilon, "epsilon")
    _check_iterations(iterations)
    distributed = gather_distributed and world_size() > 1
    with torch.autocast(device_type=scores.device.type, enabled=False):
        s = _upcast(scores.detach()) / epsilon
        row_max = s.max(dim=0).values
        if distributed:
            row_max = gather_no_grad(row_max[None]).max(dim=0).values
        q = torch.exp(s - row_max).t()  # (K, B), as in the paper's notation
        n_prototypes = q.shape[0]
        n_samples = q.shape[1] * (world_size() if distributed else 1)
        total = q.sum()
        if distributed:
            all_reduce_sum_(total)
        q = q / total
        tiny = torch.finfo(q.dtype).tiny
        for _ in range(iterations):
            rows = q.sum(dim=1, keepdim=True)
            if distributed:
                all_reduce_sum_(rows)
            q = q / rows.clamp_min(tiny) / n_prototypes
            q = q / q.sum(dim=0, keepdim=True).clamp_min(tiny) / n_samples
        return (q * n_samples).t()


def swav(
    scores: torch.Tensor,
    temperature: float = 0.1,
    *,
    epsilon: float = 0.05,
    sinkhorn_iterations: int = 3,
    crops_for_assign: Sequence[int] = (0, 1),
    queue_scores: torch.Tensor | None = None,
    gather_distributed: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""SwAV's swapped-prediction loss over V crops (Caron et al., NeurIPS 2020).

    For each assignment crop :math:`a` (``crops_for_assign``), codes
    :math:`q_a = \mathrm{Sinkhorn}(s_a)` are computed without gradient (optionally with queued
    scores prepended, whose codes are dropped). Each other crop predicts them:

    .. math::
        \ell_b = \frac{1}{|A|}\sum_{a \in A}\frac{1}{V-1}\sum_{v \ne a}
        -\sum_k q_{a,bk} \log \operatorname{softmax}(s_{v,b}/\tau)_k .

    The scores are the dot products of L2-normalised embeddings with L2-normalised prototypes
    (:class:`SwAVLoss` computes them); the log-softmax runs in float32.

    Args:
        scores: Prototype scores of every crop; all crops of a sample share the row.
            Shape: (B, V, K), float, V >= 2.
        temperature: Softmax temperature :math:`\tau > 0` of the predictions (paper: 0.1).
        epsilon: Sinkhorn regularisation :math:`\varepsilon` (paper: 0.05).
        sinkhorn_iterations: Sinkhorn-Knopp iterations (paper: 3).
        crops_for_assign: Indices of the crops whose codes are predicted (paper: the two
            high-resolution crops, ``(0, 1)``).
        queue_scores: Prototype scores of queued embeddings, one queue per assignment crop,
            prepended before Sinkhorn (SwAV's small-batch queue). Shape: (A, Q, K), float.
        gather_distributed: All-reduce the Sinkhorn sums across ranks (global equipartition).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or per-sample values of shape (B,) for ``"none"``; float32 (float64 for
        float64 input).

    Raises:
        ValueError: On shape mismatches, invalid crop indices or hyper-parameters.

    Examples:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> scores = torch.nn.functional.normalize(torch.randn(8, 4, 16), dim=-1)
        >>> loss = swav(scores)  # 4 crops, codes from crops 0 and 1
        >>> loss.shape, swav(scores, reduction="none").shape
        (torch.Size([]), torch.Size([8]))
    """
    check_positive(temperature, "temperature")
    check_reduction(reduction)
    check_positive(epsilon, "epsilon")
    _check_iterations(sinkhorn_iterations)
    check_ndim(scores, 3, "scores", "(B, V, K)")
    b, v, k = scores.shape
    if v < 2:
        raise ValueError(
            f"Expected `scores` to have shape (B, V, K) with V >= 2, but got {tuple(scores.shape)}."
        )
    crops = list(crops_for_assign)
    if not crops or len(set(crops)) != len(crops) or any(not 0 <= c < v for c in crops):
        raise ValueError(
            f"Expected `crops_for_assign` to be distinct crop indices in [0, {v}), but got {crops}."
        )
    if queue_scores is not None:
        check_ndim(queue_scores, 3, "queue_scores", "(A, Q, K)")
        check_dim(queue_scores, 0, len(crops), "queue_scores", "(A, Q, K)")
        check_dim(queue_scores, 2, k, "queue_scores", "(A, Q, K)")
    with torch.autocast(device_type=scores.device.type, enabled=False):
        log_p = F.log_softmax(_upcast(scores) / temperature, dim=-1)
        per_sample = log_p.new_zeros(b)
        for i, a in enumerate(crops):
            assign = scores[:, a].detach()
            if queue_scores is not None:
                assign = torch.cat([queue_scores[i].detach().to(assign.dtype), assign])
            q = sinkhorn_knopp(
                assign, epsilon, sinkhorn_iterations, gather_distributed=gather_distributed
            )[-b:]
            q = q.to(log_p.dtype)
            sub = log_p.new_zeros(b)
            for other in range(v):
                if other != a:
                    sub = sub - (q * log_p[:, other]).sum(dim=-1)
            per_sample = per_sample + sub / (v - 1)
        per_sample = per_sample / len(crops)
    return reduce(per_sample, reduction)


class SwAVLoss(nn.Module):
    """SwAV loss with its prototype layer and optional queue (Caron et al., NeurIPS 2020).

    Holds the K prototypes (a bias-free linear layer whose rows are re-normalised to unit norm
    before every forward pass, as the authors' training loop does) and, with ``queue_length >
    0``, a per-rank queue of past embeddings of the assignment crops that joins the Sinkhorn
    problem once full. The authors also freeze the prototypes' gradients for the first
    iterations (``freeze_prototypes_niters``); that belongs in the training loop.

    Args:
        dim: Embedding dimension D.
        num_prototypes: Number of prototypes K (paper: 3000 on ImageNet).
        temperature: Prediction temperature (paper: 0.1).
        epsilon: Sinkhorn regularisation (paper: 0.05).
        sinkhorn_iterations: Sinkhorn-Knopp iterations (paper: 3).
        crops_for_assign: Crops whose codes are predicted (paper: ``(0, 1)``).
        queue_length: Queued embeddings per assignment crop on this rank (0: no queue).
        gather_distributed: Compute codes with sums all-reduced over ranks.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ValueError: If a hyper-parameter is invalid.

    Examples:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> loss_fn = SwAVLoss(dim=16, num_prototypes=10)
        >>> features = torch.randn(8, 4, 16, requires_grad=True)  # (B, V, D)
        >>> loss = loss_fn(features)
        >>> loss.backward()
        >>> features.grad.shape
        torch.Size([8, 4, 16])
    """

    queue: torch.Tensor

    def __init__(
        self,
        dim: int,
        num_prototypes: int = 3000,
        temperature: float = 0.1,
        *,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        crops_for_assign: Sequence[int] = (0, 1),
        queue_length: int = 0,
        gather_distributed: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_positive(dim, "dim")
        check_positive(num_prototypes, "num_prototypes")
        check_positive(temperature, "temperature")
        check_positive(epsilon, "epsilon")
        _check_iterations(sinkhorn_iterations)
        check_reduction(reduction)
        crops = tuple(int(c) for c in crops_for_assign)
        if not crops or len(set(crops)) != len(crops) or min(crops) < 0:
            raise ValueError(
                f"Expected `crops_for_assign` to be distinct non-negative crop indices, "
                f"but got {list(crops_for_assign)}."
            )
        if queue_length < 0:
            raise ValueError(f"Expected `queue_length` to be >= 0, but got {queue_length}.")
        self.temperature = temperature
        self.epsilon = epsilon
        self.sinkhorn_iterations = sinkhorn_iterations
        self.crops_for_assign = crops
        self.gather_distributed = gather_distributed
        self.reduction = reduction
        self.prototypes = nn.Linear(dim, num_prototypes, bias=False)
        self.register_buffer("queue", torch.zeros(len(crops), queue_length, dim))

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        """Re-normalise every prototype to unit L2 norm in place (no gradient)."""
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Normalise prototypes and embeddings, score them, and return the SwAV loss.

        Args:
            features: Projected embeddings of every crop. Shape: (B, V, D), float.

        Returns:
            A scalar, or per-sample values of shape (B,) for ``reduction="none"``.

        Raises:
            ValueError: If ``features`` does not have shape (B, V, D) with this D, or a crop
                index in ``crops_for_assign`` is not below V.
        """
        check_ndim(features, 3, "features", "(B, V, D)")
        check_dim(features, 2, self.prototypes.in_features, "features", "(B, V, D)")
        self.normalize_prototypes()
        z = F.normalize(features, dim=-1)
        scores = self.prototypes(z)
        queue_scores = None
        if self.queue.shape[1] > 0:
            b = features.shape[0]
            if max(self.crops_for_assign) >= features.shape[1]:
                raise ValueError(
                    f"Expected `features` to have more than {max(self.crops_for_assign)} crops, "
                    f"but got shape {tuple(features.shape)}."
                )
            with torch.no_grad():
                if bool((self.queue[:, -1] != 0).any()):  # full: the authors' use_the_queue
                    queue_scores = self.queue @ self.prototypes.weight.detach().t()
                embeddings = z.detach()[:, list(self.crops_for_assign)].transpose(0, 1)
                length = self.queue.shape[1]
                self.queue[:, b:] = self.queue[:, : max(length - b, 0)].clone()
                newest = embeddings[:, -length:].to(self.queue.dtype)
                self.queue[:, : newest.shape[1]] = newest
        return swav(
            scores,
            self.temperature,
            epsilon=self.epsilon,
            sinkhorn_iterations=self.sinkhorn_iterations,
            crops_for_assign=self.crops_for_assign,
            queue_scores=queue_scores,
            gather_distributed=self.gather_distributed,
            reduction=self.reduction,
        )
