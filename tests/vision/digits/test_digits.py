"""The digits domain: data, views, encoder, the eight methods, and the command end to end."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import pytest
import torch
from torch import nn

from pipelines.cli import main
from shared.config import ConfigError, dump_yaml, from_dict
from shared.heads import Encoder, ProjectionHead
from shared.losses import feature_transform_info_nce
from shared.training import Trainer, TrainerConfig
from shared.training.run import RunFolder
from vision.digits.config import ALL_METHODS, QUICK, SMOKE, DigitsConfig, Method, build
from vision.digits.data import DigitAugment, load_digits_split, resize
from vision.digits.methods import METHODS, FTTask, SwAVTask, build_task
from vision.digits.model import DigitsCNN
from vision.digits.pipeline import evaluate, load_split
from vision.digits.tasks import SimCLRTask, SupConTask

RUN_FILES = {"config.yaml", "metrics.json", "results.md", "report.html", "log.txt", "weights.pt"}
STAGE_FILES = {"config.yaml", "metrics.json", "history.csv", "log.txt", "weights.pt", "state.pt"}
#: Even smaller than SMOKE: every method, 2 epochs of 2 batches.
TINY = {**SMOKE, "trainer": {**SMOKE["trainer"], "max_train_batches": 2}}


# ------------------------------------------------------------------------------ the CLI


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` configures the root logger; put it back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    def run(*argv: str) -> CliResult:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    assert lines[0].startswith("contrasuite: error: ")
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def tiny_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(dump_yaml(TINY))
    return path


@pytest.fixture(scope="module")
def all_run(tmp_path_factory: pytest.TempPathFactory, tiny_yaml: Path) -> Path:
    """``digits train --methods all`` at tiny settings, once for the module."""
    out = tmp_path_factory.mktemp("runs") / "all"
    code = main(["digits", "train", "-q", "--out", str(out), "--config", str(tiny_yaml),
                 "--methods", "all"])  # fmt: skip
    assert code == 0
    return out


# ------------------------------------------------------------------------------ data, model


def test_split_is_fixed_stratified_and_scaled():
    a = load_digits_split(0.3, 0)
    b = load_digits_split(0.3, 0)
    assert a.x_train.shape == (1257, 1, 8, 8)
    assert a.x_test.shape == (540, 1, 8, 8)
    assert torch.equal(a.x_test, b.x_test)
    assert torch.equal(a.y_test, b.y_test)
    assert 0.0 <= float(a.x_train.min())
    assert float(a.x_train.max()) <= 1.0
    counts = torch.bincount(a.y_test, minlength=10)
    assert int(counts.min()) >= 50  # every digit is in the test split, in proportion
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_split(1.5)


def test_augment_shapes_range_and_reproducibility():
    x = load_digits_split().x_test[:16]
    aug = DigitAugment(out_size=16)
    v = aug(x)
    assert v.shape == (16, 1, 16, 16)
    assert torch.isfinite(v).all()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(aug(x, generator=g1), aug(x, generator=g2))
    assert not torch.equal(aug(x), aug(x))  # random otherwise


def test_augment_without_randomness_is_a_resize():
    x = load_digits_split().x_test[:8]
    still = DigitAugment(
        out_size=16,
        scale=(1.0, 1.0),
        aspect=0.0,
        shift=0.0,
        rotation=0.0,
        intensity=0.0,
        noise_std=0.0,
        erase_prob=0.0,
    )
    torch.testing.assert_close(still(x), resize(x, 16), atol=1e-5, rtol=0)


def test_augment_never_flips():
    # An asymmetric image: mass on the left. With zoom in [0.7, 1], shifts up to 15 % and
    # rotations up to 15 degrees, the mass stays on the left; a flip would move it right.
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 2:6, 0:2] = 1.0
    v = DigitAugment(out_size=16, erase_prob=0.0, noise_std=0.0)(x)
    cols = torch.arange(16, dtype=torch.float32)
    centre = (v.sum(dim=(1, 2)) * cols).sum(1) / v.sum(dim=(1, 2, 3)).clamp_min(1e-6)
    assert bool((centre < 7.5).all())


def test_augment_validates_arguments():
    with pytest.raises(ValueError, match="scale"):
        DigitAugment(scale=(0.9, 0.5))
    with pytest.raises(ValueError, match="erase_prob"):
        DigitAugment(erase_prob=2.0)


@pytest.mark.parametrize("size", [8, 16])
def test_encoder_interface(size):
    enc = DigitsCNN(8, 24)
    assert isinstance(enc, Encoder)
    assert enc.num_features == 24
    assert enc.forward_features(torch.rand(3, 1, size, size)).shape == (3, 24)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        enc.forward_features(torch.rand(3, 8, 8))


# ------------------------------------------------------------------------------ methods


@pytest.mark.parametrize("method", ALL_METHODS)
def test_every_method_trains_and_every_parameter_gets_a_gradient(method):
    cfg = build(TINY, {"batch_size": 16})
    torch.manual_seed(0)
    task = build_task(method, cfg, DigitAugment(out_size=8))
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 4
    out = task.training_step((x, y))
    assert set(out) == {"loss", f"loss/{task.term}"}
    assert torch.isfinite(out["loss"])
    assert not out[f"loss/{task.term}"].requires_grad
    out["loss"].backward()
    for name, p in task.named_parameters():
        if p.requires_grad:  # all but FT's momentum key network
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name

    # Two tiny epochs with the shared Trainer: a finite loss, logged under its term's name.
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.rand(48, 1, 8, 8), torch.arange(48) % 4),
        batch_size=16,
        drop_last=True,
    )
    trainer_cfg = TrainerConfig(epochs=2, max_train_batches=2, progress=False, device="cpu")
    metrics = Trainer(trainer_cfg).fit(task, loader)
    assert metrics["epochs"] == 2
    assert torch.isfinite(torch.tensor(metrics[f"train/loss/{task.term}"]))


def test_methods_start_from_the_same_encoder():
    cfg = build(TINY)
    encoders = []
    for method in ALL_METHODS:
        torch.manual_seed(5)
        encoders.append(build_task(method, cfg, DigitAugment(out_size=8)).encoder.state_dict())
    for other in encoders[1:]:
        assert all(torch.equal(other[k], encoders[0][k]) for k in encoders[0])


def test_swav_freezes_its_prototypes_for_the_first_steps():
    cfg = build(TINY, {"batch_size": 16, "loss": {"swav": {"freeze_prototypes_steps": 2}}})
    torch.manual_seed(0)
    task = build_task("swav", cfg, DigitAugment(out_size=8))
    assert isinstance(task, SwAVTask)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.rand(32, 1, 8, 8), torch.arange(32) % 4),
        batch_size=16,
        drop_last=True,
    )
    start = nn.functional.normalize(task.swav.prototypes.weight.detach().clone(), dim=1)
    trainer_cfg = TrainerConfig(epochs=1, progress=False, device="cpu", weight_decay=0.1)
    Trainer(trainer_cfg).fit(task, loader)  # two steps, both frozen
    assert int(task.steps) == 2
    torch.testing.assert_close(task.swav.prototypes.weight, start)
    out = task.training_step((torch.rand(16, 1, 8, 8), torch.arange(16) % 4))  # third: trained
    out["loss"].backward()
    assert task.swav.prototypes.weight.grad is not None


def test_ft_momentum_encoder_and_queue():
    cfg = build(TINY, {"loss": {"ft": {"queue_size": 32, "momentum": 0.9}}})
    torch.manual_seed(0)
    task = build_task("ft", cfg, DigitAugment(out_size=8))
    assert isinstance(task, FTTask)
    keys = dict(task.key_encoder.named_parameters())
    assert all(not p.requires_grad for p in keys.values())
    with torch.no_grad():  # make the two networks differ
        for p in task.encoder.parameters():
            p.add_(0.5)
    online = {k: v.detach().clone() for k, v in task.encoder.named_parameters()}
    before = {k: v.detach().clone() for k, v in keys.items()}
    x, y = torch.rand(8, 1, 8, 8), torch.zeros(8, dtype=torch.long)
    task.train()
    task.training_step((x, y))
    for name, p in keys.items():  # MoCo's update: key = m * key + (1 - m) * online
        torch.testing.assert_close(p, 0.9 * before[name] + 0.1 * online[name])
    assert int(task.ft.queue_ptr) == 8
    assert torch.allclose(task.ft.queue[:8].norm(dim=1), torch.ones(8))


def test_ft_one_direction_is_mocos_loss():
    cfg = build(TINY, {"loss": {"ft": {"queue_size": 32, "symmetric": False}}})
    torch.manual_seed(0)
    task = build_task("ft", cfg, DigitAugment(out_size=8))
    assert isinstance(task, FTTask)
    q1, q2, k1, k2 = torch.randn(4, 8, 16).unbind(0)
    queue = task.ft.queue.clone()
    torch.manual_seed(1)
    loss = task.contrast(q1, q2, k1, k2)
    torch.manual_seed(1)
    expected = feature_transform_info_nce(q1, k2, queue, 0.2, pos_alpha=2.0, neg_alpha=1.6)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("task_cls", [SimCLRTask, SupConTask])
def test_task_checks_temperature(task_cls):
    with pytest.raises(ValueError, match="temperature"):
        task_cls(DigitsCNN(4, 8), ProjectionHead(8, 8, 4), DigitAugment(), 0.0)


def test_config_presets_and_methods():
    for preset in (QUICK, SMOKE):
        assert build(preset).trainer.weights == "last"  # the domain's trainer defaults survive
    assert build({"methods": ["all"]}).methods == ALL_METHODS
    with pytest.raises(ConfigError, match="methods"):
        from_dict(DigitsConfig, {"methods": []})
    with pytest.raises(ConfigError, match="simclr"):
        from_dict(DigitsConfig, {"methods": ["simclr", "byol"]})
    with pytest.raises(ConfigError, match="image_size"):
        from_dict(DigitsConfig, {"data": {"image_size": 2}})


def test_methods_table_matches_the_config_choices():
    assert set(METHODS) == set(get_args(Method)) == set(ALL_METHODS)
    assert set(DigitsConfig().methods) <= set(METHODS)


# ------------------------------------------------------------------------------ end to end


def test_all_methods_end_to_end_beat_chance(all_run):
    assert RUN_FILES <= {p.name for p in all_run.iterdir()}
    metrics = json.loads((all_run / "metrics.json").read_text())
    assert metrics["methods"] == list(ALL_METHODS)
    rows = metrics["probe"]
    assert list(rows) == ["pixels", "random", *ALL_METHODS]
    with open(all_run / "history.csv", newline="") as f:
        history = list(csv.DictReader(f))
    assert [r["method"] for r in history] == [m for m in ALL_METHODS for _ in range(2)]
    for method in ALL_METHODS:
        assert STAGE_FILES <= {p.name for p in (all_run / method).iterdir()}, method
        row = rows[method]
        assert row["probe_acc"] > 0.5, (method, row)  # chance is 0.1
        assert row["knn_acc"] > 0.5, (method, row)
        assert row["epochs"] == 2
        assert row["seconds_per_epoch"] > 0
    table = (all_run / "results.md").read_text()
    assert table.count("\n| ") == 1 + 2 + len(ALL_METHODS)  # header + pixels, random + methods
    report = (all_run / "report.html").read_text()
    assert "data:image/png;base64," in report
    assert "SwAV" in report
    assert 'href="amcl/"' in report


def test_a_loaded_checkpoint_reproduces_the_metrics(all_run):
    run = RunFolder.open_existing(all_run, domain="digits")
    cfg = from_dict(DigitsConfig, run.config)
    tasks = nn.ModuleDict({m: build_task(m, cfg, DigitAugment(out_size=8)) for m in cfg.methods})
    run.load_weights(tasks)
    rows = json.loads((all_run / "metrics.json").read_text())["probe"]
    split = load_split(cfg)
    for method in ("simclr", "swav", "amcl", "ft"):
        row, _ = evaluate(tasks[method], split, cfg)  # type: ignore[arg-type]
        for key in ("probe_acc", "knn_acc", "alignment", "uniformity"):
            assert row[key] == pytest.approx(rows[method][key], abs=1e-6), (method, key)


def test_rerun_reuses_and_another_config_is_refused(cli, all_run, tiny_yaml):
    before = _snapshot(all_run)
    # The same command again: every stage is reused (their files untouched), same numbers.
    result = cli("digits", "train", "-q", "--out", str(all_run), "--config", str(tiny_yaml),
                 "--methods", "all")  # fmt: skip
    assert result.code == 0, result.err
    after = _snapshot(all_run)
    for method in ALL_METHODS:
        for name in ("history.csv", "weights.pt", "state.pt"):
            assert after[f"{method}/{name}"] == before[f"{method}/{name}"]
    old = json.loads(before["metrics.json"])["probe"]
    new = json.loads(after["metrics.json"])["probe"]
    for method in ALL_METHODS:
        assert new[method]["probe_acc"] == pytest.approx(old[method]["probe_acc"])

    # Another trainer setting: refused before anything is written.
    result = cli("digits", "train", "-q", "--out", str(all_run), "--config", str(tiny_yaml),
                 "--methods", "all", "trainer.lr=0.1")  # fmt: skip
    assert result.code == 2
    line = _one_line_error(result.err)
    assert "another config" in line
    assert "trainer.lr" in line
    assert _snapshot(all_run) == after


def test_bad_out_exits_2_and_writes_nothing(cli, tmp_path, tiny_yaml):
    def refused(out: Path, *expected: str) -> None:
        result = cli("digits", "train", "-q", "--out", str(out), "--config", str(tiny_yaml))
        assert result.code == 2, result.err
        line = _one_line_error(result.err)
        for text in expected:
            assert text in line, line

    afile = tmp_path / "file.txt"
    afile.write_text("x")
    refused(afile, "is a file")
    assert afile.read_text() == "x"
    refused(afile / "run", "cannot be created")
    assert afile.read_text() == "x"

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.yaml").write_text("precious: 1\n")
    refused(foreign, "not empty", "no contrasuite run")
    assert _snapshot(foreign) == {"config.yaml": b"precious: 1\n"}

    other = tmp_path / "other"
    RunFolder.prepare(other, domain="sr", command="train", config={"a": 1}).create()
    snapshot = _snapshot(other)
    refused(other, "sr train run", "not a digits train run")
    assert _snapshot(other) == snapshot
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "foreign", "other"]


def test_help_lists_the_generated_config_keys(cli):
    result = cli("digits", "train", "--help")
    assert result.code == 0
    assert "config keys" in result.out
    for key in ("methods", "loss.swav.{", "loss.amcl.{", "loss.ft.{", "trainer.{", "probe.{"):
        assert key in result.out, key
    assert "--methods" in result.out


def test_print_config_expands_all_and_writes_nothing(cli, tmp_path):
    import yaml

    result = cli("digits", "train", "--out", str(tmp_path / "r"), "--methods", "all",
                 "--print-config")  # fmt: skip
    assert result.code == 0, result.err
    assert yaml.safe_load(result.out)["methods"] == list(ALL_METHODS)
    assert not (tmp_path / "r").exists()
    result = cli("digits", "train", "--out", str(tmp_path / "r"), "--methods", "simclr,swv")
    assert result.code == 2
    line = _one_line_error(result.err)
    assert "methods" in line
    assert "Did you mean 'swav'?" in line
    assert not (tmp_path / "r").exists()
