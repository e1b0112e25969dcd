"""The core showcase: SimCLR vs SupCon on 8x8 digits, judged by a linear probe.

One small CNN architecture is trained twice with the shared Trainer, (a) with SimCLR's NT-Xent
(no labels) and (b) with SupCon (labels), each into its own run folder. The frozen features are
then judged by a linear probe (standardized features, scikit-learn's logistic regression with C
chosen by cross-validation on the training split) next to the same probe on the raw pixels and
on an untrained encoder of the same architecture. The report adds a kNN accuracy, Wang and
Isola's alignment and uniformity of the test projections, and a 2-D embedding (t-SNE or PCA) of
the test features.

Layout of the output folder::

    OUT/config.yaml      the resolved showcase config
    OUT/metrics.json     probe results of every representation
    OUT/report.html      tables and the embedding plot (self-contained)
    OUT/embedding.png    the plot
    OUT/log.txt          the pipeline's log
    OUT/simclr/          run folder of the SimCLR encoder (config.yaml, metrics.json, ...)
    OUT/supcon/          run folder of the SupCon encoder

Running it again reuses finished runs (the Trainer reloads their weights) and resumes
interrupted ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from pipelines._digits import (
    DigitAugment,
    DigitsCNN,
    DigitsSplit,
    SimCLRTask,
    SupConTask,
    TwoViewTask,
    load_digits_split,
    resize,
)
from shared.config import ConfigError, dump_yaml, to_dict
from shared.heads import ProjectionHead
from shared.io import atomic_write_bytes, atomic_write_text, write_json
from shared.losses import alignment, uniformity
from shared.report import figure_to_data_uri, html_img, html_link, html_page, html_table
from shared.runtime import log_to_file, torch_threads
from shared.training import Trainer, TrainerConfig

logger = logging.getLogger(__name__)

__all__ = [
    "METHODS",
    "QUICK",
    "SMOKE",
    "ShowcaseConfig",
    "ShowcaseResult",
    "run_showcase",
]

Method = Literal["simclr", "supcon"]

#: The methods ``methods`` may list: the task class trained for each (solo-learn's METHODS).
METHODS: dict[str, type[TwoViewTask]] = {"simclr": SimCLRTask, "supcon": SupConTask}

_TITLES = {
    "pixels": "raw pixels",
    "random": "untrained encoder",
    "simclr": "SimCLR (no labels)",
    "supcon": "SupCon (labels)",
}


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
    """Random views (see :class:`pipelines._digits.DigitAugment`; no flips).

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
    """Encoder and projection head.

    Attributes:
        width: Channels of the encoder's first stage.
        num_features: Encoder output features F (what the probe sees).
        head_hidden: Hidden width of the projection head.
        head_out: Projection dimension D (what the loss sees).
        head_layers: Linear layers in the head.
    """

    width: int = 32
    num_features: int = 128
    head_hidden: int = 128
    head_out: int = 64
    head_layers: int = 2


@dataclass(frozen=True)
class LossConfig:
    """Temperatures of the two contrastive losses.

    Attributes:
        simclr_temperature: NT-Xent temperature (SimCLR's default 0.5).
        supcon_temperature: SupCon temperature (Khosla et al. use 0.1).
    """

    simclr_temperature: float = 0.5
    supcon_temperature: float = 0.1


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
    )


@dataclass(frozen=True)
class ShowcaseConfig:
    """Everything the showcase does; every key can be set as ``key.sub=value``.

    Attributes:
        methods: Which encoders to train: ``simclr`` and/or ``supcon``.
        batch_size: Images per batch (each gives two views).
        threads: CPU threads of torch while the showcase runs (0 = torch's default). The
            model is so small that one thread is as fast as two, and several threads slow
            down a lot when other processes share the cores.
        data: The split and the encoder's input size.
        augment: The random views.
        model: Encoder and head sizes.
        loss: Temperatures.
        probe: Evaluation of the frozen features.
        plot: The embedding plot.
        trainer: The shared Trainer's settings (epochs, lr, schedule, seed, device, ...).
    """

    methods: tuple[Method, ...] = ("simclr", "supcon")
    batch_size: int = 128
    threads: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    plot: PlotConfig = field(default_factory=PlotConfig)
    trainer: TrainerConfig = field(default_factory=_default_trainer)

    def __post_init__(self) -> None:
        """Check the settings that the sub-configs cannot check alone.

        Raises:
            ConfigError: On an empty or repeated ``methods`` or a batch below 2.
        """
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise ConfigError(
                f"Expected `methods` to list simclr and/or supcon once each, got {self.methods}."
            )
        if self.threads < 0:
            raise ConfigError(f"Expected `threads` >= 0, but got {self.threads}.")
        if self.batch_size < 2:
            raise ConfigError(f"Expected `batch_size` >= 2, but got {self.batch_size}.")


