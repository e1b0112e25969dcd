"""The recsys pipeline learns: trained models beat chance; a saved ``weights.pt`` reproduces its
test metrics when loaded into a fresh model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from recsys.config import RecsysConfig, replace
from recsys.data import resolve_dataset
from recsys.evaluation import MODELS, evaluate_models
from recsys.loading import build_config, load_data
from recsys.trainer import RecTrainer

from .conftest import write_sequences

N_ITEMS = 30


def chance_ndcg_at_10(n_items: int) -> float:
    """Expected NDCG@10 of a uniformly random ranking of ``n_items`` items."""
    return sum(1.0 / math.log2(r + 1) for r in range(1, 11)) / n_items


def test_trained_models_beat_chance_and_checkpoints_reproduce_metrics(tmp_path: Path) -> None:
    data = write_sequences(tmp_path / "shop.txt", n_users=80, n_items=N_ITEMS, min_len=6)
    cfg = replace(
        RecsysConfig(dataset=str(data), models=("FastSASRec", "MCLRec")),
        encoder={"dropout": 0.1},
        trainer={"epochs": 3, "batch_size": 64, "lr": 3e-3, "device": "cpu", "progress": False,
                 "threads": 1,
                 "patience": 100},
    )  # fmt: skip
    out = tmp_path / "run"
    results = evaluate_models(cfg, out)

    # The next item is the previous one + 1 in 80% of the steps (see write_sequences).
    chance = chance_ndcg_at_10(N_ITEMS)  # 0.15
    for name, result in results.items():
        assert result.test["ndcg@10"] > 2.5 * chance, (name, result.test)
        assert result.test["hit@10"] > 0.6, (name, result.test)

    saved = json.loads((out / "results.json").read_text())
    source = resolve_dataset(str(data), out)
    for name in results:
        run_dir = out / name
        settings = json.loads((run_dir / "settings.json").read_text())
        spec = MODELS[name]
        config = build_config(spec.model, source, settings, checkpoint_dir=tmp_path, device="cpu")
        _, train, _, test = load_data(config)
        model = spec.model(config, train.dataset)
        trainer = RecTrainer(config, model, run_dir=tmp_path / "reload" / name, progress=False)
        got = trainer.evaluate(test, model_file=run_dir / "weights.pt", phase="test")
        assert {k.lower(): float(v) for k, v in got.items()} == pytest.approx(
            saved[name]["test"], abs=1e-12
        ), name
