"""The configuration of ``contrasuite sr train`` (frozen dataclasses, loaded strictly).

The three stages share one schedule format: ``pretrain`` (L1 from scratch) and ``trainer`` (each
fine-tuning: L1 + PCL, and the L1-only control, with identical settings and seed).
``--epochs`` sets the fine-tuning epochs, ``pretrain.epochs`` the pretraining epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.config import ConfigError
from shared.training import TrainerConfig

__all__ = [
    "DataConfig",
    "ModelConfig",
    "PCLConfig",
    "PretrainConfig",
    "SRConfig",
    "SREvaluateConfig",
]


@dataclass(frozen=True)
class DataConfig:
    """Training data.

    Attributes:
        dir: A folder of PNG/JPEG training images; ``None`` uses scikit-image's bundled
            natural images (no download).
        scale: Super-resolution scale: 2, 3 or 4.
        patch_size: HR patch side (a multiple of ``scale``); the LR patch is
            ``patch_size / scale``.
        batch_size: Patches per batch.
        batches_per_epoch: Optimizer steps per epoch (EDSR's ``test_every``).
        n_val: Images held out of ``dir`` (the last ones by name) for ``val/psnr_y``; with the
            bundled images, the held-out ``chelsea`` and ``coffee``. 0 turns validation off.
        val_crop: Validation images are centre-cropped to at most this HR side (CPU time).
    """

    dir: str | None = None
    scale: int = 2
    patch_size: int = 64
    batch_size: int = 16
    batches_per_epoch: int = 50
    n_val: int = 1
    val_crop: int = 192

    def __post_init__(self) -> None:
        """Check ranges (the scale is checked as input, with its option name)."""
        for name, low in (("patch_size", 4), ("batch_size", 2), ("batches_per_epoch", 1)):
            if getattr(self, name) < low:
                raise ConfigError(
                    f"Expected `data.{name}` >= {low}, but got {getattr(self, name)}."
                )
        if self.n_val < 0 or self.val_crop < 8:
            raise ConfigError("Expected `data.n_val` >= 0 and `data.val_crop` >= 8.")


@dataclass(frozen=True)
class ModelConfig:
    """The EDSR network.

    Attributes:
        size: ``tiny`` (4 blocks, 32 channels), ``small`` (8, 48), ``baseline`` (16, 64; the
            EDSR paper's baseline) or ``large`` (32, 256, residual scaling 0.1).
        res_scale: Residual scaling; ``None`` takes the size's default.
    """

    size: Literal["tiny", "small", "baseline", "large"] = "baseline"
    res_scale: float | None = None


@dataclass(frozen=True)
class PCLConfig:
    """The PCL term and its discriminator (methods.md 3.2).

    Attributes:
        weight: ``w`` in L1 + w * PCL. The RCAN script's InfoNCE weight is 5 on an L1 of
            images in [0, 255]; our images are in [0, 1], so our L1 is 255 times smaller and
            the same balance is 5 / 255 (the default). ``weight=5`` here would weigh PCL 255
            times more than the paper did (measured: it wrecks PSNR within 200 steps).
        grad_to_sr: Backpropagate the PCL term into the SR network (the paper). ``false``
            reproduces the released code, whose SR embedding is computed under ``no_grad``
            (methods.md 3.3): the term is then only logged.
        layer: The discriminator block whose features are compared (``cl_layer``; 4 = the
            128 -> 256 block).
        n_pos: Sharpened copies of HR added to HR as positives.
        n_neg: Blurred copies of HR added to the upsampled LR as negatives.
        sharp_min: Lower bound of the sharpness factor (U[sharp_min, sharp_max]).
        sharp_max: Upper bound of the sharpness factor.
        blur_sizes: Gaussian kernel sizes drawn (per axis) for the blurred negatives.
        sigma_min: Lower bound of the blur sigmas (per axis).
        sigma_max: Upper bound of the blur sigmas.
        d_width: Discriminator stem channels (the paper: 64).
        d_lr: The discriminator's Adam learning rate; ``None``: the generator's ``trainer.lr``.
            Never decayed (as released).
        d_augmented: Train the discriminator with the sharpened positives as real and the blurred
            negatives as fake too (``--contras_D_train``).
    """

    weight: float = 5.0 / 255.0
    grad_to_sr: bool = True
    layer: int = 4
    n_pos: int = 3
    n_neg: int = 3
    sharp_min: float = 0.5
    sharp_max: float = 3.0
    blur_sizes: tuple[int, ...] = (3, 5, 7, 9, 11)
    sigma_min: float = 0.1
    sigma_max: float = 2.0
    d_width: int = 64
    d_lr: float | None = None
    d_augmented: bool = True

    def __post_init__(self) -> None:
        """Check ranges."""
        if not 0 <= self.layer <= 7:
            raise ConfigError(f"Expected `pcl.layer` in 0..7, but got {self.layer}.")
        if self.n_pos < 0 or self.n_neg < 0 or self.weight < 0 or self.d_width < 1:
            raise ConfigError("Expected `pcl.n_pos`, `pcl.n_neg`, `pcl.weight` >= 0, d_width >= 1.")
        if not 0 < self.sharp_min <= self.sharp_max or not 0 < self.sigma_min <= self.sigma_max:
            raise ConfigError(
                "Expected 0 < pcl.sharp_min <= sharp_max, 0 < sigma_min <= sigma_max."
            )
        if not self.blur_sizes or any(k < 1 or k % 2 == 0 for k in self.blur_sizes):
            raise ConfigError(f"Expected odd `pcl.blur_sizes`, but got {self.blur_sizes}.")


@dataclass(frozen=True)
class PretrainConfig:
    """The L1 pretraining stage (the other trainer settings are those of ``trainer``).

    Attributes:
        epochs: Epochs of L1 pretraining.
        lr: Its peak learning rate.
    """

    epochs: int = 20
    lr: float = 2e-4

    def __post_init__(self) -> None:
        """Check ranges."""
        if self.epochs < 1 or not self.lr > 0:
            raise ConfigError("Expected `pretrain.epochs` >= 1 and `pretrain.lr` > 0.")


def _finetune_trainer() -> TrainerConfig:
    return TrainerConfig(
        epochs=10,
        lr=5e-5,
        optimizer="adam",
        scheduler="cosine",
        min_lr=1e-7,
        weights="last",
        monitor="psnr_y",
        mode="max",
        amp=False,
        log_every=0,
    )


@dataclass(frozen=True)
class SRConfig:
    """Everything ``contrasuite sr train`` needs.

    Attributes:
        data: Training data.
        model: The EDSR size.
        pcl: The contrastive term.
        pretrain: The L1 pretraining stage.
        trainer: The loop; its epochs/lr are those of each fine-tuning stage.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pcl: PCLConfig = field(default_factory=PCLConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    trainer: TrainerConfig = field(default_factory=_finetune_trainer)


@dataclass(frozen=True)
class SREvaluateConfig:
    """The ``contrasuite sr evaluate`` settings (the networks and the scale are the run's).

    Attributes:
        data_dir: A folder of HR images, or of set folders (one set each).
        seed: Recorded only: the evaluation draws no random numbers (MATLAB-bicubic LR images,
            deterministic networks and metrics), so no seed changes its scores.
        device: Where the networks run: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """

    data_dir: str | None = None
    seed: int = 2020
    device: Literal["auto", "cpu", "cuda"] = "auto"
