"""Full-softmax cross-entropy over class embeddings, on the InfoNCE family's fused log-sum-exp."""

from __future__ import annotations

import torch

from shared.losses._chunked import masked_logsumexp
from shared.validation import check_dim, check_ndim, check_positive, check_reduction, reduce

__all__ = ["embedding_cross_entropy"]


def embedding_cross_entropy(
    queries: torch.Tensor,
    class_embeddings: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    *,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Softmax cross-entropy over every class, with logits ``queries @ class_embeddings.T / tau``.

    The same value and gradients as ``F.cross_entropy(queries @ class_embeddings.T, targets)``
    (a sequential recommender's full-ranking loss with tied item embeddings), on the fused
    log-sum-exp of the contrastive losses: one (B, C) buffer instead of the logits, their log
    softmax and its gradient, and no zero-filled (B, C) gradient. It is InfoNCE with the
    classes as candidates and the target as the one positive:
    :math:`\ell_i = \log\sum_c e^{q_i \cdot e_c / \tau} - q_i \cdot e_{y_i} / \tau`.

    Args:
        queries: Shape: (B, D), float.
        class_embeddings: Shape: (C, D), float.
        targets: Class index per query, in ``[0, C)``. Shape: (B,), int64.
        temperature: :math:`\tau > 0` (1: the plain cross-entropy of a recommender).
        reduction: ``"mean"`` or ``"sum"`` over the queries, or ``"none"``.

    Returns:
        A scalar, or shape (B,) for ``"none"``; float32 (float64 for float64 queries).

    Raises:
        ValueError: On shape mismatches, a target outside ``[0, C)``, ``temperature <= 0`` or
            an unknown reduction.

    Examples:
        >>> q = torch.tensor([[1.0, 0.0]])
        >>> classes = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> round(embedding_cross_entropy(q, classes, torch.tensor([0])).item(), 4)  # log(1+1/e)
        0.3133
    """
    check_positive(temperature, "temperature")
    check_reduction(reduction)
    check_ndim(queries, 2, "queries", "(B, D)")
    check_ndim(class_embeddings, 2, "class_embeddings", "(C, D)")
    check_dim(class_embeddings, 1, queries.shape[1], "class_embeddings", "(C, D)")
    if targets.shape != (queries.shape[0],):
        raise ValueError(
            f"Expected `targets` of shape ({queries.shape[0]},) (one class per query), but got "
            f"{tuple(targets.shape)}."
        )
    n_classes = class_embeddings.shape[0]
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= n_classes):
        raise ValueError(
            f"Expected every target in [0, {n_classes}), but got values in "
            f"[{int(targets.min())}, {int(targets.max())}]."
        )
    positives = targets.long()[:, None]
    per_query = masked_logsumexp(queries, class_embeddings, 1.0 / temperature, positives=positives)
    return reduce(per_query, reduction)
