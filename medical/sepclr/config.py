"""The SepCLR experiment config: one frozen dataclass per component (style rule 9).

Per-dataset loss weights (methods.md 4.4) are resolved from ``loss.preset``: ``auto`` takes
``cifar-mnist`` (beta_S 1000, beta_reg 1000, lambda 10) for the generated set, and ``chexpert``
(1, 10, 10) for PneumoniaMNIST and any other medical folder. An explicit ``loss.beta_s`` /
``loss.beta_reg`` / ``loss.lambda_jem`` overrides the preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.config import ConfigError
from shared.training import TrainerConfig

__all__ = [
    "PRESETS",
    "AugmentConfig",
    "BaselineConfig",
    "DataConfig",
    "EvalConfig",
    "LossConfig",
    "ModelConfig",
    "SepCLRConfig",
    "SepCLREvaluateConfig",
    "resolve_weights",
]

#: (beta_S, beta_reg, lambda_JEM) of the official scripts (methods.md 4.4).
PRESETS: dict[str, tuple[float, float, float]] = {
    "cifar-mnist": (1000.0, 1000.0, 10.0),
    "celeba": (1000.0, 1000.0, 10.0),
    "chexpert": (1.0, 10.0, 10.0),
    "odir": (1.0, 100.0, 10.0),
}

METHODS = ("sepclr", "simclr", "cpca", "cvae")


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from.

    Attributes:
        path: An ``.npz`` file, a folder holding ``pneumoniamnist_<split>.npz`` or
            ``sepclr_generated.npz``, a folder with ``labels.csv``, or a CSV file
            (``path,group[,split][,attributes...]``). Empty: the generated set, made on the fly.
        split: Which PneumoniaMNIST file a folder path picks: ``balanced`` or ``official``.
        test_fraction: Held-out fraction for a CSV without a ``split`` column.
        split_seed: Seed of that split (independent of the training seed).
        n_per_group: Size of the generated set per group and split (train; test is a third).
        size: Side of the generated images.
    """

    path: str = ""
    split: Literal["balanced", "official"] = "balanced"
    test_fraction: float = 0.2
    split_seed: int = 0
    n_per_group: int = 1200
    size: int = 28


@dataclass(frozen=True)
class ModelConfig:
    """Two independent encoders (methods.md 4.2).

    Attributes:
        encoder: ``small-cnn`` (for 28 x 28 inputs) or ``resnet18`` (MONAI, 2-D).
        stem: ResNet stem: ``cifar`` (conv 3x3 stride 1, no max-pool) or ``standard``.
        width: Channels of the first small-CNN block (doubled per block); ResNet widen factor
            is ``width / 64``.
        common_dim: Dimension d of the common representation (``fc`` output) and head.
        salient_dim: Dimension of the salient representation and head.
        proj_hidden: Hidden width of the projector MLP (Linear -> BN -> ReLU -> Linear).
    """

    encoder: Literal["small-cnn", "resnet18"] = "small-cnn"
    stem: Literal["cifar", "standard"] = "cifar"
    width: int = 32
    common_dim: int = 32
    salient_dim: int = 32
    proj_hidden: int = 128


