"""The multi-stage ProtoECGNet run on synthetic PTB-XL: learning, projection, reload, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from medical.ecg.arrays import TRAIN_FOLDS, load_data
from medical.ecg.arrays import make_loader as _loader
from medical.ecg.config import ECGConfig
from medical.ecg.infer import evaluate_model, load_run
from medical.ecg.synth import write_synthetic_ptbxl
from medical.ecg.tasks import SupervisedTask
from medical.ecg.train import _Run, train
from shared.config import load_config
from shared.errors import InputError
from shared.training import Trainer, TrainerConfig
from shared.training.run import RunFolder
from shared.training.task import Task

TINY = [
    "model.width=8",
    "model.layers=1,1,1,1",
    "model.ppc_rhythm=2",
    "model.ppc_morphology=3",
    "model.ppc_global=2",
    "trainer.epochs=6",
    "trainer.lr=3e-3",
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
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ecg")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTRASUITE_CACHE", str(root / "cache"))
        write_synthetic_ptbxl(root / "data", n_records=200, seed=7, progress=False)
    return root


def _cfg(synth_dir: Path, *extra: str) -> ECGConfig:
    return load_config(ECGConfig, {"data": {"data_dir": str(synth_dir / "data")}}, [*TINY, *extra])


@pytest.fixture(scope="module")
def trained(synth_dir: Path) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTRASUITE_CACHE", str(synth_dir / "cache"))
        cfg = _cfg(synth_dir)
        run = synth_dir / "run"
        metrics = train(cfg, run, progress=False)
        data = load_data(cfg.data, progress=False)
    return {"cfg": cfg, "run": run, "metrics": metrics, "data": data}


def test_small_model_beats_chance_on_the_test_fold(trained):
    m = trained["metrics"]
    assert m["n_test"] == 20
    assert m["n_labels_evaluated"] >= 10
    assert m["macro_auc"] > 0.65, m["macro_auc"]
    assert m["label_set"] == "all"
    assert set(m["per_label"]) <= set(trained["data"].label_names)
    saved = json.loads((trained["run"] / "metrics.json").read_text())
    assert saved["macro_auc"] == pytest.approx(m["macro_auc"])
    for key in ("macro_auc", "weighted_auc", "n_test", "per_label", "label_set"):
        assert key in saved


def test_run_folder_layout(trained):
    run = trained["run"]
    for name in ("config.yaml", "metrics.json", "history.csv", "log.txt", "weights.pt", "state.pt",
                 "prototypes.json", "test_predictions.csv"):  # fmt: skip
        assert (run / name).exists(), name
    for stage in ("rhythm/feature", "rhythm/joint", "morphology/joint", "global/joint", "fusion"):
        assert (run / stage / "state.pt").exists(), stage
    state = torch.load(run / "weights.pt", weights_only=True)
    assert "fusion.weight" in state
    history = (run / "history.csv").read_text().splitlines()
    assert history[0].startswith("stage,")
    assert any(line.startswith("morphology/joint,") for line in history)


def test_projection_makes_every_prototype_a_real_training_window(trained):
    run = load_run(trained["run"])
    data = trained["data"]
    model = run.model
    records = run.prototypes
    assert len(records) == sum(b.num_prototypes for b in model.branch_list())
    train_rows = data.rows(TRAIN_FOLDS)
    for name in model.branches:
        branch = model.branch(name)
        branch.eval()
        # The latent of every training window, computed as projection did (same batches).
        latents = []
        with torch.no_grad():
            for x, _, _ in _loader(data, train_rows, trained["cfg"].data.batch_size, shuffle=False):
                latents.append(branch.windows(branch.latent(x)))
        windows = torch.cat(latents)  # (N_train, W, D*T_p)
        row_pos = {int(r): i for i, r in enumerate(train_rows)}
        mine = [r for r in records if r["branch"] == name]
        assert len(mine) == branch.num_prototypes
        for rec in mine:
            j = rec["prototype"]
            proto = branch.prototype_vectors[j].detach().flatten()
            assert rec["row"] in row_pos, "projected onto an ECG outside folds 1-8"
            source = windows[row_pos[rec["row"]], rec["window"]]
            assert torch.equal(proto, source), (name, j)
            # ... and, recomputed alone, the same window up to float rounding
            x = torch.from_numpy(np.array(data.signals[rec["row"]]))[None]
            with torch.no_grad():
                alone = branch.windows(branch.latent(x))[0, rec["window"]]
            torch.testing.assert_close(alone, proto, rtol=1e-5, atol=1e-6)
            # provenance
            assert rec["ecg_id"] == int(data.ecg_ids[rec["row"]])
            assert rec["fold"] in TRAIN_FOLDS
            cls = run.label_names[run.label_index[name][rec["class_index"]]]
            assert rec["class"] == cls
            assert int(branch.prototype_classes()[j]) == rec["class_index"]
            if rec["class_positive"]:
                assert data.labels[rec["row"], data.label_names.index(cls)] == 1
            assert 0 <= rec["start_sample"] < rec["end_sample"] <= data.signals.shape[-1]
            assert rec["start_s"] == pytest.approx(rec["start_sample"] / 100)
            assert rec["end_s"] == pytest.approx(rec["end_sample"] / 100)
            assert np.isfinite(rec["similarity"])
    per_branch = json.loads(
        (trained["run"] / "morphology" / "projection" / "prototypes.json").read_text()
    )
    assert per_branch == [r for r in records if r["branch"] == "morphology"]
    # present classes have a positive source ECG
    assert any(r["class_positive"] for r in records if r["class"] == "AFIB")


def test_fusion_prunes_prototypes_of_classes_without_training_positives(trained):
    run = load_run(trained["run"])
    offsets = run.model.prototype_offsets()
    weight = run.model.fusion.weight.detach()
    absent = [
        offsets[r["branch"]] + r["prototype"] for r in run.prototypes if not r["class_positive"]
    ]
    present = [offsets[r["branch"]] + r["prototype"] for r in run.prototypes if r["class_positive"]]
    assert absent, "the synthetic set lacks most of the 71 statements"
    assert torch.count_nonzero(weight[:, absent]) == 0
    assert torch.count_nonzero(weight[:, present]) > 0


def test_loaded_checkpoint_reproduces_its_metrics(trained):
    run = load_run(trained["run"])
    metrics = evaluate_model(run.model, run.config, trained["data"])
    assert metrics["macro_auc"] == pytest.approx(trained["metrics"]["macro_auc"], abs=1e-9)
    assert metrics["per_label"] == pytest.approx(trained["metrics"]["per_label"], abs=1e-9)


def test_finished_run_is_reported_not_retrained(trained, synth_dir, monkeypatch):
    monkeypatch.setenv("CONTRASUITE_CACHE", str(synth_dir / "cache"))
    before = (trained["run"] / "weights.pt").stat().st_mtime_ns
    again = train(trained["cfg"], trained["run"], progress=False)
    assert again["macro_auc"] == pytest.approx(trained["metrics"]["macro_auc"])
    assert (trained["run"] / "weights.pt").stat().st_mtime_ns == before


def test_other_config_in_the_same_folder_is_refused(trained, synth_dir):
    with pytest.raises(InputError, match=r"another config: model.ppc_rhythm \(2 -> 3\)"):
        train(_cfg(synth_dir, "model.ppc_rhythm=3"), trained["run"], progress=False)


# Small enough to train 11 times: two branches of both kinds (1D, 2D partial), the optional
# classifier stage, and a fusion stage of two epochs to kill inside.
RESUME = ["model.width=4", "trainer.epochs=1", "model.branches=rhythm,morphology",
          "stages.classifier_epochs=1", "stages.fusion_epochs=2"]  # fmt: skip


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "weights.pt", weights_only=True)


def test_killed_at_every_stage_boundary_resumes_to_the_same_result(
    synth_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("CONTRASUITE_CACHE", str(synth_dir / "cache"))
    cfg = _cfg(synth_dir, *RESUME)
    boundary = _Run.boundary
    seen: list[str] = []
    monkeypatch.setattr(_Run, "boundary", lambda self, stage: seen.append(stage))
    reference = train(cfg, tmp_path / "reference", progress=False)
    expected = _weights(tmp_path / "reference")
    assert seen == [
        "rhythm/feature", "rhythm/joint", "rhythm/projection", "rhythm/classifier",
        "morphology/feature", "morphology/joint", "morphology/projection",
        "morphology/classifier", "fusion", "weights", "metrics",
    ]  # fmt: skip
    assert not torch.equal(expected["fusion_std"], torch.ones_like(expected["fusion_std"]))
    # One run, killed at every boundary in turn (and once inside the fusion stage's second
    # epoch), each time started again: every resume reloads all the stages before the kill.
    run_epoch = Trainer._run_epoch
    fusion_epochs = {"n": 0}

    def killed_in_the_fusion_stage(self, *args, **kwargs):
        fusion_epochs["n"] += self.run_dir.name == "fusion"
        if fusion_epochs["n"] == 2:
            raise KeyboardInterrupt
        return run_epoch(self, *args, **kwargs)

    run = tmp_path / "killed"
    kills = [*seen[: seen.index("fusion")], "inside fusion", *seen[seen.index("fusion") :]]
    for kill in kills:

        def killed(self, stage, kill=kill):
            if stage == kill:
                raise KeyboardInterrupt

        monkeypatch.setattr(_Run, "boundary", killed)
        if kill == "inside fusion":
            monkeypatch.setattr(Trainer, "_run_epoch", killed_in_the_fusion_stage)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, run, progress=False)
        assert not RunFolder.open_existing(run, domain="ecg").is_finished("run"), kill
        if kill == "inside fusion":
            state = torch.load(run / "fusion" / "state.pt", weights_only=True)
            assert (state["epoch"], state["finished"]) == (1, False)
        monkeypatch.setattr(Trainer, "_run_epoch", run_epoch)
    monkeypatch.setattr(_Run, "boundary", boundary)
    metrics = train(cfg, run, progress=False)
    assert metrics["per_label"] == pytest.approx(reference["per_label"], abs=1e-9)
    got = _weights(run)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


def test_fusion_statistics_missing_or_from_another_run_are_refused(
    trained, synth_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("CONTRASUITE_CACHE", str(synth_dir / "cache"))
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    weights = _weights(run)
    weights["fusion_mean"] = weights["fusion_mean"] + 0.01  # another run's statistics
    torch.save(weights, run / "weights.pt")
    with pytest.raises(InputError, match="another run"):
        load_run(run)
    stage = torch.load(run / "fusion" / "weights.pt", weights_only=True)
    del stage["input_mean"]
    torch.save(stage, run / "fusion" / "weights.pt")
    with pytest.raises(InputError, match="missing"):
        load_run(run)
    (run / "fusion" / "weights.pt").unlink()
    with pytest.raises(InputError, match="missing"):
        load_run(run)


def test_load_run_refuses_other_domains_and_unfinished_runs(tmp_path):
    class Mean(Task):
        def __init__(self):
            super().__init__()
            self.mu = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch):
            return {"loss": (batch[0] - self.mu).pow(2).mean()}

    data = torch.utils.data.TensorDataset(torch.ones(4))
    Trainer(TrainerConfig(epochs=1, progress=False), tmp_path / "other").fit(
        Mean(), torch.utils.data.DataLoader(data, batch_size=2)
    )
    with pytest.raises(InputError, match="holds a trainer fit run, expected an ecg train run"):
        load_run(tmp_path / "other")
    with pytest.raises(InputError, match="does not exist"):
        load_run(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="it is a file"):
        load_run(tmp_path / "file")
    with pytest.raises(InputError, match="not an ecg train run"):
        train(ECGConfig(), tmp_path / "other")


@pytest.mark.parametrize(
    "options",
    [
        # every official behaviour at once, the paper preset (methods.md 1.9: mean pooling,
        # weighted validation sampling, frozen parts in train mode, raw fusion input,
        # label-instance pos_weight)
        ["preset=paper"],
        # the other options, with the optional stages
        ["model.similarity_scale=cosine", "loss.cooccurrence_form=info_nce",
         "stages.prototype_epochs=1", "stages.classifier_epochs=1", "model.branches=rhythm,global"],
    ],
)  # fmt: skip
def test_options_run_end_to_end(synth_dir, tmp_path, monkeypatch, options):
    monkeypatch.setenv("CONTRASUITE_CACHE", str(synth_dir / "cache"))
    cfg = _cfg(synth_dir, *options, "trainer.epochs=1", "stages.feature_epochs=0")
    if "preset=paper" in options:
        official = ("mean", "official", False, "raw", "label_instances")
        assert (cfg.model.pooling, cfg.data.val_sampling, cfg.stages.frozen_eval,
                cfg.stages.fusion_input, cfg.loss.pos_weight) == official  # fmt: skip
    metrics = train(cfg, tmp_path / "run", progress=False)
    assert np.isfinite(metrics["macro_auc"])
    assert (
        metrics["ci95"]["macro_auc"][0] <= metrics["macro_auc"] <= metrics["ci95"]["macro_auc"][1]
    )
    run = load_run(tmp_path / "run")
    assert run.config == cfg


def test_superdiagnostic_with_shared_branch_labels_and_the_baseline(
    synth_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("CONTRASUITE_CACHE", str(synth_dir / "cache"))
    cfg = _cfg(
        synth_dir, "data.label_set=superdiagnostic", "trainer.epochs=1", "model.branches=rhythm"
    )
    metrics = train(cfg, tmp_path / "proto", progress=False)
    assert metrics["n_labels"] == 5
    base = _cfg(
        synth_dir,
        "data.label_set=superdiagnostic",
        "trainer.epochs=2",
        "model.architecture=resnet1d",
    )
    metrics = train(base, tmp_path / "base", progress=False)
    assert metrics["architecture"] == "resnet1d"
    assert np.isfinite(metrics["macro_auc"])
    with pytest.raises(InputError, match="grouped"):
        train(_cfg(synth_dir, "data.label_set=superdiagnostic", "model.branch_labels=grouped"),
              tmp_path / "bad", progress=False)  # fmt: skip


def test_auroc_ranks_logits_not_saturated_probabilities():
    # The official +1/-0.5 branch classifier over scaled similarities gives logits near -200:
    # a float32 sigmoid rounds them all to 0 and the AUROC would collapse to 0.5.
    class Shifted(torch.nn.Module):
        def forward(self, x):
            return -200.0 + x[:, :2, 0]

    task = SupervisedTask(Shifted(), torch.arange(2), None)
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    x = torch.zeros(4, 12, 8)
    x[:, :2, 0] = y * 0.5  # positives score higher
    out = task.validation_step((x, y, torch.arange(4)))
    assert torch.sigmoid(out["scores"]).unique().numel() == 1  # what a float32 sigmoid would see
    assert task.validation_epoch_end([out])["macro_auc"] == 1.0


def test_resume_on_changed_data_is_refused_before_anything_is_written(
    synth_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("CONTRASUITE_CACHE", str(synth_dir / "cache"))
    data_dir = tmp_path / "data"
    shutil.copytree(synth_dir / "data", data_dir)
    cfg = _cfg(synth_dir, *RESUME, "model.branches=rhythm", f"data.data_dir={data_dir}")

    def killed(self, stage):
        if stage == "rhythm/feature":
            raise KeyboardInterrupt

    monkeypatch.setattr(_Run, "boundary", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", progress=False)
    monkeypatch.undo()
    monkeypatch.setenv("CONTRASUITE_CACHE", str(synth_dir / "cache"))
    csv = data_dir / "ptbxl_database.csv"
    csv.write_text(csv.read_text().replace("'SR': 0.0", "'SR': 100.0", 1))  # one record changed
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")}
    with pytest.raises(InputError, match="other input data"):
        train(cfg, tmp_path / "run", progress=False)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")} == before


def test_weights_of_another_run_are_refused(trained, synth_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CONTRASUITE_CACHE", str(synth_dir / "cache"))
    run = tmp_path / "copy"
    shutil.copytree(trained["run"], run)
    marker = json.loads((run / ".contrasuite.json").read_text())
    marker["run_id"] = "0" * 32  # another run of the same shapes
    (run / ".contrasuite.json").write_text(json.dumps(marker))
    with pytest.raises(InputError, match=r"written by another run"):
        load_run(run)
