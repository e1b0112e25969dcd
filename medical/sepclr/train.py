"""Train and evaluate one method on one data set, in a shared run folder.

Deviations from the official code (neurospin-projects/2024_rlouiset_sep_clr), each with the
setting that restores it:

| here | official code | restore with |
|---|---|---|
| unif t = 1, align = squared distance (code) | paper: Wang & Isola t = 2 | ``loss.form=paper`` |
| group probe on heads, factor probes on reps (the code) | | ``eval.features=rep`` / ``head`` |
| balanced accuracy for every probe | accuracy on CIFAR-MNIST | (balanced sets: equal) |
| batched torch augmentations (crop, flips, rotation, brightness/contrast) | kornia | |
| a small CNN by default (CPU) | ResNet-18 CIFAR stem | ``model.encoder=resnet18 model.width=64`` |
| 20 epochs, batch 256 (CPU) | 250 / 200 epochs, batch 512 / 256 | ``--epochs``, ``batch_size`` |
| torch seeded (every epoch from ``trainer.seed``) | torch unseeded | |
| PneumoniaMNIST (28 x 28 gray) as the medical set | CheXpert 224, ImageNet init | |
| CIFAR-MNIST augmentation by default | CheXpert: rotation 45 | ``augment.rotation=45`` |
| both views through the model in separate passes | the same | |

Baselines (not in the official repository): contrastive PCA with background PCA as its
``common`` space, and the contrastive VAE without the total-correlation discriminator
(:mod:`medical.sepclr.baselines`); SimCLR uses the same encoder, projector and augmentations
as SepCLR's common branch, with NT-Xent at temperature 0.5.

Several processes (``torchrun``, DDP): ``torchrun --nproc_per_node N -m pipelines sepclr train
...`` trains with ``batch_size`` images per rank; the heads are gathered from every rank, so the
losses see the global batch (:mod:`medical.sepclr.tasks`), and rank 0 alone writes the run
folder and evaluates. BatchNorm normalises each rank's batch on its own.

Layout of a run: ``RUN/train/`` is the Trainer's folder (``state.pt``, per-epoch
``history.csv`` with ``train/loss/<term>``); ``RUN/history.csv`` is its copy,
``RUN/weights.pt`` the final weights (run-id stamped), ``RUN/metrics.json``,
``RUN/results.md`` and ``RUN/report.html`` the evaluation.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medical.sepclr.augment import BatchAugment
from medical.sepclr.baselines import CPCA, ContrastiveVAE
from medical.sepclr.config import SepCLRConfig, resolve_weights
from medical.sepclr.data import ContrastiveSet, from_arrays, load_data
from medical.sepclr.evaluate import Features, chance_levels, extract_features, run_probes
from medical.sepclr.losses import SepCLRWeights
from medical.sepclr.model import SepCLRModel, SingleModel
from medical.sepclr.report import comparison_rows, markdown_table, results_markdown, results_page
from medical.sepclr.synth import GENERATED_FILE, make_generated
from medical.sepclr.tasks import CVAETask, SepCLRTask, SimCLRTask
from shared.config import from_dict, to_dict
from shared.distributed import (
    check_ranks_agree,
    init_from_env,
    is_main_process,
    on_rank0,
    shuffled_loader,
    world_size,
)
from shared.errors import InputError
from shared.io import atomic_write_bytes, read_json
from shared.runtime import resolve_device, torch_threads
from shared.training import Trainer, seed_everything
from shared.training.checkpoint import safe_load
from shared.training.run import FolderFiles, OutputFolder, RunFolder, data_fingerprint

__all__ = ["build_model", "evaluate_run", "load_dataset", "train_run"]

logger = logging.getLogger(__name__)
DOMAIN = "sepclr"
_LOGGERS = ("medical.sepclr", "shared.training", "shared.distributed")


@functools.lru_cache(maxsize=2)
def _generated(n_per_group: int, size: int, seed: int) -> dict[str, np.ndarray]:
    """The generated set, cached: the demo trains two methods on it in one process."""
    return make_generated(n_per_group, size, seed)


def load_dataset(cfg: SepCLRConfig) -> tuple[ContrastiveSet, str]:
    """The run's data set and its fingerprint.

    Args:
        cfg: The config (``data.path`` empty: the generated set, made in memory).

    Returns:
        (data set, fingerprint).

    Raises:
        InputError: On unreadable or invalid data.
    """
    d = cfg.data
    if not d.path:
        arrays = _generated(d.n_per_group, d.size, d.split_seed)
        ds = from_arrays(arrays, Path(GENERATED_FILE))
        return ds, data_fingerprint("generated", d.n_per_group, d.size, d.split_seed)
    ds = load_data(d.path, split=d.split, test_fraction=d.test_fraction, split_seed=d.split_seed)
    return ds, data_fingerprint(*ds.source)


def build_model(cfg: SepCLRConfig, ds: ContrastiveSet) -> nn.Module | CPCA:
    """The model of ``cfg.method`` for the images of ``ds`` (seeded by ``trainer.seed``)."""
    seed_everything(cfg.trainer.seed)
    channels = ds.image_shape[0]
    if cfg.method == "sepclr":
        return SepCLRModel(cfg.model, channels)
    if cfg.method == "simclr":
        return SingleModel(cfg.model, channels)
    if cfg.method == "cvae":
        b = cfg.baseline
        return ContrastiveVAE(
            ds.image_shape, cfg.model.common_dim, cfg.model.salient_dim, cfg.model.width,
            b.cvae_hidden, b.cvae_beta,
        )  # fmt: skip
    return CPCA(max(cfg.model.common_dim, cfg.model.salient_dim), cfg.baseline.cpca_alpha)


def _task(cfg: SepCLRConfig, model: nn.Module, ds: ContrastiveSet) -> Any:
    aug = BatchAugment(cfg.augment)
    if cfg.method == "sepclr":
        beta_s, beta_reg, lam = resolve_weights(cfg.loss, ds.kind)
        weights = SepCLRWeights(beta_s, beta_reg, lam)
        return SepCLRTask(model, aug, weights, cfg.loss.temperature, cfg.loss.form)  # type: ignore[arg-type]
    if cfg.method == "simclr":
        return SimCLRTask(model, aug, cfg.loss.simclr_temperature)  # type: ignore[arg-type]
    return CVAETask(model)  # type: ignore[arg-type]


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)


def train_run(cfg: SepCLRConfig, out: str | Path) -> dict[str, Any]:
    """Train ``cfg.method`` into the run folder ``out`` (resuming), then evaluate it.

    Args:
        cfg: The resolved config.
        out: The run folder.

    Returns:
        The evaluation metrics (what ``RUN/metrics.json`` holds).

    Raises:
        InputError: On bad data or a run folder that cannot hold this run (nothing written).
    """
    init_from_env(resolve_device(cfg.trainer.device))  # before the run folder's checks
    # rank 0 reads the data first: a bad file is reported once, the other ranks then read it
    ds, fingerprint = on_rank0(lambda: load_dataset(cfg), everywhere=True)
    run = RunFolder.prepare(out, domain=DOMAIN, command="train", config=cfg, data=fingerprint)
    run.create()
    with run.logging(*_LOGGERS), torch_threads(cfg.trainer.threads):
        model = build_model(cfg, ds)
        start = time.perf_counter()
        if run.is_finished("train"):
            logger.info("%s already finished; loading its weights.", run.path)
            _load_weights(run, model)
        elif isinstance(model, CPCA):
            tg, bg = ds.x_train[ds.g_train == 1], ds.x_train[ds.g_train == 0]
            model.fit(_flat(tg), _flat(bg))
            run.save_weights(model.state_dict())
            run.mark_finished("train", seconds=round(time.perf_counter() - start, 2))
        else:
            train_set = torch.utils.data.TensorDataset(
                torch.from_numpy(ds.x_train), torch.from_numpy(ds.g_train)
            )
            batch = max(1, min(cfg.batch_size, len(ds.x_train) // world_size()))
            loader = shuffled_loader(train_set, batch, seed=cfg.trainer.seed, drop_last=True)
            task = _task(cfg, model, ds)
            stage = run.stage_dir("train")
            Trainer(cfg.trainer, run_dir=stage, config_dict=to_dict(cfg)).fit(task, loader)
            model.cpu()
            check_ranks_agree(model)
            run.save_weights(model.state_dict())
            history = stage / "history.csv"
            if history.is_file() and is_main_process():
                atomic_write_bytes(run.path / "history.csv", history.read_bytes())
            run.mark_finished("train", seconds=round(time.perf_counter() - start, 2))
        logger.info("%s trained on %s; evaluating.", cfg.method, ds.name)
    return on_rank0(lambda: _evaluate(run, cfg, ds, model))  # rank 0 evaluates and writes


def _features(
    cfg: SepCLRConfig, model: nn.Module | CPCA, ds: ContrastiveSet, device: torch.device
) -> tuple[Features, Features]:
    if isinstance(model, CPCA):
        tr, te = model.transform(_flat(ds.x_train)), model.transform(_flat(ds.x_test))
        return (
            {k: {"rep": v.astype(np.float32), "head": v.astype(np.float32)} for k, v in tr.items()},
            {k: {"rep": v.astype(np.float32), "head": v.astype(np.float32)} for k, v in te.items()},
        )
    model.to(device).eval()
    fn = model.features
    bs = cfg.eval.batch_size
    return (
        extract_features(fn, ds.x_train, device, bs),  # type: ignore[arg-type]
        extract_features(fn, ds.x_test, device, bs),  # type: ignore[arg-type]
    )


def _evaluate(
    run: RunFolder, cfg: SepCLRConfig, ds: ContrastiveSet, model: nn.Module | CPCA,
    device: str | None = None, others: Mapping[str, Mapping[str, Any]] | None = None,
    out: OutputFolder | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Probe ``model`` and write metrics.json, results.md, report.html into the run or ``out``."""
    dev = resolve_device(device or cfg.trainer.device)
    dest: FolderFiles = run if out is None else out.create()
    with dest.logging("medical.sepclr"), torch_threads(cfg.trainer.threads):
        train_f, test_f = _features(cfg, model, ds, dev)
        e = cfg.eval
        probes = run_probes(
            train_f, test_f, ds, features=e.features, knn_k=e.knn_k, max_iter=e.max_iter
        )
        label: str = cfg.method
        weights: dict[str, float] = {}
        if cfg.method == "sepclr":
            b_s, b_r, lam = resolve_weights(cfg.loss, ds.kind)
            weights = {"beta_s": b_s, "beta_reg": b_r, "lambda_jem": lam}
            if lam == 0:
                label = "sepclr (lambda=0)"
        metrics = {
            "method": cfg.method,
            "label": label,
            "dataset": ds.name,
            "probes": probes,
            "chance": chance_levels(ds),
            "roles": ds.roles,
            "weights": weights,
            "n_train": len(ds.x_train),
            "n_test": len(ds.x_test),
            "seed": cfg.trainer.seed,
        }
        where = {} if out is None else {"run": str(run.path)}  # --out: which run was probed
        dest.write_json("metrics.json", {**metrics, **where})
        extra = ""
        if others:
            rows_in: dict[str, Mapping[str, Any]] = {f"{label} (this run)": metrics}
            rows_in.update({f"{m.get('label', m.get('method'))} ({Path(w).name})": m
                            for w, m in others.items()})  # fmt: skip
            headers, rows = comparison_rows(rows_in)
            extra = "\n## Methods x probes\n\n" + markdown_table(headers, rows) + "\n"
        dest.write_text("results.md", results_markdown(label, ds.name, probes, ds, extra))
        dest.write_text("report.html", results_page(label, ds.name, probes, test_f, ds))
        logger.info(
            "probes: %s",
            "; ".join(
                f"{space}: " + ", ".join(f"{name} {score:.4g}" for name, score in scores.items())
                for space, scores in probes.items()
            ),
        )
    return metrics


