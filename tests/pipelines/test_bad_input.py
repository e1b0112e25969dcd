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
