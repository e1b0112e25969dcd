"""The two-view Task and the InfoNCE-family methods (SimCLR, SupCon, DCL, DCLW).

Every method sees two random views of each image through the same :class:`DigitsCNN` encoder
and a projection head; only :meth:`TwoViewTask.objective` differs. The methods with state
(prototypes, temperature network, queue) are in :mod:`vision.digits.methods`, with the
``METHODS`` table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from shared.distributed import gather, gather_no_grad
from shared.heads import ProjectionHead
from shared.losses import dcl, dclw, nt_xent, sup_con
from shared.training import Task
from shared.validation import check_positive
from vision.digits.data import DigitAugment
from vision.digits.model import DigitsCNN

if TYPE_CHECKING:
    from vision.digits.config import DigitsConfig

__all__ = [
    "DCLTask",
    "DCLWTask",
    "SimCLRTask",
    "SupConTask",
    "TwoViewTask",
    "build_encoder",
    "build_head",
]


def build_encoder(cfg: DigitsConfig) -> DigitsCNN:
    """The encoder of ``cfg.model`` (fresh weights)."""
    return DigitsCNN(cfg.model.width, cfg.model.num_features)


def build_head(cfg: DigitsConfig) -> ProjectionHead:
    """The projection head of ``cfg.model`` (fresh weights)."""
    m = cfg.model
    return ProjectionHead(m.num_features, m.head_hidden, m.head_out, num_layers=m.head_layers)


class TwoViewTask(Task):
    """Encoder + projection head trained on two random views of each image.

    Subclasses define :meth:`from_config` and :meth:`objective` (or, with more than one
    network, their own :meth:`training_step`).

    Args:
        encoder: The encoder.
        head: The projection head (``encoder.num_features`` -> D, or -> (C, D) for AMCL).
        augment: Draws the views.
    """

    #: The loss term's name in ``loss/<name>`` (and in ``history.csv``).
    term = "loss"

    def __init__(self, encoder: DigitsCNN, head: nn.Module, augment: DigitAugment) -> None:
        super().__init__()
        self.encoder, self.head, self.augment = encoder, head, augment

    @classmethod
    def from_config(cls, cfg: DigitsConfig, augment: DigitAugment) -> TwoViewTask:
        """Build the task with fresh weights.

        The encoder is built first, so that under the same seed every method starts from the
        same encoder.
        """
        raise NotImplementedError

    @staticmethod
    def settings(cfg: DigitsConfig) -> dict[str, Any]:
        """The method's own settings (what its run folder records beside the shared ones)."""
        return {}

    def project(self, x: Tensor) -> Tensor:
        """Projections of a batch of views. Shape: (B, 1, H, W) -> (B, D) (AMCL: (B, C, D))."""
        out: Tensor = self.head(self.encoder.forward_features(x))
        return out

    def two_views(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Project two random views of every image, in one forward pass (shared BN stats)."""
        z = self.project(torch.cat([self.augment(x), self.augment(x)]))
        z1, z2 = z.chunk(2)
        return z1, z2

    def objective(self, z1: Tensor, z2: Tensor, labels: Tensor) -> Tensor:
        """The loss of two projected views. Shapes: (B, D), (B, D), (B,) -> scalar."""
        raise NotImplementedError

    def training_step(self, batch: Any) -> dict[str, Tensor]:
        """Loss of one batch ``(images (B, 1, 8, 8), labels (B,))``."""
        x, y = batch
        z1, z2 = self.two_views(x)
        loss = self.loss(z1, z2, y)
        return {"loss": loss, f"loss/{self.term}": loss.detach()}

    def loss(self, z1: Tensor, z2: Tensor, labels: Tensor) -> Tensor:
        """:meth:`objective` of the global batch: under DDP every rank's projections, gathered.

        Every rank computes the same global loss; :func:`~shared.distributed.gather` sums the
        ranks' gradients into each local row and DDP averages them, which gives one process's
        gradient on the global batch. Outside DDP this is ``objective(z1, z2, labels)``.

        Args:
            z1: This rank's first views. Shape: (B, D) (AMCL: (B, C, D)).
            z2: Its second views. Same shape.
            labels: Its labels. Shape: (B,).

        Returns:
            The scalar loss.
        """
        return self.objective(gather(z1), gather(z2), gather_no_grad(labels))


class _TemperatureTask(TwoViewTask):
    """A two-view task whose objective is a pure function of one temperature.

    Raises:
        ValueError: If ``temperature <= 0``.
    """

    def __init__(
        self, encoder: DigitsCNN, head: nn.Module, augment: DigitAugment, temperature: float
    ) -> None:
        super().__init__(encoder, head, augment)
        check_positive(temperature, "temperature")
        self.temperature = temperature


class SimCLRTask(_TemperatureTask):
    """SimCLR (Chen et al., ICML 2020): NT-Xent between two views; labels are ignored.

    Args:
        encoder: The encoder.
        head: The projection head (``encoder.num_features`` -> D).
        augment: Draws the views.
        temperature: NT-Xent temperature.
    """

    term = "nt_xent"

    @classmethod
    def from_config(cls, cfg: DigitsConfig, augment: DigitAugment) -> SimCLRTask:
        """The task of ``cfg`` (``loss.simclr_temperature``)."""
        return cls(build_encoder(cfg), build_head(cfg), augment, cfg.loss.simclr_temperature)

    @staticmethod
    def settings(cfg: DigitsConfig) -> dict[str, Any]:
        """``{"temperature": ...}``."""
        return {"temperature": cfg.loss.simclr_temperature}

    def objective(self, z1: Tensor, z2: Tensor, labels: Tensor) -> Tensor:
        """NT-Xent over the 2B views."""
        return nt_xent(z1, z2, self.temperature)


class SupConTask(_TemperatureTask):
    """Supervised contrastive learning (Khosla et al., NeurIPS 2020) on two views per image.

    Args:
        encoder: The encoder.
        head: The projection head (``encoder.num_features`` -> D).
        augment: Draws the views.
        temperature: SupCon temperature.
    """

    term = "sup_con"

    @classmethod
    def from_config(cls, cfg: DigitsConfig, augment: DigitAugment) -> SupConTask:
        """The task of ``cfg`` (``loss.supcon_temperature``)."""
        return cls(build_encoder(cfg), build_head(cfg), augment, cfg.loss.supcon_temperature)

    @staticmethod
    def settings(cfg: DigitsConfig) -> dict[str, Any]:
        """``{"temperature": ...}``."""
        return {"temperature": cfg.loss.supcon_temperature}

    def objective(self, z1: Tensor, z2: Tensor, labels: Tensor) -> Tensor:
        """SupCon with every same-label view as a positive."""
        return sup_con(torch.stack([z1, z2], dim=1), labels, self.temperature)


class DCLTask(_TemperatureTask):
    """Decoupled contrastive learning (Yeh et al., ECCV 2022): no positive in the denominator.

    Args:
        encoder: The encoder.
        head: The projection head.
        augment: Draws the views.
        temperature: DCL temperature.
    """

    term = "dcl"

    @classmethod
    def from_config(cls, cfg: DigitsConfig, augment: DigitAugment) -> DCLTask:
        """The task of ``cfg`` (``loss.dcl_temperature``)."""
        return cls(build_encoder(cfg), build_head(cfg), augment, cfg.loss.dcl_temperature)

    @staticmethod
    def settings(cfg: DigitsConfig) -> dict[str, Any]:
        """``{"temperature": ...}``."""
        return {"temperature": cfg.loss.dcl_temperature}

    def objective(self, z1: Tensor, z2: Tensor, labels: Tensor) -> Tensor:
        """The symmetric DCL loss."""
        return dcl(z1, z2, self.temperature)


class DCLWTask(_TemperatureTask):
    """Weighted decoupled contrastive learning, DCLW (Yeh et al., ECCV 2022).

    Args:
        encoder: The encoder.
        head: The projection head.
        augment: Draws the views.
        temperature: DCLW temperature.
        sigma: The von Mises-Fisher weighting temperature (> 0).

    Raises:
        ValueError: If ``temperature`` or ``sigma`` is not positive.
    """

    term = "dclw"

    def __init__(
        self,
        encoder: DigitsCNN,
        head: nn.Module,
        augment: DigitAugment,
        temperature: float,
        sigma: float = 0.5,
    ) -> None:
        super().__init__(encoder, head, augment, temperature)
        check_positive(sigma, "sigma")
        self.sigma = sigma

    @classmethod
    def from_config(cls, cfg: DigitsConfig, augment: DigitAugment) -> DCLWTask:
        """The task of ``cfg`` (``loss.dclw_temperature``, ``loss.dclw_sigma``)."""
        l = cfg.loss  # noqa: E741
        return cls(build_encoder(cfg), build_head(cfg), augment, l.dclw_temperature, l.dclw_sigma)

    @staticmethod
    def settings(cfg: DigitsConfig) -> dict[str, Any]:
        """``{"temperature": ..., "sigma": ...}``."""
        return {"temperature": cfg.loss.dclw_temperature, "sigma": cfg.loss.dclw_sigma}

    def objective(self, z1: Tensor, z2: Tensor, labels: Tensor) -> Tensor:
        """The symmetric DCLW loss."""
        return dclw(z1, z2, self.temperature, self.sigma)
