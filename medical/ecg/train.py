"""ProtoECGNet training: the config, one Task per stage, and the whole multi-stage run.

Stages (methods.md 1.6), each its own resumable :class:`~shared.training.Trainer` run in a
sub-folder of the run (``RUN/<branch>/<stage>/``):

1. ``feature``: the backbone with a linear head, BCE (feature-extractor pretraining).
2. ``joint``: backbone + add-on + prototypes with the whole prototype loss; the branch
   classifier stays frozen at its +1 / -0.5 initialisation.
3. ``prototypes`` (optional, 0 epochs by default): only the prototype vectors.
4. ``projection``: every prototype becomes the latent of a real training window
   (:mod:`medical.ecg.projection`); provenance in ``RUN/<branch>/projection/prototypes.json``
   and, for all branches, ``RUN/prototypes.json``.
5. ``classifier`` (optional, 0 epochs by default): only the branch classifier, BCE + L1 on the
   wrong-class connections.
6. ``fusion``: only the fusion ``Linear`` over all branches' similarities, BCE + L1.

Frozen parts are kept in eval mode (BN statistics fixed, dropout off) whatever the Trainer's
``task.train()`` does (``stages.frozen_eval``; the official code lets Lightning put them back in
train mode, methods.md 1.9 item 5). With frozen branches in eval mode their similarities are
fixed, so the classifier and fusion stages train on similarities computed once.

Validation uses the whole fold 9 and whole-fold macro AUROC (``data.val_sampling="full"``); the
official loader draws fold 9 with a ``WeightedRandomSampler`` with replacement that never draws
ECGs without a label of the branch (``"official"``, methods.md 1.9 item 3).

The run folder: ``config.yaml``, ``metrics.json`` (test fold 10: ``macro_auc``,
``weighted_auc``, ``n_test``, ``per_label``, ``label_set``, per-branch numbers), ``history.csv``
(every stage's epochs, with a ``stage`` column), ``log.txt``, ``weights.pt`` (the whole model's
state_dict), ``state.pt`` (the stages done; each stage folder holds its own optimizer state),
``prototypes.json`` and ``test_predictions.csv``. Started again with the same command, a run
resumes in the stage it was in, from its last complete epoch.

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

Further choices: the fusion layer reads similarities standardized with training-set
statistics (``stages.fusion_input=standardized``; ``raw`` is the official input, see
:class:`~medical.ecg.model.ProtoECGNet`); a class without a training positive has its
prototypes projected onto the best window of any training ECG (:mod:`medical.ecg.projection`),
and their fusion weights are held at 0 (``stages.prune_absent``; a no-op on the full PTB-XL).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset, WeightedRandomSampler

from medical.ecg.evaluate import auroc_metrics, batch_averaged_auc, sigmoid
from medical.ecg.losses import (
    LossConfig,
    class_counts_pos_weight,
    jaccard_matrix,
    prototype_loss,
)
from medical.ecg.model import (
    BRANCHES,
    ProtoECGNet,
    PrototypeBranch,
    ResNet1DClassifier,
    set_frozen,
)
from medical.ecg.projection import project_prototypes
from shared.config import ConfigError, dump_yaml, to_dict
from shared.errors import InputError
from shared.io import (
    atomic_torch_save,
    atomic_write_text,
    jsonable,
    read_json,
    write_csv,
    write_json,
)
from shared.runtime import log_to_file, resolve_device, torch_threads
from shared.training.checkpoint import FORMAT_VERSION, config_diff, load_weights, safe_load
from shared.training.task import Task
from shared.training.trainer import Trainer, TrainerConfig, seed_everything

__all__ = [
    "DOMAIN",
    "DataConfig",
    "ECGArrays",
    "ECGConfig",
    "ModelConfig",
    "StageConfig",
    "build_model",
    "predict",
    "train",
]

logger = logging.getLogger(__name__)

#: Written into every run folder's state; ``explain``/``evaluate`` refuse other domains' runs.
DOMAIN = "ecg"
_STATE_VERSION = 1
# Settings that may change between a run and its resume without changing results.
_RESUME_IGNORES = frozenset(
    {
        "trainer.progress",
        "trainer.log_every",
        "trainer.device",
        "data.cache",
        "data.cache_dir",
        "threads",
    }
)


#: Training-set statistics of every prototype's similarity (for explanation reports).
SIMILARITY_STATS = "similarity_stats.pt"

#: Loggers copied into a run folder's ``log.txt``.
_LOGGERS = ("medical.ecg", "shared.training")


# ----------------------------------------------------------------------------- config


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


@dataclass(frozen=True)
class ECGConfig:
    """The whole ``contrasuite ecg train`` config.

    Attributes:
        data: Data and batching.
        model: The network.
        loss: Loss weights (the paper's defaults) and the BCE class weighting.
        stages: Epochs per stage and the frozen-part behaviour.
        trainer: The training loop, shared by every stage (Adam, lr 1e-4, weight decay 1.7e-4,
            cosine schedule, 200 epochs, early stopping on validation macro AUROC).
        threads: torch intra-op threads while training (0: torch's default). On a small shared
            CPU, 1 avoids oversubscription (several times faster when other processes run).
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    stages: StageConfig = field(default_factory=StageConfig)
    trainer: TrainerConfig = field(default_factory=_paper_trainer)
    threads: int = 0

    def __post_init__(self) -> None:
        """Check the values.

        Raises:
            ConfigError: If ``threads`` is negative.
        """
        if self.threads < 0:
            raise ConfigError(f"Expected `threads` >= 0, but got {self.threads}.")


# ----------------------------------------------------------------------------- data


@dataclass
class ECGArrays:
    """The loaded data set, as the training code needs it.

    Attributes:
        signals: Shape: (N, leads, T), float32 (a memory map is fine).
        labels: Multi-hot labels of the label set. Shape: (N, C).
        label_names: The ``C`` statement codes, in column order.
        ecg_ids: Shape: (N,), int.
        folds: ``strat_fold`` (1-10). Shape: (N,), int.
        sampling_rate: Hz.
        groups: Branch name -> statement codes of the branch grouping (rhythm, morphology,
            global).
        dataset: The :class:`~medical.ecg.data.PTBXL` set it came from (metadata,
            descriptions, signals in mV), or ``None``.
    """

    signals: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    ecg_ids: np.ndarray
    folds: np.ndarray
    sampling_rate: int
    groups: dict[str, list[str]]
    dataset: Any = None

    def rows(self, folds: Sequence[int]) -> np.ndarray:
        """Row indices of the ECGs in ``folds``."""
        return np.flatnonzero(np.isin(self.folds, list(folds)))

    def row_of(self, ecg_id: int) -> int:
        """Row of ``ecg_id``.

        Raises:
            InputError: If the data set has no such ECG.
        """
        hits = np.flatnonzero(self.ecg_ids == int(ecg_id))
        if len(hits) == 0:
            raise InputError(
                f"Expected --ecg-id {ecg_id} to be an ecg_id of the data set "
                f"({len(self.ecg_ids)} records, ecg_id {int(self.ecg_ids.min())}.."
                f"{int(self.ecg_ids.max())}), but it is not."
            )
        return int(hits[0])


TRAIN_FOLDS = tuple(range(1, 9))
VAL_FOLDS = (9,)
TEST_FOLDS = (10,)


def load_data(cfg: DataConfig, *, progress: bool = True) -> ECGArrays:
    """Read a PTB-XL folder with :func:`medical.ecg.data.load_ptbxl` (cached).

    Args:
        cfg: The data settings.
        progress: Show the progress bar of a first (uncached) read.

    Returns:
        The data set.

    Raises:
        InputError: On a missing or invalid data folder (from the reader).
    """
    from medical.ecg.data import BRANCH_CODES, load_ptbxl

    if not cfg.data_dir:
        raise InputError("Expected a PTB-XL folder (--data-dir DIR), but none was given.")
    ds = load_ptbxl(
        cfg.data_dir,
        sampling_rate=cfg.sampling_rate,
        label_set=cfg.label_set,
        highpass=cfg.remove_baseline,
        standardize=cfg.standardize,
        cache=cfg.cache,
        cache_dir=cfg.cache_dir or None,
        progress=progress,
    )
    return ECGArrays(
        signals=ds.signals,
        labels=np.asarray(ds.labels, dtype=np.float32),
        label_names=[str(n) for n in ds.label_names],
        ecg_ids=np.asarray(ds.ecg_ids, dtype=np.int64),
        folds=np.asarray(ds.folds, dtype=np.int64),
        sampling_rate=int(ds.sampling_rate),
        groups={k: list(v) for k, v in BRANCH_CODES.items()},
        dataset=ds,
    )


class _Rows(Dataset[tuple[Tensor, Tensor, Tensor]]):
    """``(signal, labels, row)`` of the given rows."""

    def __init__(self, data: ECGArrays, rows: np.ndarray) -> None:
        self.data, self.rows_ = data, rows

    def __len__(self) -> int:
        return len(self.rows_)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        r = int(self.rows_[i])
        x = torch.from_numpy(np.array(self.data.signals[r], dtype=np.float32))
        y = torch.from_numpy(np.asarray(self.data.labels[r], dtype=np.float32))
        return x, y, torch.tensor(r)


def _loader(
    data: ECGArrays, rows: np.ndarray, batch_size: int, *, shuffle: bool, sampler: Any = None
) -> DataLoader[Any]:
    return DataLoader(
        _Rows(data, rows),
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=0,
    )


def _val_loader(
    data: ECGArrays, rows: np.ndarray, cfg: DataConfig, label_index: Tensor | None
) -> DataLoader[Any]:
    if cfg.val_sampling == "full" or label_index is None:
        return _loader(data, rows, cfg.batch_size, shuffle=False)
    # The official fold-9 loader: weight of an ECG = sum over its labels of the class weights;
    # ECGs without a label of this branch get 0 and are never drawn (with replacement).
    y = torch.as_tensor(np.asarray(data.labels[rows]))[:, label_index]
    class_w = class_counts_pos_weight(y, "label_instances")
    assert class_w is not None
    weights = (y * class_w).sum(dim=1).double()
    if not bool((weights > 0).any()):
        return _loader(data, rows, cfg.batch_size, shuffle=False)
    sampler = WeightedRandomSampler(weights.tolist(), num_samples=len(rows), replacement=True)
    return _loader(data, rows, cfg.batch_size, shuffle=False, sampler=sampler)


def branch_label_index(data: ECGArrays, cfg: ModelConfig, label_set: str) -> dict[str, list[int]]:
    """Columns of each branch's classes in the label set.

    Args:
        data: The data set (its ``label_names`` and ``groups``).
        cfg: The model config (``branches``, ``branch_labels``).
        label_set: The data's label set.

    Returns:
        Branch name -> column indices (in the label set's column order).

    Raises:
        ConfigError: If ``grouped`` is asked for another label set than ``all``, or a branch
            would have no class.
    """
    mode = cfg.branch_labels
    if mode == "auto":
        mode = "grouped" if label_set == "all" else "shared"
    if mode == "grouped" and label_set != "all":
        raise ConfigError(
            f"`model.branch_labels=grouped` needs `data.label_set=all`, but got {label_set!r}; "
            "use model.branch_labels=shared."
        )
    out: dict[str, list[int]] = {}
    col = {n: i for i, n in enumerate(data.label_names)}
    for name in cfg.branches:
        if mode == "shared":
            out[name] = list(range(len(data.label_names)))
            continue
        codes = data.groups.get(name, [])
        out[name] = [col[c] for c in codes if c in col]
        if not out[name]:
            raise ConfigError(
                f"Branch {name!r} has no statement in the label set; drop it from model.branches."
            )
    return out


# ----------------------------------------------------------------------------- model


def build_model(
    cfg: ECGConfig,
    label_index: Mapping[str, Sequence[int]],
    num_classes: int,
    signal_length: int,
    leads: int = 12,
) -> nn.Module:
    """Build the (randomly initialised) network of ``cfg``.

    Args:
        cfg: The config.
        label_index: Branch -> class columns (see :func:`branch_label_index`).
        num_classes: ``C`` of the label set.
        signal_length: Samples per lead.
        leads: Input leads.

    Returns:
        A :class:`~medical.ecg.model.ProtoECGNet`, or a
        :class:`~medical.ecg.model.ResNet1DClassifier` for ``architecture=resnet1d``.
    """
    m = cfg.model
    if m.architecture == "resnet1d":
        return ResNet1DClassifier(num_classes, leads, m.width, m.layers)
    specs = {
        "rhythm": ("1d", m.ppc_rhythm, None),
        "morphology": ("2d", m.ppc_morphology, m.proto_time_len),
        "global": ("2d", m.ppc_global, None),
    }
    branches = {}
    for name in m.branches:
        kind, ppc, t_p = specs[name]
        branches[name] = PrototypeBranch(
            kind,  # type: ignore[arg-type]
            len(label_index[name]),
            ppc,
            signal_length,
            proto_time_len=t_p,
            leads=leads,
            width=m.width,
            layers=m.layers,
            dropout=m.dropout,
            pooling=m.pooling,
            similarity_scale=m.similarity_scale,
        )
    return ProtoECGNet(branches, label_index, num_classes)


# ----------------------------------------------------------------------------- tasks


def _auroc_epoch_end(outputs: list[Mapping[str, Tensor | float]]) -> dict[str, float]:
    scores = torch.cat([torch.as_tensor(o["scores"]) for o in outputs]).numpy()
    targets = torch.cat([torch.as_tensor(o["targets"]) for o in outputs]).numpy()
    names = [str(i) for i in range(scores.shape[1])]
    m = auroc_metrics(scores, targets, names)
    losses = [
        float(torch.as_tensor(o["loss"])) * len(torch.as_tensor(o["scores"])) for o in outputs
    ]
    return {
        "macro_auc": float(m["macro_auc"]),  # type: ignore[arg-type]
        "weighted_auc": float(m["weighted_auc"]),  # type: ignore[arg-type]
        "loss": sum(losses) / len(scores),
    }


class StageTask(Task):
    """Base of the stage tasks: frozen modules stay in eval mode; whole-fold AUROC validation.

    Args:
        label_index: Columns of the task's classes in the batch labels. Shape: (C_t,).
        pos_weight: BCE ``pos_weight``. Shape: (C_t,), or ``None``.
        frozen_eval: Keep the modules in :attr:`frozen` in eval mode during training.
    """

    label_index: Tensor
    pos_weight: Tensor | None

    def __init__(
        self, label_index: Tensor, pos_weight: Tensor | None, frozen_eval: bool = True
    ) -> None:
        super().__init__()
        self.register_buffer("label_index", label_index.long(), persistent=False)
        self.register_buffer("pos_weight", pos_weight, persistent=False)
        self.frozen_eval = frozen_eval
        self.frozen: list[nn.Module] = []

    def train(self, mode: bool = True) -> StageTask:
        """Set train/eval mode; with ``frozen_eval`` the frozen modules stay in eval mode."""
        super().train(mode)
        if mode and self.frozen_eval:
            for module in self.frozen:
                module.eval()
        return self

    def freeze(self, *modules: nn.Module) -> None:
        """Freeze ``modules`` (no gradient; eval mode while training with ``frozen_eval``)."""
        for module in modules:
            set_frozen(module, True)
            self.frozen.append(module)

    def targets(self, y: Tensor) -> Tensor:
        """The task's columns of the batch labels. Shape: (B, C_all) -> (B, C_t)."""
        return y[:, self.label_index]

    def logits(self, inputs: Tensor) -> Tensor:
        """Logits of the task's classes. Shape: (B, C_t)."""
        raise NotImplementedError

    def bce(self, logits: Tensor, y: Tensor) -> Tensor:
        """BCE with logits and the task's ``pos_weight``."""
        return F.binary_cross_entropy_with_logits(
            logits.float(), y.float(), pos_weight=self.pos_weight
        )

    def validation_step(self, batch: Any) -> dict[str, Tensor]:
        """Scores and targets of the batch (AUROC needs the whole fold), and the BCE."""
        inputs, y, _ = batch
        logits = self.logits(inputs).float()
        y = self.targets(y)
        # AUROC ranks the logits: a float32 sigmoid would tie very negative logits.
        return {"scores": logits, "targets": y, "loss": self.bce(logits, y)}

    def validation_epoch_end(self, outputs: list[Mapping[str, Tensor | float]]) -> dict[str, float]:
        """Whole-fold macro and weighted AUROC and the mean BCE."""
        return _auroc_epoch_end(outputs)


class FeatureTask(StageTask):
    """Stage 1: the branch backbone with a linear head, BCE.

    1D: on the pooled features; 2D: on the flattened feature map, ``Linear(D * T', C)`` as in
    the official code.
    """

    def __init__(
        self,
        branch: PrototypeBranch,
        label_index: Tensor,
        pos_weight: Tensor | None,
        frozen_eval: bool = True,
    ) -> None:
        super().__init__(label_index, pos_weight, frozen_eval)
        self.branch = branch
        dim = branch.proto_dim * (1 if branch.kind == "1d" else branch.latent_length)
        self.head = nn.Linear(dim, branch.num_classes)
        set_frozen(branch, True)
        set_frozen(branch.backbone, False)

    def logits(self, inputs: Tensor) -> Tensor:
        """Backbone + linear head."""
        backbone = self.branch.backbone
        if self.branch.kind == "1d":
            return self.head(backbone.forward_features(inputs))
        return self.head(backbone.feature_map(inputs).flatten(1))

    def training_step(self, batch: Any) -> dict[str, Tensor]:
        """BCE of the head."""
        x, y, _ = batch
        loss = self.bce(self.logits(x), self.targets(y))
        return {"loss": loss, "loss/bce": loss.detach()}


class JointTask(StageTask):
    """Stage 2 (and 3 with ``prototypes_only``): the whole prototype loss of one branch.

    Args:
        branch: The branch.
        label_index: The branch's columns.
        pos_weight: BCE ``pos_weight`` of the branch's classes.
        cooccurrence: Jaccard matrix of the branch's training labels. Shape: (C_b, C_b).
        weights: Loss weights.
        prototypes_only: Train only the prototype vectors (stage ``prototypes``).
        frozen_eval: See :class:`StageTask`.
    """

    cooccurrence: Tensor

    def __init__(
        self,
        branch: PrototypeBranch,
        label_index: Tensor,
        pos_weight: Tensor | None,
        cooccurrence: Tensor,
        weights: LossConfig,
        *,
        prototypes_only: bool = False,
        frozen_eval: bool = True,
    ) -> None:
        super().__init__(label_index, pos_weight, frozen_eval)
        self.branch = branch
        self.weights = weights
        self.register_buffer("cooccurrence", cooccurrence.float(), persistent=False)
        set_frozen(branch, False)
        if prototypes_only:
            self.freeze(branch.backbone, branch.add_on, branch.classifier)
        else:
            self.freeze(branch.classifier)

    def logits(self, inputs: Tensor) -> Tensor:
        """The branch's logits."""
        return self.branch(inputs).logits

    def training_step(self, batch: Any) -> dict[str, Tensor]:
        """BCE + clustering + separation + sparsity + diversity + co-occurrence contrastive."""
        x, y, _ = batch
        out = self.branch(x)
        b = self.branch
        return prototype_loss(
            out.logits.float(),
            self.targets(y),
            out.similarities.float(),
            b.prototype_vectors,
            b.prototype_class_identity,
            self.cooccurrence,
            self.weights,
            self.pos_weight,
        )


class LinearStageTask(StageTask):
    """Stages 5 and 6: one linear layer on fixed similarities, BCE + L1.

    The input of a batch is either raw ECGs (B, leads, T), run through ``similarities``, or
    precomputed similarities (B, P) (possible when the frozen parts are in eval mode; then
    ``similarities`` may be ``nn.Identity()``, which keeps the frozen network out of this
    stage's checkpoints).

    Args:
        linear: The layer being trained (a branch classifier or the fusion layer).
        similarities: Maps ECGs to the similarities the layer reads.
        frozen: The modules behind ``similarities`` (frozen).
        label_index: Columns of the layer's classes.
        pos_weight: BCE ``pos_weight``.
        l1: Weight of the L1 term.
        l1_mask: Which weights the L1 term covers (1.0) — the wrong-class connections of a
            branch classifier; ``None``: the whole matrix (fusion). Shape: like the weight.
        frozen_eval: See :class:`StageTask`.
        weight_mask: 0.0 where a weight is pruned (held at 0), else 1.0; ``None``: no pruning.
            Shape: like the weight.
        input_stats: ``(mean, std)`` the layer's input is standardized with (the fusion
            layer's training-set statistics), or ``None`` for raw input. Shape: (P,) each.

    The weight mask and the input statistics are persistent buffers: they are part of the
    stage's ``state.pt`` and ``weights.pt``, so that a resumed run (even one killed after this
    stage finished) gets back everything the layer needs at inference.
    """

    l1_mask: Tensor | None
    weight_mask: Tensor | None
    input_mean: Tensor | None
    input_std: Tensor | None

    def __init__(
        self,
        linear: nn.Linear,
        similarities: nn.Module,
        frozen: Sequence[nn.Module],
        label_index: Tensor,
        pos_weight: Tensor | None,
        l1: float,
        l1_mask: Tensor | None = None,
        frozen_eval: bool = True,
        weight_mask: Tensor | None = None,
        input_stats: tuple[Tensor, Tensor] | None = None,
    ) -> None:
        super().__init__(label_index, pos_weight, frozen_eval)
        self.linear = linear
        self.similarities = similarities
        self.l1 = l1
        self.register_buffer("l1_mask", l1_mask, persistent=False)
        self.register_buffer("weight_mask", weight_mask)
        mean, std = input_stats if input_stats is not None else (None, None)
        self.register_buffer("input_mean", None if mean is None else mean.clone().float())
        self.register_buffer("input_std", None if std is None else std.clone().float())
        self.freeze(*frozen)
        set_frozen(linear, False)

    def weight(self) -> Tensor:
        """The layer's weight with pruned entries at 0."""
        w = self.linear.weight
        return w if self.weight_mask is None else w * self.weight_mask

    def logits(self, inputs: Tensor) -> Tensor:
        """The layer applied to (precomputed or computed, then standardized) similarities."""
        sims = inputs if inputs.ndim == 2 else self.similarities(inputs)
        if self.input_mean is not None and self.input_std is not None:
            sims = (sims - self.input_mean) / self.input_std
        return F.linear(sims, self.weight(), self.linear.bias)

    @torch.no_grad()
    def bake_mask(self) -> None:
        """Write the pruned weight into the layer (after training)."""
        if self.weight_mask is not None:
            self.linear.weight.mul_(self.weight_mask)

    def training_step(self, batch: Any) -> dict[str, Tensor]:
        """BCE + l1 * L1 norm of the (masked) weight."""
        inputs, y, _ = batch
        bce = self.bce(self.logits(inputs), self.targets(y))
        w = self.weight()
        l1 = (w if self.l1_mask is None else w * self.l1_mask).abs().sum()
        return {"loss": bce + self.l1 * l1, "loss/bce": bce.detach(), "loss/l1": l1.detach()}


class SupervisedTask(StageTask):
    """The black-box baseline: a classifier trained with BCE on the whole label set."""

    def __init__(self, net: nn.Module, label_index: Tensor, pos_weight: Tensor | None) -> None:
        super().__init__(label_index, pos_weight)
        self.net = net

    def logits(self, inputs: Tensor) -> Tensor:
        """The network's logits."""
        out: Tensor = self.net(inputs)
        return out

    def training_step(self, batch: Any) -> dict[str, Tensor]:
        """BCE."""
        x, y, _ = batch
        loss = self.bce(self.logits(x), self.targets(y))
        return {"loss": loss, "loss/bce": loss.detach()}


class _BranchSims(nn.Module):
    def __init__(self, branch: PrototypeBranch) -> None:
        super().__init__()
        self.branch = branch

    def forward(self, x: Tensor) -> Tensor:
        return self.branch(x).similarities


class _FusionSims(nn.Module):
    """Raw concatenated similarities of every branch (the fusion task standardizes them)."""

    def __init__(self, model: ProtoECGNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([b(x).similarities for b in self.model.branches.values()], dim=1)


def fusion_statistics(raw: Tensor) -> tuple[Tensor, Tensor]:
    """Training-set mean and std of every similarity, the fusion layer's standardization.

    Args:
        raw: Raw similarities of the training ECGs. Shape: (N, P).

    Returns:
        ``(mean, std)``, std clamped at 1e-4 (a prototype every ECG matches equally). Shape:
        (P,) each, float32.
    """
    raw = raw.double()
    return raw.mean(dim=0).float(), raw.std(dim=0).clamp_min(1e-4).float()


# ----------------------------------------------------------------------------- the run


class _Run:
    """One ``ecg train`` run: the stages in order, each resumable."""

    def __init__(self, cfg: ECGConfig, out: Path, data: ECGArrays, progress: bool) -> None:
        self.cfg, self.out, self.data, self.progress = cfg, out, data, progress
        self.train_rows = data.rows(TRAIN_FOLDS)
        self.val_rows = data.rows(VAL_FOLDS)
        self.test_rows = data.rows(TEST_FOLDS)
        for name, rows, folds in (
            ("training", self.train_rows, "1-8"),
            ("validation", self.val_rows, "9"),
            ("test", self.test_rows, "10"),
        ):
            if len(rows) == 0:
                raise InputError(
                    f"Expected the {name} folds (strat_fold {folds}) of {cfg.data.data_dir} "
                    "to hold ECGs, but they are empty."
                )
        self.history: list[dict[str, Any]] = []
        self.stage_metrics: dict[str, dict[str, float]] = {}
        self.config_dict = to_dict(cfg)
        for key in ("cache", "cache_dir"):  # where the data are cached does not change results
            self.config_dict["data"].pop(key)
        self.config_dict.pop("threads")
        self.train_labels = torch.as_tensor(np.asarray(data.labels[self.train_rows]))
        self.fusion_train_similarities: Tensor | None = None

    # -------------------------------------------------------------- helpers

    def trainer_config(self, epochs: int, lr: float | None = None) -> TrainerConfig:
        t = self.cfg.trainer
        changes: dict[str, Any] = {"epochs": epochs, "progress": t.progress and self.progress}
        if lr is not None:
            changes["lr"] = lr
        return dataclasses.replace(t, **changes)

    def epochs(self, value: int | None) -> int:
        return self.cfg.trainer.epochs if value is None else value

    def fit(
        self,
        stage: str,
        make_task: Callable[[], StageTask],
        epochs: int,
        train_loader: Any,
        val_loader: Any,
        lr: float | None = None,
    ) -> StageTask:
        """Run (or resume, or reload) one Trainer stage in ``RUN/<stage>``.

        Args:
            stage: The stage's name and sub-folder.
            make_task: Builds the task, after every RNG is reseeded for this stage.
            epochs: Epochs of the stage.
            train_loader: Its training batches (empty when the stage has finished).
            val_loader: Its validation batches.
            lr: Learning rate (``None``: ``trainer.lr``).

        Returns:
            The task, holding the weights the stage selected.
        """
        self.seed(stage)
        task = make_task()
        run_dir = self.out / stage
        trainer = Trainer(
            self.trainer_config(epochs, lr),
            run_dir,
            config_dict={**self.config_dict, "stage": stage},
        )
        start = time.perf_counter()
        metrics = trainer.fit(task, train_loader, val_loader)
        seconds = time.perf_counter() - start
        for row in trainer.history:
            self.history.append({"stage": stage, **row})
        n_train = len(self.train_rows)
        trained = sum(float(r.get("seconds", 0.0)) for r in trainer.history)
        epochs_run = len(trainer.history)
        metrics = {
            **metrics,
            "samples_per_s": n_train * epochs_run / trained if trained > 0 else float("nan"),
        }
        self.stage_metrics[stage] = metrics
        logger.info(
            "stage %s: best val macro AUROC %.4f (epoch %s of %s), %.1f s",
            stage,
            metrics.get("macro_auc", float("nan")),
            metrics.get("best_epoch"),
            metrics.get("epochs"),
            seconds,
        )
        self.boundary(stage)
        return task

    def loaders(self, label_index: Tensor | None) -> tuple[DataLoader[Any], DataLoader[Any]]:
        bs = self.cfg.data.batch_size
        return (
            _loader(self.data, self.train_rows, bs, shuffle=True),
            _val_loader(self.data, self.val_rows, self.cfg.data, label_index),
        )

    def pos_weight(self, label_index: Tensor) -> Tensor | None:
        return class_counts_pos_weight(self.train_labels[:, label_index], self.cfg.loss.pos_weight)

    @torch.no_grad()
    def precompute(self, module: nn.Module, rows: np.ndarray) -> TensorDataset:
        module.eval()
        device = resolve_device(self.cfg.trainer.device)
        module.to(device)
        sims, labels, index = [], [], []
        for x, y, r in _loader(self.data, rows, max(self.cfg.data.batch_size, 64), shuffle=False):
            sims.append(module(x.to(device)).float().cpu())
            labels.append(y)
            index.append(r)
        return TensorDataset(torch.cat(sims), torch.cat(labels), torch.cat(index))

    def finished(self, stage: str) -> bool:
        path = self.out / stage / "state.pt"
        if not path.exists():
            return False
        state = safe_load(path)
        return isinstance(state, dict) and bool(state.get("finished"))

    def linear_loaders(
        self, module: nn.Module, label_index: Tensor, train_ds: TensorDataset | None = None
    ) -> tuple[Any, Any]:
        """Loaders of a linear stage: precomputed similarities with ``frozen_eval``, else ECGs.

        Args:
            module: Maps ECGs to the similarities the layer reads.
            label_index: The layer's classes (for the official validation sampler).
            train_ds: The training similarities when already computed.
        """
        if not self.cfg.stages.frozen_eval:
            return self.loaders(label_index)
        bs = self.cfg.data.batch_size
        if train_ds is None:
            train_ds = self.precompute(module, self.train_rows)
        val_ds = self.precompute(module, self.val_rows)
        if self.cfg.data.val_sampling == "official":
            y = val_ds.tensors[1][:, label_index]
            w = class_counts_pos_weight(y, "label_instances")
            assert w is not None
            weights = (y * w).sum(dim=1).double()
            if bool((weights > 0).any()):
                sampler = WeightedRandomSampler(
                    weights.tolist(), num_samples=len(val_ds), replacement=True
                )
                return (
                    DataLoader(train_ds, batch_size=bs, shuffle=True),
                    DataLoader(val_ds, batch_size=bs, sampler=sampler),
                )
        return DataLoader(train_ds, batch_size=bs, shuffle=True), DataLoader(val_ds, batch_size=bs)

    def seed(self, stage: str) -> None:
        """Reseed every RNG from ``(trainer.seed, stage)`` before a stage builds its task.

        A new task's layers (the feature stage's head) are initialised from the global RNG;
        seeding per stage makes them independent of which earlier stages ran in this process,
        so a resumed run builds the same tasks as an uninterrupted one.
        """
        seed_everything(
            int(
                np.random.SeedSequence([self.cfg.trainer.seed, *stage.encode()]).generate_state(1)[
                    0
                ]
            )
        )

    def boundary(self, stage: str) -> None:
        """Called after each stage is complete and saved (the points a kill may fall between)."""
        logger.debug("stage %s complete", stage)

    # -------------------------------------------------------------- stages

    def run_branch(
        self, name: str, branch: PrototypeBranch, label_index: Tensor
    ) -> list[dict[str, Any]]:
        cfg = self.cfg
        st = cfg.stages
        pos_weight = self.pos_weight(label_index)
        train_loader, val_loader = self.loaders(label_index)
        if self.epochs(st.feature_epochs) > 0:
            self.fit(
                f"{name}/feature",
                lambda: FeatureTask(branch, label_index, pos_weight, st.frozen_eval),
                self.epochs(st.feature_epochs),
                train_loader,
                val_loader,
            )
        cooc = jaccard_matrix(self.train_labels[:, label_index])
        if self.epochs(st.joint_epochs) > 0:
            self.fit(
                f"{name}/joint",
                lambda: JointTask(
                    branch, label_index, pos_weight, cooc, cfg.loss, frozen_eval=st.frozen_eval
                ),
                self.epochs(st.joint_epochs),
                train_loader,
                val_loader,
            )
        if st.prototype_epochs > 0:
            self.fit(
                f"{name}/prototypes",
                lambda: JointTask(
                    branch,
                    label_index,
                    pos_weight,
                    cooc,
                    cfg.loss,
                    prototypes_only=True,
                    frozen_eval=st.frozen_eval,
                ),
                st.prototype_epochs,
                train_loader,
                val_loader,
            )
        records: list[dict[str, Any]] = []
        if st.project:
            records = self.project(name, branch, label_index)
            self.boundary(f"{name}/projection")
        if st.classifier_epochs > 0:
            sims = _BranchSims(branch)
            branch.prototype_vectors.requires_grad_(False)
            stage = f"{name}/classifier"
            # A finished stage is only reloaded by the Trainer: no similarities needed.
            tl, vl = ([], []) if self.finished(stage) else self.linear_loaders(sims, label_index)
            self.fit(
                stage,
                lambda: LinearStageTask(
                    branch.classifier,
                    nn.Identity() if st.frozen_eval else sims,  # precomputed similarities
                    [branch.backbone, branch.add_on],
                    label_index,
                    pos_weight,
                    cfg.loss.l1,
                    1 - branch.prototype_class_identity.T,
                    st.frozen_eval,
                ),
                st.classifier_epochs,
                tl,
                vl,
                st.fusion_lr,
            )
        return records

    def project(
        self, name: str, branch: PrototypeBranch, label_index: Tensor
    ) -> list[dict[str, Any]]:
        folder = self.out / name / "projection"
        weights_path, prov_path = folder / "weights.pt", folder / "prototypes.json"
        if weights_path.exists() and prov_path.exists():
            load_weights(weights_path, branch)
            records: list[dict[str, Any]] = read_json(prov_path)
            logger.info("stage %s/projection: done earlier; reloaded.", name)
            return records
        device = resolve_device(self.cfg.trainer.device)
        branch.to(device)
        start = time.perf_counter()
        loader = _loader(self.data, self.train_rows, self.cfg.data.batch_size, shuffle=False)
        class_names = [self.data.label_names[int(i)] for i in label_index]
        records = project_prototypes(
            branch,
            loader,
            label_index=label_index,
            class_names=class_names,
            ecg_ids=self.data.ecg_ids,
            folds=self.data.folds,
            sampling_rate=self.data.sampling_rate,
            branch_name=name,
            device=device,
        )
        folder.mkdir(parents=True, exist_ok=True)
        write_json(prov_path, records)  # provenance first: weights.pt marks the stage as done
        atomic_torch_save(
            {k: v.detach().cpu() for k, v in branch.state_dict().items()}, weights_path
        )
        logger.info(
            "stage %s/projection: %d prototypes in %.1f s.",
            name,
            len(records),
            time.perf_counter() - start,
        )
        return records

    def run_fusion(
        self, model: ProtoECGNet, label_index: Tensor, provenance: Sequence[Mapping[str, Any]]
    ) -> None:
        """The fusion stage; afterwards ``model`` holds its layer and input statistics.

        The standardization statistics are computed from the training similarities when the
        stage starts and kept in the stage's task state (its ``state.pt`` and ``weights.pt``);
        a resumed run, even one whose fusion stage had finished, takes them back from there.
        """
        st = self.cfg.stages
        if self.epochs(st.fusion_epochs) == 0:
            return
        pos_weight = self.pos_weight(label_index)
        sims = _FusionSims(model)
        for branch in model.branches.values():
            set_frozen(branch, True)
        finished = self.finished("fusion")
        standardize = st.fusion_input == "standardized"
        loaders: tuple[Any, Any] = ([], [])
        stats = None
        if not finished:
            # The task's initial state only: a resumed unfinished stage reloads the same values.
            train_ds = self.precompute(sims, self.train_rows)
            self.fusion_train_similarities = train_ds.tensors[0]
            if standardize:
                stats = fusion_statistics(train_ds.tensors[0])
            loaders = self.linear_loaders(sims, label_index, train_ds)
        elif standardize:  # placeholders of the right shape, overwritten by the stage's state
            stats = (torch.zeros_like(model.fusion_mean), torch.ones_like(model.fusion_std))
        mask = self.prune_mask(model, provenance) if st.prune_absent else None
        task = self.fit(
            "fusion",
            lambda: LinearStageTask(
                model.fusion,
                nn.Identity() if st.frozen_eval else sims,  # precomputed similarities
                list(model.branches.values()),
                label_index,
                pos_weight,
                self.cfg.loss.l1,
                None,
                st.frozen_eval,
                weight_mask=mask,
                input_stats=stats,
            ),
            self.epochs(st.fusion_epochs),
            *loaders,
            st.fusion_lr,
        )
        assert isinstance(task, LinearStageTask)
        task.bake_mask()
        with torch.no_grad():
            if task.input_mean is not None and task.input_std is not None:
                model.fusion_mean.copy_(task.input_mean)
                model.fusion_std.copy_(task.input_std)
            else:
                model.fusion_mean.zero_()
                model.fusion_std.fill_(1.0)
        self.write_similarity_stats(model)

    def write_similarity_stats(self, model: ProtoECGNet) -> None:
        """Write ``RUN/similarity_stats.pt``: where each prototype's similarity stands.

        The training ECGs' mean, std and percentiles 0..100 of every prototype's raw
        similarity, for explanation reports (not needed for predictions).
        """
        path = self.out / SIMILARITY_STATS
        if path.exists():
            return
        raw = self.fusion_train_similarities
        if raw is None:  # resumed after the fusion stage: computed once more
            raw = self.precompute(_FusionSims(model), self.train_rows).tensors[0]
        values = raw.double().numpy()
        atomic_torch_save(
            {
                "mean": torch.from_numpy(values.mean(axis=0)),
                "std": torch.from_numpy(
                    values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])
                ),
                "quantiles": torch.from_numpy(np.quantile(values, np.linspace(0, 1, 101), axis=0)),
            },
            path,
        )

    def prune_mask(
        self, model: ProtoECGNet, provenance: Sequence[Mapping[str, Any]]
    ) -> Tensor | None:
        """Fusion-weight mask: 0 for the prototypes of classes without a training positive."""
        offsets = model.prototype_offsets()
        absent = [
            offsets[r["branch"]] + int(r["prototype"])
            for r in provenance
            if not r.get("class_positive", True)
        ]
        if not absent:
            return None
        mask = torch.ones_like(model.fusion.weight)
        mask[:, absent] = 0.0
        logger.info(
            "fusion: %d prototypes of classes without training positives are pruned.", len(absent)
        )
        return mask

    def run_baseline(self, net: ResNet1DClassifier, label_index: Tensor) -> None:
        pos_weight = self.pos_weight(label_index)
        train_loader, val_loader = self.loaders(None)
        self.fit(
            "baseline",
            lambda: SupervisedTask(net, label_index, pos_weight),
            self.cfg.trainer.epochs,
            train_loader,
            val_loader,
        )


def _check_run_folder(out: Path, cfg: ECGConfig) -> dict[str, Any] | None:
    path = out / "state.pt"
    if not path.exists():
        if out.exists() and any(out.iterdir()) and not (out / "config.yaml").exists():
            raise InputError(
                f"Expected --out {out} to be a new folder or an ECG run folder, but it holds "
                "other files; use another folder."
            )
        return None
    state = safe_load(path)
    if not isinstance(state, dict) or state.get("domain") != DOMAIN:
        raise InputError(
            f"Expected {out} to be an ECG run folder, but {path} belongs to another pipeline; "
            "use another --out folder."
        )
    diff = config_diff(
        state["config"],
        jsonable(to_dict(cfg)),
        _RESUME_IGNORES,
    )
    if diff:
        raise InputError(
            f"{out} holds a run with a different config ({'; '.join(diff[:5])}). "
            f"Use another --out folder, or delete {out} to start over."
        )
    return state


def _save_state(
    out: Path, cfg: ECGConfig, finished: bool, stages: Sequence[str], **extra: Any
) -> None:
    atomic_torch_save(
        {
            "format_version": FORMAT_VERSION,
            "domain": DOMAIN,
            "state_version": _STATE_VERSION,
            "config": jsonable(to_dict(cfg)),
            "finished": finished,
            "stages": list(stages),
            **jsonable(extra),
        },
        out / "state.pt",
    )


def train(
    cfg: ECGConfig, out: str | Path, *, data: ECGArrays | None = None, progress: bool = True
) -> dict[str, Any]:
    """Train ProtoECGNet (or the baseline) through all stages and evaluate it on fold 10.

    Args:
        cfg: The config.
        out: The run folder (created; a run already there with the same config is resumed).
        data: Already loaded data (else read from ``cfg.data``).
        progress: Show progress bars (also needs ``trainer.progress``).

    Returns:
        The test metrics written to ``metrics.json``.

    Raises:
        InputError: On bad data, an empty fold, or a run folder holding another config or
            another pipeline's run.
    """
    out = Path(out)
    state = _check_run_folder(out, cfg)
    if state is not None and state.get("finished") and (out / "metrics.json").exists():
        logger.info("%s already finished; reporting its metrics.", out)
        metrics: dict[str, Any] = read_json(out / "metrics.json")
        return metrics
    if data is None:  # bad data fails before anything is written
        data = load_data(cfg.data, progress=progress)
    label_index = branch_label_index(data, cfg.model, cfg.data.label_set)
    run = _Run(cfg, out, data, progress)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_yaml(to_dict(cfg)))
    with log_to_file(out / "log.txt", _LOGGERS), torch_threads(cfg.threads):
        if state is None:
            _save_state(out, cfg, False, [])
        seed_everything(cfg.trainer.seed)
        model = build_model(
            cfg,
            label_index,
            len(data.label_names),
            int(data.signals.shape[-1]),
            int(data.signals.shape[1]),
        )
        all_index = torch.arange(len(data.label_names))
        start = time.perf_counter()
        provenance: list[dict[str, Any]] = []
        if isinstance(model, ProtoECGNet):
            for name, branch in model.branches.items():
                provenance += run.run_branch(name, branch, model.label_index(name))  # type: ignore[arg-type]
            run.run_fusion(model, all_index, provenance)
        else:
            assert isinstance(model, ResNet1DClassifier)
            run.run_baseline(model, all_index)
        train_seconds = time.perf_counter() - start
        model.cpu()
        atomic_torch_save(
            {k: v.detach().cpu() for k, v in model.state_dict().items()}, out / "weights.pt"
        )
        if provenance:
            write_json(out / "prototypes.json", provenance)
        write_csv(out / "history.csv", run.history)
        run.boundary("weights")
        metrics = evaluate_model(model, cfg, data, out)
        metrics["train_seconds"] = train_seconds
        metrics["stages"] = run.stage_metrics
        metrics["params"] = int(sum(p.numel() for p in model.parameters()))
        write_json(out / "metrics.json", metrics)
        run.boundary("metrics")
        _save_state(
            out,
            cfg,
            True,
            list(run.stage_metrics),
            label_names=data.label_names,
            train_positives=[int(v) for v in run.train_labels.sum(dim=0).tolist()],
            label_index=label_index,
            signal_length=int(data.signals.shape[-1]),
            leads=int(data.signals.shape[1]),
            sampling_rate=data.sampling_rate,
        )
        logger.info(
            "test fold 10: macro AUROC %.4f, weighted AUROC %.4f (%d ECGs, %d labels evaluated)",
            metrics["macro_auc"],
            metrics["weighted_auc"],
            metrics["n_test"],
            metrics["n_labels_evaluated"],
        )
        return metrics


