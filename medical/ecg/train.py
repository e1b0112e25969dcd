"""ProtoECGNet training: the whole multi-stage run, each stage a Task on the shared Trainer.

Stages (methods.md 1.6), each its own resumable :class:`~shared.training.Trainer` run in a
sub-folder of the run (``RUN/<branch>/<stage>/``):

1. ``feature``: the backbone with a linear head, BCE (feature-extractor pretraining).
2. ``joint``: backbone + add-on + prototypes with the whole prototype loss; the branch
   classifier stays frozen at its +1 / -0.5 initialisation.
3. ``prototypes`` (optional, 0 epochs by default): only the prototype vectors.
4. ``projection``: every prototype becomes the latent of a real training window
   (:mod:`medical.ecg.projection`); provenance in ``RUN/<branch>/projection/prototypes.json``
   and, for all branches, ``RUN/prototypes.json``.
5. ``classifier`` (optional, 0 epochs by default): only the branch classifier, BCE + L1 on the
   wrong-class connections.
6. ``fusion``: only the fusion ``Linear`` over all branches' similarities, BCE + L1.

Frozen parts are kept in eval mode (BN statistics fixed, dropout off) whatever the Trainer's
``task.train()`` does (``stages.frozen_eval``; the official code lets Lightning put them back in
train mode, methods.md 1.9 item 5). With frozen branches in eval mode their similarities are
fixed, so the classifier and fusion stages train on similarities computed once.

Validation uses the whole fold 9 and whole-fold macro AUROC (``data.val_sampling="full"``); the
official loader draws fold 9 with a ``WeightedRandomSampler`` with replacement that never draws
ECGs without a label of the branch (``"official"``, methods.md 1.9 item 3).

The run folder is a :class:`~shared.training.run.RunFolder` (its marker records the config, the
data's fingerprint and each finished stage): ``config.yaml``, ``metrics.json`` (test fold 10:
``macro_auc``, ``weighted_auc``, ``n_test``, ``per_label``, ``label_set``, per-branch numbers),
``history.csv`` (every stage's epochs, with a ``stage`` column), ``log.txt``, ``weights.pt``
(the whole model's state_dict, stamped with the run id), ``state.pt`` (the stages run and what
inference needs to rebuild the model; each stage folder holds its own optimizer state),
``prototypes.json``, ``similarity_stats.pt`` and ``test_predictions.csv``. Started again with
the same command, a run resumes in the stage it was in, from its last complete epoch; on other
data (another fingerprint) it is refused. Everything a stage needs at inference is in that
stage's saved state (the fusion layer's input statistics and pruning mask too), so a run killed
at any stage boundary ends with the same weights as an uninterrupted one.

Several processes (``torchrun``, DDP): the same command under ``torchrun`` trains every stage
with :class:`~torch.nn.parallel.DistributedDataParallel`, one process per GPU (or CPU process
with gloo)::

    torchrun --nproc_per_node 4 -m pipelines ecg train --data-dir DIR --out RUN
    # two machines: the same line on each, with --node_rank 0 and --node_rank 1
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --nproc_per_node 8 -m pipelines ecg ...

``data.batch_size`` is per process (the global batch is ``nproc x data.batch_size``); every
training loader gets a :class:`~torch.utils.data.DistributedSampler` (shuffled, seeded by
``trainer.seed``), and every rank validates the whole fold 9 (rank 0's metrics are used). Rank 0
alone checks and writes the run folder (its marker, stage weights, ``metrics.json``, the test
evaluation); the others share its run id and wait at each stage's end, so the run folder is the
same as a single process's. After every epoch every rank takes rank 0's BatchNorm statistics,
and at the end the ranks check that they hold identical weights. On several machines ``--out``
and the data folder must be on a file system all of them see. The results are not those of one
process with the global batch: BatchNorm normalizes each rank's batch on its own (no
SyncBatchNorm) and the shuffled order differs; the run is reproducible for a given number of
processes.

Where this differs from the official code, and the option that restores it: the table in
:mod:`medical.ecg.config`.

Further choices: the fusion layer reads similarities standardized with training-set
statistics (``stages.fusion_input=standardized``; ``raw`` is the official input, see
:class:`~medical.ecg.model.ProtoECGNet`); a class without a training positive has its
prototypes projected onto the best window of any training ECG (:mod:`medical.ecg.projection`),
and their fusion weights are held at 0 (``stages.prune_absent``; a no-op on the full PTB-XL).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import (
    DataLoader,
    TensorDataset,
    WeightedRandomSampler,
)

from medical.ecg.arrays import (
    TEST_FOLDS,
    TRAIN_FOLDS,
    VAL_FOLDS,
    ECGArrays,
    branch_label_index,
    load_data,
    make_loader,
    val_loader,
)
from medical.ecg.config import ECGConfig
from medical.ecg.infer import (
    DOMAIN,
    FINISHED,
    SIMILARITY_STATS,
    build_model,
    evaluate_model,
)
from medical.ecg.losses import class_counts_pos_weight, jaccard_matrix
from medical.ecg.model import ProtoECGNet, PrototypeBranch, ResNet1DClassifier, set_frozen
from medical.ecg.projection import project_prototypes
from medical.ecg.tasks import (
    BranchSimilarities,
    FeatureTask,
    FusionSimilarities,
    JointTask,
    LinearStageTask,
    StageTask,
    SupervisedTask,
    fusion_statistics,
)
from shared.config import to_dict
from shared.distributed import (
    check_ranks_agree,
    init_from_env,
    is_main_process,
    on_rank0,
    shuffled_loader,
    world_size,
)
from shared.errors import InputError
from shared.io import atomic_torch_save, jsonable, read_json, write_csv, write_json
from shared.runtime import resolve_device, torch_threads
from shared.training.checkpoint import FORMAT_VERSION
from shared.training.run import RunFolder
from shared.training.trainer import Trainer, TrainerConfig, seed_everything

__all__ = ["SAFE_KEYS", "train"]

logger = logging.getLogger(__name__)

_STATE_VERSION = 2
#: Settings that may change when a run is resumed (besides the trainer's progress, log and
#: device settings): where the data are cached, and where the data folder is (its content is
#: checked by fingerprint).
SAFE_KEYS = frozenset({"data.cache", "data.cache_dir", "data.data_dir"})
#: Loggers copied into a run folder's ``log.txt``.
_LOGGERS = ("medical.ecg", "shared.training", "shared.distributed")
_T = TypeVar("_T")


class _Run:
    """One ``ecg train`` run: the stages in order, each resumable."""

    def __init__(self, cfg: ECGConfig, folder: RunFolder, data: ECGArrays, progress: bool) -> None:
        self.cfg, self.folder, self.data, self.progress = cfg, folder, data, progress
        self.out = folder.path
        self.train_rows = data.rows(TRAIN_FOLDS)
        self.val_rows = data.rows(VAL_FOLDS)
        self.test_rows = data.rows(TEST_FOLDS)
        for name, rows, folds in (
            ("training", self.train_rows, "1-8"),
            ("validation", self.val_rows, "9"),
            ("test", self.test_rows, "10"),
        ):
            if len(rows) == 0:
                raise InputError(
                    f"Expected the {name} folds (strat_fold {folds}) of {cfg.data.data_dir} "
                    "to hold ECGs, but they are empty."
                )
        self.history: list[dict[str, Any]] = []
        self.stage_metrics: dict[str, dict[str, float]] = {}
        self.config_dict = to_dict(cfg)
        for key in ("cache", "cache_dir", "data_dir"):  # the run checks the data's fingerprint
            self.config_dict["data"].pop(key)
        self.train_labels = torch.as_tensor(np.asarray(data.labels[self.train_rows]))
        self.fusion_train_similarities: Tensor | None = None

    # -------------------------------------------------------------- helpers

    def trainer_config(self, epochs: int, lr: float | None = None) -> TrainerConfig:
        """The trainer settings of one stage."""
        t = self.cfg.trainer
        changes: dict[str, Any] = {"epochs": epochs, "progress": t.progress and self.progress}
        if lr is not None:
            changes["lr"] = lr
        return dataclasses.replace(t, **changes)

    def epochs(self, value: int | None) -> int:
        """A stage's epochs (``None``: ``trainer.epochs``)."""
        return self.cfg.trainer.epochs if value is None else value

    def fit(
        self,
        stage: str,
        make_task: Callable[[], StageTask],
        epochs: int,
        train_loader: Any,
        val_loader: Any,
        lr: float | None = None,
    ) -> StageTask:
        """Run (or resume, or reload) one Trainer stage in ``RUN/<stage>``.

        Args:
            stage: The stage's name and sub-folder.
            make_task: Builds the task, after every RNG is reseeded for this stage.
            epochs: Epochs of the stage.
            train_loader: Its training batches (empty when the stage has finished).
            val_loader: Its validation batches.
            lr: Learning rate (``None``: ``trainer.lr``).

        Returns:
            The task, holding the weights the stage selected.
        """
        self.seed(stage)
        task = make_task()
        run_dir = self.out / stage
        trainer = Trainer(
            self.trainer_config(epochs, lr),
            run_dir,
            config_dict={**self.config_dict, "stage": stage},
        )
        start = time.perf_counter()
        metrics = trainer.fit(task, train_loader, val_loader)
        seconds = time.perf_counter() - start
        for row in trainer.history:
            self.history.append({"stage": stage, **row})
        n_train = len(self.train_rows)
        trained = sum(float(r.get("seconds", 0.0)) for r in trainer.history)
        epochs_run = len(trainer.history)
        metrics = {
            **metrics,
            "samples_per_s": n_train * epochs_run / trained if trained > 0 else float("nan"),
        }
        self.stage_metrics[stage] = metrics
        self.folder.mark_finished(stage)
        logger.info(
            "stage %s: best val macro AUROC %.4f (epoch %s of %s), %.1f s",
            stage,
            metrics.get("macro_auc", float("nan")),
            metrics.get("best_epoch"),
            metrics.get("epochs"),
            seconds,
        )
        self.boundary(stage)
        return task

    def loaders(self, label_index: Tensor | None) -> tuple[DataLoader[Any], DataLoader[Any]]:
        """Training batches and validation batches of ECGs."""
        bs = self.cfg.data.batch_size
        if world_size() > 1:
            train_loader = shuffled_loader(
                make_loader(self.data, self.train_rows, bs, shuffle=False).dataset,
                bs,
                seed=self.cfg.trainer.seed,
            )
        else:
            train_loader = make_loader(self.data, self.train_rows, bs, shuffle=True)
        return (
            train_loader,
            val_loader(self.data, self.val_rows, self.cfg.data, label_index),
        )

    def pos_weight(self, label_index: Tensor) -> Tensor | None:
        """BCE ``pos_weight`` of the given classes from the training labels."""
        return class_counts_pos_weight(self.train_labels[:, label_index], self.cfg.loss.pos_weight)

    @torch.no_grad()
    def precompute(self, module: nn.Module, rows: np.ndarray) -> TensorDataset:
        """``(module(x), labels, rows)`` of ``rows``, computed once in eval mode."""
        module.eval()
        device = resolve_device(self.cfg.trainer.device)
        module.to(device)
        sims, labels, index = [], [], []
        for x, y, r in make_loader(
            self.data, rows, max(self.cfg.data.batch_size, 64), shuffle=False
        ):
            sims.append(module(x.to(device)).float().cpu())
            labels.append(y)
            index.append(r)
        return TensorDataset(torch.cat(sims), torch.cat(labels), torch.cat(index))

    def finished(self, stage: str) -> bool:
        """Whether ``stage`` is marked finished in the run folder."""
        return self.folder.is_finished(stage)

    def linear_loaders(
        self, module: nn.Module, label_index: Tensor, train_ds: TensorDataset | None = None
    ) -> tuple[Any, Any]:
        """Loaders of a linear stage: precomputed similarities with ``frozen_eval``, else ECGs.

        Args:
            module: Maps ECGs to the similarities the layer reads.
            label_index: The layer's classes (for the official validation sampler).
            train_ds: The training similarities when already computed.
        """
        if not self.cfg.stages.frozen_eval:
            return self.loaders(label_index)
        bs = self.cfg.data.batch_size
        if train_ds is None:
            train_ds = self.precompute(module, self.train_rows)
        val_ds = self.precompute(module, self.val_rows)
        if self.cfg.data.val_sampling == "official":
            y = val_ds.tensors[1][:, label_index]
            w = class_counts_pos_weight(y, "label_instances")
            assert w is not None
            weights = (y * w).sum(dim=1).double()
            if bool((weights > 0).any()):
                sampler = WeightedRandomSampler(
                    weights.tolist(), num_samples=len(val_ds), replacement=True
                )
                return (
                    shuffled_loader(train_ds, bs, seed=self.cfg.trainer.seed),
                    DataLoader(val_ds, batch_size=bs, sampler=sampler),
                )
        train = shuffled_loader(train_ds, bs, seed=self.cfg.trainer.seed)
        return train, DataLoader(val_ds, batch_size=bs)

    def seed(self, stage: str) -> None:
        """Reseed every RNG from ``(trainer.seed, stage)`` before a stage builds its task.

        A new task's layers (the feature stage's head) are initialised from the global RNG;
        seeding per stage makes them independent of which earlier stages ran in this process,
        so a resumed run builds the same tasks as an uninterrupted one.
        """
        seed_everything(
            int(
                np.random.SeedSequence([self.cfg.trainer.seed, *stage.encode()]).generate_state(1)[
                    0
                ]
            )
        )

    def boundary(self, stage: str) -> None:
        """Called after each stage is complete and saved (the points a kill may fall between)."""
        logger.debug("stage %s complete", stage)

    # -------------------------------------------------------------- stages

    def run_branch(
        self, name: str, branch: PrototypeBranch, label_index: Tensor
    ) -> list[dict[str, Any]]:
        """The stages of one branch, up to its classifier; returns its provenance records."""
        cfg = self.cfg
        st = cfg.stages
        pos_weight = self.pos_weight(label_index)
        train_loader, val_loader = self.loaders(label_index)
        if self.epochs(st.feature_epochs) > 0:
            self.fit(
                f"{name}/feature",
                lambda: FeatureTask(branch, label_index, pos_weight, st.frozen_eval),
                self.epochs(st.feature_epochs),
                train_loader,
                val_loader,
            )
        cooc = jaccard_matrix(self.train_labels[:, label_index])
        if self.epochs(st.joint_epochs) > 0:
            self.fit(
                f"{name}/joint",
                lambda: JointTask(
                    branch, label_index, pos_weight, cooc, cfg.loss, frozen_eval=st.frozen_eval
                ),
                self.epochs(st.joint_epochs),
                train_loader,
                val_loader,
            )
        if st.prototype_epochs > 0:
            self.fit(
                f"{name}/prototypes",
                lambda: JointTask(
                    branch,
                    label_index,
                    pos_weight,
                    cooc,
                    cfg.loss,
                    prototypes_only=True,
                    frozen_eval=st.frozen_eval,
                ),
                st.prototype_epochs,
                train_loader,
                val_loader,
            )
        records: list[dict[str, Any]] = []
        if st.project:
            records = self.project(name, branch, label_index)
            self.boundary(f"{name}/projection")
        if st.classifier_epochs > 0:
            sims = BranchSimilarities(branch)
            branch.prototype_vectors.requires_grad_(False)
            stage = f"{name}/classifier"
            # A finished stage is only reloaded by the Trainer: no similarities needed.
            tl, vl = ([], []) if self.finished(stage) else self.linear_loaders(sims, label_index)
            self.fit(
                stage,
                lambda: LinearStageTask(
                    branch.classifier,
                    nn.Identity() if st.frozen_eval else sims,  # precomputed similarities
                    [branch.backbone, branch.add_on],
                    label_index,
                    pos_weight,
                    cfg.loss.l1,
                    1 - branch.prototype_class_identity.T,
                    st.frozen_eval,
                ),
                st.classifier_epochs,
                tl,
                vl,
                st.fusion_lr,
            )
        return records

    def project(
        self, name: str, branch: PrototypeBranch, label_index: Tensor
    ) -> list[dict[str, Any]]:
        """Project the branch's prototypes onto training windows (or reload the projection)."""
        stage = f"{name}/projection"
        folder = self.out / stage
        weights_name, prov_path = f"{stage}/weights.pt", folder / "prototypes.json"
        if self.finished(stage):
            self.folder.load_weights(branch, weights_name)
            records: list[dict[str, Any]] = read_json(prov_path)
            logger.info("stage %s/projection: done earlier; reloaded.", name)
            return records
        device = resolve_device(self.cfg.trainer.device)
        branch.to(device)
        start = time.perf_counter()
        loader = make_loader(self.data, self.train_rows, self.cfg.data.batch_size, shuffle=False)
        class_names = [self.data.label_names[int(i)] for i in label_index]
        records = project_prototypes(
            branch,
            loader,
            label_index=label_index,
            class_names=class_names,
            ecg_ids=self.data.ecg_ids,
            folds=self.data.folds,
            sampling_rate=self.data.sampling_rate,
            branch_name=name,
            device=device,
        )
        if is_main_process():
            folder.mkdir(parents=True, exist_ok=True)
            write_json(prov_path, records)
        self.folder.save_weights(
            {k: v.detach().cpu() for k, v in branch.state_dict().items()}, weights_name
        )
        self.folder.mark_finished(stage)
        logger.info(
            "stage %s/projection: %d prototypes in %.1f s.",
            name,
            len(records),
            time.perf_counter() - start,
        )
        return records

    def run_fusion(
        self, model: ProtoECGNet, label_index: Tensor, provenance: Sequence[Mapping[str, Any]]
    ) -> None:
        """The fusion stage; afterwards ``model`` holds its layer and input statistics.

        The standardization statistics are computed from the training similarities when the
        stage starts and kept in the stage's task state (its ``state.pt`` and ``weights.pt``);
        a resumed run, even one whose fusion stage had finished, takes them back from there.
        """
        st = self.cfg.stages
        if self.epochs(st.fusion_epochs) == 0:
            return
        pos_weight = self.pos_weight(label_index)
        sims = FusionSimilarities(model)
        for branch in model.branches.values():
            set_frozen(branch, True)
        finished = self.finished("fusion")
        standardize = st.fusion_input == "standardized"
        loaders: tuple[Any, Any] = ([], [])
        stats = None
        if not finished:
            # The task's initial state only: a resumed unfinished stage reloads the same values.
            train_ds = self.precompute(sims, self.train_rows)
            self.fusion_train_similarities = train_ds.tensors[0]
            if standardize:
                stats = fusion_statistics(train_ds.tensors[0])
            loaders = self.linear_loaders(sims, label_index, train_ds)
        elif standardize:  # placeholders of the right shape, overwritten by the stage's state
            stats = (torch.zeros_like(model.fusion_mean), torch.ones_like(model.fusion_std))
        mask = self.prune_mask(model, provenance) if st.prune_absent else None
        task = self.fit(
            "fusion",
            lambda: LinearStageTask(
                model.fusion,
                nn.Identity() if st.frozen_eval else sims,  # precomputed similarities
                list(model.branches.values()),
                label_index,
                pos_weight,
                self.cfg.loss.l1,
                None,
                st.frozen_eval,
                weight_mask=mask,
                input_stats=stats,
            ),
            self.epochs(st.fusion_epochs),
            *loaders,
            st.fusion_lr,
        )
        assert isinstance(task, LinearStageTask)
        task.bake_mask()
        with torch.no_grad():
            if task.input_mean is not None and task.input_std is not None:
                model.fusion_mean.copy_(task.input_mean)
                model.fusion_std.copy_(task.input_std)
            else:
                model.fusion_mean.zero_()
                model.fusion_std.fill_(1.0)
        self.write_similarity_stats(model)

    def write_similarity_stats(self, model: ProtoECGNet) -> None:
        """Write ``RUN/similarity_stats.pt``: where each prototype's similarity stands.

        The training ECGs' mean, std and percentiles 0..100 of every prototype's raw
        similarity, for explanation reports (not needed for predictions).
        """
        path = self.out / SIMILARITY_STATS
        if path.exists() or not is_main_process():
            return
        raw = self.fusion_train_similarities
        if raw is None:  # resumed after the fusion stage: computed once more
            raw = self.precompute(FusionSimilarities(model), self.train_rows).tensors[0]
        values = raw.double().numpy()
        atomic_torch_save(
            {
                "mean": torch.from_numpy(values.mean(axis=0)),
                "std": torch.from_numpy(
                    values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])
                ),
                "quantiles": torch.from_numpy(np.quantile(values, np.linspace(0, 1, 101), axis=0)),
            },
            path,
        )

    def prune_mask(
        self, model: ProtoECGNet, provenance: Sequence[Mapping[str, Any]]
    ) -> Tensor | None:
        """Fusion-weight mask: 0 for the prototypes of classes without a training positive."""
        offsets = model.prototype_offsets()
        absent = [
            offsets[r["branch"]] + int(r["prototype"])
            for r in provenance
            if not r.get("class_positive", True)
        ]
        if not absent:
            return None
        mask = torch.ones_like(model.fusion.weight)
        mask[:, absent] = 0.0
        logger.info(
            "fusion: %d prototypes of classes without training positives are pruned.", len(absent)
        )
        return mask

    def run_baseline(self, net: ResNet1DClassifier, label_index: Tensor) -> None:
        """The black-box baseline's one stage."""
        pos_weight = self.pos_weight(label_index)
        train_loader, val_loader = self.loaders(None)
        self.fit(
            "baseline",
            lambda: SupervisedTask(net, label_index, pos_weight),
            self.cfg.trainer.epochs,
            train_loader,
            val_loader,
        )


