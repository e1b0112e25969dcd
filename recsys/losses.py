r"""MCLRec's contrastive terms (methods.md 2.5) on top of the core InfoNCE.

For a pair of batches ``a``, ``b`` of N vectors, the 2N stacked vectors ``z = [a; b]`` are
compared by dot product (or cosine) over a temperature; row ``i``'s positive is its counterpart
``(i + N) mod 2N`` and its negatives are the other 2N - 2 rows (NT-Xent in both directions).

* :func:`pair_info_nce` is that InfoNCE: :func:`shared.losses.nt_xent`, the core's two-view
  form of :func:`shared.losses.info_nce` (the same value; tested).
* :func:`contrastive_regularizer` is MCLRec's R (``meta_contrast_rl`` in the official code), per
  row: with positive score :math:`f^+_i` and negative scores :math:`f^-_{ij}`,

  .. math::
      m^{in}_i = \min(f^+_i, \max_j f^-_{ij}), \quad m^{ax}_i = \max(f^+_i, \max_j f^-_{ij}),

      R = \operatorname{mean}_i\,[f^+_i - m^{in}_i]_+ +
          \operatorname{mean}_{ij}\,[m^{ax}_i - f^-_{ij}]_+ .

  The margins are not detached (as in the official code).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from shared.losses import nt_xent
from shared.validation import check_ndim, check_positive, check_same_shape

__all__ = ["contrastive_regularizer", "pair_info_nce", "pair_scores"]


@functools.lru_cache(maxsize=8)
def _masks(n: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """For 2n stacked rows: (partner index, mask of self and partner); cached per size."""
    rows = torch.arange(2 * n, device=device)
    partner = (rows + n) % (2 * n)
    eye = torch.eye(2 * n, dtype=torch.bool, device=device)
    return partner, eye | eye.roll(n, dims=1)


def _stack(a: Tensor, b: Tensor) -> Tensor:
    check_ndim(a, 2, "a", "(B, D)")
    check_same_shape(a, b, "`a` and `b`", "(B, D)")
    return torch.cat([a, b], dim=0)


def pair_info_nce(
    a: Tensor, b: Tensor, temperature: float = 1.0, *, normalize: bool = False
) -> Tensor:
    r"""InfoNCE between two views, both directions, 2N - 2 in-batch negatives (MCLRec/CL4SRec).

    Args:
        a: First view. Shape: (B, D), float.
        b: Second view, row ``i`` paired with ``a[i]``. Shape: (B, D), float.
        temperature: :math:`\tau > 0`.
        normalize: Cosine similarity if True (``sim = 'cos'``), dot product if False
            (``sim = 'dot'``, MCLRec's default).

    Returns:
        The mean over the 2B rows, a scalar.

    Raises:
        ValueError: On shape mismatches or ``temperature <= 0``.

    Examples:
        >>> a = torch.eye(3)
        >>> round(pair_info_nce(a, a).item(), 4)  # log(e + 4) - 1
        0.9048
    """
    _stack(a, b)  # shape checks
    # The core's NT-Xent is this InfoNCE (one positive, the other 2B - 2 rows as negatives) on a
    # fused log-sum-exp without (2B, 2B) autograd intermediates: 1.7x faster here than
    # info_nce with masks (tested equal: tests/recsys/test_losses.py).
    return nt_xent(a, b, temperature, normalize=normalize)


def pair_scores(a: Tensor, b: Tensor, temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    r"""Dot-product scores of each row's positive and negatives.

    Args:
        a: First view. Shape: (B, D), float.
        b: Second view. Shape: (B, D), float.
        temperature: :math:`\tau > 0`; scores are divided by it.

    Returns:
        ``(positive, negative)`` of shapes (2B,) and (2B, 2B - 2); the negatives of row ``i`` are
        the other rows in their original order, without ``i`` and its counterpart.

    Raises:
        ValueError: On shape mismatches or ``temperature <= 0``.
    """
    check_positive(temperature, "temperature")
    z = _stack(a, b)
    n2 = z.shape[0]
    partner, not_negative = _masks(a.shape[0], z.device)
    sim = (z @ z.T) / temperature
    positive = sim.gather(1, partner[:, None])[:, 0]
    negative = sim[~not_negative].view(n2, n2 - 2)
    return positive, negative


def contrastive_regularizer(a: Tensor, b: Tensor, temperature: float = 1.0) -> Tensor:
    r"""MCLRec's contrastive regularizer R for one pair of views (per row; see the module doc).

    Since ``m^ax_i`` is at least every negative of row ``i``, the second term has no active
    ReLU and is linear: ``sum_j (m^ax_i - f^-_ij) = (2B - 2) m^ax_i - (rowsum_i - f_ii - f^+_i)``
    with ``rowsum_i = z_i . sum_k z_k / tau``, and the first is ``[f^+_i - max_j f^-_ij]_+``.
    Only the hardest negative needs the (2B, 2B) score matrix, and only its index (without
    gradient; its score is then recomputed as one row product): the same values and
    gradients as the definition on the (2B, 2B - 2) negatives (tested against it), with one
    (2B, 2B) product and no (2B, 2B) backward.

    Args:
        a: First view. Shape: (B, D), float, B >= 2.
        b: Second view. Shape: (B, D), float.
        temperature: :math:`\tau > 0` (MCLRec: the config's ``tau``).

    Returns:
        A scalar, >= 0.

    Raises:
        ValueError: On shape mismatches, ``B < 2`` or ``temperature <= 0``.

    Examples:
        >>> a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> contrastive_regularizer(a, a).item()  # positives 1, negatives 0: 1 + 1
        2.0
    """
    check_positive(temperature, "temperature")
    if a.dim() == 2 and a.shape[0] < 2:
        raise ValueError(f"Expected `a` to have at least 2 rows, but got {a.shape[0]}.")
    z = _stack(a, b)
    n2 = z.shape[0]
    partner, not_negative = _masks(a.shape[0], z.device)
    scaled = z * (1.0 / temperature)
    # The hardest negative's index needs no gradient; its score is then one row product, and
    # the max's gradient (onto that one entry) flows through it: no (2B, 2B) autograd graph.
    with torch.no_grad():
        sim = scaled @ z.T
        hardest_index = sim.masked_fill_(not_negative, -math.inf).argmax(dim=1)
    hardest = (scaled * z[hardest_index]).sum(dim=1)
    positive = (scaled * z[partner]).sum(dim=1)
    own = (scaled * z).sum(dim=1)
    rowsum = scaled @ z.sum(dim=0)
    high = torch.maximum(positive, hardest)
    negatives = rowsum - own - positive
    pulled = (n2 - 2) * high.sum() - negatives.sum()
    return (positive - hardest).clamp(min=0).mean() + pulled / (n2 * (n2 - 2))
