"""``prostate train`` under ``torchrun`` with two gloo (CPU) processes: one run folder, one model.

The phantoms are generated into the run folder (rank 0 writes them, the other rank waits), both
stages of the dual-path net train with each rank on its share of the cases, and rank 0 alone
writes and scores the test cases; reloaded in one process, the weights give the same metrics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from medical.prostate.evaluate import evaluate
from shared.runtime import torch_threads
from shared.training.checkpoint import safe_load
from shared.training.run import MARKER, run_id_of
from tests.medical.prostate.test_pipeline import TINY as PIPELINE_TINY
from tests.shared._ddp import start_torchrun, wait_ok

TINY = [
    *PIPELINE_TINY,  # the single-process end-to-end test's sizes, on phantoms made in the run
    "data.phantom_cases=7",
    "data.phantom_shape=32,32,8",
    "data.phantom_spacing=2,2,6",
    "stage2.epochs=1",
]


@pytest.mark.ddp
def test_prostate_train_under_torchrun_two_gloo_processes(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    args = ["prostate", "train", "--out", str(run), "--epochs", "2", "--device", "cpu", *TINY]
    stdout = wait_ok(start_torchrun(args, tmp_path))
    assert stdout.count("run folder:") == 1  # rank 0 alone reports
    for name in ("split.json", "history.csv", "metrics.json", "weights.pt", "weights_stage1.pt",
                 "data/dataset.json", "stage1/state.pt", "stage2/state.pt", "log.txt"):  # fmt: skip
        assert (run / name).is_file(), name
    assert not list(run.rglob("*.tmp"))
    marker = json.loads((run / MARKER).read_text())
    assert {"stage1", "stage2"} <= set(marker["stages"])
    assert all(s["finished"] for s in marker["stages"].values())
    assert run_id_of(safe_load(run / "weights.pt")) == marker["run_id"]
    log = (run / "log.txt").read_text()
    assert log.count("writing 7 phantoms") == 1
    assert log.count("all 2 ranks hold the same weights") == 1
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2 + 1  # header, stage 1, stage 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_cases"] == 2
    assert all(math.isfinite(z["dice"]) for z in metrics["per_zone"].values())
    # the weights are the model rank 0 scored: reloaded in one process, the same metrics
    with torch_threads(1):  # the ranks ran with one thread each: the same float rounding
        again = evaluate(run, run / "data", device="cpu")
    assert again["per_zone"] == metrics["per_zone"]
