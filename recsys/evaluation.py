"""Offline evaluation of sequential recommenders under one protocol (``recsys evaluate``).

Each model is trained with RecBole's loop on the same data split and seed, selected on the
validation metric with early stopping, then tested once with its best weights:

* protocol: time-ordered leave-one-out (last item = test, the one before = validation), full
  ranking over all items, the last 50 items as input, hit / ndcg / mrr at 5, 10 and 20;
  optionally each user's earlier items are removed from the ranking (``mask_history``; off by
  default, as in the papers);
* models: RecBole's ``SASRec``, ``GRU4Rec`` and ``BERT4Rec``; ours: ``FastSASRec`` (SASRec with
  :mod:`recsys.encoder`'s forward pass), ``CL4SRec``, ``MCLRec`` (alternating update) and
  ``MCLRec-J`` (joint update);
* per-data-set defaults (methods.md 2.7): MCLRec's lambda and beta, and the transformer dropout
  (0.5; 0.1 on MovieLens).

The run folder ``RUN`` gets ``config.yaml``, ``results.json`` (contract.md keys),
``results.md``, ``metrics.json`` (= results.json), ``history.csv`` (every model's epochs),
``valid_ndcg.png`` and one folder per model (``metrics.json``, ``history.csv``, ``settings.json``,
``weights.pt``, ``state.pt``). A killed run started again with the same settings resumes: finished
models are kept, the interrupted one continues after its last complete epoch.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from recbole.model.sequential_recommender import BERT4Rec, GRU4Rec, SASRec
from recbole.utils import init_seed

from recsys.data import DatasetSource, resolve_dataset
from recsys.encoder import FastSASRec
from recsys.loading import build_config, load_data
from recsys.models import CL4SRec, MCLRec
from recsys.trainer import HistoryMask, MCLRecTrainer, RecTrainer
from shared.config import dump_yaml, to_dict
from shared.errors import InputError
from shared.io import atomic_write_bytes, atomic_write_text, read_json, write_csv, write_json
from shared.runtime import torch_threads
from shared.training.checkpoint import config_diff
from shared.validation import closest

logger = logging.getLogger(__name__)

__all__ = [
    "MODEL_NAMES",
    "AugmentConfig",
    "ContrastConfig",
    "EncoderConfig",
    "ModelResult",
    "Profile",
    "RecsysConfig",
    "TrainerConfig",
    "dataset_profile",
    "evaluate_models",
    "recbole_settings",
]

#: Metric keys of ``results.json`` (contract.md) and of the tables.
CONTRACT_METRICS = ("hit@10", "ndcg@10", "hit@20", "ndcg@20", "mrr@10")
TABLE_METRICS = ("hit@5", "hit@10", "hit@20", "ndcg@5", "ndcg@10", "ndcg@20", "mrr@10")


@dataclass(frozen=True)
class _ModelSpec:
    model: type
    trainer: type[RecTrainer]
    transformer: bool  # takes the shared encoder settings
    contrastive: bool  # takes the augmentation settings
    extra: Mapping[str, Any] = field(default_factory=dict)


_MODELS: dict[str, _ModelSpec] = {
    "SASRec": _ModelSpec(SASRec, RecTrainer, True, False),
    "FastSASRec": _ModelSpec(FastSASRec, RecTrainer, True, False),
    "GRU4Rec": _ModelSpec(GRU4Rec, RecTrainer, False, False),
    "BERT4Rec": _ModelSpec(BERT4Rec, RecTrainer, False, False),
    "CL4SRec": _ModelSpec(CL4SRec, RecTrainer, True, True),
    "MCLRec": _ModelSpec(MCLRec, MCLRecTrainer, True, True, {"joint": False}),
    "MCLRec-J": _ModelSpec(MCLRec, MCLRecTrainer, True, True, {"joint": True}),
}

#: Names accepted by ``--models``.
MODEL_NAMES = tuple(_MODELS)

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
            on MovieLens; methods.md 2.3).
        fast: Our faster forward pass for CL4SRec and MCLRec (same parameters and maths;
            :mod:`recsys.encoder`). RecBole's ``SASRec`` always runs RecBole's.
    """

    hidden_size: int = 64
    n_layers: int = 2
    n_heads: int = 2
    inner_size: int = 256
    dropout: float | None = None
    fast: bool = True

    def __post_init__(self) -> None:
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
        if not self.tau > 0:
            raise ValueError(f"Expected `tau` > 0, but got {self.tau}.")


