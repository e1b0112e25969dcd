"""``ecg train`` under ``torchrun`` with two gloo (CPU) processes: one run folder, one model.

Why not "equal to one process on the same global batch": the backbones use BatchNorm, which
normalizes each rank's half batch with that half's statistics (no SyncBatchNorm on gloo/CPU), so
the gradients differ from those of one process on the whole batch; the shuffled order also
differs (``DistributedSampler`` vs the single-process ``RandomSampler``). The core Trainer's
exact DDP == single-process equality is tested in ``tests/shared/test_trainer_ddp.py``. Here:
the same command, the same run folder layout as one process, one run id, every stage finished,
every rank ending with rank 0's weights (the run checks it), ``weights.pt`` reproducing
``metrics.json`` when reloaded in one process, and finite metrics.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch

from medical.ecg.arrays import load_data
from medical.ecg.config import ECGConfig
from medical.ecg.infer import evaluate_model, load_run
from medical.ecg.synth import write_synthetic_ptbxl
from medical.ecg.train import train
from shared.config import load_config
from shared.training.checkpoint import safe_load
from shared.training.run import MARKER, run_id_of
from tests.shared._ddp import start_torchrun, wait_ok

TINY = [
    "model.width=4",
    "model.layers=1,1,1,1",
    "model.ppc_rhythm=1",
    "model.ppc_morphology=1",
    "model.ppc_global=1",
    "data.batch_size=8",
    "trainer.lr=3e-3",
    "trainer.progress=false",
]


def _layout(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*")}


def _torchrun(data_dir: Path, run: Path, cwd: Path) -> subprocess.Popen[str]:
    """Start ``ecg train`` under torchrun with two gloo processes (tiny model, one epoch)."""
    args = ["ecg", "train", "--data-dir", str(data_dir), "--epochs", "1"]
    return start_torchrun([*args, "--device", "cpu", "-q", "--out", str(run), *TINY], cwd)


@pytest.mark.ddp
def test_ecg_train_under_torchrun_two_gloo_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTRASUITE_CACHE", str(tmp_path / "cache"))
    data_dir, run = tmp_path / "data", tmp_path / "ddp"
    write_synthetic_ptbxl(data_dir, n_records=60, seed=5, progress=False)
    # the two ranks start (importing torch takes most of this test's time) while one process
    # trains the same config here: the same run folder layout and stages are expected
    proc = _torchrun(data_dir, run, tmp_path)
    try:
        cfg = load_config(
            ECGConfig,
            {"data": {"data_dir": str(data_dir)}},
            [*TINY, "trainer.epochs=1", "trainer.device=cpu", "data.cache=false"],
        )
        single = tmp_path / "single"
        train(cfg, single, progress=False)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    stdout = wait_ok(proc)
    assert stdout.count("run folder:") == 1  # rank 0 alone reports
    assert _layout(run) == _layout(single)
    assert not [p for p in run.rglob("*.tmp")]
    marker = json.loads((run / MARKER).read_text())
    assert set(marker["stages"]) == set(json.loads((single / MARKER).read_text())["stages"])
    assert all(s["finished"] for s in marker["stages"].values())

    # one run id (rank 0's) everywhere: the top-level weights and every stage's trainer folder
    assert run_id_of(safe_load(run / "weights.pt")) == marker["run_id"]
    for stage in ("rhythm/feature", "global/joint", "fusion"):
        stage_marker = json.loads((run / stage / MARKER).read_text())
        assert run_id_of(safe_load(run / stage / "weights.pt")) == stage_marker["run_id"]

    # log.txt written by rank 0 alone; the ranks ended with identical weights (checked in-run)
    log = (run / "log.txt").read_text()
    assert log.count("all 2 ranks hold the same weights") == 1
    assert log.count("stage fusion: best val") == 1

    # the weights are the model that was evaluated: reloaded in one process, same metrics
    metrics = json.loads((run / "metrics.json").read_text())
    assert math.isfinite(metrics["macro_auc"])
    assert all(math.isfinite(v["macro_auc"]) for v in metrics["stages"].values())
    loaded = load_run(run)
    again = evaluate_model(
        loaded.model, loaded.config, load_data(loaded.config.data, progress=False)
    )
    assert again["macro_auc"] == pytest.approx(metrics["macro_auc"], abs=1e-9)
    assert again["n_test"] == metrics["n_test"]
    assert all(
        torch.isfinite(v).all() for v in loaded.model.state_dict().values() if v.is_floating_point()
    )


@pytest.mark.ddp
@pytest.mark.slow
def test_ecg_ddp_run_is_reproducible_and_resumes_finished(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTRASUITE_CACHE", str(tmp_path / "cache"))
    data_dir = tmp_path / "data"
    write_synthetic_ptbxl(data_dir, n_records=60, seed=5, progress=False)
    wait_ok(_torchrun(data_dir, tmp_path / "a", tmp_path))
    wait_ok(_torchrun(data_dir, tmp_path / "b", tmp_path))
    a, b = safe_load(tmp_path / "a" / "weights.pt"), safe_load(tmp_path / "b" / "weights.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ma = json.loads((tmp_path / "a" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert ma["macro_auc"] == mb["macro_auc"]
    assert ma["per_label"] == mb["per_label"]
    before = (tmp_path / "a" / "weights.pt").read_bytes()
    wait_ok(_torchrun(data_dir, tmp_path / "a", tmp_path))  # finished: only reports
    assert (tmp_path / "a" / "weights.pt").read_bytes() == before
