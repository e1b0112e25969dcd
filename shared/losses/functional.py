"""The InfoNCE family as pure functions.

NT-Xent, general InfoNCE, SupCon, DCL/DCLW, and Wang & Isola's alignment and uniformity (the
full-softmax cross-entropy over class embeddings is in :mod:`shared.losses.cross_entropy`).

Every function computes its logits once, masks what the method excludes with ``-inf`` and takes
a log-sum-exp (``F.cross_entropy`` where each anchor has one positive), so it stays finite for
small temperatures and under float16/bfloat16 autocast: the log-sum-exp runs in float32.

Distributed use: the functions take *anchors* (this rank's rows) and *candidates* (optionally
gathered from every rank with :func:`shared.distributed.gather`); the offset of this rank's rows
inside the candidates is an argument. The ``nn.Module`` wrappers in :mod:`shared.losses.modules`
do the gathering.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from shared.losses._chunked import masked_logsumexp
from shared.validation import (
    check_dim,
    check_finite,
    check_ndim,
    check_positive,
    check_reduction,
    check_same_shape,
    reduce,
)

__all__ = [
    "alignment",
    "dcl",
    "dclw",
    "info_nce",
    "nt_xent",
    "sup_con",
    "uniformity",
]


def _normalize(x: torch.Tensor, normalize: bool) -> torch.Tensor:
    return F.normalize(x, dim=-1) if normalize else x


def _up(x: torch.Tensor) -> torch.Tensor:
    """Upcast float16/bfloat16 to float32; leave float32/float64 alone."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _lse_float(logits: torch.Tensor) -> torch.Tensor:
    """Row-wise log-sum-exp computed in at least float32. Shape: (N, M) -> (N,)."""
    return torch.logsumexp(_up(logits), dim=1)


def _check_common(temperature: float, reduction: str) -> None:
    check_positive(temperature, "temperature")
    check_reduction(reduction)


