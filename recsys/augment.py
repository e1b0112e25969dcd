"""Stochastic sequence augmentation of CL4SRec / MCLRec (methods.md 2.4), batched in torch.

Sequences are RecBole's: left-aligned item ids padded with 0 on the right, with their lengths.
Each operator acts on the first ``n`` items of a row and returns the new row and length:

* :func:`crop`: keep ``k = floor(eta * n)`` consecutive items from a uniformly drawn start; the
  result is left-aligned and has length ``k``.
* :func:`mask`: set ``floor(gamma * n)`` distinct positions among the first ``n`` to 0 (the
  padding id, as the official code does: masked items then vanish from attention); the length is
  unchanged.
* :func:`reorder`: shuffle a contiguous span of ``floor(beta * n)`` items drawn uniformly; the
  length is unchanged.

:func:`augment_pair` draws two *distinct* operators per sequence (uniformly among the six ordered
pairs) and applies one to each view. Sequences of length <= 1 are never augmented.

Counts use ``floor`` in float64 like the official ``math.floor(n * ratio)``. One deliberate
difference: a crop keeps at least one item (the official code would produce an empty sequence
for ``floor(eta * n) = 0``, which only happens with ``eta < 0.5`` on short sequences).

Examples:
    >>> seq = torch.tensor([[5, 6, 7, 8, 0, 0]])
    >>> out, n = crop(seq, torch.tensor([4]), eta=0.5, generator=torch.Generator().manual_seed(0))
    >>> int(n), out[0, 2:].tolist()
    (2, [0, 0, 0, 0])
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "CROP",
    "MASK",
    "OPERATORS",
    "REORDER",
    "Views",
    "augment_pair",
    "crop",
    "mask",
    "reorder",
]

CROP, MASK, REORDER = 0, 1, 2
OPERATORS = ("crop", "mask", "reorder")


class Views(NamedTuple):
    """Two augmented views of a batch of sequences.

    Attributes:
        seq1: Shape: (B, L), long.
        len1: Shape: (B,), long.
        seq2: Shape: (B, L), long.
        len2: Shape: (B,), long.
        ops: The operator of each view (0 crop, 1 mask, 2 reorder; -1 = not augmented).
            Shape: (B, 2), long.
    """

    seq1: Tensor
    len1: Tensor
    seq2: Tensor
    len2: Tensor
    ops: Tensor


def _check(seq: Tensor, length: Tensor, ratio: float, name: str) -> None:
    if seq.dim() != 2:
        raise ValueError(f"Expected `seq` to have shape (B, L), but got {tuple(seq.shape)}.")
    if length.shape != seq.shape[:1]:
        raise ValueError(
            f"Expected `length` to have shape (B,) = ({seq.shape[0]},), "
            f"but got {tuple(length.shape)}."
        )
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"Expected `{name}` to be in [0, 1], but got {ratio}.")


def _count(length: Tensor, ratio: float) -> Tensor:
    return torch.floor(length.to(torch.float64) * ratio).to(torch.long)


def _uniform(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float64, device=like.device)


def _start(length: Tensor, span: Tensor, generator: torch.Generator | None) -> Tensor:
    """A start drawn uniformly from {0, ..., length - span} per row."""
    choices = (length - span + 1).clamp(min=1)
    start = torch.floor(_uniform(tuple(length.shape), length, generator) * choices).to(torch.long)
    return torch.minimum(start, choices - 1)


def crop(
    seq: Tensor, length: Tensor, eta: float = 0.5, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Keep ``max(1, floor(eta * n))`` consecutive items from a random start (left-aligned).

    Rows with ``n <= 1`` are returned unchanged.

    Args:
        seq: Left-aligned item ids, 0 = padding. Shape: (B, L), long.
        length: Number of items per row. Shape: (B,), long.
        eta: Fraction of items kept (MCLRec: ``1 - crop_ratio`` = 0.5).
        generator: Random number generator (default: torch's global one).

    Returns:
        ``(cropped, new_length)`` of shapes (B, L) and (B,).

    Raises:
        ValueError: On bad shapes or ``eta`` outside [0, 1].
    """
    _check(seq, length, eta, "eta")
    keep = _count(length, eta).clamp(min=1)
    keep = torch.where(length <= 1, length, keep)
    start = _start(length, keep, generator)
    pos = torch.arange(seq.shape[1], device=seq.device)
    index = (start[:, None] + pos[None, :]).clamp(max=seq.shape[1] - 1)
    out = seq.gather(1, index)
    out = torch.where(pos[None, :] < keep[:, None], out, torch.zeros_like(out))
    return out, keep


