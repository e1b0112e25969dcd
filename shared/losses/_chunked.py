r"""Masked log-sum-exp of similarity logits, the expensive half of the InfoNCE family.

For anchors :math:`a_i` (B, D), candidates :math:`c_k` (M, D), a scale :math:`s = 1/\tau` and
per-anchor excluded candidates :math:`X(i)` (the anchor itself, for DCL also its positive):

.. math:: \mathrm{lse}_i = \log \sum_{k \notin X(i)} \exp(s\, a_i \cdot c_k).

The positive term of a loss (one index for NT-Xent, a label-class mean for SupCon) costs
O((B + M) D) and stays in plain autograd in :mod:`shared.losses.functional`; only this part
touches a (B, M) matrix. Two custom autograd Functions compute it:

- :class:`_StoredLSE` (the fast path): one matrix product, the row max, one in-place ``exp``
  and a row sum; the matrix of exponentials is kept for backward, whose gradient
  ``softmax - 0`` needs no elementwise pass of its own because the row weights
  :math:`g_i / \sum_k e_{ik}` are folded into the two backward matrix products. Peak memory:
  one (B, M) matrix in the working dtype, where ``F.cross_entropy`` on masked logits holds
  three or four.
- :class:`_ChunkedLSE` (the memory-lean path): the same over blocks of ``chunk_size`` anchor
  rows, keeping only ``lse`` (B,) and recomputing each block's logits in backward. Peak
  memory: O(chunk_size * M + (B + M) * D); time: one matrix product more than the stored
  path (four instead of three).

Both compute in float32 (float64 for float64 inputs): half and bfloat16 inputs are upcast,
and autocast is switched off inside, so the log-sum-exp is stable under mixed precision.
They are first-order only (no double backward).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

__all__ = ["AUTO_CHUNK_BYTES", "default_chunk_size", "masked_logsumexp"]

#: Logit matrices larger than this (bytes, in the working dtype) switch ``chunk_size=None``
#: to the chunked path (2 GiB: NT-Xent with B > ~11,500 pairs in float32).
AUTO_CHUNK_BYTES = 2 << 30
#: Bytes of one block of logits on the chunked path when no ``chunk_size`` is given.
_CHUNK_BYTES = 128 << 20


def default_chunk_size(n_candidates: int, element_size: int = 4) -> int:
    """Rows per block so that one block of logits takes about 128 MiB.

    Args:
        n_candidates: M, the number of candidates (columns).
        element_size: Bytes per logit (4 for float32).

    Returns:
        A positive number of anchor rows.
    """
    return max(1, _CHUNK_BYTES // max(1, n_candidates * element_size))


def _block_logits(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    exclude: torch.Tensor | None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scaled logits of a block of (already scaled) anchors, excluded entries set to -inf."""
    logits = anchors @ candidates.T if out is None else torch.mm(anchors, candidates.T, out=out)
    if exclude is not None and exclude.numel():
        rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
        logits[rows, exclude] = float("-inf")
    return logits


def _no_neg_inf_(x: torch.Tensor) -> torch.Tensor:
    """Raise -inf (a row whose candidates are all excluded) to the lowest finite value, in place.

    Then ``logit - x`` is -inf, not NaN, for the excluded entries of such a row.
    """
    return x.clamp_min_(torch.finfo(x.dtype).min)


class _StoredLSE(torch.autograd.Function):
    """Full (B, M) path; keeps ``exp(logits - rowmax)`` for backward."""

    @staticmethod
    def forward(
        ctx: Any,
        anchors: torch.Tensor,
        candidates: torch.Tensor,
        scale: float,
        exclude: torch.Tensor | None,
    ) -> torch.Tensor:
        scaled = anchors * scale
        expd = _block_logits(scaled, candidates, exclude)
        row_max = _no_neg_inf_(expd.amax(dim=1))
        expd.sub_(row_max[:, None]).exp_()  # in place: the only (B, M) buffer
        total = expd.sum(dim=1)
        ctx.save_for_backward(scaled, candidates, expd, total)
        ctx.scale = scale
        return row_max + total.log()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        with torch.autocast(grad.device.type, enabled=False):
            return _StoredLSE._backward(ctx, grad)

    @staticmethod
    def _backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        scaled, candidates, expd, total = ctx.saved_tensors
        # d lse_i / d logit_ik = e_ik / total_i; the row weight goes onto the thin operands.
        # total >= 1 unless the row is all excluded (then its e_ik are all 0).
        weight = grad / total.clamp_min(1.0)
        grad_anchors = grad_candidates = None
        if ctx.needs_input_grad[0]:
            grad_anchors = (expd @ candidates).mul_((weight * ctx.scale)[:, None])
        if ctx.needs_input_grad[1]:
            grad_candidates = expd.T @ (scaled * weight[:, None])
        return grad_anchors, grad_candidates, None, None