def _save_state(out: Path, stages: Sequence[str], **extra: Any) -> None:
    """``RUN/state.pt``: the stages run and what inference needs to rebuild the model."""
    atomic_torch_save(
        {
            "format_version": FORMAT_VERSION,
            "state_version": _STATE_VERSION,
            "stages": list(stages),
            **jsonable(extra),
        },
        out / "state.pt",
    )


def train(
    cfg: ECGConfig, out: str | Path, *, data: ECGArrays | None = None, progress: bool = True
) -> dict[str, Any]:
    """Train ProtoECGNet (or the baseline) through all stages and evaluate it on fold 10.

    Args:
        cfg: The config.
        out: The run folder (created; a run already there with the same config is resumed).
        data: Already loaded data (else read from ``cfg.data``).
        progress: Show progress bars (also needs ``trainer.progress``).

    Returns:
        The test metrics written to ``metrics.json``.

    Raises:
        InputError: On bad data, an empty fold, or a run folder that is a file, cannot be
            written, or holds anything but this run (another config outside
            :data:`SAFE_KEYS`, other data, another command's run, other files).
    """
    init_from_env(resolve_device(cfg.trainer.device))
    folder = RunFolder.prepare(out, domain=DOMAIN, command="train", config=cfg, safe_keys=SAFE_KEYS)
    if folder.resumed and folder.is_finished(FINISHED) and (folder.path / "metrics.json").exists():
        logger.info("%s already finished; reporting its metrics.", folder.path)
        metrics: dict[str, Any] = read_json(folder.path / "metrics.json")
        return metrics
    if data is None:  # bad data fails before anything is written; rank 0 fills the cache
        data = on_rank0(
            lambda: load_data(cfg.data, progress=progress and is_main_process()), everywhere=True
        )
    folder = RunFolder.prepare(
        out,
        domain=DOMAIN,
        command="train",
        config=cfg,
        data=data.fingerprint or None,
        safe_keys=SAFE_KEYS,
    )
    label_index = branch_label_index(data, cfg.model, cfg.data.label_set)
    run = _Run(cfg, folder, data, progress)
    folder.create()
    out = folder.path
    with folder.logging(*_LOGGERS), torch_threads(cfg.trainer.threads):
        seed_everything(cfg.trainer.seed)
        model = build_model(
            cfg,
            label_index,
            len(data.label_names),
            int(data.signals.shape[-1]),
            int(data.signals.shape[1]),
        )
        all_index = torch.arange(len(data.label_names))
        start = time.perf_counter()
        provenance: list[dict[str, Any]] = []
        if isinstance(model, ProtoECGNet):
            for name, branch in model.branches.items():
                provenance += run.run_branch(name, branch, model.label_index(name))  # type: ignore[arg-type]
            run.run_fusion(model, all_index, provenance)
        else:
            assert isinstance(model, ResNet1DClassifier)
            run.run_baseline(model, all_index)
        train_seconds = time.perf_counter() - start
        model.cpu()
        check_ranks_agree(model)
        assert data is not None

        def finish() -> dict[str, Any]:  # rank 0 writes and evaluates, the others wait
            assert data is not None
            folder.save_weights({k: v.detach().cpu() for k, v in model.state_dict().items()})
            if provenance:
                write_json(out / "prototypes.json", provenance)
            write_csv(out / "history.csv", run.history)
            run.boundary("weights")
            metrics = evaluate_model(model, cfg, data, out)
            metrics["train_seconds"] = train_seconds
            metrics["stages"] = run.stage_metrics
            metrics["params"] = int(sum(p.numel() for p in model.parameters()))
            write_json(out / "metrics.json", metrics)
            run.boundary("metrics")
            _save_state(
                out,
                list(run.stage_metrics),
                label_names=data.label_names,
                train_positives=[int(v) for v in run.train_labels.sum(dim=0).tolist()],
                label_index=label_index,
                signal_length=int(data.signals.shape[-1]),
                leads=int(data.signals.shape[1]),
                sampling_rate=data.sampling_rate,
            )
            return metrics

        metrics = on_rank0(finish)
        folder.mark_finished(FINISHED)
        logger.info(
            "test fold 10: macro AUROC %.4f, weighted AUROC %.4f (%d ECGs, %d labels evaluated)",
            metrics["macro_auc"],
            metrics["weighted_auc"],
            metrics["n_test"],
            metrics["n_labels_evaluated"],
        )
        return metrics