def evaluate_run(
    path: str | Path,
    device: str | None = None,
    compare: Sequence[str | Path] = (),
    *,
    seed: int | None = None,
    out: OutputFolder | None = None,
) -> dict[str, Any]:
    """Re-evaluate a finished run from its ``weights.pt`` (``contrasuite sepclr evaluate``).

    Args:
        path: The run folder.
        device: ``cpu``, ``cuda`` or ``auto``; default: the run's.
        compare: Other evaluated sepclr runs on the same data set; their probes join this
            run's in a methods x probes table in ``results.md``.
        seed: Seeds python's, numpy's and torch's generators once the weights are loaded,
            before the probes; ``None``: the run's ``trainer.seed`` (as before this argument
            existed). The probes draw no random numbers; the randomized PCA scikit-learn picks
            for the maps of a large test set does.
        out: Where the files go instead of the run (created once every input is checked).

    Returns:
        The metrics written to ``RUN/metrics.json`` (or ``out``).

    Raises:
        InputError: If the folder is not a finished SepCLR run, or its data changed.
    """
    run = RunFolder.open_existing(path, domain=DOMAIN, command="train")
    others = {}
    for other in compare:
        folder = RunFolder.open_existing(other, domain=DOMAIN, command="train", option="--compare")
        if not (folder.path / "metrics.json").is_file():
            raise InputError(f"--compare {folder.path}: no metrics.json; evaluate that run first.")
        others[str(folder.path)] = read_json(folder.path / "metrics.json")
    if not run.is_finished("train"):
        raise InputError(
            f"--run {run.path}: the training has not finished; run the same train command again "
            "to resume it first."
        )
    cfg = from_dict(SepCLRConfig, run.config, source=str(run.path / "config.yaml"))
    ds, fingerprint = load_dataset(cfg)
    run.check_data(fingerprint, f"the data of {cfg.data.path or 'the generated set'}")
    for where, m in others.items():
        if m.get("dataset") != ds.name or m.get("n_test") != len(ds.x_test):
            raise InputError(
                f"--compare {where}: a run on {m.get('dataset')} ({m.get('n_test')} test images), "
                f"not on this run's {ds.name} ({len(ds.x_test)})."
            )
    model = build_model(cfg, ds)  # seeds everything with trainer.seed, then draws the init
    _load_weights(run, model)
    # numpy's generator is untouched since build_model seeded it, so the default (the run's
    # seed) leaves every draw of the evaluation as it was before this seed could be chosen
    seed_everything(cfg.trainer.seed if seed is None else seed)
    return _evaluate(run, cfg, ds, model, device, others, out)


def _load_weights(run: RunFolder, model: nn.Module | CPCA) -> None:
    if isinstance(model, CPCA):
        model.load_state_dict(safe_load(run.path / "weights.pt"))
    else:
        run.load_weights(model)
