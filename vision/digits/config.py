"""The digits domain's config: one frozen dataclass, every key settable as ``key.sub=value``.

``contrasuite digits train --help`` lists the keys (generated from these classes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from shared.config import ConfigError, build_config
from shared.training import TrainerConfig

__all__ = [
    "ALL_METHODS",
    "QUICK",
    "SMOKE",
    "AMCLConfig",
    "AugmentConfig",
    "CACRConfig",
    "DataConfig",
    "DigitsConfig",
    "FTConfig",
    "LossConfig",
    "Method",
    "ModelConfig",
    "PlotConfig",
    "ProbeConfig",
    "SwAVConfig",
    "build",
]

#: The contrastive methods of :data:`vision.digits.methods.METHODS`.
Method = Literal["simclr", "supcon", "dcl", "dclw", "swav", "cacr", "amcl", "ft"]
MethodOrAll = Literal[Method, "all"]
ALL_METHODS: tuple[Method, ...] = get_args(Method)


@dataclass(frozen=True)
class DataConfig:
    """The digits split and what the encoder sees.

    Attributes:
        test_fraction: Fraction of the 1,797 images held out for testing (stratified).
        split_seed: Seed of the split (kept apart from the training seed).
        image_size: Side the 8x8 images are resampled to before the encoder. 8 (native) is
            as accurate as 16 here at half the cost; random crops and rotations are resampled
            bilinearly either way.
    """

    test_fraction: float = 0.3
    split_seed: int = 0
    image_size: int = 8

    def __post_init__(self) -> None:
        """Check ranges.

        Raises:
            ConfigError: If a value is out of range.
        """
        if not 0 < self.test_fraction < 1:
            raise ConfigError(
                f"Expected `data.test_fraction` in (0, 1), but got {self.test_fraction}."
            )
        if not 4 <= self.image_size <= 64:
            raise ConfigError(f"Expected `data.image_size` in [4, 64], but got {self.image_size}.")


@dataclass(frozen=True)
class AugmentConfig:
    """Random views (see :class:`vision.digits.data.DigitAugment`; no flips).

    Attributes:
        scale_min: Smallest zoom of the random resized crop (fraction of the side).
        scale_max: Largest zoom.
        aspect: Log aspect-ratio jitter.
        shift: Largest shift, as a fraction of the side.
        rotation: Largest rotation, in degrees.
        intensity: Brightness jitter (pixels times ``U(1 - intensity, 1 + intensity)``).
        noise_std: Gaussian noise standard deviation.
        noise_prob: Probability that a view gets noise.
        erase_prob: Probability of erasing one random square.
        erase_area: Largest erased area (fraction of the image).
    """

    scale_min: float = 0.7
    scale_max: float = 1.0
    aspect: float = 0.15
    shift: float = 0.15
    rotation: float = 15.0
    intensity: float = 0.3
    noise_std: float = 0.1
    noise_prob: float = 0.5
    erase_prob: float = 0.25
    erase_area: float = 0.2


@dataclass(frozen=True)
class ModelConfig:
    """Encoder and projection head (the same for every method).

    Attributes:
        width: Channels of the encoder's first stage.
        num_features: Encoder output features F (what the probe sees).
        head_hidden: Hidden width of the projection head.
        head_out: Projection dimension D (what the loss sees).
        head_layers: Linear layers in the head (AMCL's heads always have two).
    """

    width: int = 32
    num_features: int = 128
    head_hidden: int = 128
    head_out: int = 64
    head_layers: int = 2


@dataclass(frozen=True)
class SwAVConfig:
    """SwAV (Caron et al., 2020) at this size: see :class:`shared.losses.SwAVLoss`.

    Attributes:
        temperature: Prediction temperature (paper: 0.1).
        prototypes: Number of prototypes K (paper: 3000 for ImageNet's 1000 classes; 30 for
            10 digits).
        epsilon: Sinkhorn regularisation (paper: 0.05).
        sinkhorn_iterations: Sinkhorn-Knopp iterations (paper: 3).
        queue_length: Queued embeddings per assignment view (0: none; a batch of 128 already
            spreads well over 30 prototypes).
        freeze_prototypes_steps: Training steps with frozen prototypes at the start (the
            authors freeze them for 313 iterations, one ImageNet epoch; 0 here).
    """

    temperature: float = 0.1
    prototypes: int = 30
    epsilon: float = 0.05
    sinkhorn_iterations: int = 3
    queue_length: int = 0
    freeze_prototypes_steps: int = 0


@dataclass(frozen=True)
class CACRConfig:
    """CACR (Zheng et al., 2021): see :func:`shared.losses.cacr` (the authors' defaults).

    Attributes:
        alpha: Attraction cost scale.
        beta: Repulsion cost scale.
        pos_temperature: :math:`t^+` of the positive weights.
        neg_temperature: :math:`t^-` of the negative weights.
    """

    alpha: float = 1.0
    beta: float = 1.0
    pos_temperature: float = 1.0
    neg_temperature: float = 1.0


@dataclass(frozen=True)
class AMCLConfig:
    """AMCL (Wang et al., 2024): see :class:`shared.losses.AMCLLoss` (the authors' defaults).

    Attributes:
        heads: Projection heads C (paper: 3).
        beta: Temperature regulariser weight (SimCLR: 1e-4).
        tau_min: Lower temperature bound.
        tau_max: Upper temperature bound.
        top_k: Hardest negatives kept per anchor (all 2B - 2 when fewer).
    """

    heads: int = 3
    beta: float = 1e-4
    tau_min: float = 1e-5
    tau_max: float = 2.0
    top_k: int = 100


@dataclass(frozen=True)
class FTConfig:
    """Feature transformation (Zhu et al., 2021) on MoCo v2: see :class:`vision.digits.ft.FTTask`.

    Attributes:
        temperature: InfoNCE temperature (MoCo v2: 0.2).
        pos_alpha: Beta parameter of the positive extrapolation (paper: 2.0).
        neg_alpha: Beta parameter of the negative interpolation (paper: 1.6).
        queue_size: Size K of MoCo's queue of past keys (the negatives).
        symmetric: Average both directions (each view queries the other's key); ``false``:
            MoCo v2's one direction.
        momentum: EMA factor of the key encoder (MoCo v2: 0.999 over ~1M steps; 0.99 for the
            few hundred steps here).
    """

    temperature: float = 0.2
    pos_alpha: float = 2.0
    neg_alpha: float = 1.6
    queue_size: int = 512
    symmetric: bool = True
    momentum: float = 0.99


@dataclass(frozen=True)
class LossConfig:
    """The settings of each method's objective.

    Attributes:
        simclr_temperature: NT-Xent temperature (SimCLR's default 0.5).
        supcon_temperature: SupCon temperature (Khosla et al. use 0.1).
        dcl_temperature: DCL temperature (Yeh et al.: 0.1).
        dclw_temperature: DCLW temperature.
        dclw_sigma: DCLW's von Mises-Fisher weighting temperature (Yeh et al.: 0.5).
        swav: SwAV.
        cacr: CACR.
        amcl: AMCL.
        ft: Feature transformation.
    """

    simclr_temperature: float = 0.5
    supcon_temperature: float = 0.1
    dcl_temperature: float = 0.1
    dclw_temperature: float = 0.1
    dclw_sigma: float = 0.5
    swav: SwAVConfig = field(default_factory=SwAVConfig)
    cacr: CACRConfig = field(default_factory=CACRConfig)
    amcl: AMCLConfig = field(default_factory=AMCLConfig)
    ft: FTConfig = field(default_factory=FTConfig)


@dataclass(frozen=True)
class ProbeConfig:
    """Linear probe and kNN evaluation of frozen features.

    Attributes:
        cs: Inverse regularization strengths tried by the logistic regression; with more than
            one, C is chosen by stratified cross-validation on the training split.
        cv_folds: Folds of that cross-validation.
        max_iter: Iterations of the lbfgs solver.
        knn_k: Neighbours of the cosine kNN classifier.
        views_seed: Seed of the augmented test views used for alignment and uniformity.
    """

    cs: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    cv_folds: int = 5
    max_iter: int = 3000
    knn_k: int = 5
    views_seed: int = 0


@dataclass(frozen=True)
class PlotConfig:
    """The 2-D embedding plot of the test features.

    Attributes:
        method: ``"tsne"`` (clearer clusters, a few seconds) or ``"pca"`` (instant).
    """

    method: Literal["tsne", "pca"] = "tsne"


def _default_trainer() -> TrainerConfig:
    return TrainerConfig(
        epochs=60,
        lr=2e-3,
        optimizer="adamw",
        weight_decay=1e-4,
        scheduler="cosine",
        warmup_epochs=3,
        weights="last",
        log_every=0,
        threads=1,
    )


@dataclass(frozen=True)
class DigitsConfig:
    """Everything ``contrasuite digits train`` does; every key can be set as ``key.sub=value``.

    Attributes:
        methods: The encoders to train, in table order; ``all`` = every method
            (simclr, supcon, dcl, dclw, swav, cacr, amcl, ft).
        batch_size: Images per batch (each gives two views).
        data: The split and the encoder's input size.
        augment: The random views.
        model: Encoder and head sizes.
        loss: Each method's settings.
        probe: Evaluation of the frozen features.
        plot: The embedding plot.
        trainer: The shared Trainer's settings (epochs, lr, schedule, seed, device, threads:
            one thread is as fast as two for this small model, and keeps shared CPUs free).
    """

    methods: tuple[MethodOrAll, ...] = ("simclr", "supcon")
    batch_size: int = 128
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    plot: PlotConfig = field(default_factory=PlotConfig)
    trainer: TrainerConfig = field(default_factory=_default_trainer)

    def __post_init__(self) -> None:
        """Expand ``all`` and check what the sub-configs cannot check alone.

        Raises:
            ConfigError: On an empty or repeated ``methods`` or a batch below 2.
        """
        if "all" in self.methods:
            object.__setattr__(self, "methods", ALL_METHODS)
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise ConfigError(
                f"Expected `methods` to list methods of {', '.join(ALL_METHODS)} (or all) once "
                f"each, but got {self.methods}."
            )
        if self.batch_size < 2:
            raise ConfigError(f"Expected `batch_size` >= 2, but got {self.batch_size}.")


#: Settings of the demo's ``--quick``: fewer epochs, a fixed probe C, PCA plot (~30 s).
QUICK: Mapping[str, Any] = {
    "probe": {"cs": [1.0]},
    "plot": {"method": "pca"},
    "trainer": {"epochs": 15, "warmup_epochs": 1},
}

#: Test-only settings (hidden ``--smoke``): a few seconds; numbers not meaningful.
SMOKE: Mapping[str, Any] = {
    "batch_size": 64,
    "data": {"image_size": 8},
    "model": {"width": 8, "num_features": 32, "head_hidden": 32, "head_out": 16},
    "probe": {"cs": [1.0], "max_iter": 500},
    "plot": {"method": "pca"},
    "trainer": {"epochs": 2, "warmup_epochs": 0, "max_train_batches": 4},
}


def build(*layers: Mapping[str, Any], source: str = "digits settings") -> DigitsConfig:
    """A :class:`DigitsConfig` from its defaults with nested mappings laid over them in order.

    Examples:
        >>> build(SMOKE, {"trainer": {"seed": 3}}).trainer.epochs
        2
        >>> build({"methods": ["all"]}).methods[-1]
        'ft'
    """
    return build_config(DigitsConfig, *layers, source=source)
