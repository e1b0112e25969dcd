"""The probe protocol of methods.md 4.6: linear (and kNN) probes of each space.

Probes are fit on the training images' features and scored on the test images:

* ``group_linear`` / ``group_knn``: background vs target, balanced accuracy, all samples;
* ``<factor>_linear`` / ``<factor>_knn``: each factor of the data set (the generated set:
  ``texture``, common; ``digit``, salient), balanced accuracy, **target samples only** (as
  the CIFAR-10-on-MNIST evaluation script).

The linear probe is scikit-learn's ``LogisticRegression()`` with its defaults (C = 1, lbfgs,
100 iterations; convergence warnings silenced, as the scripts do) on the raw features; the kNN
probe is ``KNeighborsClassifier(k)`` (Euclidean). Which features: ``code`` (default, as the
official code) probes the group on the projection **heads** and the factors on the
**representations** (``fc`` outputs); ``rep`` or ``head`` use one of them everywhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import KNeighborsClassifier
from torch import Tensor

from medical.sepclr.data import ContrastiveSet

__all__ = ["Features", "extract_features", "probe_table", "run_probes"]

#: ``{space: {"rep": (N, d), "head": (N, d)}}`` as numpy arrays.
Features = dict[str, dict[str, np.ndarray]]


@torch.no_grad()
def extract_features(
    fn: Callable[[Tensor], Mapping[str, Mapping[str, Tensor]]],
    x: np.ndarray,
    device: torch.device | str = "cpu",
    batch_size: int = 512,
) -> Features:
    """Run a model's ``features`` over images in batches.

    Args:
        fn: ``model.features`` (the model in eval mode).
        x: Shape: (N, C, H, W), float32.
        device: Where to run.
        batch_size: Images per forward pass.

    Returns:
        ``{space: {"rep": (N, d), "head": (N, d)}}``, float32.
    """
    chunks: dict[str, dict[str, list[np.ndarray]]] = {}
    for start in range(0, len(x), batch_size):
        out = fn(torch.from_numpy(x[start : start + batch_size]).to(device))
        for space, kinds in out.items():
            for kind, value in kinds.items():
                chunks.setdefault(space, {}).setdefault(kind, []).append(
                    value.float().cpu().numpy()
                )
    return {s: {k: np.concatenate(v) for k, v in kinds.items()} for s, kinds in chunks.items()}


def _score(
    xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, k: int, max_iter: int
) -> dict[str, float]:
    if len(np.unique(ytr)) < 2 or len(yte) == 0:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true"
        lin = LogisticRegression(max_iter=max_iter).fit(xtr, ytr)
        knn = KNeighborsClassifier(n_neighbors=min(k, len(ytr))).fit(xtr, ytr)
        return {
            "linear": float(balanced_accuracy_score(yte, lin.predict(xte))),
            "knn": float(balanced_accuracy_score(yte, knn.predict(xte))),
        }


def run_probes(
    train: Features,
    test: Features,
    ds: ContrastiveSet,
    *,
    features: str = "code",
    knn_k: int = 10,
    max_iter: int = 100,
) -> dict[str, dict[str, float]]:
    """Score every probe on every space.

    Args:
        train: Features of ``ds``'s training images.
        test: Features of its test images.
        ds: The data set (groups and factors).
        features: ``code``, ``rep`` or ``head`` (see the module docstring).
        knn_k: Neighbours of the kNN probe.
        max_iter: Logistic-regression iterations.

    Returns:
        ``{space: {probe_name: balanced accuracy}}``.
    """
    group_kind = "head" if features in ("code", "head") else "rep"
    factor_kind = "head" if features == "head" else "rep"
    out: dict[str, dict[str, float]] = {}
    for space in train:
        probes: dict[str, float] = {}
        scores = _score(
            train[space][group_kind], ds.g_train, test[space][group_kind], ds.g_test,
            knn_k, max_iter,
        )  # fmt: skip
        probes.update({f"group_{k}": v for k, v in scores.items()})
        for name in ds.f_train:
            mtr = (ds.g_train == 1) & (ds.f_train[name] >= 0)
            mte = (ds.g_test == 1) & (ds.f_test[name] >= 0)
            xtr, xte = train[space][factor_kind], test[space][factor_kind]
            scores = _score(
                xtr[mtr], ds.f_train[name][mtr], xte[mte], ds.f_test[name][mte], knn_k, max_iter
            )
            probes.update({f"{name}_{k}": v for k, v in scores.items()})
        out[space] = probes
    return out


def chance_levels(ds: ContrastiveSet) -> dict[str, float]:
    """Balanced-accuracy chance level of each probe target (1 / number of classes)."""
    levels = {"group": 0.5}
    for name, values in ds.f_test.items():
        n = len(np.unique(values[(ds.g_test == 1) & (values >= 0)]))
        levels[name] = 1.0 / max(n, 1)
    return levels


def probe_table(probes: Mapping[str, Mapping[str, float]]) -> tuple[list[str], list[list[str]]]:
    """Columns and rows (one per space) of a probe table, scores to 3 decimals."""
    cols = sorted({p for s in probes.values() for p in s})
    rows = [
        [space] + [f"{probes[space].get(c, float('nan')):.3f}" for c in cols] for space in probes
    ]
    return cols, rows
