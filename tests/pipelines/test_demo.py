"""``contrasuite demo`` end to end (tiny settings), re-runs, and failing steps."""

from __future__ import annotations

import json
import re
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


def _fake_step(name: str, value: float) -> DemoStep:
    """A step that writes ``<mode folder>/result.txt`` and reports ``value``."""

    def run(ctx: DemoContext) -> DemoResult:
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        (ctx.run_dir / "result.txt").write_text(str(value))
        return DemoResult(
            title=f"step {name}",
            metrics={"acc": value},
            summary_html=f"<p>summary of {name} {value}</p>",
            links={"result": f"{ctx.run_name}/result.txt"},
            notes=f"notes of {name}",
        )

    return DemoStep(name, f"step {name}", run)


def test_the_index_keeps_an_earlier_calls_steps_of_the_same_settings(cli, tmp_path, monkeypatch):
    steps = {"a": _fake_step("a", 0.1), "b": _fake_step("b", 0.2)}
    monkeypatch.setattr(DEMO_STEPS, "_entries", steps)
    out = tmp_path / "demo"
    assert cli("demo", "-q", "--steps", "a,b", "--out", str(out)).code == 0
    steps["b"] = _fake_step("b", 0.3)
    assert cli("demo", "-q", "--steps", "b", "--out", str(out)).code == 0
    summary = json.loads((out / "demo.json").read_text())
    assert list(summary["steps"]) == ["a", "b"]  # in step order, a kept from the first call
    a, b = summary["steps"]["a"], summary["steps"]["b"]
    assert a["metrics"] == {"acc": 0.1}
    assert b["metrics"] == {"acc": 0.3}
    assert a["created"] <= b["created"] == summary["created"]
    index = (out / "index.html").read_text()
    assert 'href="a/run/result.txt"' in index
    assert 'href="b/run/result.txt"' in index
    assert "<p>summary of a 0.1</p>" in index
    assert "notes of a" in index
    assert "<p>summary of b 0.3</p>" in index
    assert "summary of b 0.2" not in index
    assert index.count("earlier call") == 3  # a's status cell and section; the subtitle
    # an earlier step whose files are gone is dropped, not linked
    (out / "a" / "run" / "result.txt").rename(out / "a" / "run" / "moved.txt")
    assert cli("demo", "-q", "--steps", "b", "--out", str(out)).code == 0
    assert list(json.loads((out / "demo.json").read_text())["steps"]) == ["b"]
    (out / "a" / "run" / "moved.txt").rename(out / "a" / "run" / "result.txt")
    assert cli("demo", "-q", "--steps", "a,b", "--out", str(out)).code == 0

    # Another mode (or seed): the earlier steps are not this call's, so the index drops them.
    assert cli("demo", "-q", "--quick", "--steps", "b", "--out", str(out)).code == 0
    summary = json.loads((out / "demo.json").read_text())
    assert list(summary["steps"]) == ["b"]
    assert summary["steps"]["b"]["links"] == {"result": "b/run-quick/result.txt"}
    assert "earlier call" not in (out / "index.html").read_text()
    assert (out / "a" / "run" / "result.txt").read_text() == "0.1"  # the files stay


def test_an_unreadable_earlier_demo_json_is_ignored(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(DEMO_STEPS, "_entries", {"a": _fake_step("a", 0.1)})
    (tmp_path / "demo.json").write_text("{not json")
    result = cli("demo", "-q", "--out", str(tmp_path))
    assert result.code == 0, result.err
    assert "ignoring the earlier" in result.err
    assert list(json.loads((tmp_path / "demo.json").read_text())["steps"]) == ["a"]


def _quick_as_cheap_as_smoke(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give sepclr's and prostate's ``--quick`` their smoke sizes and one setting of its own.

    The quick runs then cost what smoke runs do, and their configs differ from the smoke ones
    as the real quick configs do: a quick call that wrote into the smoke run folders (the bug)
    would be refused with "holds a ... run with another config".
    """
    import dataclasses

    import medical.prostate.commands as prostate
    import medical.sepclr.commands as sepclr
    from shared.config import apply_overrides

    def small(original, change):
        def wrapper(ctx, *args):
            if ctx.smoke:
                return original(ctx, *args)
            return change(original(dataclasses.replace(ctx, smoke=True), *args))

        return wrapper

    monkeypatch.setattr(
        sepclr,
        "_demo_config",
        small(sepclr._demo_config, lambda cfg: apply_overrides(cfg, ["batch_size=16"])),
    )
    monkeypatch.setattr(
        prostate,
        "_demo_overrides",
        small(prostate._demo_overrides, lambda words: [*words, "trainer.lr=0.002"]),
    )


def _local_refs(index: str) -> list[str]:
    refs = re.findall(r"""(?:href|src)=["']([^"']+)["']""", index)
    return [r for r in refs if not r.startswith(("data:", "http:", "https:", "#"))]


def test_calls_in_two_modes_share_one_demo_folder(cli, tmp_path, monkeypatch):
    # The audit's case: `demo --smoke` then `demo --quick` into the same folder failed with
    # "holds a sepclr train run with another config" (sepclr and prostate wrote their runs
    # straight into the step folder; recsys too, but it is the slowest smoke step).
    _quick_as_cheap_as_smoke(monkeypatch)
    out = tmp_path / "demo"
    result = cli("demo", "--smoke", "-q", "--steps", "sepclr", "--out", str(out))
    assert result.code == 0, result.err
    result = cli("demo", "--smoke", "-q", "--steps", "prostate", "--out", str(out))
    assert result.code == 0, result.err
    summary = json.loads((out / "demo.json").read_text())
    assert set(summary["steps"]) == {"sepclr", "prostate"}  # sepclr kept from the first call
    index = (out / "index.html").read_text()
    assert 'href="sepclr/run-smoke/sepclr/report.html"' in index
    smoke_runs = {p: p.stat().st_mtime_ns for p in out.rglob("run-smoke/**/*") if p.is_file()}

    result = cli("demo", "--quick", "-q", "--steps", "sepclr,prostate", "--out", str(out))
    assert result.code == 0, result.err
    summary = json.loads((out / "demo.json").read_text())
    assert summary["settings"]["smoke"] is False
    for name, step in summary["steps"].items():
        assert step["status"] == "ok", step
        assert step["links"]
        assert all(link.startswith(f"{name}/run-quick/") for link in step["links"].values())
    index = (out / "index.html").read_text()
    refs = _local_refs(index)
    assert any("run-quick/" in r for r in refs)
    assert not [r for r in refs if "run-smoke" in r or not (out / r).exists()]
    # the smoke runs are still there, untouched
    assert {p: p.stat().st_mtime_ns for p in smoke_runs} == smoke_runs