@dataclass(frozen=True)
class TrainerConfig:
    """Training and model selection (the same for every model).

    Attributes:
        epochs: Maximum epochs (100, as the MCLRec scripts).
        batch_size: Training batch size (256).
        eval_batch_size: Evaluation batch size (users per batch).
        lr: Adam learning rate (1e-3).
        weight_decay: Adam weight decay (0).
        stopping_step: Early stopping patience in epochs without improvement (10).
        valid_metric: Model selection metric, ``hit|ndcg|mrr@k`` (``ndcg@10``).
        seed: Random seed of every model (2020).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: Progress bars per model and epoch.
        max_batches: Train on at most this many batches per epoch (quick runs); ``None`` = all.
        threads: CPU threads of torch during the run (``None``: torch's default). On a CPU
            shared with other jobs, 1 avoids the thread oversubscription that made a SASRec
            step 3-5x slower here.
    """

    epochs: int = 100
    batch_size: int = 256
    eval_batch_size: int = 4096
    lr: float = 1e-3
    weight_decay: float = 0.0
    stopping_step: int = 10
    valid_metric: str = "ndcg@10"
    seed: int = 2020
    device: str = "auto"
    progress: bool = True
    max_batches: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"Expected `threads` >= 1 or null, but got {self.threads}.")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"Expected `{name}` >= 1, but got {getattr(self, name)}.")
        if self.max_batches is not None and self.max_batches < 1:
            raise ValueError(f"Expected `max_batches` >= 1 or null, but got {self.max_batches}.")
        if not _METRIC.match(self.valid_metric.lower()):
            raise ValueError(
                f"Expected `valid_metric` like 'ndcg@10' (hit, ndcg or mrr), "
                f"but got {self.valid_metric!r}."
            )


@dataclass(frozen=True)
class RecsysConfig:
    """Everything ``recsys evaluate`` needs (``key.sub=value`` overrides on the command line).

    Attributes:
        dataset: ``ml-100k``, a RecBole atomic-file folder, or a one-user-per-line text file.
        models: Model names, trained in this order (see :data:`MODEL_NAMES`).
        max_seq_length: Input length (the last 50 items).
        mask_history: Remove each user's earlier items from the ranking at evaluation.
        topk: Cut-offs of the metrics (must include 10 and 20).
        encoder: Encoder settings.
        augment: Augmentation settings.
        contrast: Contrastive settings.
        trainer: Training settings.
    """

    dataset: str = "ml-100k"
    models: tuple[str, ...] = ("SASRec", "MCLRec")
    max_seq_length: int = 50
    mask_history: bool = False
    topk: tuple[int, ...] = (5, 10, 20)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    contrast: ContrastConfig = field(default_factory=ContrastConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError(f"Expected at least one model ({', '.join(MODEL_NAMES)}).")
        for name in self.models:
            if name not in _MODELS:
                hint = closest(name, MODEL_NAMES)
                raise ValueError(
                    f"unknown model {name!r}"
                    + (f"; did you mean {hint!r}?" if hint else ".")
                    + f" Available: {', '.join(MODEL_NAMES)}."
                )
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"Expected each model once, but got {list(self.models)}.")
        if not {10, 20} <= set(self.topk):
            raise ValueError(f"Expected `topk` to include 10 and 20, but got {list(self.topk)}.")
        k = int(self.trainer.valid_metric.split("@")[1])
        if k not in self.topk:
            raise ValueError(
                f"Expected the cut-off of trainer.valid_metric ({k}) among topk {list(self.topk)}."
            )
        if self.max_seq_length < 2:
            raise ValueError(f"Expected max_seq_length >= 2, but got {self.max_seq_length}.")


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


