"""Trainer tasks: supervised stage 1 and consistency stage 2 of the zone nets.

Loss terms (``history.csv`` names ``train/loss/<term>``):

* baseline: ``dice_ce`` (all five classes);
* dual-path stage 1: ``dice_ce_a`` + ``dice_ce_b`` (each path's class-weighted Dice + CE) +
  ``loss.aux_weight`` * ``sdm`` (both paths' signed-distance-map MSE);
* dual-path stage 2: the same + ``loss.consistency_weight`` * ramp-up * ``consistency``
  (the paths' softmax MSE, on the labelled crops and, when present, unlabelled crops).

Validation (``val/dice``, ``val/dice/<zone>``): sliding-window inference on each full validation
volume, argmax, Dice per zone present in that volume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.inferers import sliding_window_inference
from torch import Tensor

from medical.prostate import ZONES
from medical.prostate.config import LossConfig
from medical.prostate.losses import (
    consistency_loss,
    path_class_weights,
    sdm_loss,
    sigmoid_rampup,
    supervised_loss,
)
from medical.prostate.model import DualPathNet, ZoneUNet
from shared.training import Callback, Task

__all__ = ["RampupCallback", "ZoneTask", "dice_per_zone"]


def dice_per_zone(pred: Tensor, label: Tensor, zones: Sequence[int]) -> dict[str, float]:
    """Dice of each zone present in ``label`` (hard labels).

    Args:
        pred: Predicted labels. Shape: (X, Y, Z), integer.
        label: Reference labels. Shape: (X, Y, Z), integer.
        zones: Zone values to score.

    Returns:
        ``{"dice/<zone>": value}`` for the zones present in ``label``.
    """
    out = {}
    for z in zones:
        ref = label == z
        if not bool(ref.any()):
            continue
        p = pred == z
        out[f"dice/{ZONES[z - 1]}"] = float(2 * (p & ref).sum() / (p.sum() + ref.sum()))
    return out


class ZoneTask(Task):
    """One training stage of a zone net.

    Args:
        net: A :class:`~medical.prostate.model.ZoneUNet` or
            :class:`~medical.prostate.model.DualPathNet`.
        loss: Loss settings.
        zones: Zone values (1-4) present in the dataset.
        roi: Sliding-window size of validation.
        consistency: Whether the consistency loss is on (stage 2).
        cross_group_weight: Overrides ``loss.cross_group_weight`` (``None``: use it).
    """

    def __init__(
        self,
        net: ZoneUNet | DualPathNet,
        loss: LossConfig,
        zones: Sequence[int],
        roi: Sequence[int],
        consistency: bool = False,
    ) -> None:
        super().__init__()
        self.net = net
        self.loss_cfg = loss
        self.zones = tuple(zones)
        self.roi = tuple(roi)
        self.consistency = consistency
        self.epochs_done = 0
        if isinstance(net, DualPathNet):
            self.register_buffer(
                "weight_a", path_class_weights(net.owner, 0, loss.cross_group_weight), False
            )
            self.register_buffer(
                "weight_b", path_class_weights(net.owner, 1, loss.cross_group_weight), False
            )

    def _sup(self, logits: Tensor, label: Tensor, weight: Tensor | None) -> Tensor:
        c = self.loss_cfg
        return supervised_loss(
            logits,
            label,
            weight,
            lambda_dice=c.lambda_dice,
            lambda_ce=c.lambda_ce,
            smooth=c.smooth,
        )

    def training_step(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """One step; see the module docstring for the terms.

        Args:
            batch: ``image`` (B, 1, X, Y, Z), ``label`` (B, 1, X, Y, Z), ``sdm``
                (B, 4, X, Y, Z), optional ``u_image`` (B', 1, X, Y, Z) (stage 2).
        """
        image, label = batch["image"], batch["label"]
        if isinstance(self.net, ZoneUNet):
            sup = self._sup(self.net(image)["logits"], label, None)
            return {"loss": sup, "loss/dice_ce": sup.detach()}
        n = image.shape[0]
        unlabelled = batch.get("u_image") if self.consistency else None
        x = image if unlabelled is None else torch.cat([image, unlabelled])
        out = self.net(x)
        la, lb = out["logits_a"], out["logits_b"]
        sup_a = self._sup(la[:n], label, self.get_buffer("weight_a"))
        sup_b = self._sup(lb[:n], label, self.get_buffer("weight_b"))
        loss = sup_a + sup_b
        parts = {"loss/dice_ce_a": sup_a.detach(), "loss/dice_ce_b": sup_b.detach()}
        if "sdm_a" in out and self.loss_cfg.aux_weight > 0:
            aux = sdm_loss(out["sdm_a"][:n], batch["sdm"], self.zones) + sdm_loss(
                out["sdm_b"][:n], batch["sdm"], self.zones
            )
            loss = loss + self.loss_cfg.aux_weight * aux
            parts["loss/sdm"] = aux.detach()
        if self.consistency:
            cons = consistency_loss(la, lb)
            ramp = sigmoid_rampup(self.epochs_done, self.loss_cfg.consistency_rampup)
            loss = loss + self.loss_cfg.consistency_weight * ramp * cons
            parts["loss/consistency"] = cons.detach()
        return {"loss": loss, **parts}

    @torch.no_grad()
    def predict_proba(self, image: Tensor) -> Tensor:
        """Sliding-window class probabilities of whole volumes.

        Args:
            image: Shape: (B, 1, X, Y, Z).

        Returns:
            Shape: (B, 5, X, Y, Z).
        """
        probs = sliding_window_inference(
            image,
            self.roi,
            sw_batch_size=2,
            predictor=self.net.predict_proba,
            overlap=0.25,
            mode="gaussian",
        )
        return probs if isinstance(probs, Tensor) else torch.as_tensor(probs)

    def validation_step(self, batch: Mapping[str, Tensor]) -> dict[str, float]:
        """Dice per zone on one full validation volume (batch of one)."""
        pred = self.predict_proba(batch["image"]).argmax(1)
        out: dict[str, float] = {}
        for b in range(pred.shape[0]):
            dice = dice_per_zone(pred[b], batch["label"][b, 0], self.zones)
            for k, v in dice.items():
                out[k] = v
            if dice:
                out["dice"] = sum(dice.values()) / len(dice)
        return out

    def validation_epoch_end(self, outputs: list[Mapping[str, Any]]) -> dict[str, float]:
        """Mean of each key over the volumes that have it."""
        keys = dict.fromkeys(k for o in outputs for k in o)
        return {
            k: sum(float(o[k]) for o in outputs if k in o) / sum(1 for o in outputs if k in o)
            for k in keys
        }


class RampupCallback(Callback):
    """Tells the task how many epochs are done (for the consistency ramp-up)."""

    def on_fit_start(self, trainer: Any, task: Any) -> None:
        """Set the count on start or resume."""
        task.epochs_done = len(trainer.history)

    def on_validation_end(self, trainer: Any, task: Any, metrics: Mapping[str, float]) -> None:
        """Set the count after each epoch."""
        task.epochs_done = int(metrics["epoch"])
