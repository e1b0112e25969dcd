"""The ``contrasuite ecg train`` config: data, model, loss weights, stages and the trainer.

Every setting is a dotted key (``model.pooling=mean``); ``contrasuite ecg train --help`` lists
them all, generated from these dataclasses.

Where this differs from the official code (methods.md 1.9), and the option that restores the
official behaviour where it changes results (each tested both ways):

====  ===========================================================  =================================
1.9   official code                                                here
====  ===========================================================  =================================
1     ResNet2D conv1 left random by a no-op "adaptation", the      no pretrained weights can be
      rest ImageNet-initialised                                    downloaded: everything random
2     window activations mean-pooled in training/inference but     ``model.pooling=max`` (default)
      max-pooled for projection                                    / ``mean`` (official)
2     scale 13 / 4 / 1 (partial / global / 1D) never rescaled      kept: ``model.similarity_scale=
                                                                   official``; ``cosine`` option
3     fold 9 drawn by a weighted sampler with replacement, ECGs    ``data.val_sampling=full``
      without a branch label never drawn                           (default) / ``official``
4     test AUROC averaged over batches of 32, absent classes       whole-fold macro and weighted
      skipped                                                      AUROC; the official number is
                                                                   also reported
                                                                   (``batch_averaged_auc_official``)
5     frozen branches put back in train mode by Lightning (BN      ``stages.frozen_eval=true``
      statistics drift, dropout on)                                (default) / ``false``
6     co-occurrence matrix loaded from hard-coded paths,           computed from the training
      silently None on failure, moved to cuda in ``__init__``      labels of each run, a buffer
7     ``pos_weight = (sum_k n_k - n_c) / n_c`` with the total      ``loss.pos_weight=samples``
      number of label instances                                    (default) / ``label_instances``
8, 9  label-mapping and logging oddities                           fusion targets: ``label_set``
                                                                   columns in scp_statements order
====  ===========================================================  =================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from medical.ecg.losses import LossConfig
from medical.ecg.model import BRANCHES
from shared.config import ConfigError, build_config
from shared.training.trainer import TrainerConfig

__all__ = [
    "PAPER_PRESET",
    "DataConfig",
    "ECGConfig",
    "ECGEvaluateConfig",
    "ModelConfig",
    "StageConfig",
    "build",
]


@dataclass(frozen=True)
class DataConfig:
    """Where the ECGs come from and how they are batched.

    Attributes:
        data_dir: A PTB-XL folder (the real release or one written by ``ecg synth``).
        sampling_rate: 100 (``records100``, the paper's) or 500 Hz.
        label_set: ``all`` (71), ``diagnostic``, ``subdiagnostic``, ``superdiagnostic``,
            ``form`` or ``rhythm``.
        remove_baseline: 0.5 Hz Butterworth high-pass (baseline wander), on by default.
        standardize: Per-lead standardisation fit on folds 1-8.
        cache: Keep the preprocessed signals in the on-disk cache (memory-mapped later).
        cache_dir: Cache folder ("": ``$CONTRASUITE_CACHE`` or ``~/.cache/contrasuite``).
        batch_size: ECGs per batch (32 in the paper).
        val_sampling: ``"full"`` (every fold-9 ECG once) or ``"official"`` (weighted sampling
            with replacement, ECGs without a label of the branch never drawn).
    """

    data_dir: str = ""
    sampling_rate: int = 100
    label_set: str = "all"
    remove_baseline: bool = True
    standardize: bool = False
    cache: bool = True
    cache_dir: str = ""
    batch_size: int = 32
    val_sampling: Literal["full", "official"] = "full"

    def __post_init__(self) -> None:
        """Check the values.

        Raises:
            ConfigError: On a value out of range.
        """
        if self.sampling_rate not in (100, 500):
            raise ConfigError(
                f"Expected `data.sampling_rate` to be 100 or 500, but got {self.sampling_rate}."
            )
        if self.batch_size < 1:
            raise ConfigError(f"Expected `data.batch_size` >= 1, but got {self.batch_size}.")


@dataclass(frozen=True)
class ModelConfig:
    """The network (defaults: the paper's fusion setting).

    Attributes:
        architecture: ``"protoecgnet"``, or ``"resnet1d"``: the black-box baseline (the 1D
            backbone with a linear head), trained with the same trainer settings.
        branches: Which branches to build, of ``rhythm``, ``morphology``, ``global``.
        branch_labels: ``"grouped"``: each branch gets its own statements (rhythm 16, local
            morphology 52, global 3; only for ``label_set=all``); ``"shared"``: every branch
            gets the whole label set; ``"auto"``: grouped for ``all``, shared otherwise.
        width: Backbone width (64: ResNet-18, prototype dimension 512).
        layers: Blocks per backbone stage.
        dropout: Dropout of the 2D backbones (0.35 in the paper's example).
        ppc_rhythm: Prototypes per class of the 1D rhythm branch (5).
        ppc_morphology: Prototypes per class of the 2D partial branch (18).
        ppc_global: Prototypes per class of the 2D global branch (7).
        proto_time_len: Latent length of the morphology prototypes (3, i.e. 0.93 s at 100 Hz).
        pooling: Window pooling of 2D similarities: ``"max"`` (default, matches projection) or
            ``"mean"`` (the official code).
        similarity_scale: ``"official"`` (13 cos / 4 cos / cos) or ``"cosine"``.
    """

    architecture: Literal["protoecgnet", "resnet1d"] = "protoecgnet"
    branches: tuple[str, ...] = BRANCHES
    branch_labels: Literal["auto", "grouped", "shared"] = "auto"
    width: int = 64
    layers: tuple[int, ...] = (2, 2, 2, 2)
    dropout: float = 0.35
    ppc_rhythm: int = 5
    ppc_morphology: int = 18
    ppc_global: int = 7
    proto_time_len: int = 3
    pooling: Literal["max", "mean"] = "max"
    similarity_scale: Literal["official", "cosine"] = "official"

    def __post_init__(self) -> None:
        """Check the values.

        Raises:
            ConfigError: On an unknown branch or a value out of range.
        """
        unknown = [b for b in self.branches if b not in BRANCHES]
        if unknown or not self.branches or len(set(self.branches)) != len(self.branches):
            raise ConfigError(
                f"Expected `model.branches` to be distinct names among {', '.join(BRANCHES)}, "
                f"but got {', '.join(self.branches) or 'none'}."
            )
        if len(self.layers) != 4 or min(self.layers) < 1:
            raise ConfigError(
                f"Expected `model.layers` to be 4 positive block counts, but got {self.layers}."
            )
        for name in ("width", "ppc_rhythm", "ppc_morphology", "ppc_global", "proto_time_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Expected `model.{name}` >= 1, but got {getattr(self, name)}.")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"Expected `model.dropout` in [0, 1), but got {self.dropout}.")


@dataclass(frozen=True)
class StageConfig:
    """Epochs of each stage (``None``: ``trainer.epochs``; 0 skips the stage).

    Attributes:
        feature_epochs: Backbone pretraining with a linear head.
        joint_epochs: The main stage.
        prototype_epochs: Prototype vectors only (0: skipped, as in the paper's recipe).
        project: Whether to project the prototypes onto training windows.
        classifier_epochs: Branch classifier only (0: skipped; the fusion does not use it).
        fusion_epochs: The fusion classifier.
        fusion_lr: Learning rate of the classifier and fusion stages (``None``: ``trainer.lr``).
        prune_absent: Hold the fusion weights of prototypes whose class has no training positive
            at 0 (they were projected onto an arbitrary window, see
            :mod:`medical.ecg.projection`). A no-op on the full PTB-XL, where every class has
            training positives.
        fusion_input: ``"standardized"``: the fusion layer reads similarities standardized
            with training-set statistics (see :class:`~medical.ecg.model.ProtoECGNet`);
            ``"raw"``: the official raw similarities.
        frozen_eval: Keep frozen parts in eval mode (the fix of methods.md 1.9 item 5);
            ``False`` reproduces the official behaviour.
    """

    feature_epochs: int | None = None
    joint_epochs: int | None = None
    prototype_epochs: int = 0
    project: bool = True
    classifier_epochs: int = 0
    fusion_epochs: int | None = None
    fusion_lr: float | None = None
    fusion_input: Literal["standardized", "raw"] = "standardized"
    prune_absent: bool = True
    frozen_eval: bool = True

    def __post_init__(self) -> None:
        """Check the values.

        Raises:
            ConfigError: On a negative epoch count or a non-positive learning rate.
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_epochs") and value is not None and value < 0:
                raise ConfigError(f"Expected `stages.{f.name}` >= 0, but got {value}.")
        if self.fusion_lr is not None and not self.fusion_lr > 0:
            raise ConfigError(f"Expected `stages.fusion_lr` > 0, but got {self.fusion_lr}.")


def _paper_trainer() -> TrainerConfig:
    # README example of the official repo: Adam, lr 1e-4, l2 1.7e-4, cosine, 200 epochs,
    # early stopping on the validation AUROC with patience 10.
    return TrainerConfig(
        epochs=200,
        lr=1e-4,
        optimizer="adam",
        weight_decay=1.7e-4,
        scheduler="cosine",
        monitor="macro_auc",
        mode="max",
        patience=10,
        log_every=0,
    )


#: What ``preset=paper`` sets: each official behaviour that the suite's defaults change
#: (methods.md 1.9). The trainer defaults are already the paper's.
PAPER_PRESET: dict[str, dict[str, Any]] = {
    "model": {"pooling": "mean"},
    "stages": {"fusion_input": "raw", "frozen_eval": False},
    "loss": {"pos_weight": "label_instances"},
    "data": {"val_sampling": "official"},
}


@dataclass(frozen=True)
class ECGConfig:
    """The whole ``contrasuite ecg train`` config.

    Attributes:
        data: Data and batching.
        model: The network.
        loss: Loss weights (the paper's defaults) and the BCE class weighting.
        stages: Epochs per stage and the frozen-part behaviour.
        preset: ``"suite"`` (the defaults below) or ``"paper"``: the published model
            wherever the defaults fix or change the official code (:data:`PAPER_PRESET`:
            mean window pooling, raw fusion input, the official class weights, the official
            fold-9 sampler, frozen parts in train mode); these keys then take the paper's
            values whatever else sets them. The trainer defaults are the paper's in both
            (Adam, lr 1e-4, weight decay 1.7e-4, cosine, 200 epochs, patience 10).
        trainer: The training loop, shared by every stage (Adam, lr 1e-4, weight decay 1.7e-4,
            cosine schedule, 200 epochs, early stopping on validation macro AUROC).
            ``trainer.threads`` sets torch's intra-op threads for the whole run; on a small
            shared CPU, 1 avoids oversubscription.
    """

    preset: Literal["suite", "paper"] = "suite"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    stages: StageConfig = field(default_factory=StageConfig)
    trainer: TrainerConfig = field(default_factory=_paper_trainer)

    def __post_init__(self) -> None:
        """Apply ``preset=paper``: the official code's settings (:data:`PAPER_PRESET`).

        Raises:
            ConfigError: On an unknown preset.
        """
        if self.preset not in ("suite", "paper"):
            raise ConfigError(
                f"Expected `preset` to be 'suite' or 'paper', but got {self.preset!r}."
            )
        if self.preset == "paper":
            for section, values in PAPER_PRESET.items():
                fixed = dataclasses.replace(getattr(self, section), **values)
                object.__setattr__(self, section, fixed)  # frozen: set once, while building


@dataclass(frozen=True)
class ECGEvaluateConfig:
    """The ``contrasuite ecg evaluate`` settings (the model and its data settings are the run's).

    Attributes:
        data_dir: The PTB-XL folder whose test fold 10 is scored; ``None``: the one the run was
            trained on.
        bootstrap: Resamples of the test ECGs for the 95 % intervals; ``None``: 200 when the
            test fold holds fewer than 5,000 ECGs, else 0 (none).
        seed: Seed of the bootstrap resampling, the evaluation's only random draw; ``None``:
            the run's ``trainer.seed`` (what every evaluation of a run used before this
            setting existed, so earlier intervals are reproduced).
        device: Where the model runs: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.

    Examples:
        >>> ECGEvaluateConfig(bootstrap=-1)
        Traceback (most recent call last):
        ...
        ValueError: Expected `bootstrap` >= 0 (0: no intervals), but got -1.
    """

    data_dir: str | None = None
    bootstrap: int | None = None
    seed: int | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        """Check the number of resamples.

        Raises:
            ValueError: If ``bootstrap`` is negative.
        """
        if self.bootstrap is not None and self.bootstrap < 0:
            raise ValueError(
                f"Expected `bootstrap` >= 0 (0: no intervals), but got {self.bootstrap}."
            )


def build(*layers: Mapping[str, Any], source: str = "ECG settings") -> ECGConfig:
    """An :class:`ECGConfig` from its defaults with nested mappings laid over them in order.

    Raises:
        ConfigError: On an unknown key or a bad value (the message names it and ``source``).

    Examples:
        >>> cfg = build({"trainer": {"epochs": 3}}, {"model": {"width": 8}})
        >>> cfg.trainer.epochs, cfg.trainer.lr, cfg.model.width
        (3, 0.0001, 8)
    """
    return build_config(ECGConfig, *layers, source=source)
