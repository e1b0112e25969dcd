"""PCL-SR under DDP: the discriminator's update is the global batch's; ``sr train`` under torchrun.

The discriminator is trained by the task itself (its own Adam), outside DDP's reducer: its loss
couples the batch (a log-sum-exp over every fake logit), so each rank gathers every rank's
logits, and its gradients are averaged over the ranks. After one update on two ranks it must
equal one process's update on the global batch, on both ranks. (The discriminator's BatchNorm
normalises each rank's batch on its own, as everywhere under DDP without SyncBatchNorm; the
check runs it in eval mode, on running statistics, to compare the rest exactly.)
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from shared.training.run import MARKER
from tests.shared._ddp import run_gloo, start_torchrun, wait_ok
from vision.sr.config import PCLConfig
from vision.sr.losses import dual_contrastive_loss
from vision.sr.model import EDSR
from vision.sr.tasks import SRTask
from vision.sr.train import STAGES, load_models

pytestmark = pytest.mark.ddp

B_LOCAL = 2
TINY = [
    "--size", "tiny", "--epochs", "1", "--device", "cpu",
    "data.patch_size=16", "data.batch_size=2", "data.batches_per_epoch=4", "data.val_crop=40",
    "pretrain.epochs=1", "pcl.d_width=4", "trainer.progress=false",
]  # fmt: skip


def _images() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(4)
    hr = torch.rand(2 * B_LOCAL, 3, 16, 16, generator=g)
    sr = torch.rand(2 * B_LOCAL, 3, 16, 16, generator=g)
    sharp = torch.rand(2 * B_LOCAL, 3, 16, 16, generator=g)
    blur = torch.rand(2 * B_LOCAL, 3, 16, 16, generator=g)
    return [sr, hr, sharp], [blur]


def _check_discriminator_update(rank: int, world: int) -> None:
    torch.manual_seed(0)
    task = SRTask(EDSR.from_size(2, "tiny"), PCLConfig(d_width=4, d_augmented=True))
    assert task.disc is not None
    task.disc.eval()  # BatchNorm on running statistics: the logits do not depend on the batch
    # SGD with lr 1 makes the update the gradient itself (Adam would turn the float noise of a
    # zero gradient into a step of lr)
    task.d_optimizer = torch.optim.SGD(task.disc.parameters(), lr=1.0)
    reference = copy.deepcopy(task.disc)
    reference.requires_grad_(True)
    (sr, hr, sharp), (blur,) = _images()
    # one process on the global batch, written out: reals HR and sharpened, fakes SR and blurred
    d_real = torch.cat([reference.logits(x).reshape(-1) for x in (hr, sharp)])
    d_fake = torch.cat([reference.logits(x).reshape(-1) for x in (sr, blur)])
    expected_loss = dual_contrastive_loss(d_real, d_fake)
    opt = torch.optim.SGD(reference.parameters(), lr=1.0)
    expected_loss.backward()
    opt.step()

    rows = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
    # the upsampled LR (negatives[0]) never reaches the discriminator
    loss = task.update_discriminator(sr[rows], [hr[rows], sharp[rows]], [hr[rows], blur[rows]])
    torch.testing.assert_close(loss, expected_loss.detach())
    for (name, mine), theirs in zip(task.disc.named_parameters(), reference.parameters()):
        torch.testing.assert_close(mine, theirs.detach(), msg=name)


def test_discriminator_update_is_the_global_batch_update() -> None:
    run_gloo(_check_discriminator_update)


def test_sr_train_under_torchrun_two_gloo_processes(tmp_path: Path) -> None:
    from tests.vision.sr.test_cli import _synthetic

    data = _synthetic(tmp_path / "images")
    run = tmp_path / "ddp"
    stdout = wait_ok(start_torchrun(["sr", "train", "--data-dir", str(data), "--out", str(run),
                                     *TINY], tmp_path))  # fmt: skip
    assert stdout.count("sr train: x2") == 1  # rank 0 alone reports
    assert not list(run.rglob("*.tmp"))
    marker = json.loads((run / MARKER).read_text())
    assert all(marker["stages"][s]["finished"] for s in STAGES)
    log = (run / "log.txt").read_text()
    assert log.count("all 2 ranks hold the same weights") == len(STAGES)
    # one epoch: a header and one row
    assert len((run / "pcl" / "history.csv").read_text().splitlines()) == 1 + 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert all(math.isfinite(metrics["stages"][s]["psnr_y"]) for s in STAGES)
    # the saved networks are the ones validated: reloaded in one process, the same PSNR
    _, cfg, models = load_models(run)
    from vision.sr.train import _datasets, _loaders

    _, val = _loaders(cfg, *_datasets(cfg)[:2])
    assert val is not None
    for name in ("pcl", "l1"):
        task = SRTask(models[name])  # type: ignore[arg-type]
        psnr = sum(float(task.validation_step(b)["psnr_y"]) for b in val) / len(val)
        assert psnr == pytest.approx(metrics["stages"][name]["psnr_y"], abs=1e-5)
