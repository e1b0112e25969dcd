"""Settings of ``contrasuite recsys evaluate`` (torch-free: frozen dataclasses and defaults).

:class:`RecsysConfig` is what ``key.sub=value`` overrides and ``--config FILE.yaml`` set;
:func:`dataset_profile` gives the per-data-set defaults of methods.md 2.7 (MCLRec's lambda and
beta, the transformer dropout). Model names live here too (:data:`MODEL_NAMES`), so that the
command line can check them without importing RecBole.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.validation import closest

__all__ = [
    "CONTRACT_METRICS",
    "MODEL_NAMES",
    "TABLE_METRICS",
    "AugmentConfig",
    "ContrastConfig",
    "DuoRecConfig",
    "EncoderConfig",
    "Profile",
    "RecsysConfig",
    "TrainerConfig",
    "dataset_profile",
    "replace",
]

#: Metric keys of ``results.json`` and of the tables.
CONTRACT_METRICS = ("hit@10", "ndcg@10", "hit@20", "ndcg@20", "mrr@10")
TABLE_METRICS = ("hit@5", "hit@10", "hit@20", "ndcg@5", "ndcg@10", "ndcg@20", "mrr@10")

#: Names accepted by ``--models`` (the registry is :data:`recsys.evaluation.MODELS`).
MODEL_NAMES = (
    "SASRec",
    "FastSASRec",
    "SASRec2Step",
    "GRU4Rec",
    "BERT4Rec",
    "CL4SRec",
    "DuoRec",
    "MCLRec",
    "MCLRec-J",
)

_METRIC = re.compile(r"^(hit|ndcg|mrr)@(\d+)$")

# ----------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class EncoderConfig:
    """The SASRec-style encoder shared by SASRec, FastSASRec, CL4SRec and MCLRec.

    Attributes:
        hidden_size: Embedding and hidden size ``d`` (64).
        n_layers: Transformer layers (2).
        n_heads: Attention heads (2).
        inner_size: Feed-forward width (256).
        dropout: Hidden and attention dropout; ``None`` = the data set's default (0.5, or 0.1
            on MovieLens; methods.md 2.3) for the transformer models, RecBole's own default for
            GRU4Rec and BERT4Rec.
        dropout_grid: Dropout values to select from on validation, e.g. ``[0.1, 0.5]``: every
            model with a dropout setting (all but none of the suite's) is trained once per
            value and seed, and the value with the best validation metric, averaged over the
            seeds, is the one tested and reported. Empty: no selection (``dropout`` is used).
        fast: Our faster forward pass for CL4SRec and MCLRec (same parameters and maths;
            :mod:`recsys.encoder`). RecBole's ``SASRec`` always runs RecBole's.
    """

    hidden_size: int = 64
    n_layers: int = 2
    n_heads: int = 2
    inner_size: int = 256
    dropout: float | None = None
    dropout_grid: tuple[float, ...] = ()
    fast: bool = True

    def __post_init__(self) -> None:
        for value in self.dropout_grid:
            if not 0.0 <= value < 1.0:
                raise ValueError(f"Expected every dropout_grid value in [0, 1), but got {value}.")
        if len(set(self.dropout_grid)) != len(self.dropout_grid):
            raise ValueError(f"Expected distinct dropout_grid values, got {self.dropout_grid}.")
        if self.dropout_grid and self.dropout is not None:
            raise ValueError(
                "Expected either encoder.dropout or encoder.dropout_grid, but got both."
            )
        if self.hidden_size % self.n_heads:
            raise ValueError(
                f"Expected hidden_size ({self.hidden_size}) to be a multiple of n_heads "
                f"({self.n_heads})."
            )
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"Expected dropout in [0, 1), but got {self.dropout}.")


@dataclass(frozen=True)
class AugmentConfig:
    """Stochastic augmentation of CL4SRec and MCLRec (methods.md 2.4).

    Attributes:
        crop_keep: Fraction of items a crop keeps (eta = 1 - crop_ratio = 0.5).
        mask_ratio: Fraction of items set to padding (gamma = 0.5).
        reorder_ratio: Fraction of items in the shuffled span (beta = 0.8).
    """

    crop_keep: float = 0.5
    mask_ratio: float = 0.5
    reorder_ratio: float = 0.8

    def __post_init__(self) -> None:
        for name in ("crop_keep", "mask_ratio", "reorder_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Expected `{name}` in [0, 1], but got {value}.")


@dataclass(frozen=True)
class ContrastConfig:
    """Contrastive settings of CL4SRec and MCLRec.

    Attributes:
        tau: Temperature of the view-view InfoNCE (L_cl1) and of R (1.0).
        sim: ``"dot"`` (MCLRec's) or ``"cos"`` for the view-view InfoNCE.
        cl4srec_weight: CL4SRec's lambda (0.1).
        mclrec_lambda: MCLRec's lambda (weight of L_cl1); ``None`` = the data set's default.
        mclrec_beta: MCLRec's beta (weight of L_cl2 + R; gamma = 0.1 beta); ``None`` = default.
        regularizer: Add MCLRec's contrastive regularizer R.
        augmenter_lr: Learning rate of the augmenters; ``None`` = ``trainer.lr`` (1e-3).
    """

    tau: float = 1.0
    sim: Literal["dot", "cos"] = "dot"
    cl4srec_weight: float = 0.1
    mclrec_lambda: float | None = None
    mclrec_beta: float | None = None
    regularizer: bool = True
    augmenter_lr: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"Expected `tau` > 0, but got {self.tau}.")
        for name in ("cl4srec_weight", "mclrec_lambda", "mclrec_beta", "augmenter_lr"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"Expected `{name}` to be a finite number >= 0, but got {value}.")


@dataclass(frozen=True)
class DuoRecConfig:
    """DuoRec's settings (Qiu et al., WSDM 2022; defaults of its ``DuoRec.yaml`` and scripts).

    Attributes:
        lmd: Weight of the unsupervised term (model-level dropout views; 0.1).
        lmd_sem: Weight of the supervised term (same-target sequences; 0.1).
        tau: Temperature (``tau`` 1.0, dot product as ``sim: dot``).
        contrast: ``"us_x"`` (DuoRec as published: InfoNCE between a dropout view and a
            same-target sequence, weight ``lmd_sem``), ``"us"`` (both terms separately), ``"un"``
            (unsupervised only) or ``"su"`` (supervised only), as the official ``contrast``.
    """

    lmd: float = 0.1
    lmd_sem: float = 0.1
    tau: float = 1.0
    contrast: Literal["us_x", "us", "un", "su"] = "us_x"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"Expected `tau` > 0, but got {self.tau}.")
        for name in ("lmd", "lmd_sem"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"Expected `{name}` to be a finite number >= 0, but got {value}.")


@dataclass(frozen=True)
class TrainerConfig:
    """Training and model selection (the same for every model).

    Attributes:
        epochs: Maximum epochs (100, as the MCLRec scripts).
        batch_size: Training batch size (256).
        eval_batch_size: Evaluation batch size (users per batch).
        lr: Adam learning rate (1e-3).
        weight_decay: Adam weight decay (0).
        patience: Validated epochs without improvement before stopping, as the suite's other
            trainers count them; ``None`` = never stop. The default 11 is RecBole's
            ``stopping_step = 10`` of the MCLRec scripts (RecBole stops after
            ``stopping_step + 1`` epochs without improvement).
        monitor: Model selection metric, ``hit|ndcg|mrr@k`` (``ndcg@10``; ``val/ndcg@10`` is
            accepted too); higher is better.
        seed: Random seed of every model (2020).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: Progress bars per model and epoch.
        max_train_batches: Train on at most this many batches per epoch (quick runs); ``None``
            = all.
        threads: CPU threads of torch during the run (``None``: torch's default). On a CPU
            shared with other jobs, 1 avoids the thread oversubscription that made a SASRec
            step 3-5x slower here.
    """

    epochs: int = 100
    batch_size: int = 256
    eval_batch_size: int = 4096
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 11
    monitor: str = "ndcg@10"
    seed: int = 2020
    device: str = "auto"
    progress: bool = True
    max_train_batches: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (name == "lr" and value == 0):
                raise ValueError(
                    f"Expected `{name}` to be a finite number "
                    f"{'> 0' if name == 'lr' else '>= 0'}, but got {value}."
                )
        if self.seed < 0:
            raise ValueError(f"Expected `seed` >= 0, but got {self.seed}.")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"Expected `patience` >= 1 or null, but got {self.patience}.")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"Expected `threads` >= 1 or null, but got {self.threads}.")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"Expected `{name}` >= 1, but got {getattr(self, name)}.")
        if self.max_train_batches is not None and self.max_train_batches < 1:
            raise ValueError(
                f"Expected `max_train_batches` >= 1 or null, but got {self.max_train_batches}."
            )
        if not _METRIC.match(self.metric):
            raise ValueError(
                f"Expected `monitor` like 'ndcg@10' (hit, ndcg or mrr), but got {self.monitor!r}."
            )

    @property
    def metric(self) -> str:
        """``monitor`` as RecBole names it (``ndcg@10``, without a ``val/`` prefix)."""
        name = self.monitor.lower()
        return name[4:] if name.startswith("val/") else name

    @property
    def stopping_step(self) -> int:
        """RecBole's ``stopping_step`` for ``patience`` (``patience - 1``; never: a huge one)."""
        return 10**9 if self.patience is None else self.patience - 1


@dataclass(frozen=True)
class RecsysConfig:
    """Everything ``recsys evaluate`` needs (``key.sub=value`` overrides on the command line).

    Attributes:
        dataset: ``ml-100k``, a RecBole atomic-file folder, or a one-user-per-line text file.
        models: Model names, trained in this order (see :data:`MODEL_NAMES`); the first is the
            reference of the paired tests.
        seeds: Seeds to run every model with (``--seeds``); empty = ``trainer.seed`` alone.
            With several, ``results.json`` holds the means, ``test_std`` and per-seed values.
        max_seq_length: Input length (the last 50 items).
        mask_history: Remove each user's earlier items from the ranking at evaluation.
        topk: Cut-offs of the metrics (must include 10 and 20).
        encoder: Encoder settings.
        augment: Augmentation settings.
        contrast: Contrastive settings of CL4SRec and MCLRec.
        duorec: DuoRec's settings.
        trainer: Training settings.
    """

    dataset: str = "ml-100k"
    models: tuple[str, ...] = ("SASRec", "MCLRec")
    seeds: tuple[int, ...] = ()
    max_seq_length: int = 50
    mask_history: bool = False
    topk: tuple[int, ...] = (5, 10, 20)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    contrast: ContrastConfig = field(default_factory=ContrastConfig)
    duorec: DuoRecConfig = field(default_factory=DuoRecConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError(f"Expected at least one model ({', '.join(MODEL_NAMES)}).")
        for name in self.models:
            if name not in MODEL_NAMES:
                hint = _closest_model(name)
                raise ValueError(
                    f"unknown model {name!r}"
                    + (f"; did you mean {hint!r}?" if hint else ".")
                    + f" Available: {', '.join(MODEL_NAMES)}."
                )
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"Expected each model once, but got {list(self.models)}.")
        for seed in self.seeds:
            if seed < 0:
                raise ValueError(f"Expected every seed >= 0, but got {seed}.")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"Expected distinct seeds, but got {list(self.seeds)}.")
        if any(k < 1 for k in self.topk):
            raise ValueError(f"Expected `topk` values >= 1, but got {list(self.topk)}.")
        if not {10, 20} <= set(self.topk):
            raise ValueError(f"Expected `topk` to include 10 and 20, but got {list(self.topk)}.")
        k = int(self.trainer.metric.split("@")[1])
        if k not in self.topk:
            raise ValueError(
                f"Expected the cut-off of trainer.monitor ({k}) among topk {list(self.topk)}."
            )
        if self.max_seq_length < 2:
            raise ValueError(f"Expected max_seq_length >= 2, but got {self.max_seq_length}.")

    @property
    def run_seeds(self) -> tuple[int, ...]:
        """The seeds to run: ``seeds``, or ``(trainer.seed,)``."""
        return self.seeds or (self.trainer.seed,)


def _closest_model(name: str) -> str | None:
    """The model meant by ``name``: a case-insensitive match first, then the closest spelling."""
    for candidate in MODEL_NAMES:
        if candidate.lower() == name.lower():
            return candidate
    return closest(name, MODEL_NAMES)


# ----------------------------------------------------------------------------- defaults


@dataclass(frozen=True)
class Profile:
    """Per-data-set defaults (methods.md 2.7; the paper's best lambda and beta).

    Attributes:
        mclrec_lambda: MCLRec's lambda.
        mclrec_beta: MCLRec's beta.
        dropout: Transformer dropout.
        source: Where the values come from.
    """

    mclrec_lambda: float
    mclrec_beta: float
    dropout: float
    source: str


_PROFILES = {
    "beauty": Profile(0.0, 0.05, 0.5, "paper 4.5.2 / train_beauty.sh"),
    "sports": Profile(0.04, 0.4, 0.5, "paper 4.5.2 / train_sports.sh"),
    "yelp": Profile(0.03, 0.1, 0.5, "paper 4.5.2 / train_yelp.sh"),
    "toys": Profile(0.01, 0.1, 0.5, "train_toys.sh's values (that script runs Beauty)"),
    "ml-1m": Profile(0.0, 0.01, 0.1, "train_ml-1m.sh"),
    "ml-100k": Profile(0.0, 0.01, 0.1, "ml-1m's values (MovieLens; not in the paper)"),
}
_DEFAULT_PROFILE = Profile(0.0, 0.01, 0.5, "MCLRec.yaml defaults")


def dataset_profile(name: str) -> Profile:
    """The defaults for a data set name (case-insensitive; ``Sports_and_Outdoors`` -> sports).

    Args:
        name: The data set name (a file or folder stem).

    Returns:
        The matching :class:`Profile`, or MCLRec.yaml's defaults.
    """
    key = name.lower()
    if key in _PROFILES:
        return _PROFILES[key]
    for prefix in ("beauty", "sports", "yelp", "toys"):
        if key.startswith(prefix) or key.endswith("_" + prefix):
            return _PROFILES[prefix]
    return _DEFAULT_PROFILE


def replace(cfg: RecsysConfig, **changes: Any) -> RecsysConfig:
    """``dataclasses.replace`` for nested sections: ``replace(cfg, trainer={"epochs": 2})``."""
    values: dict[str, Any] = {}
    for key, value in changes.items():
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            values[key] = dataclasses.replace(current, **value)  # type: ignore[type-var]
        else:
            values[key] = value
    return dataclasses.replace(cfg, **values)
