"""Seeds, dropout selection on validation, paired tests and per-user files of an evaluation."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from recsys.config import RecsysConfig, replace
from recsys.evaluation import evaluate_models
from recsys.results import ModelSummary
from recsys.stats import paired_test, per_user_metric

from .conftest import write_sequences


def _merge_module() -> ModuleType:
    path = Path(__file__).parents[2] / "benchmarks" / "results" / "recsys_merge.py"
    spec = importlib.util.spec_from_file_location("recsys_merge", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seeds_dropout_grid_and_paired_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_sequences(tmp_path / "shop.txt", n_users=30)
    cfg = replace(
        RecsysConfig(dataset=str(data), models=("FastSASRec", "DuoRec"), seeds=(3, 4)),
        encoder={"dropout_grid": (0.1, 0.5), "inner_size": 32},
        trainer={"epochs": 1, "batch_size": 16, "max_train_batches": 2, "device": "cpu",
                 "progress": False, "threads": 1},
    )  # fmt: skip
    out = tmp_path / "run"
    rounds: list[tuple[int, dict[str, list[int]]]] = []

    def record(seed: int, done: dict[str, ModelSummary]) -> None:
        on_disk = json.loads((out / "results.json").read_text())  # rewritten every round
        assert {name: e["test"]["ndcg@10"] for name, e in on_disk.items()} == pytest.approx(
            {name: summary.test["ndcg@10"] for name, summary in done.items()}
        )
        rounds.append((seed, {name: sorted(summary.runs) for name, summary in done.items()}))
        table = (out / "results.md").read_text()
        if seed == 3:  # one seed of two: no spread yet, and the table says so
            assert "So far: seed(s) 3 done for every model; 4 not yet" in table
            assert "±" not in table
            assert "(per seed)" not in table
        else:
            assert "So far" not in table
            assert "mean ± sample std over 2 seeds" in table
            row = next(line for line in table.splitlines() if line.startswith("| DuoRec |"))
            best = [str(done["DuoRec"].runs[s].best_epoch) for s in (3, 4)]
            assert f"| {'/'.join(best)} |" in row  # best epoch of each seed

    summaries = evaluate_models(
        cfg, out, on_round_done=record, command="contrasuite recsys evaluate ..."
    )
    # seed by seed: after the first seed every model has a row (reports written each round)
    assert rounds == [
        (3, {"FastSASRec": [3], "DuoRec": [3]}),
        (4, {"FastSASRec": [3, 4], "DuoRec": [3, 4]}),
    ]
    results = json.loads((out / "results.json").read_text())
    assert list(results) == ["FastSASRec", "DuoRec"]
    for name, entry in results.items():
        assert {"test", "test_std", "seeds", "valid", "dropout", "dropout_selection"} <= set(entry)
        assert set(entry["seeds"]) == {"3", "4"}
        for key, mean in entry["test"].items():
            values = [entry["seeds"][s]["test"][key] for s in ("3", "4")]
            assert mean == pytest.approx(np.mean(values))
            assert entry["test_std"][key] == pytest.approx(np.std(values, ddof=1))
        # the reported dropout is the one with the best mean validation ndcg@10
        selection = entry["dropout_selection"]
        assert entry["dropout"] == float(max(selection, key=selection.get))
        for seed in (3, 4):
            for d in ("0.1", "0.5"):
                folder = out / name / f"seed{seed}_dropout{d}"
                assert (folder / "weights.pt").exists()
                settings = json.loads((folder / "settings.json").read_text())
                assert settings["hidden_dropout_prob"] == float(d)
                assert settings["seed"] == seed
    # per-user files re-run the paired test exactly
    with open(out / "per_user_ndcg@10.csv") as handle:
        rows = list(csv.DictReader(handle))
    a = np.array([float(r["FastSASRec"]) for r in rows])
    b = np.array([float(r["DuoRec"]) for r in rows])
    saved = json.loads((out / "paired_tests.json").read_text())["tests"]["DuoRec"]
    again = paired_test(a, b)
    assert again.as_dict() == pytest.approx(saved)
    assert a.mean() == pytest.approx(results["FastSASRec"]["test"]["ndcg@10"], abs=1e-3)
    seed_file = out / "DuoRec" / f"seed3_dropout{summaries['DuoRec'].dropout:g}"
    with open(seed_file / "per_user_test.csv") as handle:
        positions = np.array([int(r["position"]) for r in csv.DictReader(handle)])
    assert per_user_metric(positions, "hit@10").mean() == pytest.approx(
        results["DuoRec"]["seeds"]["3"]["test"]["hit@10"], abs=1e-4
    )
    table = (out / "results.md").read_text()
    assert "±" in table
    assert "Paired tests against FastSASRec" in table
    assert "SASRec on our encoder path" in table
    assert "contrasuite recsys evaluate ..." in table
    assert "val/ndcg@10" in (out / "history.csv").read_text().splitlines()[0]

    # recsys_merge.py: the same runs split over folders give the same summaries and tests
    merge = _merge_module()
    split = tmp_path / "split"
    for name in ("FastSASRec", "DuoRec"):
        shutil.copytree(out / name, split / name / name)
        shutil.copy(out / "config.yaml", split / name / "config.yaml")
    merged = merge.load([split / "FastSASRec", split / "DuoRec"])
    assert list(merged) == ["FastSASRec", "DuoRec"]
    merge.main([str(split / "DuoRec"), str(split / "FastSASRec"), "--against", "FastSASRec"])
    printed = capsys.readouterr().out
    heads = [line.split(" | ")[0] for line in printed.splitlines() if line.startswith("| ")]
    assert heads[:3] == ["| model", "| FastSASRec", "| DuoRec"]  # the reference heads the table
    assert "Paired tests against FastSASRec" in printed
    assert "| DuoRec | " in printed.split("Paired tests against FastSASRec")[1]
    with pytest.raises(SystemExit) as exit_info:  # a misspelt reference: exit 2, nothing printed
        merge.main([str(split / "DuoRec"), "--against", "FastSasRec"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--against: 'FastSasRec' not among the finished models" in captured.err
    for name, summary in merged.items():
        assert summary.dropout == summaries[name].dropout
        assert sorted(summary.runs) == [3, 4]
        assert summary.test == pytest.approx(summaries[name].test)
        assert summary.per_user() == pytest.approx(summaries[name].per_user())
    (split / "DuoRec" / "DuoRec" / "seed4_dropout0.5" / "metrics.json").unlink()
    assert sorted(merge.load([split / "DuoRec"])["DuoRec"].runs) == [3]  # seed 4 unfinished
    with pytest.raises(ValueError, match="two folders"):
        merge.load([split / "FastSASRec", split / "FastSASRec"])

    # a third seed added later: the finished runs are kept
    before = (out / "DuoRec" / "seed3_dropout0.1" / "metrics.json").read_text()
    evaluate_models(replace(cfg, seeds=(3, 4, 5), models=("DuoRec",)), out)
    assert (out / "DuoRec" / "seed3_dropout0.1" / "metrics.json").read_text() == before
    assert set(json.loads((out / "results.json").read_text())["DuoRec"]["seeds"]) == {"3", "4", "5"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "RUNS_DIR: expected a folder"),
        (["{tmp}/runs", "0"], "WORKERS: expected a positive integer, got '0'"),
        (["{tmp}/runs", "2", "extra"], "RUNS_DIR: expected a folder"),
        (["{tmp}/file"], "file: expected a folder"),
    ],
)
def test_run_all_refuses_bad_arguments_before_training(tmp_path, args, message):
    """`recsys_ml100k/run_all.sh` answers bad arguments with status 2 and one line."""
    script = Path(__file__).parents[2] / "benchmarks" / "results" / "recsys_ml100k" / "run_all.sh"
    (tmp_path / "file").write_text("not a folder\n")
    argv = [a.format(tmp=tmp_path) for a in args]
    result = subprocess.run(["bash", str(script), *argv], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert message in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing started
    assert (tmp_path / "file").read_text() == "not a folder\n"