def mask(
    seq: Tensor, length: Tensor, gamma: float = 0.5, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Set ``floor(gamma * n)`` distinct random positions among the first ``n`` to 0.

    Rows with ``n <= 1`` are returned unchanged.

    Args:
        seq: Left-aligned item ids, 0 = padding. Shape: (B, L), long.
        length: Number of items per row. Shape: (B,), long.
        gamma: Fraction of items masked (MCLRec: ``mask_ratio`` = 0.5).
        generator: Random number generator (default: torch's global one).

    Returns:
        ``(masked, length)``; the length is unchanged. Shapes (B, L) and (B,).

    Raises:
        ValueError: On bad shapes or ``gamma`` outside [0, 1].
    """
    _check(seq, length, gamma, "gamma")
    count = torch.where(length <= 1, torch.zeros_like(length), _count(length, gamma))
    pos = torch.arange(seq.shape[1], device=seq.device)
    keys = _uniform(tuple(seq.shape), seq, generator)
    keys = torch.where(pos[None, :] < length[:, None], keys, torch.full_like(keys, 2.0))
    rank = keys.argsort(dim=1).argsort(dim=1)
    out = torch.where(rank < count[:, None], torch.zeros_like(seq), seq)
    return out, length.clone()


def reorder(
    seq: Tensor, length: Tensor, beta: float = 0.8, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Shuffle a random contiguous span of ``floor(beta * n)`` items (uniform permutation).

    Rows with ``n <= 1`` are returned unchanged.

    Args:
        seq: Left-aligned item ids, 0 = padding. Shape: (B, L), long.
        length: Number of items per row. Shape: (B,), long.
        beta: Fraction of items in the shuffled span (MCLRec: ``reorder_ratio`` = 0.8).
        generator: Random number generator (default: torch's global one).

    Returns:
        ``(reordered, length)``; the length is unchanged. Shapes (B, L) and (B,).

    Raises:
        ValueError: On bad shapes or ``beta`` outside [0, 1].
    """
    _check(seq, length, beta, "beta")
    span = torch.where(length <= 1, torch.zeros_like(length), _count(length, beta))
    start = _start(length, span, generator)
    pos = torch.arange(seq.shape[1], device=seq.device)[None, :].expand_as(seq)
    inside = (pos >= start[:, None]) & (pos < (start + span)[:, None])
    # Sort keys: positions outside the span keep their index; positions inside get a random key
    # in [start, start + span - 1), so they stay inside the span in a uniformly random order.
    width = (span - 1).clamp(min=0).to(torch.float64)
    random_key = (
        start[:, None].to(torch.float64)
        + _uniform(tuple(seq.shape), seq, generator) * (width[:, None])
    )
    keys = torch.where(inside, random_key, pos.to(torch.float64))
    order = keys.argsort(dim=1, stable=True)
    return seq.gather(1, order), length.clone()


def augment_pair(
    seq: Tensor,
    length: Tensor,
    *,
    eta: float = 0.5,
    gamma: float = 0.5,
    beta: float = 0.8,
    generator: torch.Generator | None = None,
) -> Views:
    """Two views per sequence from two distinct random operators (CL4SRec / MCLRec).

    Args:
        seq: Left-aligned item ids, 0 = padding. Shape: (B, L), long.
        length: Number of items per row. Shape: (B,), long.
        eta: Crop keep fraction.
        gamma: Mask fraction.
        beta: Reorder span fraction.
        generator: Random number generator (default: torch's global one).

    Returns:
        The two views; rows with ``n <= 1`` are copies of the input (``ops`` = -1).

    Raises:
        ValueError: On bad shapes or ratios outside [0, 1].
    """
    _check(seq, length, 0.0, "ratio")
    batch = seq.shape[0]
    first = torch.randint(0, 3, (batch,), generator=generator, device=seq.device)
    second = (first + torch.randint(1, 3, (batch,), generator=generator, device=seq.device)) % 3
    views: list[tuple[Tensor, Tensor]] = []
    for op in (first, second):
        candidates = (
            crop(seq, length, eta, generator=generator),
            mask(seq, length, gamma, generator=generator),
            reorder(seq, length, beta, generator=generator),
        )
        out, out_len = seq.clone(), length.clone()
        for code, (aug, aug_len) in enumerate(candidates):
            chosen = op == code
            out = torch.where(chosen[:, None], aug, out)
            out_len = torch.where(chosen, aug_len, out_len)
        views.append((out, out_len))
    short = length <= 1
    ops = torch.stack([first, second], dim=1).masked_fill(short[:, None], -1)
    (seq1, len1), (seq2, len2) = views
    return Views(seq1, len1, seq2, len2, ops)
