"""Training tasks for the shared Trainer: SepCLR, the SimCLR baseline, the contrastive VAE.

Batches are ``(images (B, C, H, W) in [0, 1], groups (B,))``. The two views are drawn inside
the step by :class:`~medical.sepclr.augment.BatchAugment` on the task's device; as in the
official script each view goes through the encoders in its own forward pass (BatchNorm
statistics per view).
"""

from __future__ import annotations

from torch import Tensor

from medical.sepclr.augment import BatchAugment
from medical.sepclr.baselines import ContrastiveVAE
from medical.sepclr.losses import SepCLRWeights, sepclr_loss
from medical.sepclr.model import SepCLRModel, SingleModel
from shared.losses import nt_xent
from shared.training import Task

__all__ = ["CVAETask", "SepCLRTask", "SimCLRTask"]


class SepCLRTask(Task):
    """SepCLR's step: two views, both branches, the loss of methods.md 4.3.

    Args:
        model: The two-branch model.
        augment: The batched augmentation.
        weights: beta_S, beta_reg, lambda.
        temperature: Kernel bandwidth tau.
        form: ``code`` or ``paper`` (see :func:`~medical.sepclr.losses.sepclr_loss`).
    """

    def __init__(
        self,
        model: SepCLRModel,
        augment: BatchAugment,
        weights: SepCLRWeights,
        temperature: float = 0.5,
        form: str = "code",
    ) -> None:
        super().__init__()
        self.model, self.augment = model, augment
        self.weights, self.temperature, self.form = weights, temperature, form

    def training_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Loss of one batch with ``loss/<term>`` parts (see :func:`sepclr_loss`)."""
        x, g = batch
        o1 = self.model(self.augment(x))
        o2 = self.model(self.augment(x))
        return sepclr_loss(
            o1.common_head,
            o2.common_head,
            o1.salient_head,
            o2.salient_head,
            g,
            self.weights,
            temperature=self.temperature,
            form=self.form,
        )


class SimCLRTask(Task):
    """SimCLR on all images (one space ``single``), NT-Xent from the core.

    Args:
        model: One branch.
        augment: The batched augmentation (the same as SepCLR's).
        temperature: NT-Xent temperature.
    """

    def __init__(self, model: SingleModel, augment: BatchAugment, temperature: float = 0.5) -> None:
        super().__init__()
        self.model, self.augment, self.temperature = model, augment, temperature

    def training_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """NT-Xent of one batch."""
        x, _ = batch
        _, z1 = self.model(self.augment(x))
        _, z2 = self.model(self.augment(x))
        loss = nt_xent(z1, z2, temperature=self.temperature)
        return {"loss": loss, "loss/nt_xent": loss.detach()}


class CVAETask(Task):
    """The contrastive VAE's step (Abid & Zou 2019): see :class:`ContrastiveVAE.loss`.

    Args:
        model: The contrastive VAE.
    """

    def __init__(self, model: ContrastiveVAE) -> None:
        super().__init__()
        self.model = model

    def training_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Negative ELBO of background and target images, by part."""
        x, g = batch
        return self.model.loss(x, g.bool())
