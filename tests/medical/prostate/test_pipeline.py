"""End to end on tiny phantoms: train (both stages), evaluate, reload, predict, demo smoke."""

import json

import numpy as np
import pytest
import torch

from medical.prostate.config import ProstateConfig
from medical.prostate.evaluate import evaluate, load_net
from medical.prostate.model import DualPathNet, ZoneUNet
from medical.prostate.phantom import write_phantom_dataset
from medical.prostate.train import config_of_run
from pipelines.cli import main
from shared.config import apply_overrides
from shared.training.run import RunFolder

TINY = [
    "data.roi=16,16,4",
    "data.spacing=4,4,6",
    "model.base_filters=4",
    "data.val_fraction=0.2",
    "data.test_fraction=0.3",
    "trainer.progress=false",
    "trainer.threads=1",
    "trainer.lr=3e-3",
    "data.augment=false",
]


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    root = tmp_path_factory.mktemp("prostate") / "data"
    write_phantom_dataset(
        root, 7, seed=5, n_unlabelled=1, shape=(32, 32, 8), spacing=(2.0, 2.0, 6.0)
    )
    return root


def test_models_every_parameter_gets_a_gradient():
    for net in (ZoneUNet(2), DualPathNet(2, owner=(0, 0, 0, 1, 1))):
        out = net(torch.randn(2, 1, 16, 16, 4))
        sum(v.float().pow(2).mean() for v in out.values()).backward()
        for name, p in net.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
        probs = net.predict_proba(torch.randn(1, 1, 16, 16, 4))
        assert torch.allclose(probs.sum(1), torch.ones(1, 16, 16, 4), atol=1e-5)


def test_dual_path_trains_beats_chance_and_reloads(phantoms, tmp_path, capsys):
    out = tmp_path / "dual"
    status = main(
        [
            "prostate",
            "train",
            "--out",
            str(out),
            "--data-dir",
            str(phantoms),
            "--epochs",
            "14",
            "--seed",
            "3",
            "stage2.epochs=2",
            *TINY,
        ]
    )
    assert status == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "dual-path"
    assert metrics["n_cases"] == 2
    assert set(metrics["per_zone"]) == {"PZ", "TZ", "DPU", "AFS"}
    assert set(metrics["stages"]) == {"stage1", "stage2"}
    for zone in metrics["per_zone"].values():
        assert {"dice", "hd95_mm", "masd_mm", "masd_vox", "n_cases", "n_missing"} <= set(zone)
    # chance: an untrained net of the same seed
    run = RunFolder.open_existing(out, domain="prostate")
    cfg = config_of_run(run)
    history = (out / "history.csv").read_text().splitlines()
    assert history[0].startswith("stage,epoch")
    assert len(history) == 1 + 14 + 2
    # chance: a random labelling with the class frequencies scores Dice = the zone's share of
    # the volume (PZ and TZ: under 0.1 here); the untrained net of the same seed scores ~0.
    trained = (metrics["per_zone"]["PZ"]["dice"] + metrics["per_zone"]["TZ"]["dice"]) / 2
    assert trained > 0.25, metrics["per_zone"]
    # a loaded checkpoint reproduces the metrics
    again = evaluate(out, phantoms)
    assert again["per_zone"] == metrics["per_zone"]
    # scoring other data replaces RUN/metrics.json but keeps the held-out scores
    other = write_phantom_dataset(
        tmp_path / "other", 2, seed=9, n_unlabelled=0, shape=(32, 32, 8), spacing=(2.0, 2.0, 6.0)
    )
    elsewhere = evaluate(out, other)
    assert not elsewhere["held_out"]
    assert json.loads((out / "metrics.json").read_text())["n_cases"] == 2 == elsewhere["n_cases"]
    kept = json.loads((out / "evaluations" / "held-out" / "metrics.json").read_text())
    assert kept["per_zone"] == metrics["per_zone"]
    assert kept["held_out"]
    assert len(list((out / "evaluations").iterdir())) == 2
    net = load_net(run, cfg)
    assert isinstance(net, DualPathNet)
    # the same command again resumes a finished run: same weights, same metrics
    before = torch.load(out / "weights.pt", weights_only=True)
    assert (
        main(
            [
                "prostate",
                "train",
                "--out",
                str(out),
                "--data-dir",
                str(phantoms),
                "--epochs",
                "14",
                "--seed",
                "3",
                "stage2.epochs=2",
                *TINY,
            ]
        )
        == 0
    )
    after = torch.load(out / "weights.pt", weights_only=True)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert json.loads((out / "metrics.json").read_text())["per_zone"] == metrics["per_zone"]
    # predict: NIfTI on the source grid + HTML report with the metrics table
    pred_dir = tmp_path / "pred"
    case = metrics["cases"][0]
    assert (
        main(
            [
                "prostate",
                "predict",
                "--run",
                str(out),
                "--input",
                str(phantoms / "imagesTr" / f"{case}.nii.gz"),
                "--out",
                str(pred_dir),
            ]
        )
        == 0
    )
    html = (pred_dir / f"{case}.html").read_text()
    assert "data:image/png;base64," in html
    assert "apex" in html
    assert "MASD (mm)" in html
    import nibabel as nib

    src = nib.load(str(phantoms / "imagesTr" / f"{case}.nii.gz"))
    lab = nib.load(str(pred_dir / f"{case}_zones.nii.gz"))
    assert lab.shape == src.shape
    assert np.allclose(lab.affine, src.affine)
    # evaluate with a changed config key refuses (resume safety) -> exit 2, nothing lost
    assert (
        main(
            [
                "prostate",
                "train",
                "--out",
                str(out),
                "--data-dir",
                str(phantoms),
                "--epochs",
                "15",
                *TINY,
            ]
        )
        == 2
    )
    assert (out / "weights.pt").is_file()


