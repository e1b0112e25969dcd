"""``contrasuite demo`` end to end (tiny settings), re-runs, and failing steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipelines.demo import DEMO_STEPS, DemoContext, DemoResult, DemoStep

RUN_FILES = {"config.yaml", "metrics.json", "history.csv", "log.txt", "weights.pt", "state.pt"}


def _check_demo_folder(out: Path, suffix: str, min_acc: float) -> dict:
    run_name = f"run{suffix}"
    index = (out / "index.html").read_text()
    assert index.startswith("<!DOCTYPE html>")
    assert f'href="digits/{run_name}/report.html"' in index
    assert "data:image/png;base64," in index  # the embedding plot, embedded
    assert "linear probe acc" in index
    assert "uniformity" in index
    summary = json.loads((out / "demo.json").read_text())
    assert summary["steps"]["digits"]["status"] == "ok"
    run = out / "digits" / run_name
    assert {"report.html", "metrics.json", "config.yaml", "embedding.png", "results.md"} <= {
        p.name for p in run.iterdir()
    }
    for method in ("simclr", "supcon"):
        stage = run / method
        assert RUN_FILES <= {p.name for p in stage.iterdir()}, stage
        weights = torch.load(stage / "weights.pt", weights_only=True)
        assert any(k.startswith("encoder.") for k in weights)
        torch.load(stage / "state.pt", weights_only=True)
    metrics = json.loads((run / "metrics.json").read_text())["probe"]
    for name in ("pixels", "simclr", "supcon"):
        assert metrics[name]["probe_acc"] > min_acc, (name, metrics[name])  # chance is 0.1
        assert metrics[name]["alignment"] >= 0
    return metrics


def test_demo_smoke_end_to_end_and_rerun(cli, tmp_path):
    # The digits step only: the other steps have their own end-to-end tests (and take minutes).
    out = tmp_path / "demo"
    result = cli("demo", "--smoke", "-q", "--steps", "digits", "--out", str(out))
    assert result.code == 0, result.err
    first = _check_demo_folder(out, "-smoke", 0.5)
    history = (out / "digits" / "run-smoke" / "simclr" / "history.csv").read_text()

    # Again into the same folder: the finished runs are reused, not retrained.
    result = cli("demo", "--smoke", "-q", "--steps", "digits", "--out", str(out))
    assert result.code == 0, result.err
    second = _check_demo_folder(out, "-smoke", 0.5)
    assert (out / "digits" / "run-smoke" / "simclr" / "history.csv").read_text() == history
    for name in ("simclr", "supcon"):
        assert second[name]["probe_acc"] == pytest.approx(first[name]["probe_acc"])


def test_a_failing_step_is_reported_and_the_others_still_run(cli, tmp_path, monkeypatch):
    def broken(ctx: DemoContext) -> DemoResult:
        raise RuntimeError("synthetic failure")

    def fine(ctx: DemoContext) -> DemoResult:
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        (ctx.out_dir / "result.txt").write_text("ok")
        return DemoResult(
            title="fine step",
            metrics={"acc": 0.9},
            summary_html="<p>fine</p>",
            links={"result": "result.txt"},
        )

    monkeypatch.setattr(
        DEMO_STEPS,
        "_entries",
        {
            "broken": DemoStep("broken", "a broken step", broken),
            "fine": DemoStep("fine", "a fine step", fine),
        },
    )
    out = tmp_path / "demo"
    result = cli("demo", "-q", "--out", str(out))
    assert result.code == 1
    assert "synthetic failure" in result.err
    assert "Traceback" not in result.err
    index = (out / "index.html").read_text()
    assert "synthetic failure" in index
    assert 'href="fine/result.txt"' in index
    assert "<p>fine</p>" in index
    summary = json.loads((out / "demo.json").read_text())
    assert summary["steps"]["broken"]["status"] == "failed"
    assert summary["steps"]["fine"]["metrics"] == {"acc": 0.9}


def test_a_step_with_bad_input_exits_2(cli, tmp_path, monkeypatch):
    from shared.errors import InputError

    def refuses(ctx: DemoContext) -> DemoResult:
        raise InputError(f"{ctx.out_dir} holds a run with a different config")

    monkeypatch.setattr(DEMO_STEPS, "_entries", {"x": DemoStep("x", "refuses", refuses)})
    result = cli("demo", "-q", "--out", str(tmp_path))
    assert result.code == 2
    assert "different config" in result.err
    assert "different config" in (tmp_path / "index.html").read_text()


def test_demo_out_must_be_a_folder(cli, tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    result = cli("demo", "--smoke", "--out", str(afile))
    assert result.code == 2
    assert "not a folder" in result.err
    assert afile.read_text() == "x"


def test_every_domain_has_a_demo_step():
    import pipelines.cli  # noqa: F401

    assert {"digits", "ecg", "recsys"} <= set(DEMO_STEPS.names())


@pytest.mark.slow
def test_demo_smoke_every_step(cli, tmp_path):
    out = tmp_path / "demo"
    result = cli("demo", "--smoke", "-q", "--out", str(out))
    assert result.code == 0, result.err
    summary = json.loads((out / "demo.json").read_text())
    assert set(summary["steps"]) == set(DEMO_STEPS.names())
    assert all(step["status"] == "ok" for step in summary["steps"].values())
    index = (out / "index.html").read_text()
    for name in DEMO_STEPS.names():
        assert f'href="{name}/' in index


@pytest.mark.slow
def test_demo_quick_numbers_mean_something(cli, tmp_path):
    out = tmp_path / "demo"
    result = cli("demo", "--quick", "-q", "--steps", "digits", "--out", str(out))
    assert result.code == 0, result.err
    metrics = _check_demo_folder(out, "-quick", 0.9)
    assert metrics["supcon"]["probe_acc"] >= metrics["pixels"]["probe_acc"]
    assert metrics["simclr"]["probe_acc"] >= metrics["pixels"]["probe_acc"] - 0.02
