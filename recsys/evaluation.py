"""Offline evaluation of sequential recommenders under one protocol (``recsys evaluate``).

Each model is trained with RecBole's loop on the same data split, selected on the validation
metric with early stopping, then tested once with its best weights:

* protocol: time-ordered leave-one-out (last item = test, the one before = validation), full
  ranking over all items, the last 50 items as input, hit / ndcg / mrr at 5, 10 and 20;
  optionally each user's earlier items are removed from the ranking (``mask_history``; off by
  default, as in the papers);
* models (:data:`MODELS`): RecBole's ``SASRec``, ``GRU4Rec`` and ``BERT4Rec``; ours:
  ``FastSASRec`` (SASRec on :mod:`recsys.encoder`'s forward pass), ``SASRec2Step`` (the control
  of MCLRec's two encoder updates per batch: MCLRec with beta = lambda = 0, i.e. SASRec with two
  Adam steps per batch in MCLRec's trainer), ``CL4SRec``, ``DuoRec``, ``MCLRec`` (alternating
  update) and ``MCLRec-J`` (joint update);
* seeds: every model runs once per seed of ``seeds``, seed by seed (every model at the first
  seed, then every model at the next, so a stopped run already has a whole table); the tables
  give mean +- std and a paired test of each model against the first one over the test users
  (:mod:`recsys.stats`);
* dropout selection: with ``encoder.dropout_grid`` every model with a dropout setting runs once
  per value, and the value with the best validation metric (mean over the seeds) is reported;
* per-data-set defaults (methods.md 2.7): MCLRec's lambda and beta, and the transformer dropout
  (0.5; 0.1 on MovieLens).

The run folder ``RUN`` gets ``config.yaml``, ``results.json``, ``results.md``,
``metrics.json`` (= results.json), ``history.csv`` (every run's epochs), ``per_user_ndcg@10.csv``,
``paired_tests.json``, ``valid_ndcg.png`` and one folder per model, or per model and variant
(``RUN/<model>/seed2021_dropout0.5``): ``metrics.json``, ``history.csv``, ``settings.json``,
``per_user_test.csv``, ``weights.pt``, ``state.pt``. A killed run started again with the same
settings resumes: finished runs are kept, the interrupted one continues after its last epoch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from recbole.model.sequential_recommender import BERT4Rec, GRU4Rec, SASRec
from recbole.utils import init_seed

from recsys._recbole import RECBOLE_LOGGER
from recsys.config import (
    CONTRACT_METRICS,
    MODEL_NAMES,
    TABLE_METRICS,
    Profile,
    RecsysConfig,
    dataset_profile,
)
from recsys.data import DatasetInfo, DatasetSource, inspect_dataset, resolve_dataset
from recsys.encoder import FastSASRec
from recsys.loading import build_config, load_data
from recsys.models import CL4SRec, DuoRec, MCLRec
from recsys.results import ModelResult, ModelSummary, _metrics, select_dropout
from recsys.trainer import HistoryMask, MCLRecTrainer, RecTrainer
from shared.errors import InputError
from shared.io import write_csv, write_json
from shared.runtime import torch_threads
from shared.training.run import RunFolder

logger = logging.getLogger(__name__)

__all__ = [
    "CONTRACT_METRICS",
    "MODELS",
    "MODEL_NAMES",
    "TABLE_METRICS",
    "ModelResult",
    "ModelSpec",
    "ModelSummary",
    "evaluate_models",
    "recbole_settings",
]

_TRANSFORMER_DROPOUT = ("hidden_dropout_prob", "attn_dropout_prob")


@dataclass(frozen=True)
class ModelSpec:
    """How a model name of ``--models`` is built and trained.

    Attributes:
        model: The RecBole model class.
        trainer: The trainer class.
        transformer: Takes the shared encoder settings (``encoder.*``).
        contrastive: Takes CL4SRec/MCLRec's augmentation and contrastive settings.
        dropout_keys: RecBole config keys set by ``encoder.dropout`` / ``dropout_grid``.
        ran_as: What actually runs, for the tables.
        extra: Fixed RecBole settings (applied last).
    """

    model: type
    trainer: type[RecTrainer]
    transformer: bool
    contrastive: bool
    dropout_keys: tuple[str, ...]
    ran_as: str
    extra: Mapping[str, Any] = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {
    "SASRec": ModelSpec(
        SASRec, RecTrainer, True, False, _TRANSFORMER_DROPOUT, "RecBole's SASRec and forward pass"
    ),
    "FastSASRec": ModelSpec(
        FastSASRec,
        RecTrainer,
        True,
        False,
        _TRANSFORMER_DROPOUT,
        "SASRec on our encoder path (recsys.encoder; same model and maths)",
    ),
    "SASRec2Step": ModelSpec(
        MCLRec,
        MCLRecTrainer,
        True,
        True,
        _TRANSFORMER_DROPOUT,
        "control: MCLRec with beta = lambda = 0 in MCLRec's trainer = SASRec (our encoder "
        "path) with two Adam steps per batch",
        {"joint": False, "beta": 0.0, "cl_weight": 0.0},
    ),
    "GRU4Rec": ModelSpec(GRU4Rec, RecTrainer, False, False, ("dropout_prob",), "RecBole's GRU4Rec"),
    "BERT4Rec": ModelSpec(
        BERT4Rec, RecTrainer, False, False, _TRANSFORMER_DROPOUT, "RecBole's BERT4Rec"
    ),
    "CL4SRec": ModelSpec(
        CL4SRec, RecTrainer, True, True, _TRANSFORMER_DROPOUT, "CL4SRec on our encoder path"
    ),
    "DuoRec": ModelSpec(
        DuoRec, RecTrainer, True, False, _TRANSFORMER_DROPOUT, "DuoRec on our encoder path"
    ),
    "MCLRec": ModelSpec(
        MCLRec,
        MCLRecTrainer,
        True,
        True,
        _TRANSFORMER_DROPOUT,
        "MCLRec, alternating update, our encoder path",
        {"joint": False},
    ),
    "MCLRec-J": ModelSpec(
        MCLRec,
        MCLRecTrainer,
        True,
        True,
        _TRANSFORMER_DROPOUT,
        "MCLRec-J (joint update), our encoder path",
        {"joint": True},
    ),
}
if tuple(MODELS) != MODEL_NAMES:  # pragma: no cover  (kept in step with recsys.config)
    raise RuntimeError("recsys.config.MODEL_NAMES and recsys.evaluation.MODELS differ.")


def recbole_settings(
    cfg: RecsysConfig,
    model_name: str,
    profile: Profile,
    *,
    seed: int | None = None,
    dropout: float | None = None,
) -> dict[str, Any]:
    """RecBole config entries for one model (on top of :data:`recsys.loading.PROTOCOL`).

    Args:
        cfg: The evaluation config.
        model_name: One of :data:`MODEL_NAMES`.
        profile: The data set's defaults.
        seed: The run's seed (default: ``trainer.seed``).
        dropout: The run's dropout (default: ``encoder.dropout``, else the profile's for the
            transformer models and RecBole's own for GRU4Rec and BERT4Rec).

    Returns:
        A plain dict for RecBole's ``config_dict``.
    """
    spec = MODELS[model_name]
    t = cfg.trainer
    out: dict[str, Any] = {
        "epochs": t.epochs,
        "train_batch_size": t.batch_size,
        "eval_batch_size": t.eval_batch_size,
        "learning_rate": t.lr,
        "weight_decay": t.weight_decay,
        "stopping_step": t.stopping_step,
        "eval_step": 1,
        "valid_metric": t.metric,
        "seed": t.seed if seed is None else seed,
        "MAX_ITEM_LIST_LENGTH": cfg.max_seq_length,
        "topk": list(cfg.topk),
    }
    e = cfg.encoder
    if dropout is None:
        dropout = e.dropout
    if spec.transformer:
        out.update(
            n_layers=e.n_layers,
            n_heads=e.n_heads,
            hidden_size=e.hidden_size,
            inner_size=e.inner_size,
            hidden_act="gelu",
            layer_norm_eps=1e-12,
            initializer_range=0.02,
            loss_type="CE",
        )
        if dropout is None:
            dropout = profile.dropout
    if dropout is not None:
        out.update({key: dropout for key in spec.dropout_keys})
    if spec.contrastive:
        c, a = cfg.contrast, cfg.augment
        out.update(
            crop_keep=a.crop_keep,
            mask_ratio=a.mask_ratio,
            reorder_ratio=a.reorder_ratio,
            tau=c.tau,
            sim=c.sim,
            fast_encoder=e.fast,
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
    if spec.model is DuoRec:
        d = cfg.duorec
        out.update(
            lmd=d.lmd, lmd_sem=d.lmd_sem, tau=d.tau, contrast=d.contrast, fast_encoder=e.fast
        )
    out.update(spec.extra)
    return out


# ----------------------------------------------------------------------------- running


@dataclass(frozen=True)
class _Run:
    name: str
    seed: int
    dropout: float | None
    folder: Path


def _plan(cfg: RecsysConfig, out: Path) -> dict[str, list[_Run]]:
    """Every (model, seed, dropout) run and its folder."""
    seeds = cfg.run_seeds
    grid = cfg.encoder.dropout_grid
    plan: dict[str, list[_Run]] = {}
    for name in cfg.models:
        values: Sequence[float | None] = grid if grid and MODELS[name].dropout_keys else (None,)
        runs = []
        for seed in seeds:
            for dropout in values:
                parts = []
                if len(seeds) > 1:
                    parts.append(f"seed{seed}")
                if dropout is not None:
                    parts.append(f"dropout{dropout:g}")
                folder = out / name / "_".join(parts) if parts else out / name
                runs.append(_Run(name, seed, dropout, folder))
        plan[name] = runs
    return plan


def _count_params(model: Any) -> int:
    if isinstance(model, MCLRec) and model.beta == 0 and model.cl_weight == 0:
        return sum(p.numel() for p in model.encoder_parameters())  # augmenters unused
    return sum(p.numel() for p in model.parameters())


def _train_and_test(
    cfg: RecsysConfig, run: _Run, source: DatasetSource, profile: Profile, run_id: str
) -> ModelResult:
    spec = MODELS[run.name]
    run_dir = run.folder
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = recbole_settings(cfg, run.name, profile, seed=run.seed, dropout=run.dropout)
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
    label = run.name if run_dir.name == run.name else f"{run.name}/{run_dir.name}"
    trainer = spec.trainer(
        config,
        model,
        run_dir=run_dir,
        label=label,
        progress=cfg.trainer.progress,
        history_mask=history_mask,
        max_batches=cfg.trainer.max_train_batches,
        run_id=run_id,
    )
    trainer.fit(train, valid)
    start = time.perf_counter()
    test_result = trainer.evaluate(test, load_best_model=True, phase="test")
    test_seconds = time.perf_counter() - start
    users = positions = None
    if trainer.last_per_user is not None:
        uids, positions = trainer.last_per_user
        users = np.asarray(dataset.id2token(dataset.uid_field, uids), dtype=object)
        write_csv(
            run_dir / "per_user_test.csv",
            [{"user": u, "position": int(p)} for u, p in zip(users.tolist(), positions)],
        )
    history = trainer.history
    evals = [row["valid_seconds"] for row in history if "valid_seconds" in row]
    result = ModelResult(
        name=run.name,
        test=_metrics(test_result),
        valid=_metrics(trainer.best_valid_result),
        train_seconds=trainer.total_train_seconds(),
        epochs=trainer.epochs_run,
        params=_count_params(model),
        best_epoch=trainer.best_epoch + 1,
        eval_seconds=sum(evals) / len(evals) if evals else 0.0,
        test_seconds=test_seconds,
        seed=run.seed,
        dropout=run.dropout,
        history=history,
        users=users,
        positions=positions,
    )
    write_json(run_dir / "metrics.json", result.summary())
    logger.info(
        "%s: test ndcg@10 %.4f hit@10 %.4f (best epoch %d of %d, %.1f s/epoch)",
        label,
        result.test.get("ndcg@10", float("nan")),
        result.test.get("hit@10", float("nan")),
        result.best_epoch,
        result.epochs,
        result.summary()["epoch_seconds"],
    )
    return result


def _run(
    cfg: RecsysConfig, run: _Run, source: DatasetSource, profile: Profile, folder: RunFolder
) -> ModelResult:
    stage = run.folder.relative_to(folder.path).as_posix()
    if folder.is_finished(stage) and (run.folder / "metrics.json").exists():
        logger.info("%s: already evaluated in %s (kept)", run.name, run.folder)
        return ModelResult.load(run.folder, run.name, seed=run.seed, dropout=run.dropout)
    result = _train_and_test(cfg, run, source, profile, folder.run_id)
    folder.mark_finished(stage, ndcg10=result.test.get("ndcg@10"))
    return result


def _summarize(cfg: RecsysConfig, name: str, results: list[ModelResult]) -> ModelSummary:
    """Select the dropout on the mean validation metric over the seeds."""
    return select_dropout(name, results, cfg.trainer.metric, ran_as=MODELS[name].ran_as)


def evaluate_models(
    cfg: RecsysConfig,
    out: str | Path,
    *,
    on_round_done: Callable[[int, dict[str, ModelSummary]], None] | None = None,
    command: str | None = None,
) -> dict[str, ModelSummary]:
    """Train and test every model of ``cfg`` (per seed and dropout); write the run folder.

    Args:
        cfg: The evaluation config.
        out: The run folder (created; an earlier run with the same settings is resumed).
        on_round_done: Called after each seed with that seed and every model's summary over the
            seeds done so far (the reports in ``out`` are rewritten at the same time).
        command: The command line that reproduces the run, cited in ``results.md``.

    Returns:
        ``{model name: summary}`` in ``cfg.models`` order.

    Raises:
        InputError: On bad data (see :mod:`recsys.data`), too few items for ``topk``, or an
            ``out`` that cannot hold the run (:func:`recsys.run.prepare_run`); all checked
            before anything is written.
    """
    from recsys.run import prepare_run

    info = inspect_dataset(cfg.dataset)
    prepared = prepare_run(out, cfg, info)
    check_data_size(cfg, info)
    folder = prepared.create()
    level = RECBOLE_LOGGER.level
    RECBOLE_LOGGER.setLevel(logging.WARNING)  # RecBole's chatter stays out of log.txt
    try:
        with folder.logging("recsys"):
            return _evaluate(cfg, folder, on_round_done, command)
    finally:
        RECBOLE_LOGGER.setLevel(level)


def _evaluate(
    cfg: RecsysConfig,
    folder: RunFolder,
    on_round_done: Callable[[int, dict[str, ModelSummary]], None] | None,
    command: str | None,
) -> dict[str, ModelSummary]:
    from recsys.report import write_reports

    out = folder.path
    source = resolve_dataset(cfg.dataset, out)
    profile = dataset_profile(source.name)
    logger.info(
        "recsys evaluate: %s (%s) models %s, seeds %s -> %s; defaults: %s",
        cfg.dataset,
        source.kind,
        ", ".join(cfg.models),
        ", ".join(map(str, cfg.run_seeds)),
        out,
        profile.source,
    )
    summaries: dict[str, ModelSummary] = {}
    with torch_threads(cfg.trainer.threads):
        plan = _plan(cfg, out)
        done: dict[str, list[ModelResult]] = {name: [] for name in plan}
        seeds = cfg.run_seeds
        for i, seed in enumerate(seeds):  # seed-major: a whole table after the first seed
            for name, runs in plan.items():
                for run in (r for r in runs if r.seed == seed):
                    done[name].append(_run(cfg, run, source, profile, folder))
                summaries[name] = _summarize(cfg, name, done[name])
            last = i == len(seeds) - 1  # the plot once, at the end (matplotlib is slow)
            write_reports(out, cfg, summaries, source, profile, command=command, plot=last)
            if on_round_done is not None:
                on_round_done(seed, dict(summaries))
    return summaries


#: Fewer test users than this make a comparison of models mostly noise (a warning says so).
MIN_USERS_FOR_COMPARISON = 100


def check_data_size(cfg: RecsysConfig, source: DatasetInfo | DatasetSource) -> None:
    """Refuse cut-offs beyond the item count; warn on too few users or items to compare models.

    Raises:
        InputError: If the data set has fewer items than the largest ``topk``.
    """
    if source.n_items is None or source.n_users is None:
        return
    if source.n_items < max(cfg.topk):
        raise InputError(
            f"--dataset {source.origin}: {source.n_items} items, fewer than the largest cut-off "
            f"topk={max(cfg.topk)}; hit@{max(cfg.topk)} would be 1 for every user. Use a data "
            f"set with more items or smaller cut-offs (topk=... must include 10 and 20)."
        )
    if source.n_users < MIN_USERS_FOR_COMPARISON or source.n_items < 2 * max(cfg.topk):
        logger.warning(
            "%s: only %d test user(s) and %d item(s): too small for a meaningful evaluation "
            "(one model's ndcg@10 on so few users has a standard error of about %.2f).",
            source.origin,
            source.n_users,
            source.n_items,
            0.5 / max(source.n_users, 1) ** 0.5,
        )
