"""Losses of the prostate zone nets: Dice + CE per path, SDM regression, cross-path consistency.

* :func:`path_class_weights`: class weights of one path's supervised loss (own zones and
  background 1, the other path's zones ``cross_group_weight``; zones absent from the dataset
  keep weight 1 so that their outputs are driven to zero).
* :func:`supervised_loss`: MONAI ``DiceCELoss`` (softmax, one-hot target, Dice over the whole
  batch with smoothing ``smooth`` as the UATS Keras Dice, class-weighted Dice and CE).
* :func:`sdm_loss`: mean squared error between predicted (tanh) and target normalised signed
  distance maps, over the zones present in the dataset (the multi-task loss).
* :func:`consistency_loss`: mean squared difference of the two paths' softmax maps (stage 2,
  unsupervised: also on unlabelled volumes).
* :func:`sigmoid_rampup`: ``exp(-5 (1 - t)^2)`` (Laine and Aila) for the consistency weight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch import Tensor

from shared.validation import check_same_shape

__all__ = [
    "consistency_loss",
    "path_class_weights",
    "sdm_loss",
    "sigmoid_rampup",
    "supervised_loss",
]


def path_class_weights(owner: Sequence[int], path: int, cross_group_weight: float) -> Tensor:
    """Class weights of path ``path`` (0 = A, 1 = B).

    Args:
        owner: Owning path per class index (index 0 is background).
        path: The path.
        cross_group_weight: Weight of classes owned by the other path.

    Returns:
        Float weights. Shape: (5,).

    Examples:
        >>> path_class_weights((0, 0, 0, 1, 1), 1, 0.5).tolist()
        [1.0, 0.5, 0.5, 1.0, 1.0]
    """
    weights = [1.0] + [1.0 if o == path else cross_group_weight for o in owner[1:]]
    return torch.tensor(weights, dtype=torch.float32)


def supervised_loss(
    logits: Tensor,
    label: Tensor,
    weight: Tensor | None = None,
    *,
    lambda_dice: float = 1.0,
    lambda_ce: float = 1.0,
    smooth: float = 1.0,
) -> Tensor:
    """Class-weighted Dice + cross-entropy (MONAI ``DiceCELoss``), Dice over the whole batch.

    Dice term: ``mean_c w_c (1 - (2 sum p_c g_c + s) / (sum p_c + sum g_c + s))`` with sums over
    batch and voxels; CE term: ``sum_i w_{y_i} nll_i / sum_i w_{y_i}``.

    Args:
        logits: Class scores. Shape: (B, C, X, Y, Z).
        label: Class indices. Shape: (B, 1, X, Y, Z), integer.
        weight: Class weights. Shape: (C,); ``None`` = all 1.
        lambda_dice: Weight of the Dice term.
        lambda_ce: Weight of the CE term.
        smooth: Dice smoothing of numerator and denominator.

    Returns:
        Scalar loss.

    Raises:
        ValueError: If the shapes disagree.
    """
    if logits.ndim != label.ndim or label.shape[1] != 1 or logits.shape[2:] != label.shape[2:]:
        raise ValueError(
            "Expected `logits` (B, C, X, Y, Z) and `label` (B, 1, X, Y, Z), but got "
            f"{tuple(logits.shape)} and {tuple(label.shape)}."
        )
    if weight is not None:
        weight = weight.to(logits.device)
    loss_fn = DiceCELoss(
        to_onehot_y=True,
        softmax=True,
        batch=True,
        smooth_nr=smooth,
        smooth_dr=smooth,
        weight=weight,
        lambda_dice=lambda_dice,
        lambda_ce=lambda_ce,
    )
    return loss_fn(logits.float(), label)


def sdm_loss(pred: Tensor, target: Tensor, zones: Sequence[int] = (1, 2, 3, 4)) -> Tensor:
    """Mean squared error of signed distance maps over the given zones.

    Args:
        pred: Predicted maps in [-1, 1]. Shape: (B, 4, X, Y, Z).
        target: Target maps. Shape: (B, 4, X, Y, Z).
        zones: Zone label values (1-4) to include.

    Returns:
        Scalar loss.

    Raises:
        ValueError: If the shapes differ.

    Examples:
        >>> sdm_loss(torch.zeros(1, 4, 2, 2, 2), torch.ones(1, 4, 2, 2, 2), zones=(1,)).item()
        1.0
    """
    check_same_shape(pred, target, "`pred` and `target`", "(B, 4, X, Y, Z)")
    idx = [z - 1 for z in zones]
    return F.mse_loss(pred[:, idx].float(), target[:, idx].float())


def consistency_loss(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """Mean squared difference of the two paths' class probabilities.

    ``mean_{b, c, voxel} (softmax(a)_c - softmax(b)_c)^2``: unsupervised, so it also runs on
    unlabelled volumes; both paths receive its gradient.

    Args:
        logits_a: Path A scores. Shape: (B, C, X, Y, Z).
        logits_b: Path B scores. Shape: (B, C, X, Y, Z).

    Returns:
        Scalar loss.

    Raises:
        ValueError: If the shapes differ.

    Examples:
        >>> x = torch.randn(2, 5, 4, 4, 2)
        >>> consistency_loss(x, x).item()
        0.0
    """
    check_same_shape(logits_a, logits_b, "`logits_a` and `logits_b`", "(B, C, X, Y, Z)")
    pa = torch.softmax(logits_a.float(), dim=1)
    pb = torch.softmax(logits_b.float(), dim=1)
    return (pa - pb).pow(2).mean()


def sigmoid_rampup(epoch: int, length: int) -> float:
    """``exp(-5 (1 - t)^2)`` with ``t = min(1, epoch / length)``; 1 when ``length`` is 0.

    Examples:
        >>> sigmoid_rampup(0, 0), round(sigmoid_rampup(0, 10), 4), sigmoid_rampup(10, 10)
        (1.0, 0.0067, 1.0)
    """
    if length <= 0:
        return 1.0
    t = min(1.0, max(0.0, epoch / length))
    return float(math.exp(-5.0 * (1.0 - t) ** 2))
