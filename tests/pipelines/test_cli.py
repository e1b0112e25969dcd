"""The command line: help texts, exit codes and one-line errors (contract.md, "Errors")."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipelines.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def _command_paths() -> list[tuple[str, ...]]:
    """Every command path of the parser: (), ("demo",), ("digits",), ("digits", "train"), ..."""
    paths: list[tuple[str, ...]] = []

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> None:
        paths.append(prefix)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*prefix, name))

    walk(build_parser(), ())
    return paths


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    assert lines[0].startswith("contrasuite: error: ")
    return lines[0]


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "contrasuite")
def test_help_of_every_command_exits_0(cli, path):
    result = cli(*path, "--help")
    assert result.code == 0
    assert "usage: contrasuite" in result.out
    assert result.err == ""
    if path:  # every command explains itself with examples
        assert "example" in result.out


def test_every_registered_command_is_listed(cli):
    from pipelines.common import COMMANDS

    out = cli("--help").out
    assert set(COMMANDS.names()) >= {"demo", "digits"}
    for name in COMMANDS.names():
        assert name in out


@pytest.mark.parametrize("group", sorted({p[0] for p in _command_paths() if len(p) == 2}), ids=str)
def test_a_command_group_lists_its_commands_once(cli, group):
    out = cli(group, "--help").out
    assert out.count("commands:") == 1, out
    section = out.split("commands:\n", 1)[1].split("\n\n", 1)[0]  # argparse's list
    listed = re.findall(r"^ {4}(\S+)", section, flags=re.MULTILINE)
    assert listed == [p[1] for p in _command_paths() if len(p) == 2 and p[0] == group], out


def test_python_m_pipelines_help():
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: contrasuite" in proc.stdout


def test_console_script_help():
    script = Path(sys.executable).parent / "contrasuite"
    if not script.exists():
        found = shutil.which("contrasuite")
        if found is None:
            pytest.skip("the contrasuite console script is not installed")
        script = Path(found)
    proc = subprocess.run(
        [str(script), "demo", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "--quick" in proc.stdout


def test_no_command_is_a_usage_error(cli):
    result = cli()
    assert result.code == 2
    assert "COMMAND" in _one_line_error(result.err)


def test_unknown_command_suggests_the_closest(cli):
    result = cli("dem")
    assert result.code == 2
    line = _one_line_error(result.err)
    assert "'dem'" in line
    assert "did you mean 'demo'" in line


def test_unknown_option_names_it_and_suggests(cli, tmp_path):
    result = cli("digits", "train", "--out", str(tmp_path / "run"), "--epoch", "3")
    assert result.code == 2
    line = _one_line_error(result.err)
    assert "--epoch" in line
    assert "did you mean '--epochs'" in line
    assert not (tmp_path / "run").exists()


def test_unknown_option_of_demo(cli, tmp_path):
    result = cli("demo", "--out", str(tmp_path), "--bogus")
    assert result.code == 2
    assert "--bogus" in _one_line_error(result.err)


def test_bad_option_value(cli, tmp_path):
    result = cli("digits", "train", "--out", str(tmp_path), "--epochs", "0")
    assert result.code == 2
    assert "--epochs" in _one_line_error(result.err)


def test_bad_input_under_torchrun_is_printed_once(cli, tmp_path, monkeypatch):
    from medical.sepclr import train as sepclr_train
    from shared.errors import InputError

    argv = ("sepclr", "train", "--data", str(tmp_path / "none.npz"), "--out", str(tmp_path / "r"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(sepclr_train, "init_from_env", lambda device: None)  # no process group
    result = cli(*argv)
    assert result.code == 2
    assert "none.npz" in _one_line_error(result.err)
    monkeypatch.setenv("RANK", "1")
    result = cli(*argv)  # an error of this rank's own: printed, with its rank
    assert result.code == 2
    assert _one_line_error(result.err).startswith("contrasuite: error: rank 1: --data")

    def rank0_met_it(*args, **kwargs):  # what on_rank0 raises on the other ranks
        err = InputError("--data x.npz: no such file or folder.")
        err.from_rank0 = True
        raise err

    monkeypatch.setattr(sepclr_train, "load_dataset", rank0_met_it)
    result = cli(*argv)
    assert (result.code, result.err) == (2, "")  # rank 0 prints it
    monkeypatch.setenv("WORLD_SIZE", "1")  # a RANK set outside torchrun changes nothing
    result = cli(*argv)
    assert result.code == 2
    assert "x.npz" in _one_line_error(result.err)


def test_under_torchrun_every_command_closes_its_process_group(cli, tmp_path, monkeypatch):
    import shared.distributed

    calls: list[bool] = []
    monkeypatch.setattr(
        shared.distributed, "end_process_group", lambda *, synchronise: calls.append(synchronise)
    )
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert cli("sepclr", "train", "--out", str(tmp_path / "r"), "--print-config").code == 0
    assert calls == [True]  # success: wait for every rank, then close
    run = str(tmp_path / "none")
    assert cli("sepclr", "evaluate", "--run", run).code == 2  # the status survives the close
    assert calls == [True, False]  # failure: close without waiting
    monkeypatch.setenv("WORLD_SIZE", "1")  # outside torchrun: nothing to close
    assert cli("sepclr", "evaluate", "--run", run).code == 2
    assert calls == [True, False]


def test_under_torchrun_other_ranks_log_warnings_only(capsys, monkeypatch):
    import logging

    from pipelines.cli import configure_logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        monkeypatch.setenv("WORLD_SIZE", "2")
        for rank, shown in (("1", ["careful"]), ("0", ["progress", "careful"])):
            monkeypatch.setenv("RANK", rank)
            configure_logging()
            logging.getLogger("contrasuite.test").info("progress")
            logging.getLogger("contrasuite.test").warning("careful")
            assert capsys.readouterr().err.split() == shown
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_missing_required_out(cli):
    result = cli("digits", "train")
    assert result.code == 2
    assert "--out" in _one_line_error(result.err)


def test_unknown_config_key_names_the_closest(cli, tmp_path):
    result = cli("digits", "train", "--out", str(tmp_path / "run"), "trainer.epoch=3")
    assert result.code == 2
    line = _one_line_error(result.err)
    assert "trainer.epoch" in line
    assert "trainer.epochs" in line
    assert not (tmp_path / "run").exists()


def test_override_with_a_wrong_type(cli, tmp_path):
    result = cli("digits", "train", "--out", str(tmp_path), "trainer.epochs=many")
    assert result.code == 2
    line = _one_line_error(result.err)
    assert "trainer.epochs" in line
    assert "integer" in line


def test_setting_without_equals_sign(cli, tmp_path):
    result = cli("digits", "train", "--out", str(tmp_path), "trainer.epochs")
    assert result.code == 2
    assert "KEY=VALUE" in _one_line_error(result.err)


def test_missing_config_file(cli, tmp_path):
    missing = tmp_path / "nope.yaml"
    result = cli("digits", "train", "--out", str(tmp_path / "run"), "--config", str(missing))
    assert result.code == 2
    assert str(missing) in _one_line_error(result.err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trainer: [1, 2\n", "not valid YAML"),
        ("trainer:\n  epochs: 3\n    lr: 2\n", "not valid YAML"),
        ("- 1\n- 2\n", "mapping"),
        ("trainr:\n  epochs: 3\n", "trainer"),
        ("trainer:\n  epochs: three\n", "trainer.epochs"),
    ],
    ids=["unclosed", "indentation", "list", "unknown-key", "wrong-type"],
)
def test_bad_config_file(cli, tmp_path, text, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    result = cli("digits", "train", "--out", str(out), "--config", str(config))
    assert result.code == 2
    line = _one_line_error(result.err)
    assert "bad.yaml" in line
    assert expected in line
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # nothing written or lost
    assert (out / "keep.txt").read_text() == "precious"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", [("digits", "train"), ("demo",)], ids=" ".join)
def test_cuda_without_a_gpu(cli, tmp_path, command):
    result = cli(*command, "--out", str(tmp_path / "run"), "--device", "cuda")
    assert result.code == 2
    line = _one_line_error(result.err)
    assert "cuda" in line.lower()
    assert "--device cpu" in line
    assert not (tmp_path / "run").exists()


def test_unknown_demo_step(cli, tmp_path):
    result = cli("demo", "--out", str(tmp_path / "d"), "--steps", "digit")
    assert result.code == 2
    line = _one_line_error(result.err)
    assert "'digit'" in line
    assert "digits" in line
    assert "Did you mean 'digits'" in line
    assert not (tmp_path / "d").exists()


def test_demo_list(cli):
    result = cli("demo", "--list")
    assert result.code == 0
    assert "digits" in result.out


def test_precedence_yaml_then_options_then_overrides(cli, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "batch_size: 32\ntrainer:\n  epochs: 7\n  lr: 0.5\n  seed: 5\nprobe:\n  cs: [0.5, 2]\n"
    )
    result = cli(
        "digits",
        "train",
        "--out",
        str(tmp_path),
        "--config",
        str(config),
        "--epochs",
        "9",
        "trainer.lr=0.25",
        "--print-config",
    )
    assert result.code == 0, result.err
    import yaml

    cfg = yaml.safe_load(result.out)
    assert cfg["trainer"]["epochs"] == 9  # --epochs beats the file
    assert cfg["trainer"]["lr"] == 0.25  # key=value beats the file
    assert cfg["trainer"]["seed"] == 5  # an option not given leaves the file's value
    assert cfg["batch_size"] == 32
    assert cfg["probe"]["cs"] == [0.5, 2.0]
    # nested defaults of the digits config survive a file that sets only some trainer keys
    assert cfg["trainer"]["scheduler"] == "cosine"
    assert cfg["trainer"]["weights"] == "last"
    assert list(tmp_path.iterdir()) == [config]  # --print-config writes nothing


@pytest.mark.parametrize(
    "command",
    [
        ["digits", "train"],
        ["ecg", "train", "--data-dir", "data"],
        ["prostate", "train"],
        ["sepclr", "train"],
        ["sr", "train"],
        ["recsys", "evaluate", "--dataset", "ml-100k", "--models", "SASRec"],
        # evaluate commands: with --seed (and ECG's --data-dir) given, not even the run is read
        ["ecg", "evaluate", "--run", "r", "--data-dir", "d"],
        ["prostate", "evaluate", "--run", "r", "--data-dir", "d"],
        ["sepclr", "evaluate", "--run", "r"],
        ["sr", "evaluate", "--run", "r", "--data-dir", "d"],
    ],
)
def test_every_config_command_prints_its_config_and_writes_nothing(cli, tmp_path, command):
    import yaml

    out = tmp_path / "out"
    result = cli(*command, "--out", str(out), "--seed", "7", "--print-config")
    assert result.code == 0, result.err
    cfg = yaml.safe_load(result.out)
    seed = cfg["trainer"]["seed"] if "trainer" in cfg else cfg["seed"]
    assert seed == 7
    assert not out.exists()


def test_print_config_shows_the_settings_the_command_will_run(cli, tmp_path, monkeypatch):
    import yaml

    from recsys.commands import QUICK_BATCHES, QUICK_EPOCHS

    quick = cli(
        "recsys", "evaluate", "--dataset", "ml-100k", "--models", "SASRec", "--quick",
        "--out", str(tmp_path / "r"), "--print-config",
    )  # fmt: skip
    assert quick.code == 0, quick.err
    trainer = yaml.safe_load(quick.out)["trainer"]
    assert (trainer["epochs"], trainer["max_train_batches"]) == (QUICK_EPOCHS, QUICK_BATCHES)
    monkeypatch.chdir(tmp_path)
    ecg = cli("ecg", "train", "--data-dir", "rel/data", "--out", "e", "--print-config")
    assert ecg.code == 0, ecg.err
    assert yaml.safe_load(ecg.out)["data"]["data_dir"] == str((tmp_path / "rel/data").resolve())


def test_defaults_seed_and_device(cli, tmp_path):
    result = cli("digits", "train", "--out", str(tmp_path), "--print-config")
    import yaml

    cfg = yaml.safe_load(result.out)
    assert cfg["trainer"]["seed"] == 2020
    assert cfg["trainer"]["device"] == "auto"
    assert cfg["trainer"]["progress"] is True
    quiet = yaml.safe_load(
        cli("digits", "train", "-q", "--out", str(tmp_path), "--print-config").out
    )
    assert quiet["trainer"]["progress"] is False


def test_settings_between_options_are_accepted(cli, tmp_path):
    result = cli(
        "digits",
        "train",
        "trainer.lr=0.125",
        "--out",
        str(tmp_path),
        "batch_size=16",
        "--print-config",
    )
    assert result.code == 0, result.err
    assert "lr: 0.125" in result.out
    assert "batch_size: 16" in result.out


def test_internal_error_exits_1_without_traceback(cli, tmp_path, monkeypatch):
    import vision.digits.pipeline

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(vision.digits.pipeline, "train_digits", boom)
    monkeypatch.delenv("CONTRASUITE_DEBUG", raising=False)
    result = cli("digits", "train", "--out", str(tmp_path))
    assert result.code == 1
    line = _one_line_error(result.err)
    assert "RuntimeError: boom" in line
    assert "--debug" in line

    result = cli("digits", "train", "--debug", "--out", str(tmp_path))
    assert result.code == 1
    assert "Traceback" in result.err
    assert "RuntimeError: boom" in result.err

    monkeypatch.setenv("CONTRASUITE_DEBUG", "1")
    result = cli("digits", "train", "--out", str(tmp_path))
    assert "Traceback" in result.err


def test_main_uses_sys_argv(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["contrasuite", "--version"])
    assert main() == 0
    assert "contrasuite" in capsys.readouterr().out


def test_subprocess_error_is_one_line_and_exit_2(tmp_path):
    env = {**os.environ, "CONTRASUITE_DEBUG": "0"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "digits",
            "train",
            "--out",
            str(tmp_path),
            "--config",
            str(tmp_path / "missing.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert _one_line_error(proc.stderr).count("missing.yaml") == 1
