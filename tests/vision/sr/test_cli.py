"""``contrasuite sr`` end to end through the real CLI: train, evaluate, upscale, bad input."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.cli import main
from vision.sr.data import folder_store, to_tensor
from vision.sr.metrics import psnr
from vision.sr.train import load_models

TINY = [
    "--size", "tiny", "--epochs", "2", "--device", "cpu",
    "data.patch_size=16", "data.batch_size=4", "data.batches_per_epoch=4", "data.val_crop=40",
    "pretrain.epochs=4", "pretrain.lr=2e-3", "trainer.lr=5e-4", "pcl.d_width=4",
    "trainer.progress=false", "trainer.threads=1",
]  # fmt: skip


def _synthetic(folder: Path, n: int = 4, size: int = 40, seed: int = 0) -> Path:
    """Learnable images: colour gradients, fine stripes, and sharp-edged rectangles.

    The stripes give the Haar high-pass bands (the discriminator's input) something to see:
    on purely smooth images they vanish and the PCL term has no gradient.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        img = np.stack(
            [
                0.5 + 0.4 * np.sin(2 * np.pi * (a * yy + b * xx))
                for a, b in rng.uniform(-1.5, 1.5, (3, 2))
            ],
            -1,
        )
        period = rng.uniform(6.0, 10.0)
        img += 0.15 * np.sin(2 * np.pi * (xx + yy * rng.uniform(-1, 1)) * size / period)[..., None]
        for _ in range(3):
            y0, x0 = rng.integers(0, size - 8, 2)
            img[y0 : y0 + rng.integers(4, 12), x0 : x0 + rng.integers(4, 12)] = rng.uniform(0, 1, 3)
        Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8)).save(
            folder / f"s{i}.png"
        )
    return folder


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _synthetic(tmp_path_factory.mktemp("sr") / "images")


@pytest.fixture(scope="module")
def run_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sr") / "run"
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert main(["sr", "train", "--data-dir", str(data_dir), "--out", str(out), *TINY]) == 0
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return out


