"""Training tasks for the shared Trainer: SepCLR, the SimCLR baseline, the contrastive VAE.

Batches are ``(images (B, C, H, W) in [0, 1], groups (B,))``. The two views are drawn inside
the step by :class:`~medical.sepclr.augment.BatchAugment` on the task's device; as in the
official script each view goes through the encoders in its own forward pass (BatchNorm
statistics per view).

Under ``torchrun`` (DDP) every rank gathers the heads of every rank's batch (with their
gradients, :func:`shared.distributed.gather`) and computes the loss of the global batch; the
gather's backward sums the ranks' gradients and DDP averages them, so the gradient is the one of
a single process on the global batch (the same contrastive pairs and uniformity terms), apart
from BatchNorm, which normalises each rank's batch on its own.
"""

from __future__ import annotations

from torch import Tensor

from medical.sepclr.augment import BatchAugment
from medical.sepclr.baselines import ContrastiveVAE
from medical.sepclr.losses import SepCLRWeights, sepclr_loss
from medical.sepclr.model import SepCLRModel, SingleModel
from shared.distributed import gather, gather_no_grad
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
        return self.loss(o1.common_head, o2.common_head, o1.salient_head, o2.salient_head, g)

    def loss(
        self, c1: Tensor, c2: Tensor, s1: Tensor, s2: Tensor, groups: Tensor
    ) -> dict[str, Tensor]:
        """:func:`sepclr_loss` of the global batch (this rank's rows gathered with every rank's).

        Args:
            c1: Common heads of view 1. Shape: (B, Dc).
            c2: Common heads of view 2. Shape: (B, Dc).
            s1: Salient heads of view 1. Shape: (B, Ds).
            s2: Salient heads of view 2. Shape: (B, Ds).
            groups: 0 background, 1 target. Shape: (B,).

        Returns:
            ``loss`` and its ``loss/<term>`` parts.
        """
        return sepclr_loss(
            gather(c1),
            gather(c2),
            gather(s1),
            gather(s2),
            gather_no_grad(groups),
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
        return self.loss(z1, z2)

    def loss(self, z1: Tensor, z2: Tensor) -> dict[str, Tensor]:
        """NT-Xent of the global batch (every rank's projections gathered).

        Args:
            z1: Projections of view 1. Shape: (B, D).
            z2: Projections of view 2. Shape: (B, D).

        Returns:
            ``loss`` and ``loss/nt_xent``.
        """
        loss = nt_xent(gather(z1), gather(z2), temperature=self.temperature)
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