def recbole_settings(cfg: RecsysConfig, model_name: str, profile: Profile) -> dict[str, Any]:
    """RecBole config entries for one model (on top of :data:`recsys.loading.PROTOCOL`).

    Args:
        cfg: The evaluation config.
        model_name: One of :data:`MODEL_NAMES`.
        profile: The data set's defaults.

    Returns:
        A plain dict for RecBole's ``config_dict``.
    """
    spec = _MODELS[model_name]
    t = cfg.trainer
    out: dict[str, Any] = {
        "epochs": t.epochs,
        "train_batch_size": t.batch_size,
        "eval_batch_size": t.eval_batch_size,
        "learning_rate": t.lr,
        "weight_decay": t.weight_decay,
        "stopping_step": t.stopping_step,
        "eval_step": 1,
        "valid_metric": t.valid_metric,
        "seed": t.seed,
        "MAX_ITEM_LIST_LENGTH": cfg.max_seq_length,
        "topk": list(cfg.topk),
    }
    if spec.transformer:
        e = cfg.encoder
        dropout = profile.dropout if e.dropout is None else e.dropout
        out.update(
            n_layers=e.n_layers,
            n_heads=e.n_heads,
            hidden_size=e.hidden_size,
            inner_size=e.inner_size,
            hidden_dropout_prob=dropout,
            attn_dropout_prob=dropout,
            hidden_act="gelu",
            layer_norm_eps=1e-12,
            initializer_range=0.02,
            loss_type="CE",
        )
    if spec.contrastive:
        c, a = cfg.contrast, cfg.augment
        out.update(
            crop_keep=a.crop_keep,
            mask_ratio=a.mask_ratio,
            reorder_ratio=a.reorder_ratio,
            tau=c.tau,
            sim=c.sim,
            fast_encoder=cfg.encoder.fast,
        )
        if spec.model is CL4SRec:
            out["cl_weight"] = c.cl4srec_weight
        else:
            out.update(
                cl_weight=profile.mclrec_lambda if c.mclrec_lambda is None else c.mclrec_lambda,
                beta=profile.mclrec_beta if c.mclrec_beta is None else c.mclrec_beta,
                regularizer=c.regularizer,
                augmenter_lr=c.augmenter_lr,
            )
    out.update(spec.extra)
    return out


# ----------------------------------------------------------------------------- results


@dataclass
class ModelResult:
    """One model's outcome.

    Attributes:
        name: The model name.
        test: Test metrics (``hit@10`` ...).
        valid: Best validation metrics.
        train_seconds: Seconds of training (evaluation excluded).
        epochs: Epochs trained.
        params: Number of parameters.
        best_epoch: The selected epoch (1-based).
        eval_seconds: Mean seconds of one validation pass.
        test_seconds: Seconds of the test pass.
        history: One row per epoch.
    """

    name: str
    test: dict[str, float]
    valid: dict[str, float]
    train_seconds: float
    epochs: int
    params: int
    best_epoch: int
    eval_seconds: float
    test_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)

    def contract(self) -> dict[str, Any]:
        """The ``results.json`` entry (contract.md keys)."""
        return {
            "test": dict(self.test),
            "valid": dict(self.valid),
            "train_seconds": round(self.train_seconds, 3),
            "epochs": self.epochs,
            "params": self.params,
        }

    def summary(self) -> dict[str, Any]:
        """The model folder's ``metrics.json``."""
        out = self.contract()
        epoch_seconds = self.train_seconds / self.epochs if self.epochs else 0.0
        out.update(
            best_epoch=self.best_epoch,
            epoch_seconds=round(epoch_seconds, 3),
            eval_seconds=round(self.eval_seconds, 3),
            test_seconds=round(self.test_seconds, 3),
        )
        return out


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        parsed: dict[str, Any] = {}
        for key, value in row.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                parsed[key] = value
                continue
            parsed[key] = int(number) if key in ("epoch", "batches") else number
        out.append(parsed)
    return out


