"""``contrasuite recsys evaluate`` end to end on a tiny generated data set, and its bad input."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from pipelines.cli import main
from shared.errors import InputError
from shared.training.checkpoint import load_weights
from shared.training.run import RunFolder

from .conftest import write_sequences

FAST = ["trainer.max_train_batches=2", "trainer.batch_size=16", "trainer.progress=false"]
CONTRACT_TEST_KEYS = {"hit@10", "ndcg@10", "hit@20", "ndcg@20", "mrr@10"}


def run(*args: str) -> int:
    return main(["recsys", "evaluate", *args])


def test_evaluate_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    data = write_sequences(tmp_path / "shop.txt")
    out = tmp_path / "run"
    argv = ["--dataset", str(data), "--models", "SASRec,MCLRec", "--out", str(out),
            "--epochs", "1", "--device", "cpu", *FAST]  # fmt: skip
    assert run(*argv) == 0
    printed = capsys.readouterr().out
    assert "MCLRec" in printed
    assert "results:" in printed

    results = json.loads((out / "results.json").read_text())
    assert list(results) == ["SASRec", "MCLRec"]
    for entry in results.values():
        assert set(entry) == {"test", "valid", "train_seconds", "epochs", "params"}
        assert CONTRACT_TEST_KEYS <= set(entry["test"])
        assert CONTRACT_TEST_KEYS <= set(entry["valid"])
        assert all(0.0 <= v <= 1.0 for v in entry["test"].values())
        assert entry["epochs"] == 1
        assert entry["params"] > 0
        assert entry["train_seconds"] > 0
    assert results["MCLRec"]["params"] > results["SASRec"]["params"]  # + two augmenters

    table = (out / "results.md").read_text()
    assert "| MCLRec |" in table
    assert "leave-one-out" in table
    assert (out / "valid_ndcg.png").read_bytes()[:4] == b"\x89PNG"
    assert "MCLRec epoch 1/1" in (out / "log.txt").read_text()
    assert "Reproduce:" in table
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2 * 1
    for name in results:
        weights = torch.load(out / name / "weights.pt", weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in weights.values())
        torch.load(out / name / "state.pt", weights_only=True)
    # nothing written outside the run folder (RecBole's log/, saved/, log_tensorboard/)
    assert sorted(os.listdir(tmp_path)) == ["run", "shop.txt"]
    other = RunFolder.prepare(tmp_path / "other", domain="recsys", command="evaluate")
    with pytest.raises(InputError, match="another run"):  # weights carry their run's id
        load_weights(out / "MCLRec" / "weights.pt", torch.nn.Module(), run_id=other.run_id)

    # the same command again (another thread count is fine) keeps the finished models; -q keeps
    # the console quiet
    before = (out / "MCLRec" / "metrics.json").read_text()
    capsys.readouterr()
    assert main(["-q", "recsys", "evaluate", *argv, "trainer.threads=1"]) == 0  # runtime only
    assert (out / "MCLRec" / "metrics.json").read_text() == before
    assert "already evaluated" not in capsys.readouterr().err
    assert "MCLRec: already evaluated" in (out / "log.txt").read_text()
    assert json.loads((out / "results.json").read_text()) == results

    # other settings on the same folder are refused
    assert run(*argv, "contrast.mclrec_beta=0.3") == 2
    err = capsys.readouterr().err
    assert "another config: contrast.mclrec_beta (None -> 0.3)" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (None, [], "no such file or folder"),
        ("", [], "the file is empty"),
        ("1 2 3\n4\n", [], "line 2"),
        ("1 2 3\n1 4 5\n", [], "already has line 1"),
        ("1 2 3\n", ["--models", "SASrec,MCLRec"], "did you mean 'SASRec'"),
        ("1 2 3\n", ["trainer.epoch=3"], "did you mean `trainer.epochs`"),
        ("1 2 3\n", ["trainer.monitor=auc@10"], "monitor"),
        ("1 2 3\n", ["topk=5,10"], "include 10 and 20"),
    ],
)
def test_bad_input_exits_2_with_one_message(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    extra: list[str],
    message: str,
) -> None:
    data = tmp_path / "d.txt"
    if content is not None:
        data.write_text(content)
    assert run("--dataset", str(data), "--out", str(tmp_path / "o"), *extra) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1  # one line
    assert "Traceback" not in err


def test_single_interaction_users_are_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_sequences(tmp_path / "d.txt", n_users=12)
    data.write_text(data.read_text() + "999 5\n")
    out = tmp_path / "o"
    argv = ["--dataset", str(data), "--models", "GRU4Rec", "--out", str(out), "--epochs", "1",
            *FAST, "trainer.max_train_batches=1"]  # fmt: skip
    assert run(*argv) == 0
    assert "1 user(s) with a single interaction" in caplog.text
    assert "999\t" not in (out / "data" / "d" / "d.inter").read_text()


@pytest.mark.slow
def test_every_model_runs(tmp_path: Path) -> None:
    data = write_sequences(tmp_path / "d.txt", n_users=16)
    models = "BERT4Rec,FastSASRec,SASRec2Step,CL4SRec,DuoRec,MCLRec-J"
    argv = ["--dataset", str(data), "--models", models, "--out", str(tmp_path / "o"),
            "--epochs", "1", "--mask-history", *FAST, "trainer.max_train_batches=1"]  # fmt: skip
    assert run(*argv) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert list(results) == models.split(",")


def test_help_lists_models_and_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recsys", "evaluate", "--help"]) == 0
    text = capsys.readouterr().out
    for word in ("MCLRec-J", "--mask-history", "mclrec_beta", "results.json", "--seeds",
                 "SASRec2Step", "DuoRec", "trainer.patience", "encoder.dropout_grid"):  # fmt: skip
        assert word in text


@pytest.mark.slow
def test_demo_step_smoke(tmp_path: Path) -> None:
    from recsys.commands import demo_step
    from shared.domain import DemoContext

    ctx = DemoContext(tmp_path / "recsys", quick=True, smoke=True, device="cpu", progress=False)
    result = demo_step(ctx)
    assert set(result.metrics) == {
        "ndcg@10/SASRec", "hit@10/SASRec", "ndcg@10/MCLRec", "hit@10/MCLRec",
    }  # fmt: skip
    assert "<table>" in result.summary_html
    for href in result.links.values():
        assert (tmp_path / "recsys" / href).exists(), href
    assert demo_step(ctx).metrics == result.metrics  # re-runnable into the same folder


# ----------------------------------------------------------------------------- issue 9's cases


def _refused(capsys: pytest.CaptureFixture[str], out: Path, *args: str) -> str:
    """Run, expect exit 2 with one line on stderr and nothing written at ``out``."""
    assert run(*args, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not out.exists() or sorted(os.listdir(out)) == ["config.yaml"]  # foreign case
    return err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["trainer.lr=nan"], "lr"),
        (["trainer.lr=inf"], "lr"),
        (["--seed", "-1"], "--seed"),
        (["--seeds", "2020,-1"], "seed"),
        (["--models", "sasrec"], "did you mean 'SASRec'"),
        (["--models", "duorec,mclrec-j"], "did you mean 'DuoRec'"),
        (["topk=5,10,20,50"], "fewer than the largest cut-off topk=50"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    data = write_sequences(tmp_path / "d.txt", n_users=12)
    err = _refused(capsys, tmp_path / "o", "--dataset", str(data), *extra)
    assert message in err


def test_fewer_items_than_topk_and_ambiguous_tokens_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_sequences(tmp_path / "few.txt", n_users=12, n_items=15)
    err = _refused(capsys, tmp_path / "o", "--dataset", str(data))
    assert "15 items, fewer than the largest cut-off topk=20" in err
    tabs = tmp_path / "tabs.txt"
    tabs.write_text("u1\t1\t2\t3\nu2\tred shoe\t4\t5\n")
    err = _refused(capsys, tmp_path / "o", "--dataset", str(tabs))
    assert "line 2: tab-separated ids with spaces inside ('red shoe')" in err


def test_unwritable_out_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_sequences(tmp_path / "d.txt", n_users=12)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    err = _refused(capsys, blocker / "run", "--dataset", str(data))
    assert "is a file" in err
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(  # the tests run as root, who may write anywhere: act as a user
        "shared.training.run.os.access", lambda p, mode: Path(p) != locked and real_access(p, mode)
    )
    err = _refused(capsys, locked / "run", "--dataset", str(data))
    assert "cannot write" in err


def test_foreign_folder_and_refused_resume_get_one_short_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_sequences(tmp_path / "d.txt", n_users=12)
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "config.yaml").write_text("title: thesis draft\n")
    err = _refused(capsys, foreign, "--dataset", str(data))
    assert "not empty and holds no contrasuite run" in err
    assert (foreign / "config.yaml").read_text() == "title: thesis draft\n"
    ecg = RunFolder.prepare(tmp_path / "ecg_run", domain="ecg", command="train").create().path
    before = sorted(os.listdir(ecg))
    assert run("--dataset", str(data), "--out", str(ecg)) == 2
    assert "holds an ecg train run, not a recsys evaluate run" in capsys.readouterr().err
    assert sorted(os.listdir(ecg)) == before  # no data/, no log.txt

    out = tmp_path / "run"
    argv = ["--dataset", str(data), "--models", "GRU4Rec", "--out", str(out), "--epochs", "1",
            *FAST, "trainer.max_train_batches=1"]  # fmt: skip
    assert run(*argv) == 0
    capsys.readouterr()
    changed = ["trainer.lr=0.01", "trainer.batch_size=8", "topk=5,10,20,30",
               "augment.mask_ratio=0.3", "contrast.tau=0.5"]  # fmt: skip
    assert run(*argv, *changed) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "and 2 more" in err
    assert len(err) < 400

    # the data file changed since the run started: refused, the run left as it was
    before = sorted(os.listdir(out))
    data.write_text(data.read_text() + "999 1 2 3\n")
    assert run(*argv) == 2
    assert "other input data" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == before


def test_small_data_warns_and_accented_file_names_are_mapped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_sequences(tmp_path / "Beauté.txt", n_users=12)
    out = tmp_path / "o"
    argv = ["--dataset", str(data), "--models", "GRU4Rec", "--out", str(out), "--epochs", "1",
            *FAST, "trainer.max_train_batches=1"]  # fmt: skip
    assert run(*argv) == 0
    assert re.search(
        r"only 12 test user\(s\) and \d+ item\(s\): too small for a meaningful", caplog.text
    )
    assert (out / "data" / "Beaute" / "Beaute.inter").exists()


def test_quick_sets_a_small_budget_unless_given(tmp_path: Path) -> None:
    import yaml

    data = write_sequences(tmp_path / "d.txt", n_users=12)
    out = tmp_path / "q"
    argv = ["--dataset", str(data), "--models", "GRU4Rec", "--out", str(out), "--quick",
            "trainer.progress=false"]  # fmt: skip
    assert run(*argv) == 0
    trainer = yaml.safe_load((out / "config.yaml").read_text())["trainer"]
    assert (trainer["epochs"], trainer["max_train_batches"]) == (3, 40)
    out2 = tmp_path / "q2"
    argv2 = [*argv[:5], str(out2), "--quick", "--epochs", "1", "trainer.max_train_batches=2"]
    assert run(*argv2) == 0
    trainer = yaml.safe_load((out2 / "config.yaml").read_text())["trainer"]
    assert (trainer["epochs"], trainer["max_train_batches"]) == (1, 2)
