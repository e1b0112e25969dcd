"""The SR Task: L1, or L1 + PCL with an online discriminator on its own optimiser.

Deviations from the released code, each with the option that restores it:

* SR embedding under ``torch.no_grad`` (PCL never reaches the SR net): here the gradient
  flows; ``pcl.grad_to_sr=false`` restores the released behaviour.
* ``rgb_range`` 255 (RCAN): images in [0, 1] here (NLSN's range). The L1 term shrinks by 255
  while PCL (cosine similarities) does not, so RCAN's ``5*CL-patchD`` becomes
  ``pcl.weight=5/255`` (the default); ``pcl.weight=5`` is 255 times RCAN's balance.
* The RCAN script drops the sharpened positives (a missing backslash): 3 positives here;
  ``pcl.n_pos=0`` restores HR as the only positive.
* Discriminator stem of 64 channels: 64 here too; ``pcl.d_width`` narrows it for CPU runs
  (the demo uses 8-32).
* The patch sampler, schedule and data are CPU-sized defaults (methods.md 3.2 fine-tunes a
  DIV2K-pretrained net for 600k iterations); set them with ``data.*``, ``trainer.*``.

The discriminator's parameters have ``requires_grad=False`` outside its own update, so the
Trainer's (generator) optimiser never holds them, and PCL's gradient reaches only the SR image.
Its Adam state survives a resume through :class:`DiscriminatorState` (a Trainer callback).
Under DDP its loss is taken over every rank's logits (gathered) and its gradients averaged over
the ranks, so it gets the update of one process on the global batch on every rank.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from shared.distributed import all_reduce_sum_, gather, world_size
from shared.training import Task
from shared.training.callbacks import Callback
from vision.sr.config import PCLConfig
from vision.sr.degrade import random_negatives, random_positives, upsample_bicubic
from vision.sr.losses import dual_contrastive_loss, pcl_info_nce
from vision.sr.metrics import psnr
from vision.sr.model import EDSR, PatchDiscriminator

__all__ = ["DiscriminatorState", "SRTask"]


class SRTask(Task):
    """Train an EDSR with L1 (``pcl=None``) or with L1 + ``pcl.weight`` * PCL.

    Args:
        model: The SR network.
        pcl: The PCL settings, or ``None`` for L1 only.
        d_lr: The discriminator's learning rate (with ``pcl``).

    Batches are ``(lr, hr)``: Shape: (B, 3, h, w) and (B, 3, s*h, s*w), float in [0, 1].
    ``training_step`` returns ``loss``, ``loss/l1`` and, with PCL, ``loss/pcl`` (the InfoNCE
    before weighting), ``loss/disc`` (the discriminator's loss of this step) and
    ``pcl/acc`` (share of (image, positive) pairs whose positive beats every negative).
    """

    def __init__(self, model: EDSR, pcl: PCLConfig | None = None, d_lr: float = 1e-4) -> None:
        super().__init__()
        self.model = model
        self.pcl = pcl
        self.disc: PatchDiscriminator | None = None
        self.d_optimizer: torch.optim.Optimizer | None = None
        if pcl is not None:
            self.disc = PatchDiscriminator(pcl.d_width)
            self.disc.requires_grad_(False)
            self.d_optimizer = torch.optim.Adam(self.disc.parameters(), lr=d_lr)

    def training_step(self, batch: Any) -> dict[str, Tensor]:
        """One step (see the class docstring for the returned keys)."""
        lr, hr = batch
        sr = self.model(lr)
        l1 = F.l1_loss(sr, hr)
        out = {"loss/l1": l1.detach()}
        if self.pcl is None or self.disc is None:
            return {"loss": l1, **out}
        cfg = self.pcl
        positives = [hr, *random_positives(hr, cfg.n_pos, cfg.sharp_min, cfg.sharp_max)]
        negatives = [
            upsample_bicubic(lr, hr.shape[-2:]),
            *random_negatives(hr, cfg.n_neg, cfg.blur_sizes, cfg.sigma_min, cfg.sigma_max),
        ]
        out["loss/disc"] = self.update_discriminator(sr.detach(), positives, negatives)
        pcl, acc = self.pcl_term(sr, positives, negatives)
        out.update({"loss/pcl": pcl.detach(), "pcl/acc": acc})
        return {"loss": l1 + cfg.weight * pcl, **out}

    def update_discriminator(
        self, sr: Tensor, positives: list[Tensor], negatives: list[Tensor]
    ) -> Tensor:
        """One Adam step of the discriminator on its dual contrastive loss.

        Real: HR (and with ``d_augmented`` the sharpened copies); fake: SR (and with
        ``d_augmented`` the blurred copies; the upsampled LR is never used here).

        Returns:
            The (detached) discriminator loss.
        """
        disc, opt, cfg = self._parts()
        reals = positives if cfg.d_augmented else positives[:1]
        fakes = [sr, *(negatives[1:] if cfg.d_augmented else [])]
        disc.requires_grad_(True)
        try:
            with torch.enable_grad():
                # under DDP: the loss of the global batch (logits gathered with gradients)
                d_real = gather(torch.cat([disc.logits(x).reshape(-1) for x in reals]))
                d_fake = gather(torch.cat([disc.logits(x).reshape(-1) for x in fakes]))
                loss = dual_contrastive_loss(d_real, d_fake)
                params = list(disc.parameters())
                grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads):
                p.grad = all_reduce_sum_(g) / world_size()  # averaged over ranks, as DDP does
            opt.step()
            opt.zero_grad(set_to_none=True)
        finally:
            disc.requires_grad_(False)
        return loss.detach()

    def pcl_term(
        self, sr: Tensor, positives: list[Tensor], negatives: list[Tensor]
    ) -> tuple[Tensor, Tensor]:
        """The PCL InfoNCE of ``sr`` against the positives and negatives (layer ``pcl.layer``).

        Returns:
            ``(loss, accuracy)``: the loss carries a gradient to ``sr`` when
            ``pcl.grad_to_sr`` (never to the discriminator); the accuracy is detached.
        """
        disc, _, cfg = self._parts()
        layer = cfg.layer

        def embed(x: Tensor) -> Tensor:
            return disc.features(x, layer)

        with torch.no_grad():
            pos = [embed(x) for x in positives]
            neg = [embed(x) for x in negatives]
        if cfg.grad_to_sr:
            anchor = embed(sr)
        else:  # the released code: the SR embedding is computed under no_grad
            with torch.no_grad():
                anchor = embed(sr)
        loss = pcl_info_nce(anchor, pos, neg)
        with torch.no_grad():
            acc = _pcl_accuracy(anchor, pos, neg)
        return loss, acc

    def _parts(self) -> tuple[PatchDiscriminator, torch.optim.Optimizer, PCLConfig]:
        if self.disc is None or self.d_optimizer is None or self.pcl is None:
            raise RuntimeError("This SRTask has no PCL term (it was built with pcl=None).")
        return self.disc, self.d_optimizer, self.pcl

    @torch.no_grad()
    def validation_step(self, batch: Any) -> Mapping[str, Tensor | float]:
        """Y-channel PSNR (border ``scale``) of one quantised validation image."""
        lr, hr = batch
        sr = self.model(lr).clamp(0, 1)
        return {"psnr_y": psnr(sr, hr, crop=self.model.scale, y_channel=True).mean()}


def _pcl_accuracy(anchor: Tensor, pos: list[Tensor], neg: list[Tensor]) -> Tensor:
    from vision.sr.losses import embed_for_similarity

    a = embed_for_similarity(anchor)
    sp = torch.stack([(a * embed_for_similarity(p)).sum(1) for p in pos])  # (P, B)
    sn = torch.stack([(a * embed_for_similarity(n)).sum(1) for n in neg])  # (N, B)
    return (sp > sn.max(dim=0).values).float().mean()


class DiscriminatorState(Callback):
    """Keeps the discriminator's Adam state in ``state.pt`` so that a resume is exact.

    Args:
        task: The task whose ``d_optimizer`` to save and restore.
    """

    def __init__(self, task: SRTask) -> None:
        self.task = task

    def state_dict(self) -> dict[str, Any]:
        """The optimiser state (tensors and plain types)."""
        opt = self.task.d_optimizer
        return {} if opt is None else {"optimizer": opt.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore it."""
        if self.task.d_optimizer is not None and "optimizer" in state:
            self.task.d_optimizer.load_state_dict(dict(state["optimizer"]))
