r"""The (B, M) part of the InfoNCE family: masked log-sum-exp minus the positives' mean logit.

For anchors :math:`a_i` (B, D), candidates :math:`c_k` (M, D), a scale :math:`s = 1/\tau`,
per-anchor excluded candidates :math:`X(i)` (the anchor itself; for DCL also its positive) and
optionally positives given by index :math:`P(i)` (K per anchor):

.. math::
    \ell_i = \log \sum_{k \notin X(i)} \exp(s\, a_i \cdot c_k)
             - \frac{1}{K} \sum_{p \in P(i)} s\, a_i \cdot c_p.

NT-Xent is this with K = 1; SupCon without labels with K = V - 1. Positives given by labels
(SupCon) are summed per class in :mod:`shared.losses.functional` instead, which costs
O((B + M) D) and needs no (B, M) mask. Two custom autograd Functions compute it:

- :class:`_StoredLSE` (the fast path): one GEMM with the scale inside, the excluded entries
  set to -inf in place, the row max, one in-place ``exp``, a row sum; the positives' logits are
  gathered before the ``exp``. The matrix of exponentials is kept for backward, where the
  gradient ``softmax - onehot / K`` costs no pass over the matrix: the row weights
  :math:`g_i s / \sum_k e_{ik}` go onto the thin (B, D) operands and the ``onehot`` term is a
  (B, K) gather/scatter on them. So forward + backward is the three GEMMs of the similarity
  matmul plus four element-wise passes over one (B, M) buffer, where ``F.cross_entropy`` on
  masked logits holds three or four such matrices.
- :class:`_ChunkedLSE` (the memory-lean path): the same over blocks of ``chunk_size`` anchor
  rows, keeping only the (B,) log-sum-exp and recomputing each block in backward. Peak memory:
  O(chunk_size * M + (B + M) * D); time: one GEMM more (four instead of three).

When the candidates are the anchors themselves (no distributed gather), both take one input
and return one gradient built in place. Both compute in float32 (float64 for float64 inputs):
half and bfloat16 inputs are upcast and autocast is switched off inside, so the log-sum-exp is
stable under mixed precision. They are first-order only (no double backward).
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
    scale: float,
    exclude: torch.Tensor | None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``scale * anchors @ candidates.T``, excluded entries -inf.

    The scale goes onto the thin (B, D) operand: ``addmm_(alpha=scale)`` can leave the fast
    GEMM path on CPU.
    """
    out = torch.mm(anchors * scale, candidates.T, out=out)
    if exclude is not None and exclude.numel():
        out.scatter_(1, exclude, float("-inf"))
    return out


def _no_neg_inf_(x: torch.Tensor) -> torch.Tensor:
    """Raise -inf (a row whose candidates are all excluded) to the lowest finite value, in place.

    Then ``logit - x`` is -inf, not NaN, for the excluded entries of such a row.
    """
    return x.clamp_min_(torch.finfo(x.dtype).min)


def _rows(x: torch.Tensor | None, start: int, stop: int) -> torch.Tensor | None:
    return None if x is None else x[start:stop]


class _StoredLSE(torch.autograd.Function):
    """Full (B, M) path; keeps ``exp(logits - rowmax)`` for backward.

    ``candidates=None`` means the anchors themselves (M = B).
    """

    @staticmethod
    def forward(
        ctx: Any,
        anchors: torch.Tensor,
        candidates: torch.Tensor | None,
        scale: float,
        exclude: torch.Tensor | None,
        positives: torch.Tensor | None,
    ) -> torch.Tensor:
        cands = anchors if candidates is None else candidates
        expd = _block_logits(anchors, cands, scale, exclude)
        row_max = _no_neg_inf_(expd.amax(dim=1))
        out = None if positives is None else -expd.gather(1, positives).mean(dim=1)
        expd.sub_(row_max[:, None]).exp_()  # in place: the only (B, M) buffer
        total = expd.sum(dim=1)
        lse = row_max.add_(total.log())
        ctx.save_for_backward(anchors, candidates, expd, total, positives)
        ctx.scale = scale
        return lse if out is None else out.add_(lse)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        with torch.autocast(grad.device.type, enabled=False):
            return _StoredLSE._backward(ctx, grad)

    @staticmethod
    def _backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        anchors, candidates, expd, total, positives = ctx.saved_tensors
        # d l_i / d logit_ik = e_ik / total_i - [k in P(i)] / K: the row weights go onto the
        # thin operands, and the positives' term is a (B, K) gather/scatter on them.
        # total >= 1 unless the row is all excluded (then its e_ik are all 0).
        weight = (grad * ctx.scale / total.clamp_min(1.0))[:, None]
        cands = anchors if candidates is None else candidates
        grad_anchors = grad_candidates = None
        if candidates is None:  # one input: d/da = W E a + E^T W a
            grad_anchors = grad_candidates = (expd @ anchors).mul_(weight)
            grad_anchors.addmm_(expd.T, anchors * weight)
        else:
            if ctx.needs_input_grad[0]:
                grad_anchors = (expd @ candidates).mul_(weight)
            if ctx.needs_input_grad[1]:
                grad_candidates = expd.T @ (anchors * weight)
        if positives is not None:
            coef = (grad * (-ctx.scale / positives.shape[1]))[:, None]
            if grad_anchors is not None:
                grad_anchors.addcmul_(cands[positives].sum(dim=1), coef)
            if grad_candidates is not None:
                k = positives.shape[1]
                source = anchors * coef
                grad_candidates.index_add_(
                    0, positives.reshape(-1), source if k == 1 else source.repeat_interleave(k, 0)
                )
        if candidates is None:
            return grad_anchors, None, None, None, None
        return grad_anchors, grad_candidates, None, None, None


