import math

import numpy as np
import pytest

from medical.prostate.metrics import case_metrics, relative_change, summarise, zone_metrics


def _box(shape, lo, hi):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


def test_identical_masks():
    ref = _box((8, 8, 4), (2, 2, 1), (6, 6, 3))
    m = zone_metrics(ref, ref, (0.5, 0.5, 3.0))
    assert m["dice"] == 1.0
    assert m["hd95_mm"] == m["masd_mm"] == m["masd_vox"] == 0.0


def test_single_voxels_hand_computed():
    # One voxel each, 3 voxels apart along z (3 mm slices) and 4 along x (0.5 mm): d = 5 vox,
    # sqrt(2^2 + 9^2) mm.
    ref = np.zeros((8, 8, 6), bool)
    pred = np.zeros((8, 8, 6), bool)
    ref[1, 1, 1] = True
    pred[5, 1, 4] = True
    m = zone_metrics(pred, ref, (0.5, 0.5, 3.0))
    assert m["dice"] == 0.0
    assert m["masd_vox"] == pytest.approx(5.0)
    assert m["hd95_vox"] == pytest.approx(5.0)
    assert m["masd_mm"] == pytest.approx(math.hypot(2.0, 9.0))
    assert m["hd95_mm"] == pytest.approx(math.hypot(2.0, 9.0))


def test_shifted_slab_masd_counts_both_directions():
    # Reference: slab x in [2, 6); prediction: x in [3, 7). Surfaces: reference faces at x=2,5,
    # prediction at x=3,6 (plus the y/z faces). Computed with a brute-force loop below.
    shape = (9, 5, 3)
    ref = _box(shape, (2, 1, 0), (6, 4, 3))
    pred = _box(shape, (3, 1, 0), (7, 4, 3))
    spacing = (0.5, 1.0, 3.0)

    def surface(mask):
        out = []
        for idx in zip(*np.nonzero(mask)):
            for ax in range(3):
                for step in (-1, 1):
                    j = list(idx)
                    j[ax] += step
                    if not (0 <= j[ax] < shape[ax]) or not mask[tuple(j)]:
                        out.append(idx)
                        break
                else:
                    continue
                break
        return np.array(sorted(set(out)), float)

    sp, sr = surface(pred), surface(ref)
    scale = np.array(spacing)

    def dists(a, b):
        return np.array([np.min(np.linalg.norm((b - x) * scale, axis=1)) for x in a])

    d_pr, d_rp = dists(sp, sr), dists(sr, sp)
    expected_masd = (d_pr.sum() + d_rp.sum()) / (len(d_pr) + len(d_rp))
    expected_hd95 = max(np.percentile(d_pr, 95), np.percentile(d_rp, 95))
    m = zone_metrics(pred, ref, spacing)
    assert m["masd_mm"] == pytest.approx(expected_masd)
    assert m["hd95_mm"] == pytest.approx(expected_hd95)
    assert m["dice"] == pytest.approx(2 * 3 * 3 * 3 / (2 * 4 * 3 * 3))


def test_missing_rule():
    ref = np.zeros((6, 6, 3), np.int64)
    ref[1:3, 1:3, 1] = 1  # PZ present, TZ absent from the reference
    pred = np.zeros_like(ref)
    pred[4, 4, 1] = 2  # a TZ false positive, PZ not predicted
    per_case = [case_metrics(pred, ref, (1, 1, 1), zones=(1, 2))]
    assert per_case[0]["PZ"]["dice"] == 0.0
    assert per_case[0]["PZ"]["masd_mm"] is None  # missing, never 0
    assert per_case[0]["TZ"] == {"absent": True, "false_positive": True}
    summary = summarise(per_case, zones=(1, 2))
    assert summary["PZ"]["n_cases"] == 1
    assert summary["PZ"]["n_missing"] == 1
    assert summary["PZ"]["masd_mm"] is None
    assert summary["PZ"]["dice"] == 0.0
    assert summary["TZ"]["n_cases"] == 0
    assert summary["TZ"]["n_false_positive"] == 1


def test_summarise_means_over_present_values():
    good = {
        "PZ": {
            "absent": False,
            "dice": 0.8,
            "masd_mm": 1.0,
            "hd95_mm": 2.0,
            "masd_vox": 2.0,
            "hd95_vox": 4.0,
        }
    }
    missing = {
        "PZ": {
            "absent": False,
            "dice": 0.0,
            "masd_mm": None,
            "hd95_mm": None,
            "masd_vox": None,
            "hd95_vox": None,
        }
    }
    s = summarise([good, missing], zones=(1,))["PZ"]
    assert s["dice"] == pytest.approx(0.4)
    assert s["masd_mm"] == 1.0
    assert s["n_missing"] == 1
    assert s["n_cases"] == 2
    change = relative_change({"PZ": {"masd_mm": 0.5}}, {"PZ": {"masd_mm": 1.0}}, "masd_mm")
    assert change == {"PZ": -50.0}
