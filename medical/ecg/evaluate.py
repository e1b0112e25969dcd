"""Whole-fold AUROC metrics (methods.md 1.7) and the test-fold evaluation of a run folder.

The official code logs a per-batch AUROC (batch 32) that skips the classes absent from each
batch and averages it over batches (methods.md 1.9 item 4). We compute macro and weighted AUROC
on the whole test fold instead; the official number is reported beside it as
``batch_averaged_auc_official`` for comparison only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

__all__ = ["auroc_metrics", "batch_averaged_auc", "bootstrap_auroc", "sigmoid"]

logger = logging.getLogger(__name__)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits in float64, without overflow warnings.

    Args:
        logits: Any shape.

    Returns:
        Same shape, float64, in [0, 1].

    Examples:
        >>> sigmoid(np.array([0.0, 2.0])).round(4).tolist()
        [0.5, 0.8808]
        >>> bool(0.0 <= sigmoid(np.array([-1000.0]))[0] < 1e-300)  # no overflow warning
        True
    """
    x = np.clip(np.asarray(logits, dtype=np.float64), -700, 700)
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return out


def auroc_metrics(
    scores: np.ndarray, targets: np.ndarray, label_names: Sequence[str]
) -> dict[str, object]:
    """Macro and weighted AUROC over the labels that have both positives and negatives.

    ``macro_auc`` is the plain mean of the per-label AUROCs (sklearn's ``average="macro"`` when
    every label is evaluable); ``weighted_auc`` weights each label by its number of positives
    (sklearn's ``average="weighted"``). Labels without a positive (or without a negative) in
    ``targets`` have no AUROC; they are listed in ``labels_skipped``.

    Args:
        scores: Predicted probabilities (or any monotone score). Shape: (N, C).
        targets: Multi-hot references. Shape: (N, C).
        label_names: The ``C`` label codes.

    Returns:
        ``macro_auc``, ``weighted_auc`` (NaN when no label is evaluable), ``per_label``
        (``{code: auc}``), ``n_labels_evaluated``, ``labels_skipped``, ``n``.

    Raises:
        ValueError: If the shapes disagree.

    Examples:
        >>> y = np.array([[1, 0], [0, 0], [1, 0]])
        >>> s = np.array([[0.9, 0.1], [0.2, 0.3], [0.8, 0.2]])
        >>> m = auroc_metrics(s, y, ["A", "B"])
        >>> m["macro_auc"], m["labels_skipped"]
        (1.0, ['B'])
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets) > 0
    if scores.shape != targets.shape or scores.ndim != 2 or scores.shape[1] != len(label_names):
        raise ValueError(
            f"Expected scores and targets of shape (N, {len(label_names)}), but got "
            f"{scores.shape} and {targets.shape}."
        )
    per_label: dict[str, float] = {}
    support: list[float] = []
    skipped: list[str] = []
    for c, name in enumerate(label_names):
        pos = int(targets[:, c].sum())
        if pos == 0 or pos == targets.shape[0]:
            skipped.append(str(name))
            continue
        per_label[str(name)] = float(roc_auc_score(targets[:, c], scores[:, c]))
        support.append(pos)
    values = np.array(list(per_label.values()))
    macro = float(values.mean()) if len(values) else float("nan")
    weighted = float(np.average(values, weights=support)) if len(values) else float("nan")
    return {
        "macro_auc": macro,
        "weighted_auc": weighted,
        "per_label": per_label,
        "n_labels_evaluated": len(per_label),
        "labels_skipped": skipped,
        "n": int(targets.shape[0]),
    }


def batch_averaged_auc(scores: np.ndarray, targets: np.ndarray, batch_size: int = 32) -> float:
    """The official code's test AUROC: per batch, mean over the classes present, then mean.

    Kept only to show how far it is from the whole-fold macro AUROC; do not report it.

    Args:
        scores: Shape: (N, C).
        targets: Shape: (N, C).
        batch_size: The official test batch size (32).

    Returns:
        The average over batches of each batch's mean AUROC over the classes with both
        positives and negatives in that batch (batches without any such class are skipped).
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets) > 0
    values = []
    for start in range(0, len(scores), batch_size):
        s, y = scores[start : start + batch_size], targets[start : start + batch_size]
        aucs = [
            roc_auc_score(y[:, c], s[:, c]) for c in range(y.shape[1]) if 0 < y[:, c].sum() < len(y)
        ]
        if aucs:
            values.append(float(np.mean(aucs)))
    return float(np.mean(values)) if values else float("nan")


def _column_aucs(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """AUROC of every column by the rank-sum formula (ties: average ranks, as sklearn).

    NaN where a column has no positive or no negative. Shape: (N, C) -> (C,).
    """
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=0)
    pos = targets.sum(axis=0)
    neg = targets.shape[0] - pos
    rank_sum = (ranks * targets).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - pos * (pos + 1) / 2) / (pos * neg)
    auc[(pos == 0) | (neg == 0)] = np.nan
    out: np.ndarray = auc
    return out


def bootstrap_auroc(
    scores: np.ndarray, targets: np.ndarray, n: int = 200, seed: int = 0
) -> dict[str, list[float]]:
    """95 % bootstrap intervals of macro and weighted AUROC over the test ECGs.

    Each resample draws the ECGs with replacement and scores the labels that have both
    positives and negatives in it (as :func:`auroc_metrics` does on the whole set).

    Args:
        scores: Shape: (N, C).
        targets: Shape: (N, C), multi-hot.
        n: Resamples.
        seed: Seed of the resampling.

    Returns:
        ``{"macro_auc": [low, high], "weighted_auc": [low, high]}`` (2.5th and 97.5th
        percentiles); NaN bounds when no resample has an evaluable label.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> y = (rng.random((200, 2)) < 0.3).astype(float)
        >>> ci = bootstrap_auroc(y + rng.normal(0, 0.5, y.shape), y, n=50)
        >>> bool(0.5 < ci["macro_auc"][0] < ci["macro_auc"][1] <= 1.0)
        True
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = (np.asarray(targets) > 0).astype(np.float64)
    rng = np.random.default_rng(seed)
    macro, weighted = [], []
    for _ in range(n):
        rows = rng.integers(0, len(scores), len(scores))
        auc = _column_aucs(scores[rows], targets[rows])
        ok = ~np.isnan(auc)
        if ok.any():
            macro.append(float(auc[ok].mean()))
            weighted.append(float(np.average(auc[ok], weights=targets[rows][:, ok].sum(axis=0))))
    nan = [float("nan"), float("nan")]
    return {
        "macro_auc": [float(v) for v in np.percentile(macro, [2.5, 97.5])] if macro else nan,
        "weighted_auc": [float(v) for v in np.percentile(weighted, [2.5, 97.5])]
        if weighted
        else nan,
    }