class _ChunkedLSE(torch.autograd.Function):
    """Row-block path; keeps only the log-sum-exp and recomputes each block in backward."""

    @staticmethod
    def forward(
        ctx: Any,
        anchors: torch.Tensor,
        candidates: torch.Tensor | None,
        scale: float,
        exclude: torch.Tensor | None,
        positives: torch.Tensor | None,
        chunk_size: int,
    ) -> torch.Tensor:
        cands = anchors if candidates is None else candidates
        b = anchors.shape[0]
        lse = anchors.new_empty(b)
        out = lse if positives is None else anchors.new_empty(b)
        buffer = anchors.new_empty(min(chunk_size, b), cands.shape[0])  # reused by every block
        for start in range(0, b, chunk_size):
            stop = min(start + chunk_size, b)
            block = _block_logits(
                anchors[start:stop],
                cands,
                scale,
                _rows(exclude, start, stop),
                out=buffer[: stop - start],
            )
            row_max = _no_neg_inf_(block.amax(dim=1))
            pos = _rows(positives, start, stop)
            if pos is not None:
                torch.mean(block.gather(1, pos), dim=1, out=out[start:stop])
            total = block.sub_(row_max[:, None]).exp_().sum(dim=1)
            torch.add(row_max, total.log(), out=lse[start:stop])
        del buffer
        ctx.save_for_backward(anchors, candidates, exclude, positives, lse)
        ctx.scale = scale
        ctx.chunk_size = chunk_size
        return lse if positives is None else torch.sub(lse, out, out=out)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        with torch.autocast(grad.device.type, enabled=False):
            return _ChunkedLSE._backward(ctx, grad)

    @staticmethod
    def _backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        anchors, candidates, exclude, positives, lse = ctx.saved_tensors
        chunk_size = ctx.chunk_size
        cands = anchors if candidates is None else candidates
        lse = _no_neg_inf_(lse.clone())
        weight = (grad * ctx.scale)[:, None]
        grad_anchors: torch.Tensor | None
        grad_candidates: torch.Tensor | None
        if candidates is None:  # one input: both terms go into one buffer
            grad_anchors = grad_candidates = torch.zeros_like(anchors)
        else:
            grad_anchors = torch.empty_like(anchors) if ctx.needs_input_grad[0] else None
            grad_candidates = torch.zeros_like(candidates) if ctx.needs_input_grad[1] else None
        b = anchors.shape[0]
        buffer = anchors.new_empty(min(chunk_size, b), cands.shape[0])
        for start in range(0, b, chunk_size):
            stop = min(start + chunk_size, b)
            prob = _block_logits(
                anchors[start:stop],
                cands,
                ctx.scale,
                _rows(exclude, start, stop),
                out=buffer[: stop - start],
            )
            prob.sub_(lse[start:stop, None]).exp_()  # the block's softmax, in place
            pos = _rows(positives, start, stop)
            if pos is not None:
                prob.scatter_add_(1, pos, prob.new_full(pos.shape, -1.0 / pos.shape[1]))
            w = weight[start:stop]
            if grad_anchors is not None:
                part = (prob @ cands).mul_(w)
                if candidates is None:
                    grad_anchors[start:stop] += part
                else:
                    grad_anchors[start:stop] = part
            if grad_candidates is not None:
                grad_candidates.addmm_(prob.T, anchors[start:stop] * w)
        del buffer
        if candidates is None:
            return grad_anchors, None, None, None, None, None
        return grad_anchors, grad_candidates, None, None, None, None


def masked_logsumexp(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    scale: float,
    exclude: torch.Tensor | None = None,
    *,
    positives: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""Per anchor :math:`\log\sum_{k \notin X(i)} e^{s a_i \cdot c_k}`, minus the positives' mean.

    Args:
        anchors: Shape: (B, D), float.
        candidates: Shape: (M, D), float; pass the same tensor as ``anchors`` when the anchors
            are the candidates (one gradient, built in place).
        scale: The factor :math:`s` of the logits (``1 / temperature``).
        exclude: Candidate indices left out of each anchor's sum. Shape: (B, K_x), int64, each
            in ``[0, M)``; None excludes nothing.
        positives: If given, the mean of the logits :math:`s\, a_i \cdot c_p` over these
            candidate indices is subtracted (duplicates count twice). Shape: (B, K), int64;
            they must not be excluded.
        chunk_size: None: the full (B, M) path, or the chunked path when the logits would
            exceed :data:`AUTO_CHUNK_BYTES`, with :func:`default_chunk_size` rows per block.
            An int: the chunked path with blocks of that many anchor rows.

    Returns:
        Shape: (B,), float32 (float64 for float64 inputs); ``-inf`` for a row whose candidates
        are all excluded (without positives).

    Raises:
        ValueError: If ``chunk_size`` is not positive.
    """
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(
            f"Expected `chunk_size` to be a positive int or None, but got {chunk_size}."
        )
    work = torch.float64 if anchors.dtype == torch.float64 else torch.float32
    same = candidates is anchors
    b, m = anchors.shape[0], candidates.shape[0]
    anchors = anchors.to(work)
    others = None if same else candidates.to(work)  # None: the anchors are the candidates
    if chunk_size is None and b * m * anchors.element_size() > AUTO_CHUNK_BYTES:
        chunk_size = default_chunk_size(m, anchors.element_size())
    with torch.autocast(anchors.device.type, enabled=False):
        if chunk_size is None:
            out: torch.Tensor = _StoredLSE.apply(anchors, others, scale, exclude, positives)
        else:
            out = _ChunkedLSE.apply(anchors, others, scale, exclude, positives, chunk_size)
    return out
