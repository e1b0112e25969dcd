"""Per-zone segmentation metrics: Dice, HD95 and MASD, in millimetres and in voxels.

Surfaces are the mask voxels with a 6-connected neighbour outside the mask (a mask touching the
volume border is closed by the border). For surfaces ``S_p`` (prediction) and ``S_r``
(reference), ``d(x, S)`` is the Euclidean distance from voxel centre ``x`` to the nearest voxel
centre of ``S`` (exact, ``scipy.ndimage.distance_transform_edt`` with the voxel spacing, or
spacing 1 for voxel units):

* **MASD** (mean absolute symmetric surface distance, the UATS "mean distance"):
  ``(sum_{x in S_p} d(x, S_r) + sum_{y in S_r} d(y, S_p)) / (|S_p| + |S_r|)``.
* **HD95**: ``max(P95{d(x, S_r): x in S_p}, P95{d(y, S_p): y in S_r})`` (the MONAI /
  medpy convention), with numpy's linear percentile.
* **Dice**: ``2 |P and R| / (|P| + |R|)``.

**Missing rule** (:data:`MISSING_RULE`): a zone absent from a case's reference is not scored for
that case (it does not count in ``n_cases``; a prediction there is counted as
``n_false_positive``). A zone present in the reference but empty in the prediction scores
Dice 0, and its distances are *missing*, never 0: they are left out of the distance means and
counted in ``n_missing``. Means are over the cases that have a value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from medical.prostate import ZONES

__all__ = [
    "MISSING_RULE",
    "case_metrics",
    "relative_change",
    "summarise",
    "surface_distances",
    "zone_metrics",
]

MISSING_RULE = (
    "A zone absent from a case's reference is not scored for that case (a prediction there "
    "counts in n_false_positive). A zone present in the reference but not predicted scores "
    "Dice 0 and its HD95/MASD are missing (never 0): left out of the means and counted in "
    "n_missing. Means are over the cases that have a value."
)

_KEYS = ("dice", "hd95_mm", "masd_mm", "hd95_vox", "masd_vox")


def _surface(mask: np.ndarray) -> np.ndarray:
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    eroded = ndimage.binary_erosion(mask, structure=structure, border_value=0)
    return mask & ~eroded


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each surface voxel of one mask to the other mask's surface.

    Args:
        pred: Predicted mask, bool, non-empty. Shape: (X, Y, Z).
        ref: Reference mask, bool, non-empty. Shape: (X, Y, Z).
        spacing: Voxel size (mm, or 1s for voxel units).

    Returns:
        ``(d(S_p -> S_r), d(S_r -> S_p))``, 1D float arrays.

    Raises:
        ValueError: If a mask is empty or the shapes differ.
    """
    if pred.shape != ref.shape:
        raise ValueError(f"Expected masks of one shape, but got {pred.shape} and {ref.shape}.")
    if not pred.any() or not ref.any():
        raise ValueError("Expected non-empty masks (empty masks have no surface distance).")
    sp, sr = _surface(pred.astype(bool)), _surface(ref.astype(bool))
    to_r = ndimage.distance_transform_edt(~sr, sampling=spacing)
    to_p = ndimage.distance_transform_edt(~sp, sampling=spacing)
    return to_r[sp], to_p[sr]


