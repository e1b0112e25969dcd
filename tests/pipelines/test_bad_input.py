"""Bad input caught where its class of mistake is: exit 2 and one line, for every command."""

from __future__ import annotations

import pytest

from pipelines.cli import main
from shared.config import ConfigError, apply_overrides
from shared.training import TrainerConfig


def test_help_documents_exit_statuses(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for line in ("0    success", "1    internal error", "2    bad input", "130  interrupted"):
        assert line in out


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_numbers_are_refused_by_the_config_layer(value):
    with pytest.raises(ConfigError, match="`lr` to be a finite number"):
        apply_overrides(TrainerConfig(), [f"lr={value}"])


def test_negative_seed_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--seed", "-1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "expected an integer >= 0" in err[0]
    assert not out.exists()


def test_a_path_under_a_file_is_bad_input_not_an_internal_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    assert main(["demo", "--steps", "nonexistent-step", "--out", str(blocker / "x")]) == 2
    capsys.readouterr()
    assert blocker.read_text() == "keep me"


def test_os_errors_on_user_paths_exit_2(monkeypatch, capsys, tmp_path):
    import pipelines.demo as demo

    locked = tmp_path / "locked"

    def boom(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied", str(locked))

    monkeypatch.setattr(demo, "run_demo", boom)
    assert main(["demo", "--out", str(locked)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"contrasuite: error: {locked}: Permission denied; choose another path."]


def test_demo_refuses_a_foreign_folder_and_a_run_folder(tmp_path, capsys):
    from shared.training.run import RunFolder

    user = tmp_path / "user"
    user.mkdir()
    (user / "index.html").write_text("mine")
    assert main(["demo", "--steps", "digits", "--out", str(user)]) == 2
    assert "holds no earlier demo" in capsys.readouterr().err
    assert sorted(p.name for p in user.iterdir()) == ["index.html"]
    run = RunFolder.prepare(tmp_path / "run", domain="sepclr", command="train").create()
    before = sorted(p.name for p in run.path.iterdir())
    assert main(["demo", "--steps", "digits", "--out", str(run.path)]) == 2
    assert "holds a run folder" in capsys.readouterr().err
    assert sorted(p.name for p in run.path.iterdir()) == before


BIG_SEED = str(2**32)  # one past the largest seed numpy, scikit-learn and RecBole take


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["digits", "train", "--seed", "99999999999999"], "argument --seed: expected a seed"),
        (["demo", "--seed", BIG_SEED], "argument --seed: expected a seed"),
        (["ecg", "synth", "--seed", BIG_SEED], "argument --seed: expected a seed"),
        (["prostate", "phantom", "--seed", BIG_SEED], "argument --seed: expected a seed"),
        (["sepclr", "make-data", "--seed", BIG_SEED], "argument --seed: expected a seed"),
        (
            ["recsys", "evaluate", "--dataset", "ml-100k", "--seeds", f"1,{BIG_SEED}"],
            "argument --seeds: expected a seed",
        ),
        (["digits", "train", f"trainer.seed={BIG_SEED}"], "`trainer.seed` to be a seed"),
        (["digits", "train", "data.split_seed=-1"], "`data.split_seed` to be a seed"),
        (
            ["recsys", "evaluate", "--dataset", "ml-100k", f"seeds=1,{BIG_SEED}"],
            "`seeds` to be a seed",
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_a_seed_above_2_to_the_32_is_bad_input(tmp_path, capsys, argv, named):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert named in err[0], err[0]
    assert "from 0 to 4294967295" in err[0], err[0]
    assert not out.exists()


def test_the_largest_seed_is_accepted():
    from pipelines.cli import build_parser

    args = build_parser().parse_args(["digits", "train", "--out", "o", "--seed", str(2**32 - 1)])
    assert args.seed == 2**32 - 1


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["ecg", "synth", "--out", ""], "--out"),
        (["sepclr", "make-data", "--out", ""], "--out"),
        (["sr", "upscale", "--run", "r", "--input", "i.png", "--out", ""], "--out"),
        (["prostate", "phantom", "--out", " "], "--out"),
        (["prostate", "predict", "--run", "r", "--input", "", "--out", "o"], "--input"),
        (["digits", "train", "--out", ""], "--out"),
        (["digits", "train", "--out", "o", "--config", ""], "--config"),
        (["demo", "--out", ""], "--out"),
        (["recsys", "evaluate", "--dataset", "", "--out", "o"], "--dataset"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_an_empty_path_is_bad_input_not_the_current_folder(
    tmp_path, monkeypatch, capsys, argv, option
):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"argument {option}: expected a path" in err[0], err[0]
    assert "an empty path means the current folder" in err[0], err[0]
    assert list(tmp_path.iterdir()) == []
