"""PCL-SR's losses: the generator-side InfoNCE and the discriminator's dual contrastive loss.

Reference: Wu, Jiang, Liu, "A Practical Contrastive Learning Framework for Single-Image
Super-Resolution", IEEE TNNLS 2023 (arXiv 2111.13924); ``loss/adversarial.py`` of the released
code (``nce`` and ``contrastive_D_loss``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from shared.losses import info_nce

__all__ = ["dual_contrastive_loss", "embed_for_similarity", "pcl_info_nce"]


def embed_for_similarity(features: Tensor) -> Tensor:
    """Flatten feature maps so that a dot product is PCL-SR's image similarity.

    PCL-SR's similarity of two maps is the mean over locations of the cosine similarity of
    their channel vectors, ``(1/HW) sum_hw <f_hw/|f_hw|, g_hw/|g_hw|>``; that is the dot product
    of the channel-normalised maps flattened and divided by ``sqrt(HW)``.

    Args:
        features: Shape: (B, C, H, W), float.

    Returns:
        Shape: (B, C * H * W).
    """
    h, w = features.shape[-2:]
    return F.normalize(features, dim=1).flatten(1) * (h * w) ** -0.5


def pcl_info_nce(
    anchor: Tensor, positives: Sequence[Tensor], negatives: Sequence[Tensor]
) -> Tensor:
    """PCL-SR's InfoNCE on one feature layer, with :func:`shared.losses.info_nce`.

    For image ``b`` and positive ``k``: logits ``[s(a_b, p_kb), s(a_b, n_1b), ..., s(a_b,
    n_Nb)]`` with ``s`` the similarity of :func:`embed_for_similarity`, temperature 1, and the
    cross-entropy with target 0; the loss is the mean over images and positives (the released
    ``nce``). Each (image, positive) pair is one anchor of ``info_nce``; candidates of other
    images and the other positives of the same image are excluded from its denominator.

    Args:
        anchor: SR features. Shape: (B, C, H, W), float.
        positives: Features of the positives (HR, sharpened HR); each Shape: (B, C, H, W).
        negatives: Features of the negatives (upsampled LR, blurred HR); each Shape:
            (B, C, H, W).

    Returns:
        The scalar loss.

    Raises:
        ValueError: If there is no positive or no negative, or the shapes differ.

    Examples:
        >>> f = torch.randn(2, 4, 3, 3)
        >>> loss = pcl_info_nce(f, [f], [-f])  # positive = itself, negative = its opposite
        >>> round(loss.item(), 4) == round(torch.log1p(torch.exp(torch.tensor(-2.0))).item(), 4)
        True
    """
    if not positives or not negatives:
        raise ValueError(
            f"Expected at least one positive and one negative, but got {len(positives)} and "
            f"{len(negatives)}."
        )
    for t in (*positives, *negatives):
        if t.shape != anchor.shape:
            raise ValueError(
                f"Expected every feature map to have the anchor's shape {tuple(anchor.shape)}, "
                f"but got {tuple(t.shape)}."
            )
    b, n_pos, n_neg = anchor.shape[0], len(positives), len(negatives)
    a = embed_for_similarity(anchor)
    cands = embed_for_similarity(torch.cat([*positives, *negatives], dim=0))
    dev = anchor.device
    img_a = torch.arange(b, device=dev).repeat(n_pos)  # anchor (k, b) -> b
    pos_a = torch.arange(n_pos, device=dev).repeat_interleave(b)  # anchor (k, b) -> k
    img_c = torch.arange(b, device=dev).repeat(n_pos + n_neg)
    slot_c = torch.arange(n_pos + n_neg, device=dev).repeat_interleave(b)
    same_img = img_a[:, None] == img_c[None, :]
    is_pos_slot = slot_c[None, :] < n_pos
    positive_mask = same_img & (slot_c[None, :] == pos_a[:, None])
    exclude_mask = ~same_img | (is_pos_slot & ~positive_mask)
    return info_nce(
        a.repeat(n_pos, 1),
        cands,
        positive_mask,
        temperature=1.0,
        normalize=False,
        exclude_mask=exclude_mask,
        validate_args=False,
    )


def dual_contrastive_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The discriminator's dual contrastive loss (Yu et al., 2021), as PCL-SR trains it.

    With real logits ``r`` (R values) and fake logits ``f`` (F values), flattened:
    ``mean_i CE([r_i, f_1..f_F], 0) + mean_j CE([-f_j, -r_1..-r_R], 0)``. Computed as
    ``softplus(logsumexp(f) - r_i)`` (and its mirror), which is the same cross-entropy in O(R+F).

    Args:
        real_logits: Patch logits of real images (HR and its sharpened copies). Any shape, float.
        fake_logits: Patch logits of fakes (SR and blurred HR). Any shape, float.

    Returns:
        The scalar loss.

    Examples:
        >>> r, f = torch.tensor([2.0]), torch.tensor([0.0])
        >>> expected = 2 * float(F.softplus(torch.tensor(-2.0)))  # each half: CE([2, 0], 0)
        >>> abs(dual_contrastive_loss(r, f).item() - expected) < 1e-6
        True
    """
    r, f = real_logits.reshape(-1), fake_logits.reshape(-1)
    first = F.softplus(torch.logsumexp(f, 0) - r).mean()
    second = F.softplus(torch.logsumexp(-r, 0) + f).mean()
    return first + second