class _ChunkedLSE(torch.autograd.Function):
    """Row-block path; keeps only ``lse`` and recomputes each block in backward."""

    @staticmethod
    def forward(
        ctx: Any,
        anchors: torch.Tensor,
        candidates: torch.Tensor,
        scale: float,
        exclude: torch.Tensor | None,
        chunk_size: int,
    ) -> torch.Tensor:
        scaled = anchors * scale
        b = anchors.shape[0]
        lse = torch.empty(b, dtype=anchors.dtype, device=anchors.device)
        buffer = anchors.new_empty(min(chunk_size, b), candidates.shape[0])  # reused per block
        for start in range(0, b, chunk_size):
            stop = min(start + chunk_size, b)
            block = _block_logits(
                scaled[start:stop],
                candidates,
                None if exclude is None else exclude[start:stop],
                out=buffer[: stop - start],
            )
            row_max = _no_neg_inf_(block.amax(dim=1))
            total = block.sub_(row_max[:, None]).exp_().sum(dim=1)
            torch.add(row_max, total.log(), out=lse[start:stop])
        del buffer
        ctx.save_for_backward(scaled, candidates, exclude, lse)
        ctx.scale = scale
        ctx.chunk_size = chunk_size
        return lse

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        with torch.autocast(grad.device.type, enabled=False):
            return _ChunkedLSE._backward(ctx, grad)

    @staticmethod
    def _backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        scaled, candidates, exclude, lse = ctx.saved_tensors
        chunk_size = ctx.chunk_size
        lse = _no_neg_inf_(lse.clone())
        want_a, want_c = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_anchors = torch.empty_like(scaled) if want_a else None
        grad_candidates = torch.zeros_like(candidates) if want_c else None
        b = scaled.shape[0]
        buffer = scaled.new_empty(min(chunk_size, b), candidates.shape[0])
        for start in range(0, b, chunk_size):
            stop = min(start + chunk_size, b)
            prob = _block_logits(
                scaled[start:stop],
                candidates,
                None if exclude is None else exclude[start:stop],
                out=buffer[: stop - start],
            )
            prob.sub_(lse[start:stop, None]).exp_()  # softmax of the block, in place
            g = grad[start:stop]
            if grad_anchors is not None:
                out = grad_anchors[start:stop]
                torch.mm(prob, candidates, out=out)
                out.mul_((g * ctx.scale)[:, None])
            if grad_candidates is not None:
                grad_candidates.addmm_(prob.T, scaled[start:stop] * g[:, None])
        del buffer
        return grad_anchors, grad_candidates, None, None, None


def masked_logsumexp(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    scale: float,
    exclude: torch.Tensor | None = None,
    *,
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""Row-wise :math:`\log\sum_{k \notin X(i)} \exp(s\, a_i \cdot c_k)`, differentiable.

    Args:
        anchors: Shape: (B, D), float.
        candidates: Shape: (M, D), float (may be the same tensor as ``anchors``).
        scale: The factor :math:`s` of the logits (``1 / temperature``).
        exclude: Candidate indices left out of each anchor's sum. Shape: (B, K), int64, each
            in ``[0, M)``; None excludes nothing.
        chunk_size: None: the full (B, M) path, or the chunked path when the logits would
            exceed :data:`AUTO_CHUNK_BYTES`, with :func:`default_chunk_size` rows per block.
            An int: the chunked path with blocks of that many anchor rows.

    Returns:
        Shape: (B,), float32 (float64 for float64 inputs); ``-inf`` for a row whose candidates
        are all excluded.

    Raises:
        ValueError: If ``chunk_size`` is not positive.
    """
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(
            f"Expected `chunk_size` to be a positive int or None, but got {chunk_size}."
        )
    work = torch.float64 if anchors.dtype == torch.float64 else torch.float32
    anchors, candidates = anchors.to(work), candidates.to(work)
    b, m = anchors.shape[0], candidates.shape[0]
    if chunk_size is None and b * m * anchors.element_size() > AUTO_CHUNK_BYTES:
        chunk_size = default_chunk_size(m, anchors.element_size())
    with torch.autocast(anchors.device.type, enabled=False):
        if chunk_size is None:
            out: torch.Tensor = _StoredLSE.apply(anchors, candidates, scale, exclude)
        else:
            out = _ChunkedLSE.apply(anchors, candidates, scale, exclude, chunk_size)
    return out
