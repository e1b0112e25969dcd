"""Feature transformation (Zhu et al., ICCV 2021) on MoCo v2: a momentum encoder and a queue.

The authors apply FT inside MoCo v2: the queries come from the trained encoder, the keys from
a momentum (EMA) copy of it without gradient, and the negatives from a queue of past keys. A
queue of keys from the trained encoder itself collapses (every projection the same, the loss
stuck at log(K + 1), as MoCo's ablation without momentum predicts), so the momentum encoder is
part of the method here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from itertools import chain
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from shared.config import to_dict
from shared.distributed import gather, gather_no_grad, shared_generator
from shared.losses import FeatureTransformLoss, feature_transform_info_nce
from vision.digits.data import DigitAugment
from vision.digits.model import DigitsCNN
from vision.digits.tasks import TwoViewTask, build_encoder, build_head

if TYPE_CHECKING:
    from vision.digits.config import DigitsConfig

__all__ = ["FTTask"]


class FTTask(TwoViewTask):
    """FT-InfoNCE with MoCo's momentum key encoder and queue (Zhu et al., ICCV 2021).

    Each step first moves the key encoder and head towards the trained ones
    (``key = m * key + (1 - m) * online``, MoCo's order), projects both views with both
    networks, and takes :func:`~shared.losses.feature_transform_info_nce` of each query against
    the other view's key (positive extrapolation) and the queue (negative interpolation). Then
    the second view's keys enter the queue.

    Args:
        encoder: The encoder (the query network; its copy becomes the key network).
        head: The projection head.
        augment: Draws the views.
        loss: Holds the FT settings and the queue (``queue_size > 0``).
        symmetric: Average both directions (each view queries the other's key, as MoCo v3);
            ``False``: MoCo v2's one direction, the first view querying the second.
        momentum: EMA factor ``m`` of the key network, in [0, 1).

    Raises:
        ValueError: If ``loss`` has no queue or ``momentum`` is not in [0, 1).
    """

    term = "ft"

    def __init__(
        self,
        encoder: DigitsCNN,
        head: nn.Module,
        augment: DigitAugment,
        loss: FeatureTransformLoss,
        symmetric: bool = True,
        momentum: float = 0.99,
    ) -> None:
        super().__init__(encoder, head, augment)
        if loss.queue.shape[0] == 0:
            raise ValueError("Expected a FeatureTransformLoss with a queue (queue_size > 0).")
        if not 0 <= momentum < 1:
            raise ValueError(f"Expected `momentum` in [0, 1), but got {momentum}.")
        self.ft = loss
        self.symmetric = symmetric
        self.momentum = momentum
        self.key_encoder = copy.deepcopy(encoder)
        self.key_head = copy.deepcopy(head)
        for p in self._key_parameters():
            p.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg: DigitsConfig, augment: DigitAugment) -> FTTask:
        """The task of ``cfg`` (``loss.ft.*``)."""
        encoder, head, f = build_encoder(cfg), build_head(cfg), cfg.loss.ft
        loss = FeatureTransformLoss(
            f.temperature,
            pos_alpha=f.pos_alpha,
            neg_alpha=f.neg_alpha,
            queue_size=f.queue_size,
            dim=cfg.model.head_out,
        )
        return cls(encoder, head, augment, loss, f.symmetric, f.momentum)

    @staticmethod
    def settings(cfg: DigitsConfig) -> dict[str, Any]:
        """``loss.ft`` as a dict."""
        return to_dict(cfg.loss.ft)

    def _key_parameters(self) -> chain[nn.Parameter]:
        return chain(self.key_encoder.parameters(), self.key_head.parameters())

    @torch.no_grad()
    def momentum_update(self) -> None:
        """Move the key network towards the trained one (parameters only, as MoCo)."""
        online = chain(self.encoder.parameters(), self.head.parameters())
        for key, value in zip(self._key_parameters(), online):
            key.mul_(self.momentum).add_(value.detach(), alpha=1 - self.momentum)

    @torch.no_grad()
    def keys(self, views: Tensor) -> Tensor:
        """Key projections of a batch of views. Shape: (B, 1, H, W) -> (B, D), no gradient."""
        out: Tensor = self.key_head(self.key_encoder.forward_features(views))
        return out

    def contrast(
        self,
        q1: Tensor,
        q2: Tensor,
        k1: Tensor,
        k2: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """FT-InfoNCE of the queries against the other view's keys and the queue.

        Args:
            q1: Queries of the first views. Shape: (B, D).
            q2: Queries of the second views. Shape: (B, D).
            k1: Keys of the first views. Shape: (B, D).
            k2: Keys of the second views. Shape: (B, D).
            generator: Source of the FT coefficients (default: torch's global RNG).

        Returns:
            The loss (a scalar).
        """
        ft = self.ft
        negatives = ft.queue.clone()
        kwargs: Mapping[str, Any] = {
            "pos_alpha": ft.pos_alpha,
            "neg_alpha": ft.neg_alpha,
            "generator": generator,
        }
        loss = feature_transform_info_nce(q1, k2, negatives, ft.temperature, **kwargs)
        if self.symmetric:
            reverse = feature_transform_info_nce(q2, k1, negatives, ft.temperature, **kwargs)
            loss = 0.5 * (loss + reverse)
        return loss

    def training_step(self, batch: Any) -> dict[str, Tensor]:
        """Loss of one batch ``(images (B, 1, 8, 8), labels (B,))``; updates keys and queue."""
        x, _ = batch
        views = torch.cat([self.augment(x), self.augment(x)])
        q1, q2 = self.project(views).chunk(2)
        if self.training:
            self.momentum_update()
        k1, k2 = self.keys(views).chunk(2)
        # under DDP the global batch on every rank (see TwoViewTask.loss) with the same FT
        # coefficients (drawn from rank 0's RNG): the same loss, and the same keys enqueued, so
        # the queues stay equal
        q1, q2, k1, k2 = gather(q1), gather(q2), gather_no_grad(k1), gather_no_grad(k2)
        loss = self.contrast(q1, q2, k1, k2, shared_generator())
        if self.training:
            self.ft.enqueue(k2)
        return {"loss": loss, f"loss/{self.term}": loss.detach()}
