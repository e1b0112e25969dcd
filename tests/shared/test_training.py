from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from shared.config import to_dict
from shared.errors import InputError
from shared.training import (
    Callback,
    EarlyStopping,
    Task,
    Trainer,
    TrainerConfig,
    load_weights,
    read_metrics,
)

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- fixtures


class Classifier(Task):
    """Two Gaussian blobs, an MLP with dropout, cross-entropy."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))

    def training_step(self, batch):
        x, y = batch
        ce = nn.functional.cross_entropy(self.net(x), y)
        return {"loss": ce, "loss/ce": ce.detach()}

    def validation_step(self, batch):
        x, y = batch
        logits = self.net(x)
        return {
            "loss": nn.functional.cross_entropy(logits, y),
            "acc": (logits.argmax(-1) == y).float().mean(),
        }


def blobs(n: int = 64, seed: int = 1) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) * 0.7 + (y[:, None].float() * 2 - 1) * 1.5
    return TensorDataset(x, y)


def loaders(batch_size: int = 8) -> tuple[DataLoader, DataLoader]:
    train = DataLoader(blobs(64, seed=1), batch_size=batch_size, shuffle=True)
    val = DataLoader(blobs(32, seed=2), batch_size=16)
    return train, val


def config(**kwargs) -> TrainerConfig:
    base = {"epochs": 4, "lr": 0.05, "progress": False, "device": "cpu", "log_every": 3}
    return TrainerConfig(**{**base, **kwargs})


def read_history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def tensors_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Crash(Callback):
    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_train_batch_end(self, trainer, task, outputs, batch_idx):
        if (trainer.epoch, batch_idx) == self.at:
            raise KeyboardInterrupt("simulated kill")


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_fit_start(self, trainer, task):
        self.calls.append("fit_start")

    def on_train_batch_end(self, trainer, task, outputs, batch_idx):
        assert "loss" in outputs
        assert not outputs["loss"].requires_grad
        self.calls.append("batch")

    def on_validation_end(self, trainer, task, metrics):
        assert "val/acc" in metrics
        self.calls.append("validation")

    def on_checkpoint(self, trainer, state):
        assert state["format_version"] == 1
        self.calls.append("checkpoint")

    def on_fit_end(self, trainer, task, metrics):
        self.calls.append("fit_end")


# ---------------------------------------------------------------- learning


def test_trainer_lowers_loss_and_beats_chance(tmp_path):
    train, val = loaders()
    trainer = Trainer(config(epochs=6, monitor="acc", mode="max"), tmp_path / "run")
    metrics = trainer.fit(Classifier(), train, val)
    losses = [row["train/loss"] for row in trainer.history]
    assert losses[-1] < 0.5 * losses[0]
    assert metrics["acc"] > 0.9  # chance is 0.5
    assert metrics["best_epoch"] == 1 + max(
        range(6), key=lambda e: (trainer.history[e]["val/acc"], -e)
    )


def test_run_folder_contents(tmp_path):
    run = tmp_path / "run"
    train, val = loaders()
    cfg = config(epochs=3, scheduler="step", step_size=2, gamma=0.1)
    task = Classifier()
    metrics = Trainer(cfg, run, config_dict={"data": {"n": 64}, "name": "blobs"}).fit(
        task, train, val
    )
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "metrics.json", "history.csv", "log.txt", "weights.pt", "state.pt"} <= (
        names
    )
    assert not [n for n in names if n.endswith(".tmp")]

    # metrics.json: plain numbers, the same as fit's return
    assert json.loads((run / "metrics.json").read_text()) == metrics == read_metrics(run)
    assert {"loss", "acc", "train/loss", "train/loss/ce", "best_epoch", "epochs"} <= set(metrics)
    assert metrics["epochs"] == 3

    # history.csv: one row per epoch with losses, metrics, seconds and lr
    rows = read_history(run)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert set(rows[0]) == {
        "epoch",
        "train/loss",
        "train/loss/ce",
        "val/loss",
        "val/acc",
        "seconds",
        "lr",
    }
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.05, 0.05, 0.005])

    # config.yaml: the experiment config plus the trainer config
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved == {"data": {"n": 64}, "name": "blobs", "trainer": to_dict(cfg)}

    # weights.pt: a plain state_dict of the best epoch, loaded by the task after fit
    weights = torch.load(run / "weights.pt", weights_only=True)
    assert tensors_equal(weights, task.state_dict())
    fresh = load_weights(run / "weights.pt", Classifier(seed=5))
    assert tensors_equal(fresh.state_dict(), weights)

    # state.pt: no pickled objects
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["format_version"] == 1
    assert state["epoch"] == 3
    assert state["finished"] is True
    assert state["config"]["trainer"]["lr"] == 0.05
    assert {"optimizer", "scheduler", "scaler", "rng", "history", "early_stopping"} <= set(state)
    assert "epoch 3/3" in (run / "log.txt").read_text()


def test_grad_accumulation_matches_larger_batch():
    class Linear(Task):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.lin = nn.Linear(3, 1)

        def training_step(self, batch):
            x, y = batch
            return {"loss": (self.lin(x).squeeze(-1) - y).pow(2).mean()}

    for n in (32, 36):  # 36: the last accumulation group holds a single batch
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, 3, generator=g)
        data = TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3)
        cfg = config(epochs=3, optimizer="sgd", momentum=0.0, lr=0.1)
        small, big = Linear(), Linear()
        acc = dataclasses.replace(cfg, accumulate=2)
        Trainer(acc).fit(small, DataLoader(data, batch_size=4))
        Trainer(cfg).fit(big, DataLoader(data, batch_size=8))
        for a, b in zip(small.parameters(), big.parameters()):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
        # without the division by the group size the results would differ
        assert not torch.allclose(Linear().lin.weight, small.lin.weight, atol=1e-3)


# ---------------------------------------------------------------- stopping and callbacks


class Stagnant(Classifier):
    def validation_step(self, batch):
        return {"score": 0.5}


def test_early_stopping_stops(tmp_path):
    train, val = loaders()
    cfg = config(epochs=10, monitor="score", mode="max", patience=2)
    metrics = Trainer(cfg, tmp_path / "run").fit(Stagnant(), train, val)
    assert metrics["epochs"] == 3  # best at 1, no progress at 2 and 3
    assert metrics["best_epoch"] == 1
    assert len(read_history(tmp_path / "run")) == 3


def test_early_stopping_rules():
    stop = EarlyStopping("val/loss", mode="min", patience=2, min_delta=0.1)
    assert stop.update(1.0, 0)
    assert not stop.update(0.95, 1)  # not better by min_delta
    assert not stop.should_stop
    assert not stop.update(float("nan"), 2)
    assert stop.should_stop
    assert (stop.best, stop.best_epoch) == (1.0, 0)
    copy = EarlyStopping("val/loss")
    copy.load_state_dict(stop.state_dict())
    assert (copy.best, copy.best_epoch, copy.bad_epochs) == (1.0, 0, 2)
    assert EarlyStopping("x", patience=0).update(1.0, 0)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping("x", mode="up")


def test_callback_protocol_and_eval_every(tmp_path):
    train, val = loaders(batch_size=16)  # 4 batches per epoch
    recorder = Recorder()
    trainer = Trainer(config(epochs=3, eval_every=2), tmp_path / "run", callbacks=[recorder])
    trainer.fit(Classifier(), train, val)
    expected = ["fit_start"]
    for epoch in range(3):
        expected += ["batch"] * 4
        expected += ["validation"] if epoch in (1, 2) else []  # every 2nd epoch and the last
        expected += ["checkpoint"]
    assert recorder.calls == [*expected, "fit_end"]
    assert ["val/acc" in row for row in trainer.history] == [False, True, True]


def test_monitor_missing_from_metrics_is_input_error(tmp_path):
    train, val = loaders()
    with pytest.raises(InputError, match=r"`val/auroc`.*Did you mean `val/acc`"):
        Trainer(config(monitor="auroc")).fit(Classifier(), train, val)


def test_empty_loader_is_input_error():
    empty = DataLoader(TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(InputError, match="training set empty"):
        Trainer(config()).fit(Classifier(), empty)


def test_nan_loss_raises():
    class Broken(Classifier):
        def training_step(self, batch):
            out = super().training_step(batch)
            return {"loss": out["loss"] * float("nan")}

    train, _ = loaders()
    with pytest.raises(FloatingPointError, match="epoch 1"):
        Trainer(config()).fit(Broken(), train)


def test_training_step_must_return_loss():
    class NoLoss(Classifier):
        def training_step(self, batch):
            return {"ce": super().training_step(batch)["loss"]}

    with pytest.raises(TypeError, match="'loss' is a scalar tensor"):
        Trainer(config()).fit(NoLoss(), loaders()[0])


def test_logging_leaves_root_logger_alone(tmp_path):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    Trainer(config(epochs=1, progress=True), tmp_path / "run").fit(Classifier(), loaders()[0])
    assert root.handlers == handlers
    assert root.level == level
    assert not logging.getLogger("shared.training").handlers
    assert "train/loss=" in (tmp_path / "run" / "log.txt").read_text()


# ---------------------------------------------------------------- resume


RESUME_CFG = {"epochs": 4, "scheduler": "cosine", "warmup_epochs": 1, "grad_clip": 1.0}


def test_exact_resume_after_a_kill_mid_epoch(tmp_path):
    train, val = loaders()
    cfg = config(**RESUME_CFG)
    reference = Trainer(cfg, tmp_path / "a").fit(Classifier(), train, val)

    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "b", callbacks=[Crash(epoch=2, batch=3)]).fit(
            Classifier(), train, val
        )
    assert torch.load(tmp_path / "b" / "state.pt", weights_only=True)["epoch"] == 2
    resumed_task = Classifier(seed=123)  # different init: everything must come from state.pt
    resumed = Trainer(cfg, tmp_path / "b").fit(resumed_task, train, val)

    assert resumed == reference
    weights_a = torch.load(tmp_path / "a" / "weights.pt", weights_only=True)
    weights_b = torch.load(tmp_path / "b" / "weights.pt", weights_only=True)
    assert tensors_equal(weights_a, weights_b)
    state_a = torch.load(tmp_path / "a" / "state.pt", weights_only=True)
    state_b = torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    assert tensors_equal(state_a["model"], state_b["model"])
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in state_a["history"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in state_b["history"]]
    assert len(read_history(tmp_path / "b")) == 4


def test_resume_after_early_stop_does_not_train_more(tmp_path):
    train, val = loaders()
    cfg = config(epochs=10, monitor="score", mode="max", patience=1)
    first = Trainer(cfg, tmp_path / "run").fit(Stagnant(), train, val)
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    state["finished"] = False  # as if killed before the final save
    torch.save(state, tmp_path / "run" / "state.pt")
    recorder = Recorder()
    again = Trainer(cfg, tmp_path / "run", callbacks=[recorder]).fit(Stagnant(), train, val)
    assert again == first
    assert "batch" not in recorder.calls


def test_finished_run_reports_metrics_without_training(tmp_path):
    train, val = loaders()
    cfg = config(epochs=2)
    first = Trainer(cfg, tmp_path / "run").fit(Classifier(), train, val)
    recorder = Recorder()
    task = Classifier(seed=7)
    again = Trainer(cfg, tmp_path / "run", callbacks=[recorder]).fit(task, train, val)
    assert again == first
    assert recorder.calls == []
    weights = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
    assert tensors_equal(task.state_dict(), weights)


def test_resume_with_another_config_is_input_error(tmp_path):
    train, _ = loaders()
    Trainer(config(epochs=1), tmp_path / "run").fit(Classifier(), train)
    match = r"another config: trainer.lr \(0.05 -> 0.01\); use another --out"
    with pytest.raises(InputError, match=match):
        Trainer(config(epochs=1, lr=0.01), tmp_path / "run").fit(Classifier(), train)
    # display-only settings may change
    Trainer(config(epochs=1, progress=True, log_every=0), tmp_path / "run").fit(Classifier(), train)


def test_load_weights_errors(tmp_path):
    torch.save(nn.Linear(2, 3).state_dict(), tmp_path / "linear.pt")
    with pytest.raises(InputError, match=r"missing keys net.0.bias.*unexpected keys bias, weight"):
        load_weights(tmp_path / "linear.pt", Classifier())
    with pytest.raises(InputError, match="does not exist"):
        load_weights(tmp_path / "missing.pt", Classifier())
    torch.save({"cfg": TrainerConfig()}, tmp_path / "pickled.pt")
    with pytest.raises(InputError, match="weights_only"):
        load_weights(tmp_path / "pickled.pt", Classifier())
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"junk\.pt"):
        load_weights(tmp_path / "junk.pt", Classifier())
    ddp_style = {f"module.{k}": v for k, v in Classifier(seed=3).state_dict().items()}
    torch.save(ddp_style, tmp_path / "ddp.pt")
    loaded = load_weights(tmp_path / "ddp.pt", Classifier())
    assert tensors_equal(loaded.state_dict(), Classifier(seed=3).state_dict())
    with pytest.raises(InputError, match=r"metrics\.json"):
        read_metrics(tmp_path)


KILL_SCRIPT = """
import os, signal, sys
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from shared.training import Callback, Task, Trainer, TrainerConfig

