"""Clinical explanation reports and the ``ecg train | evaluate | explain`` commands."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from medical.ecg.arrays import load_data
from medical.ecg.commands import demo_step, explain
from medical.ecg.config import ECGConfig
from medical.ecg.explain import ExplainOptions, render_report
from medical.ecg.infer import load_run
from medical.ecg.synth import write_synthetic_ptbxl
from medical.ecg.train import train
from pipelines.cli import main
from shared.config import load_config
from shared.domain import DemoContext, DemoResult
from shared.errors import InputError

REPO = Path(__file__).resolve().parents[3]
EVIL_REPORT = "<script>alert('x')</script> & \"quoted\""
EVIL_DEVICE = "'><img src=x onerror=alert(1)>"
TINY = [
    "model.width=4",
    "model.layers=1,1,1,1",
    "model.ppc_rhythm=2",
    "model.ppc_morphology=2",
    "model.ppc_global=2",
    "trainer.epochs=1",
    "stages.feature_epochs=0",
    "trainer.progress=false",
    "trainer.device=cpu",
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # On a shared 2-core machine one intra-op thread is many times faster than two
    # (no spinning OpenMP barriers); restored afterwards for the other test modules.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("explain")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTRASUITE_CACHE", str(root / "cache"))
        data_dir = write_synthetic_ptbxl(root / "data", n_records=100, seed=3, progress=False)
        db = pd.read_csv(data_dir / "ptbxl_database.csv", index_col="ecg_id")
        evil = int(db.index[db.strat_fold == 10][0])
        db.loc[evil, "report"] = EVIL_REPORT
        db.loc[evil, "device"] = EVIL_DEVICE
        db.to_csv(data_dir / "ptbxl_database.csv")
        cfg = load_config(ECGConfig, {"data": {"data_dir": str(data_dir)}}, TINY)
        train(cfg, root / "run", progress=False)
        data = load_data(cfg.data, progress=False)
    return {"root": root, "data_dir": data_dir, "run": root / "run", "evil": evil, "data": data}


@pytest.fixture(autouse=True)
def _cache(env, monkeypatch):
    monkeypatch.setenv("CONTRASUITE_CACHE", str(env["root"] / "cache"))


def _sources(page: str) -> list[str]:
    return re.findall(r"""\b(?:src|href)\s*=\s*['"]([^'"]*)['"]""", page)


def test_report_is_self_contained_and_escapes_metadata(env, tmp_path):
    out = tmp_path / "one.html"
    paths = explain(env["run"], ecg_ids=[env["evil"]], out=out, progress=False)
    assert paths == [out]
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in page
    assert "&#x27;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    sources = _sources(page)
    assert sources, "the report should embed its images"
    for src in sources:  # every image embedded, nothing to fetch
        assert src.startswith("data:image/png;base64,"), src[:60]
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in page
    assert "https://" not in page
    assert "<link" not in page


def test_report_content(env):
    run = load_run(env["run"])
    data = env["data"]
    ecg_id = int(data.ecg_ids[data.rows([10])[1]])
    opts = ExplainOptions(top_predictions=2, prototypes_per_prediction=2)
    page = render_report(run, data, ecg_id, opts)
    assert f"ECG {ecg_id}: prototype explanation" in page
    assert "25 mm/s, 10 mm/mV" in page
    assert page.count("Contribution to the logit") >= 2
    assert page.count("this prototype (similarity ") == page.count("Contribution to the logit")
    assert "looks like" not in page
    assert "Reading similarities" in page
    assert "How to read a probability" in page
    for code in (n for n, y in zip(data.label_names, data.labels[data.row_of(ecg_id)]) if y > 0):
        assert f"<b>{code}</b>" in page  # reference statements are always listed
    assert "&#10003; reference" in page
    assert "The prototype: training ECG" in page


def test_below_average_similarity_with_a_negative_weight_is_captioned_differs_from(
    env, monkeypatch
):
    import medical.ecg.explain as ex

    run = load_run(env["run"])
    data, model = env["data"], run.model
    ecg_id = int(data.ecg_ids[data.rows([10])[0]])
    x = torch.from_numpy(np.array(data.signals[data.row_of(ecg_id)]))
    with torch.no_grad():
        z = model.fusion_input(model(x[None]).similarities)[0]
    offsets = model.prototype_offsets()
    glob = range(offsets["global"], len(z))
    above = max(glob, key=lambda j: float(z[j]))  # a global prototype this ECG resembles
    below = int(torch.argmin(z[: offsets["global"]]))  # a partial/rhythm one it differs from
    assert z[below] < 0 < z[above]
    c = run.train_positives.index(max(run.train_positives))  # a learned statement
    code = run.label_names[c]
    with torch.no_grad():
        model.fusion.weight[c] = 0.0
        model.fusion.weight[c, below] = -4.0  # its presence argues against the statement
        model.fusion.weight[c, above] = 1.0
        model.fusion.bias[c] = 30.0  # the top prediction
    drawn = []

    def recording(signal, fs, start_s, end_s, highlight, leads, *args):
        drawn.append(list(leads))
        return strip_png(signal, fs, start_s, end_s, highlight, leads, *args)

    from medical.ecg.plots import strip_png

    monkeypatch.setattr(ex, "strip_png", recording)
    page = render_report(run, data, ecg_id, ExplainOptions(top_predictions=1))
    blocks = page.split("<div class='evidence ")[1:]
    kinds = {b.split("'")[0]: b for b in blocks}
    assert set(kinds) == {"resembles", "differs"}
    differs = kinds["differs"]
    name = max((n for n in offsets if offsets[n] <= below), key=lambda n: offsets[n])
    assert f"{name} #{below - offsets[name]}:" in differs
    assert "<figcaption>differs from this prototype (similarity below its training average)" in (
        differs
    )
    assert "-4.000 (negative: resemblance argues against" in differs
    assert f"{-4.0 * float(z[below]):+.3f}" in differs  # a positive contribution
    assert "below average" in differs
    resembles = kinds["resembles"]
    assert f"global #{above - offsets['global']}:" in resembles
    assert "<figcaption>resembles this prototype (similarity above its training average)" in (
        resembles
    )
    assert "Differs from: This ECG differs from these prototypes" in page
    assert code in page.split("Differs from:")[1].split("</h4>")[0]
    # the global prototype covers the whole recording over all 12 leads: all of them drawn
    assert [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] in drawn


def test_statements_without_training_examples_are_not_predictions(env):
    run = load_run(env["run"])
    data = env["data"]
    absent = [n for n, k in zip(run.label_names, run.train_positives) if k == 0]
    assert "AFLT" in absent  # the synthetic set has no atrial flutter
    ecg_id = int(data.ecg_ids[data.rows([10])[0]])
    page = render_report(run, data, ecg_id, ExplainOptions(max_listed=80, min_probability=0.0))
    table = page.split("<h2>Predicted statements</h2>")[1].split("How to read a probability")[0]
    section = page.split("Not learned (no training example)")[1].split("<h2>")[0]
    for code in absent:
        assert f"<b>{code}</b>" not in table
        assert f"<b>{code}</b>" in section
    assert "class='bar'" not in section


def test_contributions_add_up_to_the_logit(env):
    model = load_run(env["run"]).model
    x = torch.from_numpy(np.array(env["data"].signals[:3]))
    with torch.no_grad():
        out = model(x)
        total = model.contributions(out.similarities).sum(-1) + model.fusion.bias
    torch.testing.assert_close(total, out.logits, rtol=1e-5, atol=1e-5)


def test_batch_mode_writes_an_index(env, tmp_path):
    data = env["data"]
    ids = [int(i) for i in data.ecg_ids[data.rows([10])[:2]]]
    code = main(
        [
            "ecg",
            "explain",
            "--run",
            str(env["run"]),
            "--data-dir",
            str(env["data_dir"]),
            "--ecg-id",
            str(ids[0]),
            "--ecg-id",
            str(ids[1]),
            "--out",
            str(tmp_path / "rep"),
            "--top",
            "1",
            "--prototypes",
            "1",
            "-q",
        ]
    )
    assert code == 0
    index = (tmp_path / "rep" / "index.html").read_text()
    for i in ids:
        assert (tmp_path / "rep" / f"ecg_{i}.html").exists()
        assert f"href='ecg_{i}.html'" in index


def test_fold_mode_explains_every_ecg_of_the_fold(env, tmp_path, monkeypatch):
    import medical.ecg.commands as commands

    monkeypatch.setattr(commands, "render_report", lambda run, data, i, opts, **kw: f"<p>{i}</p>")
    monkeypatch.setattr(commands, "top_predictions", lambda run, data, i, k: "")
    paths = explain(env["run"], fold=10, out=tmp_path / "fold", progress=False)
    data = env["data"]
    ids = [int(i) for i in data.ecg_ids[data.rows([10])]]
    assert [p.name for p in paths] == [f"ecg_{i}.html" for i in ids] + ["index.html"]
    with pytest.raises(InputError, match="strat_fold 11"):
        explain(env["run"], fold=11, progress=False)


def test_unknown_ecg_id_and_foreign_run_folders_are_input_errors(env, tmp_path, capsys):
    with pytest.raises(InputError, match="99999"):
        explain(env["run"], ecg_ids=[99999], progress=False)
    code = main(["ecg", "explain", "--run", str(env["run"]), "--ecg-id", "99999"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "99999" in err
    # a run folder of another pipeline (a stage sub-run written by the core Trainer)
    code = main(["ecg", "explain", "--run", str(env["run"] / "fusion"), "--ecg-id", "1"])
    assert code == 2
    assert "holds a trainer fit run, expected an ecg train run" in capsys.readouterr().err
    assert main(["ecg", "explain", "--run", str(tmp_path / "nope"), "--ecg-id", "1"]) == 2
    assert main(["ecg", "evaluate", "--run", str(env["run"] / "rhythm" / "joint")]) == 2
    with pytest.raises(InputError, match="neither"):
        explain(env["run"], progress=False)


def test_cli_train_evaluate_and_baseline_refusal(env, tmp_path):
    out = tmp_path / "base"
    code = main(
        [
            "ecg",
            "train",
            "--data-dir",
            str(env["data_dir"]),
            "--out",
            str(out),
            "--epochs",
            "1",
            "-q",
            "model.architecture=resnet1d",
            "model.width=4",
            "model.layers=1,1,1,1",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    (out / "metrics.json").unlink()
    assert main(["ecg", "evaluate", "--run", str(out), "-q"]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["macro_auc"] == pytest.approx(metrics["macro_auc"])
    for key in ("macro_auc", "weighted_auc", "n_test", "per_label", "label_set"):
        assert key in again
    with pytest.raises(InputError, match="no prototypes"):
        explain(out, ecg_ids=[1], progress=False)
    assert (
        main(
            ["ecg", "train", "--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]
        )
        == 2
    )
    assert not (tmp_path / "x").exists()


def test_demo_step_smoke(tmp_path):
    ctx = DemoContext(tmp_path / "ecg", quick=True, smoke=True, progress=False, device="cpu")
    row = demo_step(ctx)
    assert isinstance(row, DemoResult)
    assert (tmp_path / "ecg" / row.links["report"]).exists()
    assert np.isfinite(row.metrics["macro_auc"])
    assert "ecg/" + row.links["report"] in row.summary_html
    again = demo_step(ctx)  # re-runnable into the same folder: the finished run is reused
    assert again.metrics == row.metrics


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium(env, tmp_path):
    from PIL import Image

    report = explain(env["run"], ecg_ids=[env["evil"]], out=tmp_path / "r.html", progress=False)[0]
    png = tmp_path / "r.png"
    subprocess.run(
        [str(REPO / "scripts" / "screenshot_report.sh"), str(report), str(png), "1300", "1800"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert image.shape[:2] == (1800, 1300)
    pink = (image[..., 0] > 200) & (image[..., 1] < 215) & (image[..., 2] < 215)
    dark = image.sum(-1) < 150
    assert pink.mean() > 0.02, "the ECG grid should be visible"
    assert dark.mean() > 0.001, "text and traces should be visible"


# ----------------------------------------------------------------------------- bad input (issue 9)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_explain_on_another_data_set_says_so_and_keeps_the_run_provenance(env, tmp_path, capsys):
    other = write_synthetic_ptbxl(tmp_path / "other", n_records=30, seed=11, progress=False)
    data = load_data(
        load_config(ECGConfig, {"data": {"data_dir": str(other)}}, TINY).data, progress=False
    )
    ecg_id = int(data.ecg_ids[data.rows([10])[0]])
    out = tmp_path / "r.html"
    args = ["ecg", "explain", "--run", str(env["run"]), "--data-dir", str(other)]
    assert main([*args, "--ecg-id", str(ecg_id), "--out", str(out), "-q"]) == 0
    page = out.read_text()
    assert "which is not the data this run was trained on" in page
    assert "read from the run&#x27;s training data in" in page
    run = load_run(env["run"])
    own = env["data"]
    for rec in run.prototypes:  # sources are the run's own ECGs, with their own statements
        codes = ", ".join(
            n for n, v in zip(own.label_names, own.labels[own.row_of(rec["ecg_id"])]) if v > 0
        )
        marker = f"The prototype: training ECG {rec['ecg_id']} (fold {rec['fold']}), statements: "
        if marker in page:
            assert marker + codes in page


def test_out_problems_are_refused_before_any_data_is_read(env, tmp_path, capsys, monkeypatch):
    import medical.ecg.commands as commands

    def no_data(*args, **kwargs):
        raise AssertionError("data read before the --out check")

    monkeypatch.setattr(commands, "load_data", no_data)
    run = ["ecg", "explain", "--run", str(env["run"])]
    folder = tmp_path / "existing"
    (folder / "ecg_1.html").mkdir(parents=True)  # --out is the folder; its ecg_1.html is not a file
    assert main([*run, "--ecg-id", "1", "--out", str(folder)]) == 2
    assert "is a folder" in _one_line(capsys)
    afile = tmp_path / "file.html"
    afile.write_text("x")
    assert main([*run, "--ecg-id", "1", "--ecg-id", "2", "--out", str(afile)]) == 2
    assert "it is a file" in _one_line(capsys)
    assert main([*run, "--ecg-id", "1", "--out", str(afile / "sub" / "r.html")]) == 2
    assert "is a file, so the folder cannot be created" in _one_line(capsys)
    assert afile.read_text() == "x"
    train_args = ["ecg", "train", "--data-dir", str(env["data_dir"]), "--epochs", "1"]
    assert main([*train_args, "--out", str(afile)]) == 2
    assert "it is a file" in _one_line(capsys)
    assert main(["ecg", "synth", "--out", str(afile)]) == 2
    assert "it is a file" in _one_line(capsys)


def test_one_report_into_a_folder_named_with_a_slash_or_existing(
    env, tmp_path, capsys, monkeypatch
):
    import medical.ecg.commands as commands

    monkeypatch.setattr(commands, "render_report", lambda *a, **k: "<p>report</p>")  # speed
    ecg = env["evil"]
    run = ["ecg", "explain", "--run", str(env["run"]), "--ecg-id", str(ecg)]
    assert main([*run, "--out", f"{tmp_path / 'new'}/"]) == 0
    assert (tmp_path / "new" / f"ecg_{ecg}.html").is_file()
    (tmp_path / "old").mkdir()
    assert main([*run, "--out", str(tmp_path / "old")]) == 0
    assert (tmp_path / "old" / f"ecg_{ecg}.html").is_file()
    capsys.readouterr()


def test_evaluate_run_that_is_a_file_says_so(tmp_path, capsys):
    afile = tmp_path / "run.txt"
    afile.write_text("x")
    assert main(["ecg", "evaluate", "--run", str(afile)]) == 2
    err = _one_line(capsys)
    assert "it is a file" in err
    assert "does not exist" not in err


def test_infinite_sample_names_record_and_lead(tmp_path, capsys):
    data_dir = tmp_path / "inf"
    assert main(["ecg", "synth", "--out", str(data_dir), "--n-records", "10", "-q"]) == 0
    capsys.readouterr()
    header = data_dir / "records100" / "00000" / "00003_lr.hea"
    lines = header.read_text().splitlines()
    lines[5] = lines[5].replace("1000.0(0)/mV", "0." + "0" * 39 + "1(0)/mV")  # lead aVL
    header.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    args = [
        "ecg",
        "train",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "-q",
        "data.cache=false",
    ]
    assert main(args) == 2
    err = _one_line(capsys)
    assert "00003_lr" in err
    assert "lead AVL has an infinite value" in err  # named as in the header
    assert not out.exists()


def test_explain_refuses_missing_fusion_statistics(env, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(env["run"], run)
    (run / "fusion" / "weights.pt").unlink()
    assert main(["ecg", "explain", "--run", str(run), "--ecg-id", "1"]) == 2
    assert "standardization statistics" in _one_line(capsys)


def test_without_projection_prototypes_are_not_called_training_segments(env):
    import dataclasses

    run = load_run(env["run"])
    stages = dataclasses.replace(run.config.stages, project=False)
    run.config = dataclasses.replace(run.config, stages=stages)
    data = env["data"]
    page = render_report(run, data, int(data.ecg_ids[data.rows([10])[0]]))
    assert "not a segment of a training ECG" in page
    assert "The prototype: training ECG" not in page
    assert "real training ECG" not in page


# ------------------------------------------------------------------- evaluate's common options


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of a folder with its mtime and bytes (to prove that nothing was written)."""
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_evaluate_out_writes_there_and_only_reads_the_run(env, tmp_path, capsys, monkeypatch):
    import yaml

    from medical.ecg import commands
    from medical.ecg.infer import evaluate_model

    run = load_run(env["run"])
    before = _snapshot(env["run"])
    # the run folder cannot be written: the default place is refused, --out still works
    writable = commands.os.access
    monkeypatch.setattr(
        commands.os, "access", lambda p, mode: Path(p) != run.path and writable(p, mode)
    )
    argv = ["ecg", "evaluate", "--run", str(env["run"]), "-q", "--bootstrap", "20"]
    assert main(argv) == 2
    assert "permission denied" in _one_line(capsys)
    out = tmp_path / "eval" / "default-seed"
    assert main([*argv, "--out", str(out)]) == 0
    assert str(out / "metrics.json") in capsys.readouterr().out
    assert _snapshot(env["run"]) == before
    assert sorted(p.name for p in out.iterdir()) == [
        "config.yaml",
        "metrics.json",
        "test_predictions.csv",
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    settings = yaml.safe_load((out / "config.yaml").read_text())
    assert settings == {
        "data_dir": run.config.data.data_dir,
        "bootstrap": 20,
        "seed": run.config.trainer.seed,  # the default: the run's, which evaluation always used
        "device": "auto",
    }
    assert metrics["run"] == str(run.path)
    assert metrics["macro_auc"] == pytest.approx(run.metrics["macro_auc"])
    # the default seed reproduces the intervals of the code before --seed existed
    old = evaluate_model(run.model, run.config, env["data"], bootstrap=20)
    assert metrics["ci95"] == old["ci95"]
    # another seed draws other resamples (the point estimates stay)
    assert main([*argv, "--out", str(tmp_path / "eval" / "seed7"), "--seed", "7"]) == 0
    seven = json.loads((tmp_path / "eval" / "seed7" / "metrics.json").read_text())
    assert seven["ci95"] != metrics["ci95"]
    assert seven["macro_auc"] == metrics["macro_auc"]
    seed = str(run.config.trainer.seed)
    assert main([*argv, "--out", str(tmp_path / "eval" / "same"), "--seed", seed]) == 0
    same = json.loads((tmp_path / "eval" / "same" / "metrics.json").read_text())
    assert same["ci95"] == metrics["ci95"]
    assert _snapshot(env["run"]) == before


def test_evaluate_refuses_epochs_unknown_keys_and_a_bad_out(env, tmp_path, capsys):
    base = ["ecg", "evaluate", "--run", str(env["run"]), "-q"]
    out = tmp_path / "out"
    assert main([*base, "--out", str(out), "--epochs", "3"]) == 2
    err = _one_line(capsys)
    assert "--epochs 3" in err
    assert "trains nothing" in err
    assert "`contrasuite ecg train`" in err
    assert main([*base, "--out", str(out), "bootstrp=5"]) == 2
    assert "did you mean `bootstrap`" in _one_line(capsys)
    assert main([*base, "--out", str(env["run"] / "inside")]) == 2
    assert "inside the run folder" in _one_line(capsys)
    assert not out.exists()
    assert not (env["run"] / "inside").exists()


def test_evaluate_print_config_resolves_settings_and_writes_nothing(env, tmp_path, capsys):
    import yaml

    run = load_run(env["run"])
    config = tmp_path / "eval.yaml"
    config.write_text("bootstrap: 50\nseed: 3\ndevice: cpu\n")
    out = tmp_path / "out"
    argv = ["ecg", "evaluate", "--run", str(env["run"]), "--out", str(out), "--print-config"]
    assert main([*argv, "--config", str(config), "--bootstrap", "30", "seed=4"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    # the file < options < key=value; the data folder is the run's
    assert printed == {
        "data_dir": run.config.data.data_dir,
        "bootstrap": 30,
        "seed": 4,
        "device": "cpu",
    }
    assert main(argv) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["seed"] == run.config.trainer.seed
    assert printed["bootstrap"] is None
    assert list(tmp_path.iterdir()) == [config]
