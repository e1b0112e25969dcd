r"""ProtoECGNet's loss terms as pure functions (methods.md 1.5), and their weighted sum.

Notation: ``B`` ECGs, ``P`` prototypes, ``C`` classes; ``s`` (B, P) pooled similarities,
``y`` (B, C) multi-hot targets, ``A`` (P, C) the prototype-class identity, ``L`` (C, C) the label
co-occurrence (Jaccard) matrix of the training labels.

* Clustering  :math:`L_{clst} = -\operatorname{mean}_{b,c} \max_j s_{bj} M_{bjc}` with
  :math:`M_{bjc} = A_{jc} y_{bc}`: the mean runs over every (b, c), absent classes included.
* Separation  :math:`L_{sep} = \operatorname{mean}_{b,c} \max_j s_{bj} (1 - M_{bjc})`.
* Sparsity    :math:`L_{spars} = \operatorname{mean}_b \sum_j \mathrm{relu}(s_{bj})` (weight 0).
* Diversity   :math:`L_{div} = \lVert \hat P \hat P^T - I \rVert_F^2 / P^2`.
* Co-occurrence contrastive :math:`L_{cnrst} = -(\sum S \odot pos_n - \sum S \odot neg_n) /
  \sqrt{P}` with :math:`S = \mathrm{clamp}(\hat P \hat P^T, -1+10^{-6}, 1-10^{-6})`,
  :math:`pos = A L A^T`, :math:`neg = 1 - pos`, each normalised to sum 1.
* Classification: BCE with logits and per-class ``pos_weight``.

Default weights are those of the paper's code (main.py defaults and the values fixed in tune.py):
clustering 0.004, separation 0.0004, sparsity 0, diversity 250, contrastive 300, L1 1e-4.

The co-occurrence term is linear in the prototype cosines (no softmax), so it cannot be written
with the core's InfoNCE; ``cooccurrence_form="info_nce"`` offers a SupCon-style alternative that
does reuse :func:`shared.losses.info_nce` (prototypes of co-occurring classes as positives).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from shared.losses import info_nce
from shared.validation import check_ndim

__all__ = [
    "LossConfig",
    "class_counts_pos_weight",
    "clustering_separation",
    "cooccurrence_contrastive",
    "diversity",
    "jaccard_matrix",
    "prototype_loss",
    "sparsity",
]

PosWeight = Literal["samples", "label_instances", "none"]
CooccurrenceForm = Literal["linear", "info_nce"]


@dataclass(frozen=True)
class LossConfig:
    r"""Weights of the prototype loss terms (defaults: the paper's code) and the BCE weighting.

    Attributes:
        clustering: :math:`\lambda_{clst}`.
        separation: :math:`\lambda_{sep}`.
        sparsity: :math:`\lambda_{spars}` (0: unused in the paper).
        diversity: :math:`\lambda_{div}`.
        contrastive: :math:`\lambda_{cnrst}` of the label co-occurrence term.
        l1: Weight of the L1 penalty in the classifier (wrong-class connections) and fusion
            (whole matrix) stages.
        cooccurrence_form: ``"linear"`` (the paper's formula) or ``"info_nce"`` (see the module
            docstring).
        cooccurrence_temperature: Temperature of the ``"info_nce"`` form.
        pos_weight: BCE ``pos_weight`` per class (:func:`class_counts_pos_weight`):
            ``"samples"`` (negatives / positives, the default), ``"label_instances"`` (the
            official code's formula) or ``"none"``.
    """

    clustering: float = 0.004
    separation: float = 0.0004
    sparsity: float = 0.0
    diversity: float = 250.0
    contrastive: float = 300.0
    l1: float = 1e-4
    cooccurrence_form: CooccurrenceForm = "linear"
    cooccurrence_temperature: float = 0.1
    pos_weight: PosWeight = "samples"

    def __post_init__(self) -> None:
        """Check the values.

        Raises:
            ValueError: On a negative weight, a non-positive temperature or an unknown form.
        """
        for name in ("clustering", "separation", "sparsity", "diversity", "contrastive", "l1"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"Expected `loss.{name}` to be >= 0, but got {getattr(self, name)}."
                )
        if self.cooccurrence_form not in ("linear", "info_nce"):
            raise ValueError(
                "Expected `loss.cooccurrence_form` to be 'linear' or 'info_nce', "
                f"but got {self.cooccurrence_form!r}."
            )
        if self.pos_weight not in ("samples", "label_instances", "none"):
            raise ValueError(
                "Expected `loss.pos_weight` to be 'samples', 'label_instances' or 'none', "
                f"but got {self.pos_weight!r}."
            )
        if not self.cooccurrence_temperature > 0:
            raise ValueError(
                "Expected `loss.cooccurrence_temperature` > 0, "
                f"but got {self.cooccurrence_temperature}."
            )


def _check_sims(similarities: Tensor, targets: Tensor, identity: Tensor) -> None:
    check_ndim(similarities, 2, "similarities", "(B, P)")
    check_ndim(targets, 2, "targets", "(B, C)")
    check_ndim(identity, 2, "identity", "(P, C)")
    if (
        identity.shape != (similarities.shape[1], targets.shape[1])
        or targets.shape[0] != similarities.shape[0]
    ):
        raise ValueError(
            "Expected `similarities` (B, P), `targets` (B, C) and `identity` (P, C) to agree, "
            "but got "
            f"{tuple(similarities.shape)}, {tuple(targets.shape)} and {tuple(identity.shape)}."
        )


def clustering_separation(
    similarities: Tensor, targets: Tensor, identity: Tensor
) -> tuple[Tensor, Tensor]:
    """Clustering and separation terms (ProtoPNet's, made multi-label as in ProtoECGNet).

    Args:
        similarities: Pooled similarities ``s``. Shape: (B, P), float.
        targets: Multi-hot labels ``y``. Shape: (B, C), float or bool.
        identity: Prototype-class identity ``A``. Shape: (P, C), float.

    Returns:
        ``(L_clst, L_sep)``, two scalars. ``L_clst`` is minus the mean over every (ECG, class) of
        the best similarity among the class's prototypes when the class is present (0 when it is
        absent); ``L_sep`` is the mean of the best similarity among the other prototypes (all
        prototypes for an absent class). As in the official code the max runs over
        ``s * mask``, so masked prototypes count as 0.

    Raises:
        ValueError: If the shapes disagree.

    Examples:
        >>> s = torch.tensor([[0.9, 0.1]])
        >>> A = torch.eye(2)
        >>> clst, sep = clustering_separation(s, torch.tensor([[1.0, 0.0]]), A)
        >>> round(clst.item(), 3), round(sep.item(), 3)
        (-0.45, 0.5)
    """
    _check_sims(similarities, targets, identity)
    correct = (
        identity.to(similarities.dtype)[None] * targets.to(similarities.dtype)[:, None, :]
    )  # (B, P, C)
    s = similarities.unsqueeze(-1)
    clst = -(s * correct).amax(dim=1).mean()
    sep = (s * (1 - correct)).amax(dim=1).mean()
    return clst, sep


def sparsity(similarities: Tensor) -> Tensor:
    r""":math:`\operatorname{mean}_b \sum_j \mathrm{relu}(s_{bj})`. Shape: (B, P) -> scalar."""
    check_ndim(similarities, 2, "similarities", "(B, P)")
    return similarities.clamp_min(0).sum(dim=1).mean()


def _unit_rows(prototypes: Tensor) -> Tensor:
    return F.normalize(prototypes.flatten(1), dim=1)


def diversity(prototypes: Tensor) -> Tensor:
    r""":math:`\lVert \hat P \hat P^T - I \rVert_F^2 / P^2` of row-normalised flat prototypes.

    Args:
        prototypes: Shape: (P, D) or (P, D, T_p), float.

    Returns:
        A scalar: the sum of squared off-diagonal cosines over ``P^2``.

    Examples:
        >>> diversity(torch.eye(3)).item()
        0.0
    """
    unit = _unit_rows(prototypes)
    p = unit.shape[0]
    gram = unit @ unit.T
    return (gram - torch.eye(p, dtype=gram.dtype, device=gram.device)).pow(2).sum() / p**2


def cooccurrence_contrastive(
    prototypes: Tensor,
    identity: Tensor,
    cooccurrence: Tensor,
    *,
    form: CooccurrenceForm = "linear",
    temperature: float = 0.1,
) -> Tensor:
    r"""ProtoECGNet's label co-occurrence contrastive term between prototypes.

    ``"linear"`` (the paper): :math:`-(\sum S \odot pos_n - \sum S \odot neg_n)/\sqrt{P}`
    with :math:`S` the clamped cosine matrix of the prototypes (diagonal included),
    :math:`pos = A L A^T`, :math:`neg = 1 - pos`, each divided by its sum.

    ``"info_nce"``: SupCon over prototypes (:func:`shared.losses.info_nce`): each prototype's
    positives are the other prototypes whose classes co-occur (``pos > 0``: the same class, or a
    Jaccard index above 0), every other prototype is in the denominator.

    Args:
        prototypes: Shape: (P, D) or (P, D, T_p), float.
        identity: ``A``. Shape: (P, C), float.
        cooccurrence: ``L``, the Jaccard matrix of the training labels. Shape: (C, C), float.
        form: ``"linear"`` or ``"info_nce"``.
        temperature: Temperature of ``"info_nce"``.

    Returns:
        A scalar.

    Raises:
        ValueError: If the shapes disagree or ``form`` is unknown.

    Examples:
        >>> A = torch.eye(2)
        >>> L = torch.eye(2)
        >>> round(cooccurrence_contrastive(torch.eye(2), A, L).item(), 4)
        -0.7071
    """
    check_ndim(identity, 2, "identity", "(P, C)")
    check_ndim(cooccurrence, 2, "cooccurrence", "(C, C)")
    p, c = identity.shape
    if prototypes.shape[0] != p or cooccurrence.shape != (c, c):
        raise ValueError(
            "Expected `prototypes` (P, ...), `identity` (P, C) and `cooccurrence` (C, C) to agree, "
            f"but got {tuple(prototypes.shape)}, {tuple(identity.shape)} "
            f"and {tuple(cooccurrence.shape)}."
        )
    a = identity.to(prototypes.dtype)
    pos = a @ cooccurrence.to(prototypes.dtype) @ a.T
    if form == "info_nce":
        eye = torch.eye(p, dtype=torch.bool, device=prototypes.device)
        flat = prototypes.flatten(1)
        return info_nce(flat, flat, (pos > 0) & ~eye, temperature, exclude_mask=eye)
    if form != "linear":
        raise ValueError(f"Expected `form` to be 'linear' or 'info_nce', but got {form!r}.")
    unit = _unit_rows(prototypes)
    sim = (unit @ unit.T).clamp(-1 + 1e-6, 1 - 1e-6)
    neg = 1 - pos
    pos_n = pos / (pos.sum() + 1e-6)
    neg_n = neg / (neg.sum() + 1e-6)
    return -((sim * pos_n).sum() - (sim * neg_n).sum()) / math.sqrt(p)


def jaccard_matrix(labels: Tensor) -> Tensor:
    r"""Label co-occurrence as Jaccard indices :math:`|i \cap j| / |i \cup j|` (diagonal 1).

    Computed on the training labels only. A pair of classes that never occurs gets 0.

    Args:
        labels: Multi-hot training labels. Shape: (N, C).

    Returns:
        Shape: (C, C), float32.

    Examples:
        >>> jaccard_matrix(torch.tensor([[1, 1], [1, 0]])).tolist()
        [[1.0, 0.5], [0.5, 1.0]]
    """
    check_ndim(labels, 2, "labels", "(N, C)")
    y = (labels > 0).double()
    inter = y.T @ y
    count = y.sum(dim=0)
    union = count[:, None] + count[None, :] - inter
    jac = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))
    jac.fill_diagonal_(1.0)
    return jac.float()


def class_counts_pos_weight(labels: Tensor, mode: PosWeight = "samples") -> Tensor | None:
    r"""Per-class ``pos_weight`` of the BCE, from the training labels.

    * ``"samples"``: :math:`(N - n_c) / n_c`, negatives over positives (the usual definition).
    * ``"label_instances"``: :math:`(\sum_k n_k - n_c) / n_c` with :math:`\sum_k n_k` the total
      number of label instances (the official code; methods.md 1.9 item 7).
    * ``"none"``: no weighting (returns ``None``).

    A class without any training positive would get an infinite weight; its count is taken as
    1 instead.

    Args:
        labels: Multi-hot training labels. Shape: (N, C).
        mode: One of the above.

    Returns:
        Shape: (C,), float32, or ``None``.

    Raises:
        ValueError: If ``mode`` is unknown.

    Examples:
        >>> class_counts_pos_weight(torch.tensor([[1, 0], [1, 1], [0, 0], [1, 0]])).tolist()
        [0.3333333432674408, 3.0]
    """
    check_ndim(labels, 2, "labels", "(N, C)")
    if mode == "none":
        return None
    y = (labels > 0).double()
    n_c = y.sum(dim=0).clamp_min(1)
    if mode == "samples":
        total = torch.full_like(n_c, float(y.shape[0]))
    elif mode == "label_instances":
        total = torch.full_like(n_c, float(y.sum()))
    else:
        raise ValueError(
            f"Expected `pos_weight` to be 'samples', 'label_instances' or 'none', but got {mode!r}."
        )
    return ((total - n_c).clamp_min(0) / n_c).float()


def prototype_loss(
    logits: Tensor,
    targets: Tensor,
    similarities: Tensor,
    prototypes: Tensor,
    identity: Tensor,
    cooccurrence: Tensor,
    weights: LossConfig,
    pos_weight: Tensor | None = None,
) -> dict[str, Tensor]:
    r"""The whole ProtoECGNet loss of one branch (joint and prototype stages).

    :math:`L = L_{BCE} + \lambda_{clst} L_{clst} + \lambda_{sep} L_{sep} + \lambda_{spars}
    L_{spars} + \lambda_{div} L_{div} + \lambda_{cnrst} L_{cnrst}`.

    Args:
        logits: Shape: (B, C).
        targets: Shape: (B, C), multi-hot.
        similarities: Pooled similarities. Shape: (B, P).
        prototypes: The branch's prototype vectors. Shape: (P, D) or (P, D, T_p).
        identity: ``A``. Shape: (P, C).
        cooccurrence: ``L``. Shape: (C, C).
        weights: The :math:`\lambda`'s.
        pos_weight: BCE ``pos_weight``. Shape: (C,), or ``None``.

    Returns:
        ``{"loss": total, "loss/bce", "loss/clst", "loss/sep", "loss/spars", "loss/div",
        "loss/cnrst"}``; the parts are the unweighted terms, detached.
    """
    y = targets.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight)
    clst, sep = clustering_separation(similarities, y, identity)
    spars = sparsity(similarities)
    div = diversity(prototypes)
    cnrst = cooccurrence_contrastive(
        prototypes,
        identity,
        cooccurrence,
        form=weights.cooccurrence_form,
        temperature=weights.cooccurrence_temperature,
    )
    total = (
        bce
        + weights.clustering * clst
        + weights.separation * sep
        + weights.sparsity * spars
        + weights.diversity * div
        + weights.contrastive * cnrst
    )
    parts = {"bce": bce, "clst": clst, "sep": sep, "spars": spars, "div": div, "cnrst": cnrst}
    return {"loss": total, **{f"loss/{k}": v.detach() for k, v in parts.items()}}