def _metrics(result: Mapping[str, Any] | None) -> dict[str, float]:
    return {str(k).lower(): float(v) for k, v in (result or {}).items()}


# ----------------------------------------------------------------------------- running


def _check_resume(out: Path, cfg: RecsysConfig) -> None:
    path = out / "config.yaml"
    current = to_dict(cfg)
    if path.exists():
        try:
            saved = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: cannot read the earlier run's config: {exc}") from None
        ignore = frozenset({"models", "trainer.progress", "trainer.device", "trainer.threads"})
        diff = config_diff(saved, current, ignore)
        if diff:
            raise InputError(
                f"--out {out} holds a run with other settings ({'; '.join(diff[:4])}); "
                "use another --out folder, or the same settings to resume it."
            )
    saved_models = list(current["models"])
    atomic_write_text(path, dump_yaml({**current, "models": saved_models}))


def _run_model(
    cfg: RecsysConfig, name: str, source: DatasetSource, profile: Profile, out: Path
) -> ModelResult:
    spec = _MODELS[name]
    run_dir = out / name
    done = run_dir / "metrics.json"
    if done.exists():
        data = read_json(done)
        logger.info("%s: already evaluated in %s (kept)", name, run_dir)
        return ModelResult(
            name,
            data["test"],
            data["valid"],
            data["train_seconds"],
            data["epochs"],
            data["params"],
            data["best_epoch"],
            data["eval_seconds"],
            data["test_seconds"],
            _read_history(run_dir / "history.csv"),
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = recbole_settings(cfg, name, profile)
    write_json(run_dir / "settings.json", settings)
    config = build_config(
        spec.model, source, settings, checkpoint_dir=run_dir, device=cfg.trainer.device
    )
    dataset, train, valid, test = load_data(config)
    init_seed(config["seed"], config["reproducibility"])
    model = spec.model(config, train.dataset).to(config["device"])
    history_mask = None
    if cfg.mask_history:
        history_mask = HistoryMask(
            train.dataset,
            valid.dataset,
            uid_field=dataset.uid_field,
            iid_field=dataset.iid_field,
            n_users=dataset.user_num,
        )
    trainer = spec.trainer(
        config,
        model,
        run_dir=run_dir,
        label=name,
        progress=cfg.trainer.progress,
        history_mask=history_mask,
        max_batches=cfg.trainer.max_batches,
    )
    trainer.fit(train, valid)
    start = time.perf_counter()
    test_result = trainer.evaluate(test, load_best_model=True, phase="test")
    test_seconds = time.perf_counter() - start
    history = trainer.history
    evals = [row["valid_seconds"] for row in history if "valid_seconds" in row]
    result = ModelResult(
        name=name,
        test=_metrics(test_result),
        valid=_metrics(trainer.best_valid_result),
        train_seconds=trainer.total_train_seconds(),
        epochs=trainer.epochs_run,
        params=sum(p.numel() for p in model.parameters()),
        best_epoch=trainer.best_epoch + 1,
        eval_seconds=sum(evals) / len(evals) if evals else 0.0,
        test_seconds=test_seconds,
        history=history,
    )
    write_json(done, result.summary())
    logger.info(
        "%s: test ndcg@10 %.4f hit@10 %.4f (best epoch %d of %d, %.1f s/epoch)",
        name,
        result.test.get("ndcg@10", float("nan")),
        result.test.get("hit@10", float("nan")),
        result.best_epoch,
        result.epochs,
        result.summary()["epoch_seconds"],
    )
    return result


def evaluate_models(
    cfg: RecsysConfig,
    out: str | Path,
    *,
    on_model_done: Callable[[ModelResult], None] | None = None,
) -> dict[str, ModelResult]:
    """Train and test every model of ``cfg`` on its data set; write the run folder.

    Args:
        cfg: The evaluation config.
        out: The run folder (created; an earlier run with the same settings is resumed).
        on_model_done: Called after each model.

    Returns:
        ``{model name: result}`` in ``cfg.models`` order.

    Raises:
        InputError: On bad data (see :mod:`recsys.data`), an ``out`` that is a file, or an
            earlier run in ``out`` with different settings.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder.")
    out.mkdir(parents=True, exist_ok=True)
    source = resolve_dataset(cfg.dataset, out)
    _check_resume(out, cfg)
    profile = dataset_profile(source.name)
    logger.info(
        "recsys evaluate: %s (%s) models %s -> %s; defaults: %s",
        cfg.dataset,
        source.kind,
        ", ".join(cfg.models),
        out,
        profile.source,
    )
    results: dict[str, ModelResult] = {}
    with torch_threads(cfg.trainer.threads):
        for name in cfg.models:
            results[name] = _run_model(cfg, name, source, profile, out)
            write_reports(out, cfg, results, source, profile)
            if on_model_done is not None:
                on_model_done(results[name])
    return results


# ----------------------------------------------------------------------------- reports


def write_reports(
    out: Path,
    cfg: RecsysConfig,
    results: Mapping[str, ModelResult],
    source: DatasetSource,
    profile: Profile,
) -> None:
    """Write ``results.json``, ``metrics.json``, ``history.csv``, ``results.md`` and the plot."""
    payload = {name: r.contract() for name, r in results.items()}
    write_json(out / "results.json", payload)
    write_json(out / "metrics.json", payload)
    rows = [{"model": name, **row} for name, r in results.items() for row in r.history]
    write_csv(out / "history.csv", rows)
    atomic_write_text(out / "results.md", results_markdown(cfg, results, source, profile))
    png = validation_plot(results)
    if png is not None:
        atomic_write_bytes(out / "valid_ndcg.png", png)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def results_markdown(
    cfg: RecsysConfig,
    results: Mapping[str, ModelResult],
    source: DatasetSource,
    profile: Profile,
) -> str:
    """The ``results.md`` table (test metrics, selection, timing) with the protocol."""
    head = [
        "model",
        *[f"test {m}" for m in TABLE_METRICS],
        "valid ndcg@10",
        "best epoch",
        "epochs",
        "s/epoch",
        "eval s",
        "params",
    ]
    lines = [
        f"# Offline evaluation on {source.name}",
        "",
        "Protocol: time-ordered leave-one-out (last item = test, second-to-last = validation), "
        f"full ranking over all items, input = last {cfg.max_seq_length} items, "
        f"model selection on validation {cfg.trainer.valid_metric} with early stopping "
        f"(patience {cfg.trainer.stopping_step}), seed {cfg.trainer.seed}, "
        f"history masking {'on' if cfg.mask_history else 'off'}. "
        f"Data set: {source.origin} ({source.kind}). MCLRec defaults: {profile.source}.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, r in results.items():
        s = r.summary()
        cells = [
            name,
            *[_fmt(r.test.get(m)) for m in TABLE_METRICS],
            _fmt(r.valid.get("ndcg@10")),
            str(r.best_epoch),
            str(r.epochs),
            f"{s['epoch_seconds']:.1f}",
            f"{s['eval_seconds']:.2f}",
            f"{r.params:,}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if cfg.trainer.max_batches is not None:
        lines += ["", f"Quick run: at most {cfg.trainer.max_batches} batches per epoch."]
    return "\n".join(lines) + "\n"


def validation_plot(results: Mapping[str, ModelResult]) -> bytes | None:
    """A PNG of the validation ``ndcg@10`` per epoch, one line per model (None if no epochs)."""
    if not any(r.history for r in results.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.subplots()
    for name, r in results.items():
        epochs = [row["epoch"] for row in r.history]
        values = [float(row.get("valid/ndcg@10", float("nan"))) for row in r.history]
        ax.plot(epochs, values, marker="o", markersize=3, label=name)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation NDCG@10")
    ax.set_title("Validation NDCG@10 per epoch (full ranking)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


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