def _history(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_train_writes_three_stages_with_named_losses_and_learns(run_dir: Path):
    assert {"config.yaml", "metrics.json", "log.txt", "weights.pt"} <= {
        p.name for p in run_dir.iterdir()
    }
    pcl = _history(run_dir / "pcl" / "history.csv")
    l1 = _history(run_dir / "l1" / "history.csv")
    pre = _history(run_dir / "pretrain" / "history.csv")
    assert {
        "train/loss",
        "train/loss/l1",
        "train/loss/pcl",
        "train/loss/disc",
        "val/psnr_y",
    } <= set(pcl[0])
    assert "train/loss/pcl" not in l1[0]
    assert "train/loss/l1" in l1[0]
    assert len(pre) == 4
    assert len(pcl) == len(l1) == 2
    # the top-level history holds every stage's rows, in order, with a stage column first
    top = _history(run_dir / "history.csv")
    assert [r["stage"] for r in top] == ["pretrain"] * 4 + ["pcl"] * 2 + ["l1"] * 2
    assert [r["val/psnr_y"] for r in top] == [r["val/psnr_y"] for r in pre + pcl + l1]
    # it learns: validation PSNR rises well above the untrained network's, and the L1 falls
    assert float(pre[-1]["val/psnr_y"]) > float(pre[0]["val/psnr_y"]) + 2.0
    assert float(l1[-1]["train/loss/l1"]) < 0.5 * float(pre[0]["train/loss/l1"])
    # the PCL term is alive (not log(5) of identical similarities) and changes the network
    assert float(pcl[-1]["train/loss/pcl"]) != pytest.approx(np.log(5), abs=1e-3)
    assert float(pcl[-1]["train/loss/l1"]) != pytest.approx(
        float(l1[-1]["train/loss/l1"]), rel=1e-4
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["params"] == 121987
    assert metrics["scale"] == 2
    assert set(metrics["stages"]) == {"pretrain", "pcl", "l1"}


def test_train_again_resumes_a_finished_run_without_training(run_dir: Path, data_dir: Path):
    weights = (run_dir / "weights.pt").read_bytes()
    history = (run_dir / "pcl" / "history.csv").read_text()
    assert main(["sr", "train", "--data-dir", str(data_dir), "--out", str(run_dir), *TINY]) == 0
    assert (run_dir / "pcl" / "history.csv").read_text() == history
    assert (run_dir / "weights.pt").read_bytes() == weights


def test_loaded_checkpoint_reproduces_validation_metrics(run_dir: Path, data_dir: Path):
    _, _cfg, models = load_models(run_dir)
    val = folder_store(data_dir, 2)[-1:]  # data.n_val=1: the last image
    lr, hr = to_tensor(val[0].lr)[None], to_tensor(val[0].hr)[None]
    for name in ("pcl", "l1"):
        stage = json.loads((run_dir / name / "metrics.json").read_text())
        with torch.no_grad():
            again = float(psnr(models[name](lr).clamp(0, 1), hr, crop=2).mean())
        assert again == pytest.approx(stage["psnr_y"], abs=1e-6)


def test_evaluate_and_upscale(run_dir: Path, data_dir: Path, tmp_path: Path, capsys):
    sets = tmp_path / "sets"
    _synthetic(sets / "SetA", n=2, seed=1)
    _synthetic(sets / "SetB", n=1, seed=2)
    assert (
        main(["sr", "evaluate", "--run", str(run_dir), "--data-dir", str(sets), "--device", "cpu"])
        == 0
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["scale"] == 2
    assert "stages" in metrics
    assert set(metrics["sets"]) == {"SetA", "SetB"}
    for by_model in metrics["sets"].values():
        assert set(by_model) == {"bicubic", "l1", "pcl"}
        for values in by_model.values():
            assert set(values) == {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"}
            assert 5 < values["psnr_y"] < 60
            assert 0 < values["ssim_y"] <= 1
    assert set(metrics["per_image"]["SetA"]) == {"s0", "s1"}
    table = (run_dir / "results.md").read_text()
    assert "| Bicubic |" in table
    assert "| L1 + PCL |" in table
    assert "SetA" in table
    first = metrics["sets"]
    assert (
        main(["sr", "evaluate", "--run", str(run_dir), "--data-dir", str(sets), "--device", "cpu"])
        == 0
    )
    assert json.loads((run_dir / "metrics.json").read_text())["sets"] == first  # reproducible
    # another folder adds its sets; the earlier ones are kept, not lost
    other = tmp_path / "other"
    _synthetic(other / "SetC", n=1, seed=3)
    args = ["sr", "evaluate", "--run", str(run_dir), "--data-dir", str(other), "--device", "cpu"]
    assert main(args) == 0
    merged = json.loads((run_dir / "metrics.json").read_text())
    assert set(merged["sets"]) == {"SetA", "SetB", "SetC"}
    assert merged["sets"]["SetA"] == first["SetA"]
    assert merged["data_dirs"] == {"SetA": str(sets), "SetB": str(sets), "SetC": str(other)}
    # a set gone from its folder is dropped when that folder is evaluated again
    shutil.rmtree(sets / "SetB")
    args = ["sr", "evaluate", "--run", str(run_dir), "--data-dir", str(sets), "--device", "cpu"]
    assert main(args) == 0
    assert set(json.loads((run_dir / "metrics.json").read_text())["sets"]) == {"SetA", "SetC"}
    table = (run_dir / "results.md").read_text()
    assert "SetA" in table
    assert "SetC" in table

    out = tmp_path / "up"
    assert (
        main(
            [
                "sr",
                "upscale",
                "--run",
                str(run_dir),
                "--input",
                str(data_dir),
                "--out",
                str(out),
                "--tile",
                "8",
            ]
        )
        == 0
    )
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"s{i}_x2_pcl.png" for i in range(4)]
    tiled = np.asarray(Image.open(out / "s0_x2_pcl.png")).astype(int)
    assert tiled.shape == (80, 80, 3)
    whole_dir = tmp_path / "whole"
    args = [
        "sr",
        "upscale",
        "--run",
        str(run_dir),
        "--input",
        str(data_dir / "s0.png"),
        "--out",
        str(whole_dir),
        "--tile",
        "0",
        "--model",
        "l1",
    ]
    assert main(args) == 0
    assert (whole_dir / "s0_x2_l1.png").is_file()
    args[-1], args[-5] = "pcl", str(tmp_path / "whole2")
    assert main(args) == 0
    whole = np.asarray(Image.open(tmp_path / "whole2" / "s0_x2_pcl.png")).astype(int)
    assert np.abs(whole - tiled).max() <= 1  # tiling (pad 40 > receptive radius) = whole image


def test_released_behaviour_equals_the_l1_control(data_dir: Path, tmp_path: Path):
    """With ``pcl.grad_to_sr=false`` (the released code) PCL never reaches the network."""
    out = tmp_path / "released"
    tiny = [a for a in TINY if not a.startswith("pretrain.epochs")] + ["pretrain.epochs=1"]
    assert (
        main(
            [
                "sr",
                "train",
                "--data-dir",
                str(data_dir),
                "--out",
                str(out),
                *tiny,
                "pcl.grad_to_sr=false",
            ]
        )
        == 0
    )
    _, _, models = load_models(out)
    for (k, a), b in zip(models["pcl"].state_dict().items(), models["l1"].state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    pcl = _history(out / "pcl" / "history.csv")
    assert float(pcl[-1]["train/loss/pcl"]) > 0  # the term is computed and logged, nothing more


def _tree(path: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in path.rglob("*")} if path.exists() else {}


def test_bad_input_exits_2_and_writes_nothing(
    data_dir: Path, run_dir: Path, tmp_path: Path, capsys
):
    bad = tmp_path / "bad"
    bad.mkdir()
    good = (data_dir / "s0.png").read_bytes()
    (bad / "a.png").write_bytes(good)
    (bad / "b.png").write_bytes(good[: len(good) // 2])
    small = tmp_path / "small"
    small.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(small / "a_tiny.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(small / "ok.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    cases = [
        (["sr", "train", "--data-dir", str(bad), "--out", str(out), *TINY], "b.png"),
        (["sr", "train", "--data-dir", str(small), "--out", str(out), *TINY], "a_tiny.png"),
        (["sr", "train", "--data-dir", str(empty), "--out", str(out), *TINY], "--data-dir"),
        (
            ["sr", "train", "--data-dir", str(data_dir), "--out", str(out), "--scale", "5", *TINY],
            "--scale 5",
        ),
        (["sr", "upscale", "--run", str(run_dir), "--input", str(bad), "--out", str(out)], "b.png"),
        (
            ["sr", "upscale", "--run", str(data_dir), "--input", str(bad), "--out", str(out)],
            "--run",
        ),
        (["sr", "evaluate", "--run", str(run_dir), "--data-dir", str(empty)], "--data-dir"),
    ]
    before = _tree(run_dir)
    for argv, name in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert name in err, err
        assert len(err.splitlines()) == 1, err
        assert not out.exists(), argv
    # a run of another scale or size: refused before anything is touched
    for extra in (["--scale", "3"], ["--size", "small"]):
        assert (
            main(["sr", "train", "--data-dir", str(data_dir), "--out", str(run_dir), *TINY, *extra])
            == 2
        )
        assert "another config" in capsys.readouterr().err
    assert _tree(run_dir) == before


def test_weights_of_another_size_are_refused(run_dir: Path, tmp_path: Path, capsys):
    import shutil

    from shared.training.run import RunFolder
    from vision.sr.model import EDSR

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    run = RunFolder.open_existing(copy, domain="sr")
    other = torch.nn.ModuleDict({m: EDSR.from_size(2, "small") for m in ("l1", "pcl")})
    run.save_weights(other.state_dict())  # stamped with the run's id, but another size
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    argv = [
        "sr",
        "upscale",
        "--run",
        str(copy),
        "--input",
        str(image),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "weights.pt" in err
    assert "EDSR-tiny" in err
    assert not (tmp_path / "o").exists()


def test_upscale_refuses_two_inputs_with_one_output_name(tmp_path: Path, capsys):
    images = tmp_path / "in"
    images.mkdir()
    for name in ("a.png", "a.jpg"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(images / name)
    out = tmp_path / "out"
    argv = ["sr", "upscale", "--run", str(tmp_path / "run"), "--input", str(images)]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(images / "a.png") in err, err
    assert str(images / "a.jpg") in err, err
    assert not out.exists()


# ------------------------------------------------------------------- evaluate's common options


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of a folder with its mtime and bytes (to prove that nothing was written)."""
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_evaluate_out_writes_there_and_only_reads_the_run(
    run_dir: Path, tmp_path: Path, capsys
) -> None:
    import yaml

    first, second = _synthetic(tmp_path / "SetA", n=1, seed=1), _synthetic(tmp_path / "SetB", n=1)
    before = _snapshot(run_dir)
    out = tmp_path / "eval"
    argv = ["sr", "evaluate", "--run", str(run_dir), "--device", "cpu", "--out", str(out)]
    assert main([*argv, "--data-dir", str(first)]) == 0
    assert _snapshot(run_dir) == before
    assert sorted(p.name for p in out.iterdir()) == [
        "config.yaml",
        "log.txt",
        "metrics.json",
        "results.md",
    ]
    settings = yaml.safe_load((out / "config.yaml").read_text())
    assert settings == {"data_dir": str(first), "seed": 2020, "device": "cpu"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["sets"]) == {"SetA"}
    assert metrics["run"] == str(run_dir)
    assert metrics["scale"] == 2
    assert "stages" not in metrics  # the run's training metrics stay in the run
    # a second folder into the same --out keeps the first's sets, as in a run folder
    assert main([*argv, "--data-dir", str(second), "--seed", "7"]) == 0
    merged = json.loads((out / "metrics.json").read_text())
    assert set(merged["sets"]) == {"SetA", "SetB"}
    assert merged["sets"]["SetA"] == metrics["sets"]["SetA"]
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 7
    assert _snapshot(run_dir) == before
    # nothing random: the default place gets the same numbers whatever the seed
    capsys.readouterr()
    default = ["sr", "evaluate", "--run", str(run_dir), "--data-dir", str(first), "--seed", "3"]
    assert main([*default, "--device", "cpu"]) == 0
    again = json.loads((run_dir / "metrics.json").read_text())
    assert again["sets"]["SetA"] == metrics["sets"]["SetA"]


def test_evaluate_refuses_epochs_and_unknown_keys_and_prints_its_config(
    tmp_path: Path, capsys
) -> None:
    import yaml

    # nothing is read before these checks: the run and data need not exist
    argv = ["sr", "evaluate", "--run", str(tmp_path / "r"), "--data-dir", str(tmp_path / "d")]
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out), "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "--epochs 2" in err
    assert "trains nothing" in err
    assert "`contrasuite sr train`" in err
    assert main([*argv, "devce=cpu"]) == 2
    assert "did you mean `device`" in capsys.readouterr().err
    assert main([*argv, "--out", str(out), "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == {"data_dir": str(tmp_path / "d"), "seed": 2020, "device": "auto"}
    assert not out.exists()
