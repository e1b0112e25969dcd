"""SepCLR under DDP: the losses see the global batch; ``sepclr train`` under torchrun.

The tasks compute the loss of the gathered global batch on every rank. The gather's backward
sums the ranks' gradients into each local row, and DDP divides by the world size, so a local
row's gradient divided by the world size must be the single-process gradient of that row on the
global batch (and the loss the global loss).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from medical.sepclr.augment import BatchAugment
from medical.sepclr.config import AugmentConfig, ModelConfig
from medical.sepclr.losses import SepCLRWeights, sepclr_loss
from medical.sepclr.model import SepCLRModel, SingleModel
from medical.sepclr.tasks import SepCLRTask, SimCLRTask
from medical.sepclr.train import evaluate_run
from shared.losses import nt_xent
from shared.runtime import torch_threads
from shared.training.checkpoint import safe_load
from shared.training.run import MARKER, run_id_of
from tests.shared._ddp import run_gloo, start_torchrun, wait_ok

pytestmark = pytest.mark.ddp

B_LOCAL = 4
WEIGHTS = SepCLRWeights(beta_s=2.0, beta_reg=3.0, lambda_jem=0.5)
TINY = ["data.n_per_group=40", "model.width=4", "batch_size=16", "trainer.progress=false"]


def _global_heads() -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    n = 2 * B_LOCAL
    c1 = F.normalize(torch.randn(n, 5, generator=g, dtype=torch.float64), dim=1)
    c2 = F.normalize(torch.randn(n, 5, generator=g, dtype=torch.float64), dim=1)
    s1 = torch.randn(n, 3, generator=g, dtype=torch.float64)
    s2 = torch.randn(n, 3, generator=g, dtype=torch.float64)
    groups = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])  # each rank holds both groups
    return [c1, c2, s1, s2], groups


def _check_global_batch(rank: int, world: int) -> None:
    model_cfg = ModelConfig(width=4, common_dim=5, salient_dim=3)
    aug = BatchAugment(AugmentConfig())
    for form in ("code", "paper"):
        heads, groups = _global_heads()
        full = [h.clone().requires_grad_() for h in heads]
        ref = sepclr_loss(full[0], full[1], full[2], full[3], groups, WEIGHTS, form=form)
        ref["loss"].backward()
        rows = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
        local = [h[rows].clone().requires_grad_() for h in heads]
        task = SepCLRTask(SepCLRModel(model_cfg, 1), aug, WEIGHTS, 0.5, form)
        out = task.loss(local[0], local[1], local[2], local[3], groups[rows])
        out["loss"].backward()
        for key in ref:
            torch.testing.assert_close(out[key], ref[key], msg=f"{form}: {key}")
        for mine, theirs in zip(local, full):
            assert theirs.grad is not None
            assert mine.grad is not None
            torch.testing.assert_close(mine.grad / world, theirs.grad[rows])

    heads, _ = _global_heads()
    full = [h.clone().requires_grad_() for h in heads[:2]]
    ref_loss = nt_xent(full[0], full[1], temperature=0.5)
    ref_loss.backward()
    local = [h[rows].clone().requires_grad_() for h in heads[:2]]
    simclr = SimCLRTask(SingleModel(model_cfg, 1), aug, temperature=0.5)
    loss = simclr.loss(local[0], local[1])["loss"]
    loss.backward()
    torch.testing.assert_close(loss, ref_loss)
    for mine, theirs in zip(local, full):
        assert theirs.grad is not None
        assert mine.grad is not None
        torch.testing.assert_close(mine.grad / world, theirs.grad[rows])


def test_sepclr_and_simclr_losses_see_the_global_batch() -> None:
    run_gloo(_check_global_batch)


def test_sepclr_train_under_torchrun_two_gloo_processes(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    args = ["sepclr", "train", "--out", str(run), "--epochs", "2", "--device", "cpu", *TINY]
    stdout = wait_ok(start_torchrun(args, tmp_path))
    assert stdout.count("sepclr on generated") == 1  # rank 0 alone prints the probes
    for name in ("config.yaml", "history.csv", "metrics.json", "weights.pt", "report.html",
                 "results.md", "log.txt", "train/state.pt"):  # fmt: skip
        assert (run / name).is_file(), name
    assert not list(run.rglob("*.tmp"))
    marker = json.loads((run / MARKER).read_text())
    assert marker["stages"]["train"]["finished"]
    assert run_id_of(safe_load(run / "weights.pt")) == marker["run_id"]
    log = (run / "log.txt").read_text()
    assert log.count("all 2 ranks hold the same weights") == 1
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 2  # header, 2 epochs
    # the weights are the model rank 0 evaluated: reloaded in one process, the same probes
    before = json.loads((run / "metrics.json").read_text())
    assert before["probes"]["salient"]["group_linear"] > 0.6
    with torch_threads(1):  # the ranks ran with one thread each: the same float rounding
        assert evaluate_run(run, "cpu")["probes"] == before["probes"]