def zone_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]
) -> dict[str, float | None]:
    """Dice, HD95 and MASD (mm and voxels) of one zone in one case.

    Args:
        pred: Predicted mask. Shape: (X, Y, Z).
        ref: Reference mask (non-empty; the caller skips absent zones). Shape: (X, Y, Z).
        spacing: Voxel size in mm.

    Returns:
        ``dice``, ``hd95_mm``, ``masd_mm``, ``hd95_vox``, ``masd_vox``; distances are ``None``
        when the prediction is empty (missing).

    Examples:
        >>> ref = np.zeros((6, 6, 3), bool); ref[1:4, 1:4, 1] = True
        >>> pred = np.roll(ref, 1, axis=0)
        >>> m = zone_metrics(pred, ref, (0.5, 0.5, 3.0))
        >>> round(m["dice"], 4), m["hd95_mm"], round(m["masd_vox"], 4)
        (0.6667, 0.5, 0.3333)
    """
    pred, ref = pred.astype(bool), ref.astype(bool)
    denom = pred.sum() + ref.sum()
    dice = float(2 * (pred & ref).sum() / denom) if denom else math.nan
    out: dict[str, float | None] = {"dice": dice}
    if not pred.any() or not ref.any():
        out.update(hd95_mm=None, masd_mm=None, hd95_vox=None, masd_vox=None)
        return out
    for unit, sp in (("mm", spacing), ("vox", (1.0,) * pred.ndim)):
        a, b = surface_distances(pred, ref, sp)
        out[f"hd95_{unit}"] = float(max(np.percentile(a, 95), np.percentile(b, 95)))
        out[f"masd_{unit}"] = float((a.sum() + b.sum()) / (a.size + b.size))
    return out


def case_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], zones: Sequence[int]
) -> dict[str, dict[str, Any]]:
    """Metrics of each scored zone of one case.

    Args:
        pred: Predicted labels 0-4. Shape: (X, Y, Z).
        ref: Reference labels 0-4. Shape: (X, Y, Z).
        spacing: Voxel size in mm.
        zones: Zone values to score (the zones of the dataset).

    Returns:
        ``{zone name: {metric: value | None, "absent": bool, "false_positive": bool}}``.
    """
    out: dict[str, dict[str, Any]] = {}
    for z in zones:
        name = ZONES[z - 1]
        r, p = ref == z, pred == z
        if not r.any():
            out[name] = {"absent": True, "false_positive": bool(p.any())}
            continue
        out[name] = {"absent": False, "false_positive": False, **zone_metrics(p, r, spacing)}
    return out


def summarise(
    per_case: Sequence[Mapping[str, Mapping[str, Any]]], zones: Sequence[int]
) -> dict[str, dict[str, Any]]:
    """Per-zone means over cases, following :data:`MISSING_RULE`.

    Args:
        per_case: :func:`case_metrics` results.
        zones: Zone values scored.

    Returns:
        ``{zone: {"dice", "hd95_mm", "masd_mm", "hd95_vox", "masd_vox", "n_cases",
        "n_missing", "n_false_positive"}}`` (a mean with no value is ``None``).
    """
    out: dict[str, dict[str, Any]] = {}
    for z in zones:
        name = ZONES[z - 1]
        rows = [c[name] for c in per_case if name in c and not c[name].get("absent")]
        stats: dict[str, Any] = {}
        for key in _KEYS:
            values = [r[key] for r in rows if r.get(key) is not None and not math.isnan(r[key])]
            stats[key] = float(np.mean(values)) if values else None
        stats["n_cases"] = len(rows)
        stats["n_missing"] = sum(1 for r in rows if r.get("masd_mm") is None)
        stats["n_false_positive"] = sum(
            1 for c in per_case if name in c and c[name].get("false_positive")
        )
        out[name] = stats
    return out


def relative_change(
    new: Mapping[str, Mapping[str, Any]], base: Mapping[str, Mapping[str, Any]], key: str
) -> dict[str, float | None]:
    """``100 * (new - base) / base`` per zone (negative = lower than the baseline).

    Examples:
        >>> change = relative_change({"PZ": {"masd_mm": 0.9}}, {"PZ": {"masd_mm": 1.0}}, "masd_mm")
        >>> round(change["PZ"], 6)
        -10.0
    """
    out: dict[str, float | None] = {}
    for zone, stats in new.items():
        a, b = stats.get(key), base.get(zone, {}).get(key)
        out[zone] = None if a is None or b is None or b == 0 else 100.0 * (a - b) / b
    return out
