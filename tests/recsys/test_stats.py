"""Per-user metrics against RecBole's evaluator, and the paired tests' properties."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from recbole.model.sequential_recommender import SASRec

from recsys.stats import paired_test, per_user_metric
from recsys.trainer import RecTrainer


def test_per_user_metrics_average_to_recboles(make_setup: Any, tmp_path: Path) -> None:
    config, _, train, _, test = make_setup(SASRec)
    torch.manual_seed(0)
    trainer = RecTrainer(config, SASRec(config, train.dataset), run_dir=tmp_path, progress=False)
    result = trainer.evaluate(test, load_best_model=False)
    assert trainer.last_per_user is not None
    uids, positions = trainer.last_per_user
    assert sorted(uids.tolist()) == sorted(test.dataset.inter_feat["user_id"].tolist())
    for key, value in result.items():
        assert per_user_metric(positions, key).mean() == pytest.approx(value, abs=1e-4), key


def test_per_user_metric_by_definition() -> None:
    p = np.array([0, 1, 2, 10, 11])
    np.testing.assert_allclose(per_user_metric(p, "hit@10"), [0, 1, 1, 1, 0])
    np.testing.assert_allclose(per_user_metric(p, "mrr@10"), [0, 1, 0.5, 0.1, 0])
    np.testing.assert_allclose(
        per_user_metric(p, "ndcg@10"), [0, 1, 1 / np.log2(3), 1 / np.log2(11), 0]
    )
    with pytest.raises(ValueError, match="ndcg@10"):
        per_user_metric(p, "auc@10")


def test_permutation_p_value_matches_the_exact_one() -> None:
    d = np.array([0.3, 0.1, -0.05, 0.2, 0.25, 0.15])
    exact = np.mean(
        [abs(np.mean(np.array(s) * d)) >= abs(d.mean()) - 1e-12
         for s in itertools.product([-1, 1], repeat=len(d))]
    )  # fmt: skip
    got = paired_test(np.zeros_like(d), d, resamples=20_000, seed=1)
    assert got.p_value == pytest.approx(exact, abs=0.01)
    assert got.diff == pytest.approx(d.mean())


def test_paired_test_properties() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(300)
    same = paired_test(a, a.copy(), resamples=500)
    assert (same.diff, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    shifted = paired_test(a, a + 0.02 + rng.normal(0, 0.01, 300), resamples=2000)
    assert shifted.ci_low < 0.02 < shifted.ci_high
    assert shifted.p_value < 0.001
    swapped = paired_test(a + 0.02, a, resamples=2000)
    assert swapped.diff == pytest.approx(-0.02)
    # unpaired noise much larger than the paired effect: the pairing still finds it
    base = rng.random(300) * 10
    assert paired_test(base, base + 0.05, resamples=500).p_value < 0.01
    with pytest.raises(ValueError, match="same shape"):
        paired_test(a, a[:-1])