#: Settings of ``--quick``: fewer epochs, a fixed probe C, PCA plot (about a minute in all).
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


@dataclass(frozen=True)
class ShowcaseResult:
    """What :func:`run_showcase` measured.

    Attributes:
        out_dir: The output folder.
        rows: One dict per representation (``pixels``, ``random``, ``simclr``, ``supcon``):
            ``probe_acc``, ``knn_acc``, ``alignment``, ``uniformity``, ``probe_c``,
            ``train_seconds``, ``epochs``.
        summary_html: The results table and embedded plot, for an index page (links are
            relative to ``out_dir``'s parent, prefixed with ``link_prefix``).
        seconds: Wall time of the whole run.
    """

    out_dir: Path
    rows: Mapping[str, Mapping[str, float | int | None]]
    summary_html: str
    seconds: float


# ------------------------------------------------------------------------------- pipeline


def run_showcase(
    cfg: ShowcaseConfig,
    out_dir: str | Path,
    *,
    run_suffix: str = "",
    link_prefix: str = "",
) -> ShowcaseResult:
    """Train the encoders, probe them, and write the report into ``out_dir``.

    Args:
        cfg: The resolved config.
        out_dir: Output folder (see the module docstring for its layout).
        run_suffix: Appended to the run folder names (``simclr<suffix>``), so that the demo's
            quick and full runs can live side by side.
        link_prefix: Prefix of the links in ``summary_html`` (the step folder's name when the
            summary is shown in the demo's index one level up).

    Returns:
        The measured numbers and the HTML summary.

    Raises:
        InputError: If a run folder holds a run of a different config.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        from shared.errors import InputError

        raise InputError(f"--out {str(out)!r} exists and is not a folder.")
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    with log_to_file(out / "log.txt", ["pipelines"]), torch_threads(cfg.threads):
        logger.info("showcase: %s", " ".join(f"{m}{run_suffix}" for m in cfg.methods))
        split = load_digits_split(cfg.data.test_fraction, cfg.data.split_seed)
        logger.info(
            "digits: %d train / %d test images (8x8, 10 classes), encoder input %dx%d",
            len(split.y_train),
            len(split.y_test),
            cfg.data.image_size,
            cfg.data.image_size,
        )
        rows: dict[str, dict[str, Any]] = {}
        embeddings: dict[str, np.ndarray] = {}
        augment = _augment(cfg, cfg.data.image_size)

        pixels_train = split.x_train.flatten(1).numpy()
        pixels_test = split.x_test.flatten(1).numpy()
        v1, v2 = _test_views(split.x_test, _augment(cfg, 8), cfg.probe.views_seed)
        rows["pixels"] = {
            **_probe(pixels_train, split.y_train.numpy(), pixels_test, split.y_test.numpy(), cfg),
            **_align_uniform(v1.flatten(1), v2.flatten(1)),
        }
        embeddings["pixels"] = pixels_test

        torch.manual_seed(cfg.trainer.seed)
        random_task = _build_task("simclr", cfg, augment)
        rows["random"] = _evaluate(random_task, split, augment, cfg, embeddings, "random")

        run_dirs: dict[str, str] = {}
        for method in cfg.methods:
            run_dir = out / f"{method}{run_suffix}"
            run_dirs[method] = run_dir.name
            task, metrics, seconds = _train(method, cfg, split, run_dir)
            row = _evaluate(task, split, augment, cfg, embeddings, method)
            row.update(
                train_seconds=seconds,
                epochs=int(metrics.get("epochs", 0)),
                final_loss=float(metrics.get("train/loss", float("nan"))),
            )
            rows[method] = row
            logger.info(
                "%s: linear probe %.4f, kNN %.4f (raw pixels: %.4f)",
                method,
                row["probe_acc"],
                row["knn_acc"],
                rows["pixels"]["probe_acc"],
            )

        png = _plot(embeddings, split.y_test.numpy(), cfg.plot.method, cfg.trainer.seed)
        seconds = time.perf_counter() - start
        summary = _summary_html(rows, png, run_dirs, cfg, link_prefix, len(split.y_test))
        atomic_write_text(out / "config.yaml", dump_yaml(to_dict(cfg)))
        write_json(
            out / "metrics.json",
            {
                "probe": rows,
                "runs": run_dirs,
                "n_train": len(split.y_train),
                "n_test": len(split.y_test),
                "seconds": round(seconds, 2),
            },
        )
        import base64

        atomic_write_bytes(out / "embedding.png", base64.b64decode(png.split(",", 1)[1]))
        atomic_write_text(
            out / "report.html",
            html_page(
                "contrasuite showcase: SimCLR vs SupCon on digits",
                _summary_html(rows, png, run_dirs, cfg, "", len(split.y_test)),
                subtitle=f"{seconds:.0f} s; written by `contrasuite showcase`",
            ),
        )
        logger.info("showcase finished in %.1f s: %s", seconds, out / "report.html")
    return ShowcaseResult(out, rows, summary, seconds)


def _augment(cfg: ShowcaseConfig, size: int) -> DigitAugment:
    a = cfg.augment
    return DigitAugment(
        out_size=size,
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


def _build_task(method: str, cfg: ShowcaseConfig, augment: DigitAugment) -> TwoViewTask:
    m = cfg.model
    encoder = DigitsCNN(m.width, m.num_features)
    head = ProjectionHead(m.num_features, m.head_hidden, m.head_out, num_layers=m.head_layers)
    return METHODS[method](encoder, head, augment, _temperature(method, cfg))


def _temperature(method: str, cfg: ShowcaseConfig) -> float:
    return cfg.loss.supcon_temperature if method == "supcon" else cfg.loss.simclr_temperature


def _run_config(method: str, cfg: ShowcaseConfig) -> dict[str, Any]:
    """What the run folder's config.yaml holds: only what changes the trained weights.

    Probe and plot settings are left out, so changing them reuses the trained encoders.
    """
    return {
        "method": method,
        "temperature": _temperature(method, cfg),
        "batch_size": cfg.batch_size,
        "data": to_dict(cfg.data),
        "augment": to_dict(cfg.augment),
        "model": to_dict(cfg.model),
    }


def _train(
    method: str, cfg: ShowcaseConfig, split: DigitsSplit, run_dir: Path
) -> tuple[TwoViewTask, dict[str, float], float]:
    torch.manual_seed(cfg.trainer.seed)  # the same initial encoder for every method
    task = _build_task(method, cfg, _augment(cfg, cfg.data.image_size))
    data = torch.utils.data.TensorDataset(split.x_train, split.y_train)
    loader = torch.utils.data.DataLoader(
        data, batch_size=min(cfg.batch_size, len(data)), shuffle=True, drop_last=True
    )
    logger.info("training %s into %s", method, run_dir)
    t0 = time.perf_counter()
    metrics = Trainer(cfg.trainer, run_dir, config_dict=_run_config(method, cfg)).fit(task, loader)
    seconds = time.perf_counter() - t0
    history_seconds = _history_seconds(run_dir)
    return task, metrics, history_seconds if history_seconds is not None else seconds


def _history_seconds(run_dir: Path) -> float | None:
    """Training time summed over the epochs of ``history.csv`` (also for a reused run)."""
    import csv

    path = run_dir / "history.csv"
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as fh:
        return round(sum(float(r.get("seconds") or 0) for r in csv.DictReader(fh)), 2)


@torch.no_grad()
def _features(task: TwoViewTask, x: Tensor, size: int) -> tuple[np.ndarray, Tensor]:
    task.eval()
    device = next(task.parameters()).device
    feats, projs = [], []
    for chunk in torch.split(resize(x, size), 512):
        f = task.encoder.forward_features(chunk.to(device))
        feats.append(f.cpu())
        projs.append(task.head(f).cpu())
    return torch.cat(feats).numpy(), torch.cat(projs)


def _test_views(x: Tensor, augment: DigitAugment, seed: int) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return augment(x, generator=gen), augment(x, generator=gen)


def _align_uniform(z1: Tensor, z2: Tensor) -> dict[str, float]:
    return {
        "alignment": float(alignment(z1.float(), z2.float())),
        "uniformity": float((uniformity(z1.float()) + uniformity(z2.float())) / 2),
    }


@torch.no_grad()
def _evaluate(
    task: TwoViewTask,
    split: DigitsSplit,
    augment: DigitAugment,
    cfg: ShowcaseConfig,
    embeddings: dict[str, np.ndarray],
    name: str,
) -> dict[str, Any]:
    task = task.cpu()
    size = cfg.data.image_size
    f_train, _ = _features(task, split.x_train, size)
    f_test, _ = _features(task, split.x_test, size)
    embeddings[name] = f_test
    row = _probe(f_train, split.y_train.numpy(), f_test, split.y_test.numpy(), cfg)
    v1, v2 = _test_views(split.x_test, augment, cfg.probe.views_seed)
    z1 = task.head(task.encoder.forward_features(v1))
    z2 = task.head(task.encoder.forward_features(v2))
    row.update(_align_uniform(z1, z2))
    return row


def _probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    cfg: ShowcaseConfig,
) -> dict[str, Any]:
    """Linear probe (standardized, C by CV on the train split) and cosine kNN accuracy."""
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


def _plot(embeddings: Mapping[str, np.ndarray], labels: np.ndarray, method: str, seed: int) -> str:
    """2-D embeddings of the test features, one panel per representation, as a data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    names = list(embeddings)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.4))
    axes = np.atleast_1d(axes)
    cmap = plt.get_cmap("tab10")
    for ax, name in zip(axes, names):
        x = StandardScaler().fit_transform(embeddings[name])
        if method == "tsne":
            xy = TSNE(2, init="pca", perplexity=30, random_state=seed).fit_transform(x)
        else:
            xy = PCA(2, random_state=seed).fit_transform(x)
        for digit in range(10):
            sel = labels == digit
            ax.scatter(
                xy[sel, 0],
                xy[sel, 1],
                s=7,
                color=cmap(digit),
                alpha=0.8,
                label=str(digit),
                linewidths=0,
            )
            if sel.any():
                cx, cy = np.median(xy[sel], axis=0)
                ax.text(
                    cx,
                    cy,
                    str(digit),
                    fontsize=12,
                    weight="bold",
                    ha="center",
                    va="center",
                    color="black",
                    bbox={"boxstyle": "circle,pad=0.15", "fc": "white", "alpha": 0.7, "lw": 0},
                )
        ax.set_title(_TITLES.get(name, name), fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].legend(
        title="digit", loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2.5, frameon=False
    )
    fig.suptitle(f"test features, {method.upper()} to 2-D, coloured by digit", fontsize=12)
    fig.tight_layout()
    return figure_to_data_uri(fig)


