"""Configuration of the prostate zone pipeline (frozen dataclasses, loaded strictly).

Assumptions (the paper body of Das et al. was not available; methods.md 5.3), each with the
option that changes it:

============================================  =============================================
assumption                                    option
============================================  =============================================
path A = PZ + TZ, path B = DPU + AFS          ``model.path_a``, ``model.path_b``
each path predicts all 5 classes; the other   ``loss.cross_group_weight`` (0 = each path is
group's classes get a lower loss weight       supervised on its own zones only)
multi-task head = signed distance map (SDM)   ``model.aux`` (``sdm`` or ``none``),
regression per zone, tanh output, MSE         ``loss.aux_weight``, ``loss.sdm_clip_mm``
consistency = MSE of the two paths' softmax   ``loss.consistency_weight``,
maps over all classes, also on unlabelled     ``loss.consistency_rampup``,
volumes (``imagesTs/``)                       ``data.unlabelled``
stage 2 fine-tunes all weights from stage 1   ``stage2.epochs``, ``stage2.lr_scale``
fused prediction: each zone from its owner    ``model.fusion`` (``owner`` or ``mean``)
path, background averaged
U-Net as UATS (in-plane pools (2,2,1) twice,  ``model.base_filters`` (UATS: 16),
then (2,2,2)); instance norm, dropout 0.1     ``model.norm`` (UATS: batch),
                                              ``model.dropout`` (UATS: 0.5)
Dice smoothing 1 over the batch (as UATS'     ``loss.smooth``
Keras Dice), + cross-entropy
Adam lr 1e-3 (UATS: 5e-5 for 300 epochs)      ``trainer.lr``
============================================  =============================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.config import ConfigError
from shared.training import TrainerConfig

__all__ = [
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "ProstateConfig",
    "ProstateEvaluateConfig",
    "Stage2Config",
]

_ZONE_NAMES = ("PZ", "TZ", "DPU", "AFS")


@dataclass(frozen=True)
class DataConfig:
    """Data loading and preprocessing.

    Attributes:
        dir: An MSD-layout folder (``imagesTr/``, ``labelsTr/``, optional ``imagesTs/`` and
            ``dataset.json``); ``None`` generates phantoms into the run folder.
        spacing: Target voxel spacing in mm (x, y, z after RAS orientation; z = slice axis).
        roi: Training crop and sliding-window size in voxels (x, y divisible by 8, z by 2).
        crop_ratios: Relative frequency of crop centres on background, PZ, TZ, DPU, AFS
            (MONAI ``RandCropByLabelClassesd``): the small zones are oversampled.
        samples_per_volume: Crops drawn from each volume per visit.
        batch_size: Volumes per batch (each gives ``samples_per_volume`` crops).
        percentiles: Intensity percentiles mapped to 0 and 1 (clipped).
        val_fraction: Share of labelled cases held out for validation (best epoch).
        test_fraction: Share of labelled cases held out for ``evaluate`` on the training folder.
        split_seed: Seed of the case split.
        augment: Random affine, flip, contrast, bias field and noise on the training crops.
        cache: Keep the preprocessed volumes in ``RUN/cache`` (MONAI ``PersistentDataset``).
        unlabelled: Use the folder's ``imagesTs/`` (and ``unlabelled_dir``) in stage 2.
        unlabelled_dir: An extra folder of NIfTI images without labels for stage 2.
        phantom_cases: Number of phantoms generated when ``dir`` is ``None``.
        phantom_shape: Volume size of those phantoms (voxels).
        phantom_spacing: Voxel spacing of those phantoms (mm).
    """

    dir: str | None = None
    spacing: tuple[float, float, float] = (0.5, 0.5, 3.0)
    roi: tuple[int, int, int] = (96, 96, 16)
    crop_ratios: tuple[float, float, float, float, float] = (1.0, 1.0, 1.0, 2.0, 2.0)
    samples_per_volume: int = 2
    batch_size: int = 2
    percentiles: tuple[float, float] = (1.0, 99.0)
    val_fraction: float = 0.15
    test_fraction: float = 0.25
    split_seed: int = 0
    augment: bool = True
    cache: bool = True
    unlabelled: bool = True
    unlabelled_dir: str | None = None
    phantom_cases: int = 16
    phantom_shape: tuple[int, int, int] = (80, 80, 16)
    phantom_spacing: tuple[float, float, float] = (0.8, 0.8, 3.0)

    def __post_init__(self) -> None:
        """Check ranges.

        Raises:
            ConfigError: If a value is out of range.
        """
        if any(s <= 0 for s in self.spacing) or any(s <= 0 for s in self.phantom_spacing):
            raise ConfigError("Expected `data.spacing` values to be > 0 mm.")
        x, y, z = self.roi
        if x % 8 or y % 8 or z % 2 or min(self.roi) <= 0:
            raise ConfigError(
                "Expected `data.roi` x and y to be multiples of 8 and z a multiple of 2 "
                f"(three in-plane poolings, one through-plane), but got {self.roi}."
            )
        if not 0 <= self.val_fraction < 1 or not 0 <= self.test_fraction < 1:
            raise ConfigError("Expected `data.val_fraction` and `data.test_fraction` in [0, 1).")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("Expected `data.val_fraction + data.test_fraction` to be < 1.")
        if min(self.samples_per_volume, self.batch_size, self.phantom_cases) < 1:
            raise ConfigError(
                "Expected `data.samples_per_volume`, `data.batch_size`, `data.phantom_cases` >= 1."
            )
        if any(r < 0 for r in self.crop_ratios) or sum(self.crop_ratios) <= 0:
            raise ConfigError("Expected `data.crop_ratios` >= 0 with a positive sum.")
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ConfigError(
                f"Expected 0 <= low < high <= 100 in `data.percentiles`: {low, high}."
            )


@dataclass(frozen=True)
class ModelConfig:
    """The network.

    Attributes:
        name: ``"baseline"`` (one path for all zones) or ``"dual-path"``.
        base_filters: Filters of the first convolution (UATS / paper size: 16).
        norm: ``"instance"`` or ``"batch"`` normalisation (UATS: batch).
        dropout: Dropout in the bottleneck (UATS: 0.5).
        aux: Multi-task head of the dual-path net: ``"sdm"`` (signed distance map per zone)
            or ``"none"``. The baseline never has one.
        sdm_head: ``"linear"``: a 1x1x1 convolution on the features of the path's classifier;
            ``"conv"``: its own 3x3x3 convolution + normalisation + ReLU before that.
        path_a: Zones of path A (its "own" group).
        path_b: Zones of path B.
        fusion: How the dual-path prediction is formed: ``"owner"`` (each zone's probability
            from the path that owns it, background averaged) or ``"mean"`` (both paths averaged).
    """

    name: Literal["baseline", "dual-path"] = "dual-path"
    base_filters: int = 8
    norm: Literal["instance", "batch"] = "instance"
    dropout: float = 0.1
    aux: Literal["sdm", "none"] = "sdm"
    path_a: tuple[str, ...] = ("PZ", "TZ")
    path_b: tuple[str, ...] = ("DPU", "AFS")
    fusion: Literal["owner", "mean"] = "owner"
    sdm_head: Literal["linear", "conv"] = "linear"

    def __post_init__(self) -> None:
        """Check the zone groups.

        Raises:
            ConfigError: If a zone name is unknown or the groups do not partition the zones.
        """
        if self.base_filters < 1 or not 0 <= self.dropout < 1:
            raise ConfigError("Expected `model.base_filters` >= 1 and `model.dropout` in [0, 1).")
        for key, zones in (("model.path_a", self.path_a), ("model.path_b", self.path_b)):
            for zone in zones:
                if zone not in _ZONE_NAMES:
                    raise ConfigError(
                        f"Expected `{key}` to hold zone names of {', '.join(_ZONE_NAMES)}, "
                        f"but got {zone!r}."
                    )
        if sorted((*self.path_a, *self.path_b)) != sorted(_ZONE_NAMES):
            raise ConfigError(
                "Expected `model.path_a` and `model.path_b` to split PZ, TZ, DPU, AFS between "
                f"them (each once), but got {self.path_a} and {self.path_b}."
            )


@dataclass(frozen=True)
class LossConfig:
    """Loss weights.

    Attributes:
        lambda_dice: Weight of the soft Dice term of ``DiceCELoss``.
        lambda_ce: Weight of its cross-entropy term.
        smooth: Dice smoothing (numerator and denominator), Dice taken over the whole batch.
        cross_group_weight: Class weight, inside one path's loss, of the zones owned by the
            other path (own zones and background: 1).
        aux_weight: Weight of the signed distance map regression (multi-task) loss.
        sdm_clip_mm: Distances are divided by this and clipped to [-1, 1].
        consistency_weight: Weight of the stage-2 consistency loss.
        consistency_rampup: Epochs of a sigmoid ramp-up of that weight (0: none).
    """

    lambda_dice: float = 1.0
    lambda_ce: float = 1.0
    smooth: float = 1.0
    cross_group_weight: float = 0.5
    aux_weight: float = 1.0
    sdm_clip_mm: float = 20.0
    consistency_weight: float = 1.0
    consistency_rampup: int = 0

    def __post_init__(self) -> None:
        """Check ranges.

        Raises:
            ConfigError: If a weight is negative.
        """
        for name in ("lambda_dice", "lambda_ce", "cross_group_weight", "aux_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"Expected `loss.{name}` to be >= 0.")
        if self.consistency_weight < 0 or self.consistency_rampup < 0:
            raise ConfigError("Expected `loss.consistency_weight` and `_rampup` to be >= 0.")
        if self.smooth <= 0 or self.sdm_clip_mm <= 0:
            raise ConfigError("Expected `loss.smooth` and `loss.sdm_clip_mm` to be > 0.")


@dataclass(frozen=True)
class Stage2Config:
    """Stage 2 of the dual-path net: fine-tuning with the consistency loss.

    Attributes:
        epochs: Epochs of stage 2 (0 skips it).
        lr_scale: Stage-2 learning rate = ``trainer.lr * lr_scale``.
    """

    epochs: int = 10
    lr_scale: float = 0.5

    def __post_init__(self) -> None:
        """Check ranges.

        Raises:
            ConfigError: If a value is out of range.
        """
        if self.epochs < 0 or self.lr_scale <= 0:
            raise ConfigError("Expected `stage2.epochs` >= 0 and `stage2.lr_scale` > 0.")


def _default_trainer() -> TrainerConfig:
    return TrainerConfig(
        epochs=30, lr=1e-3, optimizer="adam", monitor="dice", mode="max", log_every=0
    )


@dataclass(frozen=True)
class ProstateConfig:
    """The whole prostate experiment (``contrasuite prostate train``).

    Attributes:
        data: Data and preprocessing.
        model: The network.
        loss: Loss weights.
        stage2: The consistency fine-tuning stage (dual-path only).
        trainer: The training loop (stage 1; stage 2 changes epochs and lr only).
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    trainer: TrainerConfig = field(default_factory=_default_trainer)


@dataclass(frozen=True)
class ProstateEvaluateConfig:
    """The ``contrasuite prostate evaluate`` settings (the nets and preprocessing are the run's).

    Attributes:
        data_dir: An MSD-layout folder with labels; on the run's training folder only its
            held-out test cases are scored.
        baseline: A baseline run whose MASD the run is compared against; ``None``: none.
        seed: Recorded only: the evaluation draws no random numbers (sliding-window inference
            and the metrics are deterministic), so no seed changes its scores.
        device: Where the nets run: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """

    data_dir: str | None = None
    baseline: str | None = None
    seed: int = 2020
    device: Literal["auto", "cpu", "cuda"] = "auto"
