r"""The SepCLR objective (methods.md 4.3), assembled from the core's functions.

For two views with common heads :math:`\hat c_1, \hat c_2` (L2-normalised), salient heads
:math:`s_1, s_2` (Euclidean), and groups (0 background, 1 target); :math:`s'_k` is :math:`s_k`
with background rows replaced by the null vector (gradients flow through target rows only):

* :math:`L_C = \mathrm{align}(\hat c_1, \hat c_2) + 2\cdot\tfrac12[\mathrm{unif}(\hat c_1) +
  \mathrm{unif}(\hat c_2)]` on every sample;
* :math:`L_S = \mathrm{align}(s_1[tg], s_2[tg]) + 2\cdot\tfrac12[\mathrm{unif}(s'_1) +
  \mathrm{unif}(s'_2)]` (the s'-uniformity: targets repel each other and the null vector);
* :math:`L_{reg} = \tfrac12[\mathrm{align}(0, s_1[bg]) + \mathrm{align}(0, s_2[bg])]`
  (information-less background codes);
* :math:`L_{JEM} = \tfrac12[\mathrm{kJEM}(\hat c_1, s'_1) + \mathrm{kJEM}(\hat c_2, s'_2)]`;
* :math:`L = L_C + \beta_S L_S + \beta_{reg} L_{reg} + \lambda L_{JEM}`.

``form="code"`` (default) follows the official code (``losses.py``): align = squared distance
/ (2 tau), unif with :math:`t = 1/(2\tau) = 1` (:func:`shared.losses.sepclr_align`,
:func:`shared.losses.sepclr_uniformity`). ``form="paper"`` uses Wang & Isola's uniformity with
:math:`t = 2` (:func:`shared.losses.uniformity`) and alignment with alpha 2
(:func:`shared.losses.alignment`); k-JEM is :func:`shared.losses.kjem` in both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from shared.losses import alignment, kjem, sepclr_align, sepclr_uniformity, uniformity

__all__ = ["SepCLRWeights", "null_background", "sepclr_loss"]


@dataclass(frozen=True)
class SepCLRWeights:
    """Weights of the SepCLR terms.

    Attributes:
        beta_s: Salient term beta_S.
        beta_reg: Information-less regulariser beta_reg.
        lambda_jem: k-JEM lambda (0 = the ablation without k-JEM).
    """

    beta_s: float = 1000.0
    beta_reg: float = 1000.0
    lambda_jem: float = 10.0

    def __post_init__(self) -> None:
        """Reject negative weights.

        Raises:
            ValueError: If a weight is negative.
        """
        for name in ("beta_s", "beta_reg", "lambda_jem"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"Expected `{name}` to be >= 0, but got {getattr(self, name)}.")


def null_background(s: Tensor, is_target: Tensor) -> Tensor:
    """:math:`s'`: the salient codes with background rows set to the null vector.

    Args:
        s: Salient heads. Shape: (B, D_s), float.
        is_target: Shape: (B,), bool.

    Returns:
        Shape: (B, D_s); gradients flow through the target rows only.

    Examples:
        >>> null_background(torch.ones(2, 2), torch.tensor([True, False])).tolist()
        [[1.0, 1.0], [0.0, 0.0]]
    """
    return s * is_target.to(s.dtype)[:, None]


def _zero(x: Tensor) -> Tensor:
    return x.sum() * 0.0


def sepclr_loss(
    c1: Tensor,
    c2: Tensor,
    s1: Tensor,
    s2: Tensor,
    groups: Tensor,
    weights: SepCLRWeights,
    *,
    temperature: float = 0.5,
    form: str = "code",
) -> dict[str, Tensor]:
    """The SepCLR loss of one batch of two views, with every term by name.

    Args:
        c1: Common heads of view 1, L2-normalised. Shape: (B, D_c), float.
        c2: Common heads of view 2. Shape: (B, D_c).
        s1: Salient heads of view 1 (not normalised). Shape: (B, D_s).
        s2: Salient heads of view 2. Shape: (B, D_s).
        groups: 0 background, 1 target. Shape: (B,), int or bool.
        weights: beta_S, beta_reg, lambda.
        temperature: Kernel bandwidth tau (0.5 in the code).
        form: ``"code"`` or ``"paper"`` (see the module docstring).

    Returns:
        ``{"loss": total, "loss/common_align", "loss/common_unif", "loss/salient_align",
        "loss/salient_unif", "loss/reg", "loss/kjem"}``; the parts are detached and unweighted
        (``common_unif`` and ``salient_unif`` are the 2 x 1/2 (u1 + u2) of the formula).

    Raises:
        ValueError: On shape mismatches, a batch below 2, or an unknown ``form``.

    Examples:
        >>> c = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
        >>> s = torch.randn(6, 3)
        >>> g = torch.tensor([0, 1, 0, 1, 0, 1])
        >>> out = sepclr_loss(c, c, s, s, g, SepCLRWeights())
        >>> out["loss/common_align"].item(), out["loss/salient_align"].item()
        (0.0, 0.0)
    """
    if form not in ("code", "paper"):
        raise ValueError(f"Expected `form` to be 'code' or 'paper', but got {form!r}.")
    if c1.shape != c2.shape or s1.shape != s2.shape or c1.shape[0] != s1.shape[0]:
        raise ValueError(
            "Expected c1, c2 of one shape (B, D_c) and s1, s2 of one shape (B, D_s), but got "
            f"{tuple(c1.shape)}, {tuple(c2.shape)}, {tuple(s1.shape)}, {tuple(s2.shape)}."
        )
    if groups.shape != (c1.shape[0],):
        raise ValueError(
            f"Expected `groups` to have shape ({c1.shape[0]},), but got {tuple(groups.shape)}."
        )
    tg = groups.bool()
    bg = ~tg
    s1p, s2p = null_background(s1, tg), null_background(s2, tg)

    def align(x: Tensor, y: Tensor) -> Tensor:
        if x.shape[0] == 0:
            return _zero(x)
        if form == "code":
            return sepclr_align(x, y, temperature)
        return alignment(x, y, alpha=2, normalize=False)

    def unif(x: Tensor) -> Tensor:
        if form == "code":
            return sepclr_uniformity(x, temperature)
        return uniformity(x, t=2, normalize=False)

    common_align = align(c1, c2)
    common_unif = unif(c1) + unif(c2)  # 2 * (u1 + u2) / 2
    salient_align = align(s1[tg], s2[tg])
    salient_unif = unif(s1p) + unif(s2p)
    reg = 0.5 * (align(torch.zeros_like(s1[bg]), s1[bg]) + align(torch.zeros_like(s2[bg]), s2[bg]))
    jem = 0.5 * (kjem(c1, s1p, temperature) + kjem(c2, s2p, temperature))
    total = (
        common_align
        + common_unif
        + weights.beta_s * (salient_align + salient_unif)
        + weights.beta_reg * reg
        + weights.lambda_jem * jem
    )
    parts = {
        "common_align": common_align,
        "common_unif": common_unif,
        "salient_align": salient_align,
        "salient_unif": salient_unif,
        "reg": reg,
        "kjem": jem,
    }
    return {"loss": total, **{f"loss/{k}": v.detach() for k, v in parts.items()}}
