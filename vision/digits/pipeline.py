"""The digits run: train each method with the shared Trainer, probe the frozen features, report.

One small CNN architecture is trained once per method (SimCLR, SupCon, DCL, DCLW, SwAV, CACR,
AMCL, FT; see :mod:`vision.digits.methods`), each as a named stage of one run folder. The
frozen features are then judged by a linear probe (standardized features, scikit-learn's
logistic regression with C chosen by cross-validation on the training split) and a cosine kNN,
next to the same probes on the raw pixels and on an untrained encoder of the same
architecture; the report adds Wang and Isola's alignment and uniformity of the test
projections, seconds per epoch, and a 2-D embedding (t-SNE or PCA) of the test features.

Layout of the run folder (:class:`shared.training.run.RunFolder`, domain ``digits``)::

    RUN/config.yaml      the resolved config
    RUN/metrics.json     probe results of every representation ("probe": {name: row})
    RUN/results.md       the comparison table
    RUN/report.html      the table and the embedding plot (self-contained)
    RUN/embedding.png    the plot
    RUN/weights.pt       every trained task ({method}.{parameter}), stamped with the run id
    RUN/log.txt          the pipeline's log
    RUN/history.csv      every method's epochs, a ``method`` column first
    RUN/<method>/        the Trainer's run folder of each method (history.csv, state.pt, ...)

Under ``torchrun`` (DDP) each method trains with ``batch_size`` images per rank and its
objective over every rank's gathered projections (:class:`~vision.digits.tasks.TwoViewTask`),
so the gradients are those of one process on the global batch apart from BatchNorm; rank 0
alone probes and writes. This is the pattern a new domain copies.

Running it again reuses finished stages (the Trainer reloads their weights) and resumes
interrupted ones; ``methods``, ``probe.*`` and ``plot.*`` may change between runs (a new
method is trained, the probes and plot are redone).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from shared.config import to_dict
from shared.distributed import (
    check_ranks_agree,
    init_from_env,
    on_rank0,
    shuffled_loader,
    world_size,
)
from shared.io import atomic_write_bytes, read_csv
from shared.losses import alignment, uniformity
from shared.report import html_page
from shared.runtime import resolve_device, torch_threads
from shared.training import Trainer
from shared.training.run import RunFolder, data_fingerprint
from vision.digits.config import DigitsConfig
from vision.digits.data import DigitAugment, DigitsSplit, load_digits_split, resize
from vision.digits.methods import TwoViewTask, build_task, method_settings
from vision.digits.report import plot_embeddings, results_markdown, summary_html

logger = logging.getLogger(__name__)

__all__ = [
    "DOMAIN_NAME",
    "SAFE_KEYS",
    "DigitsResult",
    "evaluate",
    "load_split",
    "make_augment",
    "probe",
    "train_digits",
]

DOMAIN_NAME = "digits"
#: Config keys that may change when a run is started again (they do not change any weights).
SAFE_KEYS = frozenset({"methods", "probe.", "plot."})
_LOGGERS = ("vision.digits", "shared.distributed")


@dataclass(frozen=True)
class DigitsResult:
    """What :func:`train_digits` measured.

    Attributes:
        out_dir: The run folder.
        rows: One dict per representation (``pixels``, ``random``, then each method):
            ``probe_acc``, ``probe_errors``, ``knn_acc``, ``alignment``, ``uniformity``,
            ``probe_c``; the methods add ``train_seconds``, ``seconds_per_epoch``,
            ``epochs`` and ``final_loss``.
        summary_html: The results table and embedded plot, for an index page (links prefixed
            with ``link_prefix``).
        seconds: Wall time of the whole run.
    """

    out_dir: Path
    rows: Mapping[str, Mapping[str, float | int | None]]
    summary_html: str
    seconds: float


def load_split(cfg: DigitsConfig) -> DigitsSplit:
    """The split of ``cfg.data``."""
    return load_digits_split(cfg.data.test_fraction, cfg.data.split_seed)


def make_augment(cfg: DigitsConfig, size: int | None = None) -> DigitAugment:
    """The random views of ``cfg.augment`` at side ``size`` (default ``data.image_size``)."""
    a = cfg.augment
    return DigitAugment(
        out_size=cfg.data.image_size if size is None else size,
        scale=(a.scale_min, a.scale_max),
        aspect=a.aspect,
        shift=a.shift,
        rotation=a.rotation,
        intensity=a.intensity,
        noise_std=a.noise_std,
        noise_prob=a.noise_prob,
        erase_prob=a.erase_prob,
        erase_area=a.erase_area,
    )


def train_digits(cfg: DigitsConfig, out_dir: str | Path, *, link_prefix: str = "") -> DigitsResult:
    """Train every method of ``cfg``, probe them, and write the run folder ``out_dir``.

    Args:
        cfg: The resolved config.
        out_dir: The run folder (see the module docstring for its layout).
        link_prefix: Prefix of the links in ``summary_html`` (``"digits/run/"`` when the summary
            is shown in the demo's index).

    Returns:
        The measured numbers and the HTML summary.

    Raises:
        InputError: If ``out_dir`` is a file, a non-empty folder that is not a run, a run of
            another command, or this run with another config or data (nothing is written).
    """
    init_from_env(resolve_device(cfg.trainer.device))  # before the run folder's checks
    split = load_split(cfg)
    run = RunFolder.prepare(
        out_dir,
        domain=DOMAIN_NAME,
        command="train",
        config=cfg,
        data=data_fingerprint(split.x_train, split.y_train, split.x_test, split.y_test),
        safe_keys=SAFE_KEYS,
    )
    run.create()
    start = time.perf_counter()
    with run.logging(*_LOGGERS), torch_threads(cfg.trainer.threads):
        logger.info("digits %s: %s", "resumed" if run.resumed else "run", ", ".join(cfg.methods))
        logger.info(
            "digits: %d train / %d test images (8x8, 10 classes), encoder input %dx%d",
            len(split.y_train),
            len(split.y_test),
            cfg.data.image_size,
            cfg.data.image_size,
        )
        trained: dict[str, tuple[TwoViewTask, dict[str, float]]] = {
            method: _train(method, cfg, split, run) for method in cfg.methods
        }
        tasks: dict[str, nn.Module] = {m: task.cpu() for m, (task, _) in trained.items()}
        check_ranks_agree(nn.ModuleDict(tasks))
        run.save_weights(nn.ModuleDict(tasks).state_dict())
        # rank 0 probes, plots and writes; the other ranks get its result
        result: DigitsResult = on_rank0(
            lambda: _report(cfg, split, run, trained, start, link_prefix)
        )
    return result


def _report(
    cfg: DigitsConfig,
    split: DigitsSplit,
    run: RunFolder,
    trained: Mapping[str, tuple[TwoViewTask, dict[str, float]]],
    start: float,
    link_prefix: str,
) -> DigitsResult:
    """Probe the raw pixels, an untrained encoder and every trained method; write the reports."""
    rows: dict[str, dict[str, Any]] = {}
    embeddings: dict[str, np.ndarray] = {}
    pixels_train, pixels_test = split.x_train.flatten(1).numpy(), split.x_test.flatten(1).numpy()
    v1, v2 = _test_views(split.x_test, make_augment(cfg, 8), cfg.probe.views_seed)
    rows["pixels"] = {
        **probe(pixels_train, split.y_train.numpy(), pixels_test, split.y_test.numpy(), cfg),
        **_align_uniform(v1.flatten(1), v2.flatten(1)),
    }
    embeddings["pixels"] = pixels_test

    torch.manual_seed(cfg.trainer.seed)
    random_task = build_task("simclr", cfg, make_augment(cfg))
    rows["random"], embeddings["random"] = evaluate(random_task, split, cfg)

    for method, (task, metrics) in trained.items():
        row, embeddings[method] = evaluate(task, split, cfg)
        row.update(_timing(run.stage_dir(method)))
        row["final_loss"] = float(metrics.get("train/loss", float("nan")))
        rows[method] = row
        logger.info(
            "%s: linear probe %.4f, kNN %.4f (raw pixels: %.4f)",
            method,
            row["probe_acc"],
            row["knn_acc"],
            rows["pixels"]["probe_acc"],
        )

    png = plot_embeddings(embeddings, split.y_test.numpy(), cfg.plot.method, cfg.trainer.seed)
    seconds = time.perf_counter() - start
    n_test = len(split.y_test)
    runs: dict[str, str] = {m: m for m in cfg.methods}
    run.write_json(
        "metrics.json",
        {
            "probe": rows,
            "methods": list(cfg.methods),
            "runs": runs,
            "n_train": len(split.y_train),
            "n_test": n_test,
            "seconds": round(seconds, 2),
        },
    )
    run.write_text("results.md", results_markdown(rows, cfg, n_test))
    atomic_write_bytes(run.path / "embedding.png", base64.b64decode(png.split(",", 1)[1]))
    run.write_text(
        "report.html",
        html_page(
            "contrasuite digits: contrastive methods on 8x8 digits",
            summary_html(rows, png, runs, cfg, "", n_test),
            subtitle=f"{seconds:.0f} s; written by `contrasuite digits train`",
        ),
    )
    logger.info("digits finished in %.1f s: %s", seconds, run.path / "report.html")
    summary = summary_html(rows, png, runs, cfg, link_prefix, n_test)
    return DigitsResult(run.path, rows, summary, seconds)


def _stage_config(method: str, cfg: DigitsConfig) -> dict[str, Any]:
    """What a stage's config.yaml holds: only what changes its trained weights."""
    return {
        "method": method,
        **method_settings(method, cfg),
        "batch_size": cfg.batch_size,
        "data": to_dict(cfg.data),
        "augment": to_dict(cfg.augment),
        "model": to_dict(cfg.model),
    }


def _train(
    method: str, cfg: DigitsConfig, split: DigitsSplit, run: RunFolder
) -> tuple[TwoViewTask, dict[str, float]]:
    torch.manual_seed(cfg.trainer.seed)  # the same initial encoder for every method
    task = build_task(method, cfg, make_augment(cfg))
    data = torch.utils.data.TensorDataset(split.x_train, split.y_train)
    batch = max(1, min(cfg.batch_size, len(data) // world_size()))
    loader = shuffled_loader(data, batch, seed=cfg.trainer.seed, drop_last=True)
    stage = run.stage_dir(method)
    logger.info(
        "%s %s into %s", "reusing" if run.is_finished(method) else "training", method, stage
    )
    tcfg = cfg.trainer
    if world_size() > 1 and method == "swav" and cfg.loss.swav.freeze_prototypes_steps > 0:
        # the frozen prototypes get no gradient for a while: DDP must not wait for theirs
        tcfg = dataclasses.replace(tcfg, find_unused_parameters=True)
    trainer = Trainer(tcfg, stage, config_dict=_stage_config(method, cfg))
    metrics = trainer.fit(task, loader)
    if not run.is_finished(method):
        run.mark_finished(method, epochs=int(metrics.get("epochs", 0)))
    run.write_stage_history(cfg.methods, column="method")
    return task, metrics


def _timing(stage: Path) -> dict[str, float | int]:
    """Training time from the stage's ``history.csv`` (also for a reused stage)."""
    seconds = [float(r.get("seconds") or 0) for r in read_csv(stage / "history.csv")]
    return {
        "epochs": len(seconds),
        "train_seconds": round(sum(seconds), 2),
        "seconds_per_epoch": round(sum(seconds) / max(1, len(seconds)), 3),
    }


@torch.no_grad()
def _features(task: TwoViewTask, x: Tensor, size: int) -> np.ndarray:
    task.eval()
    device = next(task.parameters()).device
    feats = [
        task.encoder.forward_features(chunk.to(device)).cpu()
        for chunk in torch.split(resize(x, size), 512)
    ]
    return torch.cat(feats).numpy()


def _test_views(x: Tensor, augment: DigitAugment, seed: int) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return augment(x, generator=gen), augment(x, generator=gen)


def _align_uniform(z1: Tensor, z2: Tensor) -> dict[str, float]:
    """Alignment and uniformity of two views; of each head's space, averaged, for (B, C, D)."""
    if z1.ndim == 3:
        heads = [_align_uniform(z1[:, h], z2[:, h]) for h in range(z1.shape[1])]
        return {k: float(np.mean([h[k] for h in heads])) for k in heads[0]}
    return {
        "alignment": float(alignment(z1.float(), z2.float())),
        "uniformity": float((uniformity(z1.float()) + uniformity(z2.float())) / 2),
    }


@torch.no_grad()
def evaluate(
    task: TwoViewTask, split: DigitsSplit, cfg: DigitsConfig
) -> tuple[dict[str, Any], np.ndarray]:
    """Probe a task's frozen encoder and measure its projections (on the CPU, in eval mode).

    Args:
        task: A trained (or untrained) task.
        split: The data.
        cfg: The config (``probe``, ``data.image_size``, ``augment``).

    Returns:
        The row (``probe_acc``, ``probe_errors``, ``knn_acc``, ``probe_c``, ``alignment``,
        ``uniformity``) and the test features. Shape: (N_test, F).
    """
    task = task.cpu()
    size = cfg.data.image_size
    f_train = _features(task, split.x_train, size)
    f_test = _features(task, split.x_test, size)
    row = probe(f_train, split.y_train.numpy(), f_test, split.y_test.numpy(), cfg)
    v1, v2 = _test_views(split.x_test, make_augment(cfg), cfg.probe.views_seed)
    row.update(_align_uniform(task.project(v1), task.project(v2)))
    return row, f_test


def probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    cfg: DigitsConfig,
) -> dict[str, Any]:
    """Linear probe (standardized, C by CV on the train split) and cosine kNN accuracy.

    Args:
        x_train: Training features. Shape: (N_train, F).
        y_train: Training labels. Shape: (N_train,).
        x_test: Test features. Shape: (N_test, F).
        y_test: Test labels. Shape: (N_test,).
        cfg: The config (``probe``).

    Returns:
        ``probe_acc``, ``probe_errors``, ``knn_acc``, ``probe_c``.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    p = cfg.probe
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=p.max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if len(p.cs) > 1:
            folds = StratifiedKFold(p.cv_folds, shuffle=True, random_state=0)
            search = GridSearchCV(model, {"logisticregression__C": list(p.cs)}, cv=folds, n_jobs=1)
            search.fit(x_train, y_train)
            best_c = float(search.best_params_["logisticregression__C"])
            probe_acc = float(search.score(x_test, y_test))
        else:
            best_c = float(p.cs[0])
            model.set_params(logisticregression__C=best_c).fit(x_train, y_train)
            probe_acc = float(model.score(x_test, y_test))
    knn = KNeighborsClassifier(n_neighbors=p.knn_k, metric="cosine").fit(x_train, y_train)
    return {
        "probe_acc": probe_acc,
        "probe_errors": round((1 - probe_acc) * len(y_test)),
        "knn_acc": float(knn.score(x_test, y_test)),
        "probe_c": best_c,
    }
