"""digits under DDP: each objective sees the global batch; `digits train` under torchrun.

Each task computes its objective over the gathered projections of every rank. The gather's
backward sums the ranks' gradients into each local row, and DDP divides by the world size, so
a local row's gradient divided by the world size must be one process's gradient of that row on
the global batch, and the loss the global loss.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from shared.distributed import gather_no_grad
from shared.training.run import MARKER
from tests.shared._ddp import run_gloo, start_torchrun, wait_ok
from vision.digits.config import SMOKE, build
from vision.digits.data import DigitAugment
from vision.digits.methods import METHODS, build_task

pytestmark = pytest.mark.ddp

B_LOCAL = 6
#: Methods whose step is TwoViewTask's (FT has its own, with keys and a queue).
TWO_VIEW = [m for m in METHODS if m != "ft"]


def _check_global_batch(rank: int, world: int) -> None:
    cfg = build(SMOKE)
    rows = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
    for method in TWO_VIEW:
        torch.manual_seed(0)
        task = build_task(method, cfg, DigitAugment(out_size=8))
        shape = task.project(torch.rand(2, 1, 8, 8)).shape[1:]
        g = torch.Generator().manual_seed(1)
        z1 = torch.randn(2 * B_LOCAL, *shape, generator=g)
        z2 = torch.randn(2 * B_LOCAL, *shape, generator=g)
        labels = torch.arange(2 * B_LOCAL) % 3
        full = [z1.clone().requires_grad_(), z2.clone().requires_grad_()]
        task.eval()  # SwAV: no prototype-freezing step count; the objective is the same
        expected = task.objective(full[0], full[1], labels)
        expected.backward()
        local = [z1[rows].clone().requires_grad_(), z2[rows].clone().requires_grad_()]
        loss = task.loss(local[0], local[1], labels[rows])
        loss.backward()
        torch.testing.assert_close(loss, expected, msg=method)
        for mine, theirs in zip(local, full):
            assert mine.grad is not None, method
            assert theirs.grad is not None, method
            torch.testing.assert_close(mine.grad / world, theirs.grad[rows], msg=method)


def _check_ft_is_the_same_on_every_rank(rank: int, world: int) -> None:
    torch.manual_seed(0)
    task = build_task("ft", build(SMOKE), DigitAugment(out_size=8))
    torch.manual_seed(100 + rank)  # each rank's RNG and data differ, as under the Trainer
    x, y = torch.rand(B_LOCAL, 1, 8, 8), torch.arange(B_LOCAL)
    for _ in range(2):
        loss = task.training_step((x, y))["loss"].detach()
        losses = gather_no_grad(loss[None])  # the same coefficients: the same global loss
        assert losses[0] == losses[1], losses
        queues = gather_no_grad(task.ft.queue[None])  # the same keys enqueued
        assert torch.equal(queues[0], queues[1])


def test_every_objective_sees_the_global_batch() -> None:
    run_gloo(_check_global_batch)


def test_ft_loss_and_queue_are_the_same_on_every_rank() -> None:
    run_gloo(_check_ft_is_the_same_on_every_rank)


def test_digits_train_under_torchrun_two_gloo_processes(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    config = tmp_path / "tiny.yaml"
    # SwAV with frozen prototypes at first: parameters without a gradient for a step
    settings = {"methods": ["swav", "ft"], "loss": {"swav": {"freeze_prototypes_steps": 1}}}
    config.write_text(json.dumps({**SMOKE, **settings}))  # JSON is YAML
    args = ["digits", "train", "--out", str(run), "--config", str(config), "--device", "cpu"]
    stdout = wait_ok(start_torchrun([*args, "trainer.progress=false"], tmp_path))
    assert stdout.count("report:") == 1  # rank 0 alone reports
    assert not list(run.rglob("*.tmp"))
    marker = json.loads((run / MARKER).read_text())
    assert {"swav", "ft"} <= set(marker["stages"])
    assert (run / "log.txt").read_text().count("all 2 ranks hold the same weights") == 1
    metrics = json.loads((run / "metrics.json").read_text())
    for method in ("swav", "ft"):
        assert math.isfinite(metrics["probe"][method]["final_loss"])
        assert metrics["probe"][method]["probe_acc"] > 0.3  # chance: 0.1
