"""The contrastive methods on the same encoder, views and probe: one Task per method.

Every method sees two random views of each image through the same :class:`DigitsCNN` encoder
and a projection head; only the objective differs (solo-learn's ``METHODS`` table). Each
Task's :meth:`~shared.training.Task.training_step` returns ``{"loss": total, "loss/<name>":
detached}``.

==========  ==========================================================  ====================
method      objective (``shared.losses``)                               labels
==========  ==========================================================  ====================
``simclr``  :func:`nt_xent` (Chen et al., 2020)                         no
``supcon``  :func:`sup_con` (Khosla et al., 2020)                       yes
``dcl``     :func:`dcl`, decoupled (Yeh et al., 2022)                   no
``dclw``    :func:`dclw`, weighted decoupled                            no
``swav``    :class:`SwAVLoss`, prototypes + Sinkhorn (Caron et al.)     no
``cacr``    :func:`cacr`, attraction + repulsion (Zheng et al., 2021)   no
``amcl``    :class:`AMCLLoss` on 3 heads, adaptive temperatures         no
``ft``      :func:`feature_transform_info_nce` in MoCo v2 (Zhu et al.)  no
==========  ==========================================================  ====================

Deviations from the papers' recipes at this size, and the option that restores each:

==============================================  =============================================
deviation (why)                                 restore with
==============================================  =============================================
SwAV: 30 prototypes (10 classes, not 1000)      ``loss.swav.prototypes=3000``
SwAV: no queue (batch 128 over 30 prototypes    ``loss.swav.queue_length=N``
spreads well)
SwAV: prototypes not frozen at the start        ``loss.swav.freeze_prototypes_steps=N``
(the authors freeze them for one ImageNet
epoch, 313 iterations)
FT: momentum 0.99, not MoCo v2's 0.999 (540     ``loss.ft.momentum=0.999``
steps in all, not 1M)
FT: symmetrised over the two views              ``loss.ft.symmetric=false``
FT: no shuffled BN (also under DDP)             none
AMCL: alignment and uniformity in the report    (report only)
are averaged over its heads
==============================================  =============================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from shared.config import to_dict
from shared.losses import (
    AMCLLoss,
    AMCLProjectionHeads,
    SwAVLoss,
    cacr,
)
from shared.validation import check_positive
from vision.digits.data import DigitAugment
from vision.digits.ft import FTTask
from vision.digits.model import DigitsCNN
from vision.digits.tasks import (
    DCLTask,
    DCLWTask,
    SimCLRTask,
    SupConTask,
    TwoViewTask,
    build_encoder,
    build_head,
)

if TYPE_CHECKING:
    from vision.digits.config import DigitsConfig

__all__ = [
    "METHODS",
    "AMCLTask",
    "CACRTask",
    "DCLTask",
    "DCLWTask",
    "FTTask",
    "SimCLRTask",
    "SupConTask",
    "SwAVTask",
    "TwoViewTask",
    "build_task",
    "method_settings",
]


class SwAVTask(TwoViewTask):
    """SwAV (Caron et al., NeurIPS 2020): each view predicts the other's Sinkhorn codes.

    Args:
        encoder: The encoder.
        head: The projection head (-> D).
        augment: Draws the views.
        loss: The SwAV loss holding the D-dimensional prototypes (trained with the task).
        freeze_prototypes_steps: Training steps during which the prototypes get no gradient
            (the authors' ``freeze_prototypes_niters``); counted in a buffer, so a resumed
            run continues the count.

    Raises:
        ValueError: If ``freeze_prototypes_steps < 0``.
    """

    term = "swav"
    steps: Tensor

    def __init__(
        self,
        encoder: DigitsCNN,
        head: nn.Module,
        augment: DigitAugment,
        loss: SwAVLoss,
        freeze_prototypes_steps: int = 0,
    ) -> None:
        super().__init__(encoder, head, augment)
        if freeze_prototypes_steps < 0:
            raise ValueError(
                f"Expected `freeze_prototypes_steps` >= 0, but got {freeze_prototypes_steps}."
            )
        self.swav = loss
        self.freeze_prototypes_steps = freeze_prototypes_steps
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @classmethod
    def from_config(cls, cfg: DigitsConfig, augment: DigitAugment) -> SwAVTask:
        """The task of ``cfg`` (``loss.swav.*``)."""
        encoder, head, s = build_encoder(cfg), build_head(cfg), cfg.loss.swav
        loss = SwAVLoss(
            cfg.model.head_out,
            s.prototypes,
            s.temperature,
            epsilon=s.epsilon,
            sinkhorn_iterations=s.sinkhorn_iterations,
            queue_length=s.queue_length,
        )
        return cls(encoder, head, augment, loss, s.freeze_prototypes_steps)

    @staticmethod
    def settings(cfg: DigitsConfig) -> dict[str, Any]:
        """``loss.swav`` as a dict."""
        return to_dict(cfg.loss.swav)

    def objective(self, z1: Tensor, z2: Tensor, labels: Tensor) -> Tensor:
        """Swapped prediction between the two views."""
        if self.training:
            # requires_grad is switched only here, after the Trainer built its optimizer (with
            # every parameter); a parameter without a gradient is skipped by the optimizer.
            frozen = int(self.steps) < self.freeze_prototypes_steps
            self.swav.prototypes.weight.requires_grad_(not frozen)
            self.steps += 1
        loss: Tensor = self.swav(torch.stack([z1, z2], dim=1))
        return loss


class CACRTask(TwoViewTask):
    """CACR (Zheng et al., NeurIPS 2021): weighted attraction of views, repulsion of others.

    Args:
        encoder: The encoder.
        head: The projection head.
        augment: Draws the views.
        alpha: Attraction cost scale.
        beta: Repulsion cost scale.
        pos_temperature: :math:`t^+`.
        neg_temperature: :math:`t^-`.

    Raises:
        ValueError: If a setting is out of range.
    """

    term = "cacr"

    def __init__(
        self,
        encoder: DigitsCNN,
        head: nn.Module,
        augment: DigitAugment,
        alpha: float = 1.0,
        beta: float = 1.0,
        pos_temperature: float = 1.0,
        neg_temperature: float = 1.0,
    ) -> None:
        super().__init__(encoder, head, augment)
        check_positive(alpha, "alpha")
        check_positive(beta, "beta")
        for name, value in (
            ("pos_temperature", pos_temperature),
            ("neg_temperature", neg_temperature),
        ):
            if not value >= 0:
                raise ValueError(f"Expected `{name}` to be >= 0, but got {value}.")
        self.alpha, self.beta = alpha, beta
        self.pos_temperature, self.neg_temperature = pos_temperature, neg_temperature

    @classmethod
    def from_config(cls, cfg: DigitsConfig, augment: DigitAugment) -> CACRTask:
        """The task of ``cfg`` (``loss.cacr.*``)."""
        c = cfg.loss.cacr
        return cls(
            build_encoder(cfg),
            build_head(cfg),
            augment,
            c.alpha,
            c.beta,
            c.pos_temperature,
            c.neg_temperature,
        )

    @staticmethod
    def settings(cfg: DigitsConfig) -> dict[str, Any]:
        """``loss.cacr`` as a dict."""
        return to_dict(cfg.loss.cacr)

    def objective(self, z1: Tensor, z2: Tensor, labels: Tensor) -> Tensor:
        """CACR over the two views."""
        return cacr(
            torch.stack([z1, z2], dim=1),
            alpha=self.alpha,
            beta=self.beta,
            pos_temperature=self.pos_temperature,
            neg_temperature=self.neg_temperature,
        )


class AMCLTask(TwoViewTask):
    """AMCL (Wang et al., ECCV 2024): C projection heads, pair-adaptive temperatures.

    Args:
        encoder: The encoder.
        head: :class:`~shared.losses.AMCLProjectionHeads` (-> (C, D)).
        augment: Draws the views.
        loss: The AMCL loss holding the temperature network (trained with the task).
    """

    term = "amcl"

    def __init__(
        self, encoder: DigitsCNN, head: nn.Module, augment: DigitAugment, loss: AMCLLoss
    ) -> None:
        super().__init__(encoder, head, augment)
        self.amcl = loss

    @classmethod
    def from_config(cls, cfg: DigitsConfig, augment: DigitAugment) -> AMCLTask:
        """The task of ``cfg`` (``loss.amcl.*``; the heads' sizes from ``model``)."""
        m, a = cfg.model, cfg.loss.amcl
        encoder = build_encoder(cfg)
        heads = AMCLProjectionHeads(m.num_features, m.head_out, a.heads, m.head_hidden)
        loss = AMCLLoss(
            m.head_out,
            a.heads,
            beta=a.beta,
            tau_min=a.tau_min,
            tau_max=a.tau_max,
            top_k=a.top_k,
        )
        return cls(encoder, heads, augment, loss)

    @staticmethod
    def settings(cfg: DigitsConfig) -> dict[str, Any]:
        """``loss.amcl`` as a dict."""
        return to_dict(cfg.loss.amcl)

    def objective(self, z1: Tensor, z2: Tensor, labels: Tensor) -> Tensor:
        """AMCL over the heads. Shapes: (B, C, D) each."""
        loss: Tensor = self.amcl(z1, z2)
        return loss


#: The methods ``methods`` may list: the task class trained for each (solo-learn's METHODS).
METHODS: dict[str, type[TwoViewTask]] = {
    "simclr": SimCLRTask,
    "supcon": SupConTask,
    "dcl": DCLTask,
    "dclw": DCLWTask,
    "swav": SwAVTask,
    "cacr": CACRTask,
    "amcl": AMCLTask,
    "ft": FTTask,
}


def build_task(method: str, cfg: DigitsConfig, augment: DigitAugment) -> TwoViewTask:
    """A fresh task of ``method`` with ``cfg``'s sizes and settings.

    Raises:
        KeyError: If ``method`` is not in :data:`METHODS`.
    """
    return METHODS[method].from_config(cfg, augment)


def method_settings(method: str, cfg: DigitsConfig) -> dict[str, Any]:
    """The settings of ``method`` in ``cfg`` (e.g. ``{"temperature": 0.5}`` for simclr)."""
    return METHODS[method].settings(cfg)