@dataclass(frozen=True)
class LossConfig:
    """The SepCLR loss (methods.md 4.3).

    Attributes:
        preset: Per-dataset weights (:data:`PRESETS`); ``auto`` picks by data set.
        beta_s: Weight of the salient term; ``None`` = preset.
        beta_reg: Weight of the information-less regulariser; ``None`` = preset.
        lambda_jem: Weight of k-JEM; ``None`` = preset; 0 = the "SepCLR without k-JEM" ablation.
        temperature: Kernel bandwidth tau of align/unif/k-JEM (code: 0.5).
        form: ``code`` (official code: uniformity with t = 1, squared-distance alignment) or
            ``paper`` (Wang & Isola's uniformity with t = 2).
        simclr_temperature: NT-Xent temperature of the SimCLR baseline.
    """

    preset: Literal["auto", "cifar-mnist", "celeba", "chexpert", "odir"] = "auto"
    beta_s: float | None = None
    beta_reg: float | None = None
    lambda_jem: float | None = None
    temperature: float = 0.5
    form: Literal["code", "paper"] = "code"
    simclr_temperature: float = 0.5

    def __post_init__(self) -> None:
        """Check that weights are non-negative.

        Raises:
            ConfigError: On a negative weight or a non-positive temperature.
        """
        for name in ("beta_s", "beta_reg", "lambda_jem"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ConfigError(f"Expected `loss.{name}` to be >= 0, but got {value}.")
        for name in ("temperature", "simclr_temperature"):
            if not getattr(self, name) > 0:
                raise ConfigError(
                    f"Expected `loss.{name}` to be > 0, but got {getattr(self, name)}."
                )


@dataclass(frozen=True)
class AugmentConfig:
    """Batched augmentations (methods.md 4.4; kornia's pipeline, written for whole batches).

    Attributes:
        crop_min: Smallest area fraction of the random resized crop (0.2 in every script but
            ODIR's 0.75).
        hflip: Probability of a horizontal flip.
        vflip: Probability of a vertical flip.
        rotation: Largest rotation in degrees (CheXpert/ODIR: 45; CIFAR-MNIST: 0).
        jitter: Brightness and contrast jitter strength (ColorJitter 0.4).
        jitter_p: Probability of the intensity jitter (0.8).
        gray_p: Probability of turning an RGB image gray (0.2); ignored for 1 channel.
    """

    crop_min: float = 0.2
    hflip: float = 0.5
    vflip: float = 0.0
    rotation: float = 0.0
    jitter: float = 0.4
    jitter_p: float = 0.8
    gray_p: float = 0.2


@dataclass(frozen=True)
class BaselineConfig:
    """Baselines' own settings.

    Attributes:
        cpca_alpha: Contrast strength alpha of contrastive PCA (C_target - alpha C_background).
        cvae_hidden: Hidden width of the contrastive VAE's MLPs.
        cvae_beta: Weight of the KL terms of the contrastive VAE.
    """

    cpca_alpha: float = 1.0
    cvae_hidden: int = 256
    cvae_beta: float = 1.0


@dataclass(frozen=True)
class EvalConfig:
    """The probe protocol (methods.md 4.6).

    Attributes:
        features: ``code`` (the official code: background-vs-target probe on the heads,
            factor probes on the representations), ``rep`` or ``head`` everywhere.
        knn_k: Neighbours of the kNN probe.
        max_iter: Iterations of the logistic regression (scikit-learn's default 100).
        batch_size: Batch size of the feature extraction.
    """

    features: Literal["code", "rep", "head"] = "code"
    knn_k: int = 10
    max_iter: int = 100
    batch_size: int = 512


@dataclass(frozen=True)
class SepCLRConfig:
    """Everything of one ``contrasuite sepclr train`` run.

    Attributes:
        method: ``sepclr``, ``simclr``, ``cpca`` or ``cvae``.
        batch_size: Training batch size (``drop_last``, as the scripts).
        data: See :class:`DataConfig`.
        model: See :class:`ModelConfig`.
        loss: See :class:`LossConfig`.
        augment: See :class:`AugmentConfig`.
        baseline: See :class:`BaselineConfig`.
        eval: See :class:`EvalConfig`.
        trainer: The loop (Adam, lr 3e-4, no weight decay, no scheduler, last weights).
    """

    method: Literal["sepclr", "simclr", "cpca", "cvae"] = "sepclr"
    batch_size: int = 256
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    trainer: TrainerConfig = field(
        default_factory=lambda: TrainerConfig(
            epochs=20,
            lr=3e-4,
            optimizer="adam",
            weight_decay=0.0,
            scheduler="none",
            weights="last",
            amp=False,
            log_every=0,
        )
    )

    def __post_init__(self) -> None:
        """Check ranges.

        Raises:
            ConfigError: If the batch size is below 4.
        """
        if self.batch_size < 4:
            raise ConfigError(f"Expected `batch_size` to be >= 4, but got {self.batch_size}.")


def resolve_weights(loss: LossConfig, dataset_kind: str) -> tuple[float, float, float]:
    """Return (beta_S, beta_reg, lambda_JEM) for a data set.

    Args:
        loss: The loss config.
        dataset_kind: ``generated`` or anything else (medical images).

    Returns:
        The three weights: explicit values first, then the preset's.

    Examples:
        >>> resolve_weights(LossConfig(), "generated")
        (1000.0, 1000.0, 10.0)
        >>> resolve_weights(LossConfig(lambda_jem=0.0), "pneumoniamnist")
        (1.0, 10.0, 0.0)
    """
    preset = loss.preset
    if preset == "auto":
        preset = "cifar-mnist" if dataset_kind == "generated" else "chexpert"
    base = PRESETS[preset]
    return (
        base[0] if loss.beta_s is None else float(loss.beta_s),
        base[1] if loss.beta_reg is None else float(loss.beta_reg),
        base[2] if loss.lambda_jem is None else float(loss.lambda_jem),
    )


@dataclass(frozen=True)
class SepCLREvaluateConfig:
    """The ``contrasuite sepclr evaluate`` settings (model, data and probe settings: the run's).

    Attributes:
        compare: Other evaluated sepclr runs on the same data, for a methods x probes table.
        seed: Seeds python's, numpy's and torch's global generators before the evaluation;
            ``None``: the run's ``trainer.seed`` (what evaluation always seeded with, so
            earlier results are reproduced). The probes draw no random numbers (L-BFGS
            logistic regression, kNN), so their scores do not depend on it; only
            scikit-learn's randomized PCA, which it picks for the 2-D maps of ``report.html``
            when the test set holds over 500 images and under ten per feature dimension,
            draws from numpy's generator.
        device: Where the model runs: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """

    compare: tuple[str, ...] = ()
    seed: int | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
