"""Inference on a trained ECG run: building its model, loading it, predicting, test metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from medical.ecg.arrays import TEST_FOLDS, ECGArrays, make_loader
from medical.ecg.config import ECGConfig
from medical.ecg.evaluate import auroc_metrics, batch_averaged_auc, bootstrap_auroc, sigmoid
from medical.ecg.model import ProtoECGNet, PrototypeBranch, ResNet1DClassifier
from shared.errors import InputError
from shared.io import read_json, write_csv
from shared.runtime import resolve_device
from shared.training.checkpoint import safe_load
from shared.training.run import MARKER, RunFolder

__all__ = [
    "DOMAIN",
    "FINISHED",
    "SIMILARITY_STATS",
    "LoadedRun",
    "build_model",
    "evaluate_model",
    "load_run",
    "predict",
]

#: The domain name in every ECG run folder's marker.
DOMAIN = "ecg"
#: The marker's stage name of a finished run (all stages, weights and test metrics written).
FINISHED = "run"
#: Training-set statistics of every prototype's similarity (for explanation reports).
SIMILARITY_STATS = "similarity_stats.pt"


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
    for x, _, _ in make_loader(data, rows, batch_size, shuffle=False):
        res = model(x.to(device))
        logits = res if isinstance(res, Tensor) else res.logits
        out.setdefault("logits", []).append(logits.double().cpu().numpy())
        if not isinstance(res, Tensor):
            for name, b in res.branches.items():
                out.setdefault(f"branch/{name}", []).append(b.logits.double().cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate_model(
    model: nn.Module,
    cfg: ECGConfig,
    data: ECGArrays,
    out: Path | None = None,
    *,
    bootstrap: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Test-fold (strat_fold 10) metrics of a trained model; writes ``test_predictions.csv``.

    Args:
        model: The trained model.
        cfg: Its config.
        data: The data set.
        out: The folder for ``test_predictions.csv`` (``None``: nothing written).
        bootstrap: Resamples of the test ECGs for 95 % intervals of macro and weighted AUROC
            (``ci95``); ``None``: 200 when the test fold holds fewer than 5,000 ECGs, else 0.
        seed: Seed of the bootstrap resampling; ``None``: ``cfg.trainer.seed``.

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
    n_boot = (200 if len(rows) < 5000 else 0) if bootstrap is None else bootstrap
    if n_boot > 0:
        draw = cfg.trainer.seed if seed is None else seed
        metrics["ci95"] = bootstrap_auroc(preds["logits"], y, n_boot, seed=draw)
        metrics["bootstrap"] = n_boot
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
        folder: The run folder (its id, data fingerprint, stages).
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
    folder: RunFolder | None = None


def load_run(run: str | Path) -> LoadedRun:
    """Load a finished ``ecg train`` run folder (config, weights, provenance).

    Args:
        run: The run folder.

    Returns:
        The loaded run.

    Raises:
        InputError: If the path is missing or a file, is not an ECG run folder, holds an
            unfinished or corrupt run, weights of another run, or fusion statistics that are
            missing or not the run's.
    """
    from shared.config import from_dict

    folder = RunFolder.open_existing(run, domain=DOMAIN, command="train")
    path = folder.path
    if not folder.is_finished(FINISHED):
        raise InputError(
            f"--run {path}: the run has not finished; run the same `contrasuite ecg train` "
            "command again to resume it."
        )
    state = safe_load(path / "state.pt")
    if not isinstance(state, dict) or "label_names" not in state:
        raise InputError(f"--run {path}: state.pt is corrupt or of another format.")
    cfg = from_dict(ECGConfig, folder.config, source=str(path / MARKER))
    label_names = [str(n) for n in state["label_names"]]
    label_index = {str(k): [int(i) for i in v] for k, v in state["label_index"].items()}
    model = build_model(
        cfg, label_index, len(label_names), int(state["signal_length"]), int(state["leads"])
    )
    folder.load_weights(model)
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
        folder,
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