class Net(Task):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.3), nn.Linear(16, 1))
    def training_step(self, batch):
        x, y = batch
        loss = (self.net(x).squeeze(-1) - y).pow(2).mean()
        return {"loss": loss}

class Kill(Callback):
    def on_train_batch_end(self, trainer, task, outputs, batch_idx):
        if os.environ.get("KILL_AT") == f"{trainer.epoch}:{batch_idx}":
            os.kill(os.getpid(), signal.SIGKILL)

x = torch.randn(48, 4, generator=torch.Generator().manual_seed(0))
loader = DataLoader(TensorDataset(x, x.sum(1)), batch_size=8, shuffle=True)
cfg = TrainerConfig(epochs=3, lr=0.01, progress=False, device="cpu")
print(Trainer(cfg, sys.argv[1], callbacks=[Kill()]).fit(Net(), loader))
"""


@pytest.mark.slow  # three subprocesses that import torch: ~10-20 s
def test_exact_resume_after_sigkill(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT))
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(run_dir: Path, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
        extra = {"KILL_AT": kill_at} if kill_at else {}
        return subprocess.run(
            [sys.executable, str(script), str(run_dir)],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )

    killed = run(tmp_path / "b", kill_at="1:3")
    assert killed.returncode == -signal.SIGKILL
    assert torch.load(tmp_path / "b" / "state.pt", weights_only=True)["epoch"] == 1
    resumed, reference = run(tmp_path / "b"), run(tmp_path / "a")
    assert resumed.returncode == reference.returncode == 0, resumed.stderr + reference.stderr
    assert resumed.stdout == reference.stdout
    a = torch.load(tmp_path / "a" / "weights.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "weights.pt", weights_only=True)
    assert tensors_equal(a, b)
    assert not math.isnan(json.loads((tmp_path / "b" / "metrics.json").read_text())["train/loss"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp_dtype", ["float16", "bfloat16"])
def test_cuda_amp_training_and_resume(tmp_path, amp_dtype):
    train, val = loaders()
    cfg = config(device="cuda", amp=True, amp_dtype=amp_dtype, epochs=3, grad_clip=1.0)
    trainer = Trainer(cfg, tmp_path / "a")
    metrics = trainer.fit(Classifier(), train, val)
    assert trainer.amp_dtype == getattr(torch, amp_dtype)
    assert metrics["acc"] > 0.9
    state = torch.load(tmp_path / "a" / "state.pt", weights_only=True)
    assert bool(state["scaler"]) == (amp_dtype == "float16")  # a GradScaler only for fp16
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "b", callbacks=[Crash(epoch=1, batch=2)]).fit(
            Classifier(), train, val
        )
    resumed = Trainer(cfg, tmp_path / "b").fit(Classifier(seed=9), train, val)
    assert resumed["epochs"] == 3
    assert resumed["train/loss"] == pytest.approx(metrics["train/loss"], rel=1e-2, abs=1e-3)