def _summary_html(
    rows: Mapping[str, Mapping[str, Any]],
    png: str,
    run_dirs: Mapping[str, str],
    cfg: ShowcaseConfig,
    link_prefix: str,
    n_test: int,
) -> str:
    best = max(row["probe_acc"] for row in rows.values())
    table_rows = []
    for name, row in rows.items():
        run = (
            html_link(f"{link_prefix}{run_dirs[name]}/", run_dirs[name])
            if name in run_dirs
            else "–"
        )
        table_rows.append(
            [
                _TITLES.get(name, name),
                row["probe_acc"],
                row["probe_errors"],
                row["knn_acc"],
                row["alignment"],
                row["uniformity"],
                row.get("epochs", "–"),
                f"{row['train_seconds']:.1f}" if "train_seconds" in row else "–",
                run,
            ]
        )
    table = html_table(
        [
            "representation",
            "linear probe acc",
            f"probe errors (of {n_test})",
            f"kNN acc (k={cfg.probe.knn_k})",
            "alignment ↓",
            "uniformity ↓",
            "epochs",
            "train s",
            "run folder",
        ],
        table_rows,
        raw_html_columns=(8,),
        row_classes=["best" if row["probe_acc"] == best else "" for row in rows.values()],
    )
    probe = (
        f"C chosen from {', '.join(map(str, cfg.probe.cs))} by {cfg.probe.cv_folds}-fold CV "
        "on the training split"
        if len(cfg.probe.cs) > 1
        else f"C = {cfg.probe.cs[0]}"
    )
    n_params = sum(
        p.numel() for p in DigitsCNN(cfg.model.width, cfg.model.num_features).parameters()
    )
    notes = (
        '<p class="note">scikit-learn digits (8×8, 10 classes), fixed stratified split '
        f"({1 - cfg.data.test_fraction:.0%} train / {cfg.data.test_fraction:.0%} test). "
        f"Encoder: a {n_params:,}-parameter CNN on {cfg.data.image_size}×"
        f"{cfg.data.image_size} inputs, {cfg.trainer.epochs} epochs per method, batch "
        f"{cfg.batch_size} × 2 views (crop, shift, rotation ±{cfg.augment.rotation:g}°, "
        "intensity, noise, erasing; no flips). Linear probe: logistic regression on "
        f"standardized frozen features, {probe}; the untrained encoder is the same "
        "architecture at its initial weights. Alignment and uniformity (Wang &amp; Isola) of "
        "L2-normalized test projections under two random views (for raw pixels, of the "
        "normalized pixel vectors): lower is better for each, but they pull against each "
        "other; a collapsed embedding, like the untrained head's, scores 0 on both. Chance "
        "accuracy is 0.10.</p>"
    )
    img = html_img(png, "2-D embedding of the test features coloured by digit")
    return f"{table}\n{notes}\n{img}"
