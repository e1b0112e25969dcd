"""``contrasuite sepclr`` end to end through the real command line, and its bad-input paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.cli import main

TINY = ["data.n_per_group=40", "model.width=4", "batch_size=32", "trainer.progress=false"]


def _npz(path: Path, groups: list[int], **extra: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    n = len(groups)
    arrays = {
        "train_images": rng.integers(0, 255, (n, 12, 12), dtype=np.uint8),
        "test_images": rng.integers(0, 255, (n, 12, 12), dtype=np.uint8),
        "train_groups": np.asarray(groups),
        "test_groups": np.asarray(groups),
        **extra,
    }
    np.savez(path, **arrays)
    return path


def _pngs(folder: Path, sizes: list[tuple[int, int]]) -> list[str]:
    from PIL import Image

    names = []
    for i, size in enumerate(sizes):
        Image.fromarray(np.full(size, 10 * i, dtype=np.uint8)).save(folder / f"{i}.png")
        names.append(f"{i}.png")
    return names


def _csv(folder: Path, rows: list[str]) -> Path:
    path = folder / "labels.csv"
    path.write_text("path,group\n" + "\n".join(rows) + "\n")
    return path


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    one = _npz(tmp / "one.npz", [0] * 6)
    keys = _npz(tmp / "keys.npz", [0, 1] * 3)
    np.savez(keys, train_images=np.zeros((4, 9, 9), np.uint8))
    sizes = tmp / "sizes"
    sizes.mkdir()
    names = _pngs(sizes, [(12, 12)] * 3 + [(14, 12)])
    _csv(sizes, [f"{n},{i % 2}" for i, n in enumerate(names)])
    missing = tmp / "missing"
    missing.mkdir()
    names = _pngs(missing, [(12, 12)] * 4)
    _csv(missing, [f"{n},{i % 2}" for i, n in enumerate(names)] + ["nothere.png,1"])
    unknown = tmp / "unknown"
    unknown.mkdir()
    names = _pngs(unknown, [(12, 12)] * 4)
    _csv(unknown, [f"{n},{'patient' if i == 2 else i % 2}" for i, n in enumerate(names)])
    return {
        "one group": (["--data", str(one)], "both groups"),
        "missing arrays": (["--data", str(keys)], "test_images"),
        "sizes": (["--data", str(sizes)], "same size"),
        "missing file": (["--data", str(missing)], "does not exist"),
        "unknown group": (["--data", str(unknown)], "unknown group"),
        "negative weight": (["--beta-s", "-1"], "beta_s"),
        "negative lambda": (["loss.lambda_jem=-2"], "lambda_jem"),
    }


def test_bad_inputs_exit_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = _bad_inputs(tmp_path)
    for name, (args, expected) in cases.items():
        out = tmp_path / f"run-{name.replace(' ', '-')}"
        out.mkdir()
        (out / "keep.txt").write_text("precious")
        status = main(["sepclr", "train", "--out", str(out), *args, *TINY])
        err = capsys.readouterr().err.strip()
        assert status == 2, (name, err)
        assert expected in err, (name, err)
        assert len(err.splitlines()) == 1, (name, err)
        assert sorted(p.name for p in out.iterdir()) == ["keep.txt"], name
        assert (out / "keep.txt").read_text() == "precious"


def test_evaluate_refuses_a_foreign_folder(tmp_path: Path, capsys) -> None:
    assert main(["sepclr", "evaluate", "--run", str(tmp_path)]) == 2
    assert "holds no .contrasuite.json" in capsys.readouterr().err


def test_make_data_then_train_sepclr_beats_chance_and_evaluate_reproduces(
    tmp_path: Path, capsys
) -> None:
    data = tmp_path / "data"
    assert main(["sepclr", "make-data", "--out", str(data), "--n-per-group", "40"]) == 0
    assert (data / "sepclr_generated.npz").is_file()
    assert (data / "preview.png").is_file()
    run = tmp_path / "run"
    argv = ["sepclr", "train", "--data", str(data), "--out", str(run), "--epochs", "2", *TINY]
    assert main(argv) == 0
    for name in ("config.yaml", "history.csv", "metrics.json", "weights.pt", "report.html",
                 "results.md", "log.txt"):  # fmt: skip
        assert (run / name).is_file(), name
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    for term in ("common_align", "common_unif", "salient_align", "salient_unif", "reg", "kjem"):
        assert f"train/loss/{term}" in header
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"] == "sepclr"
    assert metrics["dataset"] == "generated"
    assert set(metrics["probes"]) == {"common", "salient"}
    # background vs target is learnable (the blended digit) from both spaces
    assert metrics["probes"]["salient"]["group_linear"] > 0.75
    assert metrics["probes"]["common"]["group_knn"] > 0.75
    assert metrics["chance"]["texture"] == 0.25
    before = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").unlink()
    assert main(["sepclr", "evaluate", "--run", str(run)]) == 0
    after = json.loads((run / "metrics.json").read_text())
    assert after["probes"] == before["probes"]
    # the same command again resumes the finished run: same metrics, no retraining
    assert main(argv) == 0
    assert json.loads((run / "metrics.json").read_text())["probes"] == before["probes"]
    # a methods x probes table with another run on the same data
    cpca = tmp_path / "cpca"
    assert main(["sepclr", "train", "--method", "cpca", "--data", str(data), "--out", str(cpca),
                 *TINY]) == 0  # fmt: skip
    assert main(["sepclr", "evaluate", "--run", str(run), "--compare", str(cpca)]) == 0
    table = (run / "results.md").read_text()
    assert "## Methods x probes" in table
    assert "cpca (cpca)" in table
    # another config into the same folder is refused
    assert main([*argv, "loss.lambda_jem=0"]) == 2
    capsys.readouterr()


@pytest.mark.parametrize("method", ["simclr", "cpca", "cvae"])
def test_baselines_run_end_to_end(tmp_path: Path, method: str) -> None:
    run = tmp_path / method
    assert main(["sepclr", "train", "--method", method, "--out", str(run), "--epochs", "1",
                 *TINY]) == 0  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    spaces = {"single"} if method == "simclr" else {"common", "salient"}
    assert set(metrics["probes"]) == spaces
    assert metrics["method"] == method
    assert all(0 <= v <= 1 for s in metrics["probes"].values() for v in s.values())


def test_demo_step_smoke_is_rerunnable(tmp_path: Path) -> None:
    from medical.sepclr.commands import demo_step
    from shared.domain import DemoContext

    ctx = DemoContext(out_dir=tmp_path / "sepclr", smoke=True, progress=False, device="cpu")
    first = demo_step(ctx)
    assert set(first.links) == {"sepclr report", "simclr report"}
    for rel in first.links.values():
        assert (ctx.out_dir / rel).is_file()
    assert "sepclr/common/texture_linear" in first.metrics
    assert "simclr/single/digit_linear" in first.metrics
    again = demo_step(ctx)  # reuses the finished runs
    assert again.metrics == first.metrics


def test_make_data_refuses_a_folder_that_is_not_its_own(tmp_path: Path, capsys) -> None:
    from shared.training.run import RunFolder

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    run = tmp_path / "run"
    RunFolder.prepare(run, domain="digits", command="train", config={}).create()
    runs_files = sorted(p.name for p in run.iterdir())
    small = ["--n-per-group", "10", "--size", "16"]
    for out, named in ((foreign, "holds other files"), (run, "inside the run folder")):
        assert main(["sepclr", "make-data", "--out", str(out), *small]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"--out {out}" in err, err
        assert named in err, err
    assert sorted(p.name for p in foreign.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in run.iterdir()) == runs_files
    # its own earlier output is replaced
    data = tmp_path / "data"
    data.mkdir()
    for name in ("preview.png", "sepclr_generated.npz"):
        (data / name).write_bytes(b"earlier")
    assert main(["sepclr", "make-data", "--out", str(data), *small]) == 0
    assert sorted(p.name for p in data.iterdir()) == ["preview.png", "sepclr_generated.npz"]
    assert (data / "sepclr_generated.npz").read_bytes() != b"earlier"


def test_probes_are_logged_as_readable_names_and_values(tmp_path: Path, capsys) -> None:
    run = tmp_path / "cpca"
    argv = ["sepclr", "train", "--method", "cpca", "--out", str(run), *TINY]
    assert main([*argv, "data.n_per_group=10"]) == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("probes: "))
    assert line.startswith("probes: common: group_linear "), line
    assert "; salient: group_linear " in line, line
    assert not set("{}'") & set(line), line


# ------------------------------------------------------------------- evaluate's common options


@pytest.fixture(scope="module")
def cpca_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny cPCA runs on the generated set (no epochs: the fastest method), seed 5."""
    root = tmp_path_factory.mktemp("sepclr-eval")
    runs = (root / "a", root / "b")
    for run in runs:
        argv = ["sepclr", "train", "--method", "cpca", "--out", str(run), "--seed", "5"]
        assert main([*argv, *TINY, "data.n_per_group=20"]) == 0
    return runs


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of a folder with its mtime and bytes (to prove that nothing was written)."""
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_evaluate_out_writes_there_and_only_reads_the_run(
    cpca_runs: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    import yaml

    run, other = cpca_runs
    trained = json.loads((run / "metrics.json").read_text())
    before = _snapshot(run)
    out = tmp_path / "eval"
    argv = ["sepclr", "evaluate", "--run", str(run), "--out", str(out)]
    assert main([*argv, "--compare", str(other)]) == 0
    assert f"-> {out}" in capsys.readouterr().out
    assert _snapshot(run) == before
    names = sorted(p.name for p in out.iterdir())
    assert names == ["config.yaml", "log.txt", "metrics.json", "report.html", "results.md"]
    settings = yaml.safe_load((out / "config.yaml").read_text())
    # the default seed is the run's trainer.seed (5 here), which evaluation always seeded with
    assert settings == {"compare": [str(other)], "seed": 5, "device": "auto"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["probes"] == trained["probes"]
    assert metrics["run"] == str(run)
    assert "## Methods x probes" in (out / "results.md").read_text()
    # the probes draw no random numbers: another seed scores the same (and is recorded)
    assert main([*argv[:-1], str(tmp_path / "seed7"), "--seed", "7", f"compare={other}"]) == 0
    seven = json.loads((tmp_path / "seed7" / "metrics.json").read_text())
    assert seven["probes"] == trained["probes"]
    settings = yaml.safe_load((tmp_path / "seed7" / "config.yaml").read_text())
    assert settings["seed"] == 7
    assert settings["compare"] == [str(other)]
    assert _snapshot(run) == before


def test_evaluate_refuses_epochs_and_unknown_keys_and_prints_its_config(
    cpca_runs: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    import yaml

    run = cpca_runs[0]
    out = tmp_path / "out"
    argv = ["sepclr", "evaluate", "--run", str(run), "--out", str(out)]
    assert main([*argv, "--epochs", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "--epochs 4" in err
    assert "trains nothing" in err
    assert "L-BFGS" in err
    assert "`contrasuite sepclr train`" in err
    assert main([*argv, "seeed=3"]) == 2
    assert "did you mean `seed`" in capsys.readouterr().err
    assert main([*argv, "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == {"compare": [], "seed": 5, "device": "auto"}
    # a setting after --compare's runs is a setting, not a third run
    assert main([*argv, "--compare", "a", "b", "seed=3", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == {"compare": ["a", "b"], "seed": 3, "device": "auto"}
    assert main([*argv, "--compare", "seed=3", "--print-config"]) == 0  # only a setting
    assert yaml.safe_load(capsys.readouterr().out)["compare"] == []
    assert not out.exists()