def test_training_log_gives_each_stage_and_its_dice(phantoms, tmp_path, capsys):
    import re

    out = tmp_path / "run"
    argv = ["prostate", "train", "--out", str(out), "--data-dir", str(phantoms), "--epochs", "1"]
    assert main([*argv, "stage2.epochs=1", "trainer.max_train_batches=1", *TINY]) == 0
    err = capsys.readouterr().err.splitlines()
    line = next(x for x in err if x.startswith("training finished: "))
    assert re.fullmatch(r"training finished: stage1 dice [\d.e-]+, stage2 dice [\d.e-]+", line)


def test_demo_smoke(tmp_path):
    from medical.prostate.commands import demo_step
    from shared.domain import DemoContext

    result = demo_step(
        DemoContext(
            out_dir=tmp_path / "prostate",
            quick=True,
            seed=1,
            device="cpu",
            progress=False,
            smoke=True,
        )
    )
    assert "baseline/dice/PZ" in result.metrics
    assert (tmp_path / "prostate" / result.links["case report"]).is_file()
    metrics = json.loads((tmp_path / "prostate" / result.links["metrics"]).read_text())
    assert set(metrics["relative_masd_change_pct"]) == {"stage1", "stage2"}


def test_config_rejects_bad_roi():
    with pytest.raises(ValueError, match=r"data\.roi"):
        apply_overrides(ProstateConfig(), ["data.roi=20,16,4"])


def test_killed_run_resumes_to_the_same_weights(phantoms, tmp_path, monkeypatch):
    from shared.training import trainer as trainer_module

    args = [
        "--data-dir",
        str(phantoms),
        "--epochs",
        "2",
        "--seed",
        "4",
        "stage2.epochs=2",
        *TINY,
        "trainer.weights=last",
        "model.base_filters=2",
        "data.test_fraction=0.15",
    ]
    assert main(["prostate", "train", "--out", str(tmp_path / "whole"), *args]) == 0
    original = trainer_module.Trainer._run_epoch
    calls = {"n": 0}

    def dying(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:  # stage 1 done (2 epochs), killed after stage 2's first epoch
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(trainer_module.Trainer, "_run_epoch", dying)
    assert main(["prostate", "train", "--out", str(tmp_path / "killed"), *args]) == 130
    monkeypatch.setattr(trainer_module.Trainer, "_run_epoch", original)
    assert main(["prostate", "train", "--out", str(tmp_path / "killed"), *args]) == 0
    a = torch.load(tmp_path / "whole" / "weights.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "weights.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------- evaluate's common options


@pytest.fixture(scope="module")
def tiny_run(phantoms, tmp_path_factory):
    """A baseline run of one epoch of one batch: enough to evaluate."""
    out = tmp_path_factory.mktemp("prostate-eval") / "base"
    argv = ["prostate", "train", "--out", str(out), "--data-dir", str(phantoms), "--epochs", "1"]
    assert main([*argv, "--model", "baseline", "trainer.max_train_batches=1", *TINY]) == 0
    return out


def _snapshot(folder):
    """Every file of a folder with its mtime and bytes (to prove that nothing was written)."""
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_evaluate_out_writes_there_and_only_reads_the_run(tiny_run, phantoms, tmp_path, capsys):
    import yaml

    before = _snapshot(tiny_run)
    argv = ["prostate", "evaluate", "--run", str(tiny_run), "--data-dir", str(phantoms)]
    out = tmp_path / "eval"
    assert main([*argv, "--device", "cpu", "--out", str(out)]) == 0
    assert f"wrote {out / 'metrics.json'}" in capsys.readouterr().out
    assert _snapshot(tiny_run) == before
    names = sorted(p.name for p in out.iterdir())
    assert names == ["config.yaml", "log.txt", "metrics.json", "results.md"]
    settings = yaml.safe_load((out / "config.yaml").read_text())
    assert settings == {"data_dir": str(phantoms), "baseline": None, "seed": 2020, "device": "cpu"}
    scores = json.loads((out / "metrics.json").read_text())
    assert scores["run"] == str(tiny_run)
    assert scores["held_out"]
    # nothing random: another seed gives the same scores (and is recorded)
    assert main([*argv, "--out", str(tmp_path / "seed7"), "--seed", "7"]) == 0
    seven = json.loads((tmp_path / "seed7" / "metrics.json").read_text())
    assert seven["per_case"] == scores["per_case"]
    assert yaml.safe_load((tmp_path / "seed7" / "config.yaml").read_text())["seed"] == 7
    assert _snapshot(tiny_run) == before
    # without the new options: the run folder, as before, with the same scores
    assert main(argv) == 0
    assert json.loads((tiny_run / "metrics.json").read_text())["per_case"] == scores["per_case"]
    assert (tiny_run / "evaluations" / "held-out" / "metrics.json").is_file()
    assert not (tiny_run / "config.yaml").read_text().startswith("data_dir")  # the run's own


def test_evaluate_refuses_epochs_and_unknown_keys_and_prints_its_config(tmp_path, capsys):
    import yaml

    # nothing is read before these checks: the run and data need not exist
    argv = ["prostate", "evaluate", "--run", str(tmp_path / "r"), "--data-dir", str(tmp_path)]
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out), "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "--epochs 2" in err
    assert "trains nothing" in err
    assert "`contrasuite prostate train`" in err
    assert main([*argv, "basline=runs/b"]) == 2
    assert "did you mean `baseline`" in capsys.readouterr().err
    assert main([*argv, "--out", str(out), "--seed", "9", "device=cpu", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == {"data_dir": str(tmp_path), "baseline": None, "seed": 9, "device": "cpu"}
    assert not out.exists()