def _two_view_logits(
    z1: torch.Tensor,
    z2: torch.Tensor,
    z1_all: torch.Tensor | None,
    z2_all: torch.Tensor | None,
    offset: int,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits of the 2B local views against the 2N (gathered) views.

    Returns:
        ``(logits (2B, 2N), self_index (2B,), positive_index (2B,))``. Anchor rows are
        ``[z1; z2]``; candidate columns are ``[z1_all; z2_all]``.
    """
    b = z1.shape[0]
    z1_all = z1 if z1_all is None else z1_all
    z2_all = z2 if z2_all is None else z2_all
    n = z1_all.shape[0]
    anchors = torch.cat([z1, z2]) * (1.0 / temperature)
    candidates = torch.cat([z1_all, z2_all])
    logits = anchors @ candidates.T
    rows = torch.arange(b, device=z1.device) + offset
    self_index = torch.cat([rows, rows + n])
    positive_index = torch.cat([rows + n, rows])
    return logits, self_index, positive_index


def nt_xent(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.5,
    *,
    normalize: bool = True,
    reduction: str = "mean",
    z1_all: torch.Tensor | None = None,
    z2_all: torch.Tensor | None = None,
    offset: int = 0,
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""NT-Xent, SimCLR's normalized temperature-scaled cross-entropy (Chen et al., ICML 2020).

    For each of the 2B views, its positive is the other view of the same sample and the
    2B - 2 remaining views are its negatives:
    :math:`\ell_i = -s_{i,p(i)}/\tau + \log\sum_{k \ne i} \exp(s_{i,k}/\tau)`.

    Args:
        z1: First views. Shape: (B, D), float.
        z2: Second views. Shape: (B, D), float.
        temperature: Softmax temperature :math:`\tau > 0`.
        normalize: Cosine similarity (L2-normalise inside) if True, else the dot product.
        reduction: ``"mean"`` or ``"sum"`` over the 2B anchors, or ``"none"``.
        z1_all: First views gathered from every rank (distributed use); ``z1`` if None.
            Shape: (N, D) with N >= B.
        z2_all: Second views gathered from every rank. Shape: (N, D).
        offset: Index of this rank's first row in ``z1_all``/``z2_all``.
        chunk_size: None: the fast path, which holds the (2B, 2N) logits once (in float32;
            float64 for float64 inputs) and
            switches to the chunked path by itself when they would exceed 2 GiB
            (``shared.losses._chunked.AUTO_CHUNK_BYTES``, B > ~11,500 pairs). An int: compute
            the log-sum-exp over blocks of that many anchor rows and recompute them in
            backward, so that memory grows linearly with the batch (about ``chunk_size * 2N``
            logits at a time) for one extra matrix product of time.

    Returns:
        A scalar, or per-anchor values of shape (2B,) for ``"none"`` (the ``z1`` anchors first).

    Raises:
        ValueError: If shapes disagree, the batch has fewer than 2 views in total, or
            ``temperature``/``reduction`` is invalid.

    Examples:
        >>> z = torch.eye(4)
        >>> round(nt_xent(z, z, temperature=1.0).item(), 4)  # -1 + log(e + 6)
        1.1654
    """
    _check_common(temperature, reduction)
    check_ndim(z1, 2, "z1", "(B, D)")
    check_same_shape(z1, z2, "`z1` and `z2`", "(B, D)")
    if z1_all is not None or z2_all is not None:
        if z1_all is None or z2_all is None:
            raise ValueError("Expected `z1_all` and `z2_all` to be given together, but got one.")
        check_same_shape(z1_all, z2_all, "`z1_all` and `z2_all`", "(N, D)")
        check_dim(z1_all, 1, z1.shape[1], "z1_all", "(N, D)")
    b = z1.shape[0]
    anchors = _normalize(torch.cat([z1, z2]), normalize)
    rows = torch.arange(b, device=z1.device) + offset
    if z1_all is None or z2_all is None:
        candidates, n = anchors, b
    else:
        candidates, n = _normalize(torch.cat([z1_all, z2_all]), normalize), z1_all.shape[0]
    self_index = torch.cat([rows, rows + n])[:, None]
    positive_index = torch.cat([rows + n, rows])[:, None]
    # log-sum-exp over every view but the anchor itself minus the positive logit, without
    # autograd's (2B, 2N) intermediates (see shared.losses._chunked).
    per_anchor = masked_logsumexp(
        anchors,
        candidates,
        1.0 / temperature,
        self_index,
        positives=positive_index,
        chunk_size=chunk_size,
    )
    return reduce(per_anchor.to(z1.dtype), reduction)


def info_nce(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    positive_mask: torch.Tensor,
    temperature: float = 0.1,
    *,
    normalize: bool = True,
    exclude_mask: torch.Tensor | None = None,
    extra_negatives: torch.Tensor | None = None,
    reduction: str = "mean",
    validate_args: bool = True,
) -> torch.Tensor:
    r"""General InfoNCE with explicit candidates, any number of positives and extra negatives.

    For anchor :math:`i` with positives :math:`P(i)` among the candidates and denominator set
    :math:`A(i)` (all candidates and extra negatives not excluded), this is SupCon's
    :math:`\mathcal{L}^{out}` (Khosla et al., NeurIPS 2020, eq. 2), which is van den Oord et
    al.'s InfoNCE when each anchor has one positive:

    .. math::
        \ell_i = -\frac{1}{|P(i)|}\sum_{p \in P(i)} \log
        \frac{\exp(s_{ip}/\tau)}{\sum_{a \in A(i)} \exp(s_{ia}/\tau)}.

    Anchors without a positive are excluded: their ``"none"`` value is 0 and they do not count
    in the mean (never NaN).

    Args:
        anchors: Shape: (B, D), float.
        candidates: Shape: (M, D), float.
        positive_mask: True where candidate ``m`` is a positive of anchor ``b``. Shape: (B, M),
            bool.
        temperature: Softmax temperature :math:`\tau > 0`.
        normalize: Cosine similarity if True, else the dot product (MCLRec, PCL-SR).
        exclude_mask: True where a candidate leaves anchor ``b``'s denominator (e.g. the anchor
            itself when anchors are among the candidates). Shape: (B, M), bool.
        extra_negatives: Negatives added to every denominator, e.g. a MoCo queue. Shape: (K, D).
        reduction: ``"mean"`` (over anchors with a positive), ``"sum"`` or ``"none"``.
        validate_args: Check that no positive is also excluded (needs the data).

    Returns:
        A scalar, or per-anchor values of shape (B,) for ``"none"``.

    Raises:
        ValueError: On shape mismatches, an invalid ``temperature``/``reduction``, or (with
            ``validate_args``) a positive that is also excluded.

    Examples:
        >>> a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> info_nce(a, a, torch.eye(2, dtype=torch.bool), temperature=1.0).item() > 0
        True
    """
    _check_common(temperature, reduction)
    check_ndim(anchors, 2, "anchors", "(B, D)")
    check_ndim(candidates, 2, "candidates", "(M, D)")
    check_dim(candidates, 1, anchors.shape[1], "candidates", "(M, D)")
    expected = (anchors.shape[0], candidates.shape[0])
    if positive_mask.shape != expected:
        raise ValueError(
            f"Expected `positive_mask` to have shape (B, M) = {expected}, "
            f"but got {tuple(positive_mask.shape)}."
        )
    if positive_mask.dtype != torch.bool:
        raise ValueError(f"Expected `positive_mask` to be bool, but got {positive_mask.dtype}.")
    if exclude_mask is not None:
        if exclude_mask.shape != expected:
            raise ValueError(
                f"Expected `exclude_mask` to have shape (B, M) = {expected}, "
                f"but got {tuple(exclude_mask.shape)}."
            )
        if validate_args and bool((exclude_mask & positive_mask).any()):
            raise ValueError("Expected no candidate to be both positive and excluded, but got one.")
    if extra_negatives is not None:
        check_ndim(extra_negatives, 2, "extra_negatives", "(K, D)")
        check_dim(extra_negatives, 1, anchors.shape[1], "extra_negatives", "(K, D)")
    if validate_args:
        check_finite(anchors, "anchors")

    anchors = _normalize(anchors, normalize) * (1.0 / temperature)
    logits = anchors @ _normalize(candidates, normalize).T
    positives = positive_mask.to(logits.dtype)
    n_pos = positives.sum(dim=1)
    pos_mean = _up((logits * positives).sum(dim=1)) / n_pos.clamp_min(1.0).to(_up(logits).dtype)
    if exclude_mask is not None:
        logits = logits.masked_fill(exclude_mask, float("-inf"))
    if extra_negatives is not None:
        logits = torch.cat([logits, anchors @ _normalize(extra_negatives, normalize).T], dim=1)
    has_pos = n_pos > 0
    per_anchor = torch.where(has_pos, _lse_float(logits) - pos_mean, 0.0).to(anchors.dtype)
    if reduction == "mean":
        return per_anchor.sum() / has_pos.sum().clamp_min(1)
    return reduce(per_anchor, reduction)


def _flatten_views(features: torch.Tensor) -> torch.Tensor:
    """(B, V, D) -> (V * B, D), view-major (all first views, then all second views, ...)."""
    return features.transpose(0, 1).reshape(-1, features.shape[-1])


def sup_con(
    features: torch.Tensor,
    labels: torch.Tensor | None = None,
    temperature: float = 0.1,
    *,
    base_temperature: float | None = None,
    normalize: bool = True,
    reduction: str = "mean",
    features_all: torch.Tensor | None = None,
    labels_all: torch.Tensor | None = None,
    offset: int = 0,
    validate_args: bool = True,
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""Supervised contrastive loss :math:`\mathcal{L}^{sup}_{out}` (Khosla et al., NeurIPS 2020).

    Every view of every sample is an anchor (``contrast_mode="all"``); its positives are the
    other views with the same label, its denominator every other view. Without ``labels`` the
    positives are the other views of the same sample (SimCLR with V views).

    Args:
        features: Views of each sample. Shape: (B, V, D), float.
        labels: Class of each sample. Shape: (B,), int. None: each sample is its own class.
        temperature: Softmax temperature :math:`\tau > 0`.
        base_temperature: If given, the loss is scaled by ``temperature / base_temperature``
            as in the authors' code (which uses 0.07 for both).
        normalize: Cosine similarity if True, else the dot product.
        reduction: ``"mean"`` (over anchors with a positive), ``"sum"`` or ``"none"``.
        features_all: Features gathered from every rank (distributed use). Shape: (N, V, D).
        labels_all: Labels gathered from every rank. Shape: (N,).
        offset: Index of this rank's first sample in ``features_all``.
        validate_args: Check labels and finiteness (needs the data).
        chunk_size: None: the fast path, which holds the (V B, V N) logits once (in float32;
            float64 for float64 inputs) and switches to the chunked path by itself when they
            would exceed 2 GiB. An int: blocks of that many anchor rows, recomputed in
            backward, so that memory grows linearly with the batch. Either way no (V B, V N)
            mask is built: the positives' mean logit comes from per-class sums of the
            candidates (with labels) or from their indices (without).

    Returns:
        A scalar, or per-anchor values of shape (V * B,) for ``"none"``, view-major (all first
        views, then all second views, ...). An anchor without a positive gives 0.

    Raises:
        ValueError: On shape mismatches or an invalid ``temperature``/``reduction``.

    Examples:
        >>> f = torch.nn.functional.normalize(torch.randn(4, 2, 8), dim=-1)
        >>> sup_con(f, torch.tensor([0, 0, 1, 1])).shape
        torch.Size([])
    """
    _check_common(temperature, reduction)
    check_ndim(features, 3, "features", "(B, V, D)")
    b, v, _ = features.shape
    if labels is not None:
        check_ndim(labels, 1, "labels", "(B,)")
        check_dim(labels, 0, b, "labels", "(B,)")
    if features_all is not None and labels is not None and labels_all is None:
        raise ValueError("Expected `labels_all` with `features_all` when `labels` is given.")
    if base_temperature is not None:
        check_positive(base_temperature, "base_temperature")
    gathered = features_all is not None
    if features_all is None:
        features_all, labels_all = features, labels
    check_ndim(features_all, 3, "features_all", "(N, V, D)")
    if features_all.shape[1:] != features.shape[1:]:
        raise ValueError(
            f"Expected `features_all` to have shape (N, {v}, {features.shape[2]}), "
            f"but got {tuple(features_all.shape)}."
        )
    # One reduction in the common case; the element-wise check only when the sum is not finite.
    if validate_args and not bool(torch.isfinite(features.sum())):
        check_finite(features, "features")
    n = features_all.shape[0]
    anchors = _flatten_views(_normalize(features, normalize))
    candidates = _flatten_views(_normalize(features_all, normalize)) if gathered else anchors
    device = features.device
    rows = torch.arange(b, device=device) + offset
    self_index = rows.repeat(v) + torch.arange(v, device=device).repeat_interleave(b) * n
    if labels is None or labels_all is None:  # each sample is its own class
        # Positives by index: the other V - 1 views of the same sample.
        other_views = torch.stack([self_index + k * n for k in range(1, v)], dim=1) % (v * n)
        has_pos = torch.full_like(self_index, v > 1, dtype=torch.bool)
        per_anchor = masked_logsumexp(
            anchors,
            candidates,
            1.0 / temperature,
            self_index[:, None],
            positives=other_views if v > 1 else None,
            chunk_size=chunk_size,
        )
        per_anchor = per_anchor if v > 1 else torch.zeros_like(per_anchor)
    else:  # positives by label, from per-class sums (no (V B, V N) mask)
        lse = masked_logsumexp(
            anchors, candidates, 1.0 / temperature, self_index[:, None], chunk_size=chunk_size
        )
        positive_sum, n_pos = _same_label_positives(
            candidates, labels, labels_all, self_index, v, gathered, lse.dtype
        )
        has_pos = n_pos > 0
        positive_mean = (_up(anchors) * positive_sum).sum(1) / n_pos.clamp_min(1.0)
        per_anchor = torch.where(has_pos, lse - positive_mean * (1.0 / temperature), 0.0)
    per_anchor = per_anchor.to(features.dtype)
    if reduction == "mean":
        loss = per_anchor.sum() / has_pos.sum().clamp_min(1)
    else:
        loss = reduce(per_anchor, reduction)
    if base_temperature is not None:
        loss = loss * (temperature / base_temperature)
    return loss


def _same_label_positives(
    candidates: torch.Tensor,
    labels: torch.Tensor,
    labels_all: torch.Tensor,
    self_index: torch.Tensor,
    v: int,
    gathered: bool,
    work: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of each anchor's positives (same label, not itself) and their number.

    From per-class sums of the candidates: O((V N + C) D), no (V B, V N) mask.
    Shapes: candidates (V N, D), labels (B,), labels_all (N,), self_index (V B,)
    -> (V B, D), (V B,).
    """
    cand = candidates.to(work)
    classes, inverse, counts = torch.unique(labels_all, return_inverse=True, return_counts=True)
    class_sum = torch.zeros(classes.shape[0], cand.shape[1], dtype=work, device=cand.device)
    class_sum = class_sum.index_add(0, inverse.repeat(v), cand)
    if not gathered:  # anchors are the candidates: every anchor's class is known, self in it
        anchor_class = inverse.repeat(v)
        positive_sum = class_sum[anchor_class] - cand
        n_pos = (counts[anchor_class] * v - 1).to(work)
        return positive_sum, n_pos
    anchor_labels = labels.repeat(v)
    anchor_class = torch.searchsorted(classes, anchor_labels.to(classes.dtype))
    anchor_class = anchor_class.clamp_max(classes.shape[0] - 1)
    in_class = (classes[anchor_class] == anchor_labels).to(work)
    self_in_class = (labels_all.repeat(v)[self_index] == anchor_labels).to(work)
    positive_sum = (
        class_sum[anchor_class] * in_class[:, None] - cand[self_index] * self_in_class[:, None]
    )
    n_pos = (counts[anchor_class] * v).to(work) * in_class - self_in_class
    return positive_sum, n_pos


def _dcl_per_anchor(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float,
    z1_all: torch.Tensor | None,
    z2_all: torch.Tensor | None,
    offset: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive logits (2B,) and log-sum-exp over negatives only (2B,)."""
    logits, self_index, positive_index = _two_view_logits(
        z1, z2, z1_all, z2_all, offset, temperature
    )
    rows = torch.arange(logits.shape[0], device=logits.device)
    positive = logits[rows, positive_index]
    negatives = logits.index_put(
        (rows, self_index), torch.tensor(float("-inf"), dtype=logits.dtype)
    )
    negatives = negatives.index_put(
        (rows, positive_index), torch.tensor(float("-inf"), dtype=logits.dtype)
    )
    return positive, _lse_float(negatives)


def _check_two_views(z1: torch.Tensor, z2: torch.Tensor, minimum: int) -> None:
    check_ndim(z1, 2, "z1", "(B, D)")
    check_same_shape(z1, z2, "`z1` and `z2`", "(B, D)")
    if z1.shape[0] < minimum:
        raise ValueError(f"Expected a batch of at least {minimum} pairs, but got {z1.shape[0]}.")


def dcl(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.1,
    *,
    normalize: bool = True,
    reduction: str = "mean",
    z1_all: torch.Tensor | None = None,
    z2_all: torch.Tensor | None = None,
    offset: int = 0,
) -> torch.Tensor:
    r"""Decoupled contrastive loss (Yeh et al., ECCV 2022).

    NT-Xent without the positive pair in the denominator:

    :math:`\ell_i = -s_{i,p(i)}/\tau + \log\sum_{k \notin \{i, p(i)\}} \exp(s_{i,k}/\tau)`,
    over both views as anchors (the paper's symmetric loss, one log-sum-exp over the negatives
    of both views).

    Args:
        z1: First views. Shape: (B, D), float.
        z2: Second views. Shape: (B, D), float.
        temperature: Softmax temperature :math:`\tau > 0`.
        normalize: Cosine similarity if True, else the dot product.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        z1_all: First views gathered from every rank. Shape: (N, D).
        z2_all: Second views gathered from every rank. Shape: (N, D).
        offset: Index of this rank's first row in the gathered tensors.

    Returns:
        A scalar, or per-anchor values of shape (2B,) for ``"none"``.

    Raises:
        ValueError: On shape mismatches, fewer than 2 pairs, or invalid hyper-parameters.

    Examples:
        >>> z = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
        >>> dcl(z, z).shape
        torch.Size([])
    """
    _check_common(temperature, reduction)
    _check_two_views(z1, z2, 2 if z1_all is None else 1)
    z1, z2 = _normalize(z1, normalize), _normalize(z2, normalize)
    if z1_all is not None and z2_all is not None:
        z1_all, z2_all = _normalize(z1_all, normalize), _normalize(z2_all, normalize)
    positive, negative = _dcl_per_anchor(z1, z2, temperature, z1_all, z2_all, offset)
    return reduce((negative - _up(positive)).to(z1.dtype), reduction)


def dclw(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.1,
    sigma: float = 0.5,
    *,
    normalize: bool = True,
    reduction: str = "mean",
    z1_all: torch.Tensor | None = None,
    z2_all: torch.Tensor | None = None,
    offset: int = 0,
) -> torch.Tensor:
    r"""Weighted decoupled contrastive loss, DCLW (Yeh et al., ECCV 2022).

    The positive term of :func:`dcl` is weighted by the negative von Mises-Fisher weight
    :math:`w_i = 2 - \exp(s_i/\sigma) / \mathbb{E}_j[\exp(s_j/\sigma)]`, with
    :math:`s_i = \langle z^{(1)}_i, z^{(2)}_i \rangle` and the mean over the (global) batch.
    As in the authors' code, gradients flow through the weights.

    Args:
        z1: First views. Shape: (B, D), float.
        z2: Second views. Shape: (B, D), float.
        temperature: Softmax temperature :math:`\tau > 0`.
        sigma: Weighting temperature :math:`\sigma > 0`.
        normalize: Cosine similarity if True, else the dot product.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        z1_all: First views gathered from every rank. Shape: (N, D).
        z2_all: Second views gathered from every rank. Shape: (N, D).
        offset: Index of this rank's first row in the gathered tensors.

    Returns:
        A scalar, or per-anchor values of shape (2B,) for ``"none"``.

    Raises:
        ValueError: On shape mismatches, fewer than 2 pairs, or invalid hyper-parameters.

    Examples:
        >>> z = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
        >>> dclw(z, z).shape
        torch.Size([])
    """
    _check_common(temperature, reduction)
    check_positive(sigma, "sigma")
    _check_two_views(z1, z2, 2 if z1_all is None else 1)
    z1, z2 = _normalize(z1, normalize), _normalize(z2, normalize)
    if z1_all is not None and z2_all is not None:
        z1_all, z2_all = _normalize(z1_all, normalize), _normalize(z2_all, normalize)
    positive, negative = _dcl_per_anchor(z1, z2, temperature, z1_all, z2_all, offset)
    b = z1.shape[0]
    s_all = ((z1 if z1_all is None else z1_all) * (z2 if z2_all is None else z2_all)).sum(1)
    s_local = s_all[offset : offset + b]
    log_mean = torch.logsumexp(_up(s_all) / sigma, dim=0) - math.log(s_all.shape[0])
    weight = 2.0 - torch.exp(_up(s_local) / sigma - log_mean)
    weight = torch.cat([weight, weight])
    return reduce((negative - weight * _up(positive)).to(z1.dtype), reduction)


def alignment(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float = 2,
    *,
    normalize: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Alignment of positive pairs (Wang & Isola, ICML 2020).

    :math:`\mathbb{E}\,\|x - y\|_2^\alpha` over the pairs :math:`(x_i, y_i)`.

    Args:
        x: Shape: (B, D), float.
        y: Shape: (B, D), float.
        alpha: Exponent :math:`\alpha > 0`.
        normalize: L2-normalise the inputs first (the paper's setting).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or per-pair values of shape (B,) for ``"none"``.

    Raises:
        ValueError: On shape mismatches or invalid hyper-parameters.

    Examples:
        >>> alignment(torch.eye(2), torch.eye(2)).item()
        0.0
    """
    check_reduction(reduction)
    check_positive(alpha, "alpha")
    check_ndim(x, 2, "x", "(B, D)")
    check_same_shape(x, y, "`x` and `y`", "(B, D)")
    x, y = _normalize(x, normalize), _normalize(y, normalize)
    sq = (x - y).pow(2).sum(dim=1)
    per_pair = sq if alpha == 2 else sq.clamp_min(torch.finfo(sq.dtype).tiny).pow(alpha / 2)
    return reduce(per_pair, reduction)


def uniformity(
    x: torch.Tensor,
    t: float = 2,
    *,
    normalize: bool = True,
    reduction: str = "mean",
    x_all: torch.Tensor | None = None,
    offset: int = 0,
) -> torch.Tensor:
    r"""Uniformity (Wang & Isola, ICML 2020).

    :math:`\log \mathbb{E}_{i<j}\, e^{-t\|x_i - x_j\|_2^2}`.

    ``"mean"`` is the paper's value (the log of the mean over all pairs). ``"none"`` gives each
    sample's term :math:`u_i = \log \frac{1}{N-1}\sum_{j \ne i} e^{-t\|x_i - x_j\|^2}`, and
    ``"sum"`` their sum; note that the paper's value is
    :math:`\log \frac{1}{N}\sum_i e^{u_i}`, not the mean of :math:`u_i`.

    Args:
        x: Shape: (B, D), float.
        t: Kernel scale :math:`t > 0`.
        normalize: L2-normalise the inputs first (the paper's setting).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        x_all: Samples gathered from every rank (distributed use). Shape: (N, D). With it,
            ``"mean"`` returns the value of this rank's rows only; the module form combines the
            ranks.
        offset: Index of this rank's first row in ``x_all``.

    Returns:
        A scalar, or per-sample values of shape (B,) for ``"none"``.

    Raises:
        ValueError: On shape mismatches, fewer than 2 samples, or invalid hyper-parameters.

    Examples:
        >>> x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> uniformity(x).item()  # antipodal points: log(exp(-2 * 4))
        -8.0
    """
    check_reduction(reduction)
    check_positive(t, "t")
    check_ndim(x, 2, "x", "(B, D)")
    candidates = x if x_all is None else x_all
    check_ndim(candidates, 2, "x_all", "(N, D)")
    check_dim(candidates, 1, x.shape[1], "x_all", "(N, D)")
    if candidates.shape[0] < 2:
        raise ValueError(f"Expected at least 2 samples, but got {candidates.shape[0]}.")
    x = _normalize(x, normalize)
    candidates = _normalize(candidates, normalize)
    per_row = _uniformity_row_lse(x, candidates, t, offset)
    n = candidates.shape[0]
    if reduction == "none":
        return per_row - math.log(n - 1)
    if reduction == "sum":
        return (per_row - math.log(n - 1)).sum()
    # log of the mean over ordered pairs i != j equals the log-mean over pairs i < j.
    return torch.logsumexp(per_row, dim=0) - math.log(x.shape[0] * (n - 1))


def _uniformity_row_lse(
    x: torch.Tensor, candidates: torch.Tensor, t: float, offset: int
) -> torch.Tensor:
    """Log sum_{j != i} exp(-t ||x_i - c_j||^2) for each local row. Shape: (B,)."""
    sq = (
        x.pow(2).sum(1, keepdim=True) + candidates.pow(2).sum(1)[None, :] - 2.0 * (x @ candidates.T)
    ).clamp_min(0.0)
    rows = torch.arange(x.shape[0], device=x.device)
    logits = (-t * sq).index_put((rows, rows + offset), torch.tensor(float("-inf"), dtype=sq.dtype))
    return _lse_float(logits)