# ----------------------------------------------------------------------------- inference


@torch.no_grad()
def predict(
    model: nn.Module,
    data: ECGArrays,
    rows: np.ndarray,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> dict[str, np.ndarray]:
    """Logits of the whole label set (and each branch's) for ``rows``.

    AUROC is computed from logits: a sigmoid in float32 rounds logits below about -104 (or
    above 17) to the same probability, and ties would pull an AUROC towards 0.5. The branch
    classifiers of the official +1/-0.5 initialisation over scaled similarities produce such
    logits.

    Args:
        model: A trained ProtoECGNet or ResNet1D baseline (put in eval mode).
        data: The data set.
        rows: Rows to predict.
        batch_size: ECGs per forward pass.
        device: Where to compute.

    Returns:
        ``{"logits": (N, C)}`` plus ``"branch/<name>": (N, C_b)`` logits of each prototype
        branch's own classifier. float64.
    """
    model.eval().to(device)
    out: dict[str, list[np.ndarray]] = {}
    for x, _, _ in _loader(data, rows, batch_size, shuffle=False):
        res = model(x.to(device))
        logits = res if isinstance(res, Tensor) else res.logits
        out.setdefault("logits", []).append(logits.double().cpu().numpy())
        if not isinstance(res, Tensor):
            for name, b in res.branches.items():
                out.setdefault(f"branch/{name}", []).append(b.logits.double().cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate_model(
    model: nn.Module, cfg: ECGConfig, data: ECGArrays, out: Path | None = None
) -> dict[str, Any]:
    """Test-fold (strat_fold 10) metrics of a trained model; writes ``test_predictions.csv``.

    Args:
        model: The trained model.
        cfg: Its config.
        data: The data set.
        out: The run folder for ``test_predictions.csv`` (``None``: nothing written).

    Returns:
        ``macro_auc``, ``weighted_auc``, ``n_test``, ``per_label``, ``label_set``,
        ``n_labels_evaluated``, ``labels_skipped``, ``batch_averaged_auc_official`` and, for
        ProtoECGNet, ``branches`` (each branch classifier's own test AUROC on its classes).
    """
    rows = data.rows(TEST_FOLDS)
    if len(rows) == 0:
        raise InputError(
            f"Expected the test fold (strat_fold 10) of {cfg.data.data_dir} to hold ECGs, "
            "but it is empty."
        )
    preds = predict(model, data, rows, device=resolve_device(cfg.trainer.device))
    y = np.asarray(data.labels[rows])
    m = auroc_metrics(preds["logits"], y, data.label_names)
    metrics: dict[str, Any] = {
        "macro_auc": m["macro_auc"],
        "weighted_auc": m["weighted_auc"],
        "n_test": len(rows),
        "per_label": m["per_label"],
        "label_set": cfg.data.label_set,
        "n_labels": len(data.label_names),
        "n_labels_evaluated": m["n_labels_evaluated"],
        "labels_skipped": m["labels_skipped"],
        "batch_averaged_auc_official": batch_averaged_auc(preds["logits"], y),
        "architecture": cfg.model.architecture,
    }
    if isinstance(model, ProtoECGNet):
        metrics["branches"] = {}
        for name in model.branches:
            idx = model.label_index(name).numpy()
            bm = auroc_metrics(
                preds[f"branch/{name}"], y[:, idx], [data.label_names[i] for i in idx]
            )
            metrics["branches"][name] = {
                "macro_auc": bm["macro_auc"],
                "weighted_auc": bm["weighted_auc"],
                "n_labels_evaluated": bm["n_labels_evaluated"],
            }
    if out is not None:
        rows_out = [
            {
                "ecg_id": int(data.ecg_ids[r]),
                **{n: float(p) for n, p in zip(data.label_names, prob)},
            }
            for r, prob in zip(rows, sigmoid(preds["logits"]))
        ]
        write_csv(out / "test_predictions.csv", rows_out)
    return metrics


@dataclass
class LoadedRun:
    """A trained run folder, loaded.

    Attributes:
        path: The run folder.
        config: Its config.
        model: The trained model, in eval mode on the CPU.
        label_names: The label set's codes.
        label_index: Branch -> class columns.
        prototypes: Projection provenance (``prototypes.json``), empty if none.
        metrics: Its ``metrics.json`` (empty if absent).
        train_positives: Training ECGs with each label (``None``: not recorded).
        similarity_stats: ``mean``, ``std`` (P,) and ``quantiles`` (101, P) of every
            prototype's raw similarity over the training ECGs (``None``: not recorded).
    """

    path: Path
    config: ECGConfig
    model: nn.Module
    label_names: list[str]
    label_index: dict[str, list[int]]
    prototypes: list[dict[str, Any]]
    metrics: dict[str, Any]
    train_positives: list[int] | None = None
    similarity_stats: dict[str, Tensor] | None = None


def load_run(run: str | Path) -> LoadedRun:
    """Load a finished ``ecg train`` run folder (config, weights, provenance).

    Args:
        run: The run folder.

    Returns:
        The loaded run.

    Raises:
        InputError: If the folder is missing, is another pipeline's run folder, or holds an
            unfinished or corrupt run.
    """
    import yaml

    from shared.config import from_dict

    path = Path(run)
    if not path.is_dir():
        raise InputError(
            f"Expected --run {path} to be a run folder of `contrasuite ecg train`, "
            "but it does not exist."
        )
    state_path = path / "state.pt"
    if not state_path.exists():
        raise InputError(
            f"Expected {path} to be a run folder of `contrasuite ecg train`, "
            "but it has no state.pt."
        )
    state = safe_load(state_path)
    if not isinstance(state, dict) or state.get("domain") != DOMAIN:
        raise InputError(
            f"Expected --run {path} to be an ECG run folder (`contrasuite ecg train`), but it "
            "belongs to another pipeline."
        )
    if not state.get("finished"):
        raise InputError(
            f"The run in {path} has not finished; run the same `contrasuite ecg train` "
            "command again to resume it."
        )
    try:
        raw = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(
            f"Expected {path / 'config.yaml'} to be a readable YAML config: {exc}"
        ) from None
    cfg = from_dict(ECGConfig, raw or {}, source=str(path / "config.yaml"))
    label_names = [str(n) for n in state["label_names"]]
    label_index = {str(k): [int(i) for i in v] for k, v in state["label_index"].items()}
    model = build_model(
        cfg, label_index, len(label_names), int(state["signal_length"]), int(state["leads"])
    )
    load_weights(path / "weights.pt", model)
    if isinstance(model, ProtoECGNet):
        _check_fusion_statistics(path, cfg, model)
    model.eval()
    prototypes = read_json(path / "prototypes.json") if (path / "prototypes.json").exists() else []
    metrics = read_json(path / "metrics.json") if (path / "metrics.json").exists() else {}
    positives = state.get("train_positives")
    stats = safe_load(path / SIMILARITY_STATS) if (path / SIMILARITY_STATS).exists() else None
    return LoadedRun(
        path,
        cfg,
        model,
        label_names,
        label_index,
        prototypes,
        metrics,
        None if positives is None else [int(v) for v in positives],
        stats if isinstance(stats, dict) else None,
    )


def _check_fusion_statistics(path: Path, cfg: ECGConfig, model: ProtoECGNet) -> None:
    """Check that ``model``'s fusion standardization is the one its fusion stage computed.

    Raises:
        InputError: If the fusion stage's statistics are missing, or ``weights.pt`` holds
            other statistics (weights or a stage folder copied from another run).
    """
    st = cfg.stages
    epochs = cfg.trainer.epochs if st.fusion_epochs is None else st.fusion_epochs
    if st.fusion_input != "standardized" or epochs == 0:
        return
    stage = path / "fusion" / "weights.pt"
    saved = safe_load(stage) if stage.exists() else None
    if not isinstance(saved, Mapping) or not {"input_mean", "input_std"} <= set(saved):
        raise InputError(
            f"Expected the fusion layer's standardization statistics in {stage}, but they are "
            f"missing; train the run again (same command, another --out) to recompute them."
        )
    mean, std = saved["input_mean"], saved["input_std"]
    if (
        not isinstance(mean, Tensor)
        or not isinstance(std, Tensor)
        or mean.shape != model.fusion_mean.shape
        or not torch.equal(mean.float(), model.fusion_mean)
        or not torch.equal(std.float(), model.fusion_std)
    ):
        raise InputError(
            f"The fusion standardization statistics in {path / 'weights.pt'} are not those of "
            f"the run's fusion stage ({stage}): the weights or the stage come from another run."
        )
