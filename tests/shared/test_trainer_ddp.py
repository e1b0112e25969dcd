"""The Trainer under ``torchrun`` with two gloo (CPU) processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from shared.training import Task, Trainer, TrainerConfig

REPO = Path(__file__).resolve().parents[2]

# Written to tmp_path and run by torchrun; prints nothing, writes each rank's weights.
SCRIPT = """
import json, os, sys
from pathlib import Path
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from shared.training import Task, Trainer, TrainerConfig

class Linear(Task):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 1)
    def training_step(self, batch):
        x, y = batch
        loss = (self.lin(x).squeeze(-1) - y).pow(2).mean()
        return {"loss": loss, "loss/mse": loss.detach()}
    def validation_step(self, batch):
        x, y = batch
        return {"mse": (self.lin(x).squeeze(-1) - y).pow(2).mean()}

class Norm(Task):  # BatchNorm: each rank's running statistics come from its own half batch
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    def training_step(self, batch):
        x, y = batch
        loss = (self.net(x).squeeze(-1) - y).pow(2).mean()
        return {"loss": loss}
    def validation_step(self, batch):
        x, y = batch
        return {"mse": (self.net(x).squeeze(-1) - y).pow(2).mean()}

out = Path(sys.argv[1])
g = torch.Generator().manual_seed(0)
x = torch.randn(64, 3, generator=g)
data = TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3)
cfg = TrainerConfig(epochs=3, lr=0.1, optimizer="sgd", momentum=0.0, progress=False,
                    device="cpu", monitor="mse")
for name, batch, accumulate in (("plain", 8, 1), ("accumulate", 4, 2)):
    # the Trainer creates the process group itself, so the sampler is told its rank here
    sampler = DistributedSampler(data, num_replicas=int(os.environ["WORLD_SIZE"]),
                                 rank=int(os.environ["RANK"]), shuffle=False)
    train = DataLoader(data, batch_size=batch, sampler=sampler)
    val = DataLoader(data, batch_size=16)  # every rank validates the whole set
    task = Linear()
    cfg_run = TrainerConfig(**{**cfg.__dict__, "accumulate": accumulate})
    metrics = Trainer(cfg_run, out / name).fit(task, train, val)
    rank = dist.get_rank()
    torch.save(task.state_dict(), out / f"{name}.rank{rank}.pt")
    (out / f"{name}.metrics.rank{rank}.json").write_text(json.dumps(metrics))
sampler = DistributedSampler(data, num_replicas=int(os.environ["WORLD_SIZE"]),
                             rank=int(os.environ["RANK"]), shuffle=True, seed=0)
task = Norm()
Trainer(cfg, out / "bn").fit(task, DataLoader(data, batch_size=8, sampler=sampler),
                             DataLoader(data, batch_size=16))
torch.save(task.state_dict(), out / f"bn.rank{dist.get_rank()}.pt")
"""


class Linear(Task):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 1)

    def training_step(self, batch):
        x, y = batch
        loss = (self.lin(x).squeeze(-1) - y).pow(2).mean()
        return {"loss": loss, "loss/mse": loss.detach()}

    def validation_step(self, batch):
        x, y = batch
        return {"mse": (self.lin(x).squeeze(-1) - y).pow(2).mean()}


@pytest.mark.ddp
def test_trainer_under_two_gloo_processes(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*cmd, str(script), str(out)], env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # single-process reference on the global batch: DistributedSampler(shuffle=False) gives
    # rank r the samples r, r+2, ...; so each step covers the same 16 samples as batch 16 here.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    data = TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3)
    cfg = TrainerConfig(
        epochs=3,
        lr=0.1,
        optimizer="sgd",
        momentum=0.0,
        progress=False,
        device="cpu",
        monitor="mse",
    )
    single = Linear()
    single_metrics = Trainer(cfg).fit(
        single, DataLoader(data, batch_size=16), DataLoader(data, batch_size=16)
    )

    for name in ("plain", "accumulate"):
        run = out / name
        assert {"config.yaml", "metrics.json", "history.csv", "weights.pt", "state.pt"} <= {
            p.name for p in run.iterdir()
        }
        rank0 = torch.load(out / f"{name}.rank0.pt", weights_only=True)
        rank1 = torch.load(out / f"{name}.rank1.pt", weights_only=True)
        assert rank0.keys() == rank1.keys() == {"lin.weight", "lin.bias"}  # no "module." prefix
        for key in rank0:
            assert torch.equal(rank0[key], rank1[key])
            torch.testing.assert_close(rank0[key], single.state_dict()[key], atol=1e-5, rtol=1e-5)
        weights = torch.load(run / "weights.pt", weights_only=True)
        assert all(torch.equal(weights[k], rank0[k]) for k in rank0)
        m0 = json.loads((out / f"{name}.metrics.rank0.json").read_text())
        m1 = json.loads((out / f"{name}.metrics.rank1.json").read_text())
        assert m0 == m1  # validation metrics broadcast from rank 0, train losses all-reduced
        assert json.loads((run / "metrics.json").read_text()) == m0
        assert m0["mse"] == pytest.approx(single_metrics["mse"], rel=1e-4)
        assert m0["train/loss"] == pytest.approx(single_metrics["train/loss"], rel=1e-4)
    # BatchNorm: every rank ends with rank 0's running statistics, which weights.pt holds
    rank0 = torch.load(out / "bn.rank0.pt", weights_only=True)
    rank1 = torch.load(out / "bn.rank1.pt", weights_only=True)
    weights = torch.load(out / "bn" / "weights.pt", weights_only=True)
    assert "net.1.running_mean" in rank0
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
        assert torch.equal(weights[key], rank0[key]), key
    # only rank 0 writes: no stray temporary files from a second writer
    assert not [p for p in out.rglob("*.tmp")]
