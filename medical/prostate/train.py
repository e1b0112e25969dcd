"""Training of the zone nets in one run folder: stage 1 (supervised), stage 2 (consistency).

``RUN/`` (a :class:`~shared.training.run.RunFolder`) holds ``split.json`` (the train / val /
test case names and the data folder), ``stage1/`` and, for the dual-path net, ``stage2/``
(each a resumable Trainer run), ``weights.pt`` (the final net), ``weights_stage1.pt`` (the
dual-path net after stage 1), ``history.csv`` (both stages, a ``stage`` column),
``metrics.json`` and ``results.md`` (the held-out evaluation, :mod:`medical.prostate.evaluate`),
``cache/`` (preprocessed volumes) and, with no ``data.dir``, ``data/`` (the phantoms).

Several processes (``torchrun``, DDP): the same command under ``torchrun`` trains both stages
with ``data.batch_size`` crops per rank (a ``DistributedSampler`` shares out the cases), every
rank validating the whole validation set; rank 0 writes the phantoms, the run folder and the
evaluation. DDP averages the ranks' gradients, so each loss term is the mean of the ranks'
batch losses (the same as one process on the global batch for per-crop terms); with
``model.norm=batch`` the statistics are per rank (the default instance norm has none).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from medical.prostate.config import ProstateConfig
from medical.prostate.data import (
    DatasetIndex,
    build_dataset,
    collate,
    eval_transforms,
    scan_dataset,
    split_cases,
    train_transforms,
)
from medical.prostate.model import build_model
from medical.prostate.phantom import write_phantom_dataset
from medical.prostate.tasks import RampupCallback, ZoneTask
from shared.config import from_dict, to_dict
from shared.distributed import (
    check_ranks_agree,
    init_from_env,
    is_main_process,
    on_rank0,
    shuffled_loader,
    world_size,
)
from shared.errors import InputError
from shared.io import write_csv
from shared.runtime import resolve_device, torch_threads
from shared.training import Trainer, TrainerConfig, seed_everything
from shared.training.run import RunFolder, data_fingerprint

__all__ = ["config_of_run", "prepare_data", "train"]

logger = logging.getLogger(__name__)

LOGGERS = ("medical.prostate", "shared.training", "shared.distributed")
#: Settings that may change when a run is resumed.
SAFE_KEYS = frozenset({"data.cache"})


class SeededDataset(TorchDataset):
    """Reseed the MONAI random transforms from torch's RNG before each item (exact resume).

    The Trainer reseeds torch at every epoch start, so the crops and augmentations of epoch
    ``e`` depend only on the seed and ``e`` (with ``num_workers=0``).
    """

    def __init__(self, base: Any, transform: Any, unlabelled: Any = None) -> None:
        self.base, self.transform, self.unlabelled = base, transform, unlabelled

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> Any:
        self.transform.set_random_state(int(torch.randint(0, 2**31 - 1, ()).item()))
        item = self.base[i]
        if self.unlabelled is None:
            return item
        ds, transform = self.unlabelled
        transform.set_random_state(int(torch.randint(0, 2**31 - 1, ()).item()))
        other = ds[int(torch.randint(0, len(ds), ()).item())]
        return [{**a, "u_image": b["image"]} for a, b in zip(item, other)]


def config_of_run(run: RunFolder) -> ProstateConfig:
    """The :class:`ProstateConfig` a run was started with."""
    return from_dict(ProstateConfig, run.config, source=str(run.path / "config.yaml"))


def prepare_data(cfg: ProstateConfig) -> tuple[Path | None, str]:
    """The data folder (``None``: phantoms to generate) and the data fingerprint."""
    if cfg.data.dir is None:
        d = cfg.data
        fp = data_fingerprint(
            "phantoms", d.phantom_cases, d.phantom_shape, d.phantom_spacing, d.split_seed
        )
        return None, fp
    root = Path(cfg.data.dir)
    if not root.is_dir():
        raise InputError(f"--data-dir {root}: expected a dataset folder, but it does not exist.")
    extra = [Path(cfg.data.unlabelled_dir)] if cfg.data.unlabelled_dir else []
    return root, data_fingerprint(root, *extra)


def _items(index: DatasetIndex, names: list[str]) -> list[dict[str, str]]:
    by_name = {c.name: c for c in index.cases}
    return [{"image": str(by_name[n].image), "label": str(by_name[n].label)} for n in names]


def _loaders(
    cfg: ProstateConfig, index: DatasetIndex, split: dict[str, list[str]], cache: Path | None
) -> tuple[DataLoader[Any], DataLoader[Any] | None, Any]:
    clip = cfg.loss.sdm_clip_mm
    tt = train_transforms(cfg.data, clip)
    train_ds = build_dataset(
        _items(index, split["train"]), tt, None if cache is None else cache / "train"
    )
    val = None
    if split["val"]:
        val_ds = build_dataset(
            _items(index, split["val"]),
            eval_transforms(cfg.data, True, clip),
            None if cache is None else cache / "eval",
        )
        val = DataLoader(val_ds, batch_size=1, shuffle=False, collate_fn=collate)
    unlabelled = None
    if cfg.data.unlabelled and index.unlabelled:
        ut = train_transforms(cfg.data, clip, labelled=False)
        u_ds = build_dataset(
            [{"image": str(u.image)} for u in index.unlabelled],
            ut,
            None if cache is None else cache / "unlabelled",
        )
        unlabelled = (u_ds, ut)
    loader = shuffled_loader(
        SeededDataset(train_ds, tt),
        cfg.data.batch_size,
        seed=cfg.trainer.seed,
        collate_fn=collate,
    )
    return loader, val, (train_ds, tt, unlabelled)


def _trainer_cfg(cfg: ProstateConfig, has_val: bool, **changes: Any) -> TrainerConfig:
    if not has_val and not cfg.trainer.monitor.startswith("train/"):
        changes.update(monitor="loss", mode="min")
    if world_size() > 1 and cfg.model.aux == "sdm" and cfg.loss.aux_weight == 0:
        changes.update(find_unused_parameters=True)  # the SDM heads get no gradient then
    return dataclasses.replace(cfg.trainer, **changes)


def train(cfg: ProstateConfig, out: str | os.PathLike[str]) -> RunFolder:
    """Train the configured model (both stages for the dual-path net) into ``out``.

    A run killed at any moment and started again with the same config resumes: finished
    stages reload their weights, the running one continues after its last complete epoch.

    Args:
        cfg: The resolved config.
        out: The run folder.

    Returns:
        The run folder (``weights.pt`` written).

    Raises:
        InputError: On bad input data or a run folder that cannot be used.
    """
    init_from_env(resolve_device(cfg.trainer.device))  # before the run folder's checks
    root, fingerprint = on_rank0(lambda: prepare_data(cfg), everywhere=True)
    run = RunFolder.prepare(
        out, domain="prostate", command="train", config=cfg, data=fingerprint, safe_keys=SAFE_KEYS
    )
    index = None
    if root is not None:
        folder = root
        index = on_rank0(
            lambda: scan_dataset(folder, unlabelled_dir=cfg.data.unlabelled_dir), everywhere=True
        )
    run.create()
    with run.logging(*LOGGERS), torch_threads(cfg.trainer.threads):
        if root is None:
            root = run.path / "data"
            on_rank0(lambda: _write_phantoms(cfg, root))  # the other ranks wait for them
            index = scan_dataset(root, unlabelled_dir=cfg.data.unlabelled_dir)
        if index is None:  # pragma: no cover - set in both branches
            raise RuntimeError("no dataset index")
        split = split_cases(
            index.cases, cfg.data.val_fraction, cfg.data.test_fraction, cfg.data.split_seed
        )
        run.write_json(
            "split.json",
            {"data_dir": str(root.resolve()), "zones": list(index.zones), **split},
        )
        logger.info(
            "%s: %d train, %d val, %d test cases, %d unlabelled; zones %s",
            root,
            len(split["train"]),
            len(split["val"]),
            len(split["test"]),
            len(index.unlabelled),
            ", ".join(index.zone_names),
        )
        cache = run.path / "cache" if cfg.data.cache else None
        loader, val, (train_ds, tt, unlabelled) = _loaders(cfg, index, split, cache)
        if cache is not None and world_size() > 1:
            # rank 0 fills the cache before any other rank reads it (MONAI writes a cache file
            # by moving it from a temporary folder, not atomic across file systems)
            sets = [train_ds]
            sets += [] if val is None else [val.dataset]
            sets += [] if unlabelled is None else [unlabelled[0]]
            on_rank0(lambda: _fill_cache(sets))
        seed_everything(cfg.trainer.seed)  # the initial weights depend on the seed alone
        net = build_model(cfg.model)
        n_params = sum(p.numel() for p in net.parameters())
        logger.info("%s net: %d parameters", cfg.model.name, n_params)
        task = ZoneTask(net, cfg.loss, index.zones, cfg.data.roi, consistency=False)
        history: list[dict[str, Any]] = []
        tcfg = _trainer_cfg(cfg, val is not None)
        stage1 = Trainer(tcfg, run_dir=run.stage_dir("stage1"), config_dict=to_dict(cfg))
        metrics = {"stage1": stage1.fit(task, loader, val)}
        history += [{"stage": "stage1", **row} for row in stage1.history]
        run.mark_finished("stage1", params=n_params)
        if cfg.model.name == "dual-path":
            run.save_weights(net.state_dict(), "weights_stage1.pt")
            if cfg.stage2.epochs > 0:
                if unlabelled is None:
                    logger.info("stage 2: no unlabelled images; consistency on labelled crops")
                pair_loader = shuffled_loader(
                    SeededDataset(train_ds, tt, unlabelled),
                    cfg.data.batch_size,
                    seed=cfg.trainer.seed,
                    collate_fn=collate,
                )
                task2 = ZoneTask(net, cfg.loss, index.zones, cfg.data.roi, consistency=True)
                t2cfg = _trainer_cfg(
                    cfg,
                    val is not None,
                    epochs=cfg.stage2.epochs,
                    lr=cfg.trainer.lr * cfg.stage2.lr_scale,
                    warmup_epochs=0,
                )
                stage2 = Trainer(
                    t2cfg,
                    run_dir=run.stage_dir("stage2"),
                    callbacks=[RampupCallback()],
                    config_dict=to_dict(cfg),
                )
                metrics["stage2"] = stage2.fit(task2, pair_loader, val)
                history += [{"stage": "stage2", **row} for row in stage2.history]
                run.mark_finished("stage2")
        check_ranks_agree(net)
        if is_main_process():
            write_csv(run.path / "history.csv", _align(history))
        run.save_weights(net.state_dict())
        run.write_json("train_metrics.json", metrics)
        dice = {stage: m.get("dice") for stage, m in metrics.items()}
        logger.info(
            "training finished: %s",
            ", ".join(f"{k} dice {'n/a' if d is None else f'{d:.4g}'}" for k, d in dice.items()),
        )
    return run


def _fill_cache(datasets: list[Any]) -> None:
    """Read every item of ``datasets`` once (a ``PersistentDataset`` caches each)."""
    for ds in datasets:
        for i in range(len(ds)):
            ds[i]


def _write_phantoms(cfg: ProstateConfig, root: Path) -> None:
    """Write the phantom data set into ``root`` unless it is there (a resumed run)."""
    if (root / "dataset.json").is_file():
        return
    d = cfg.data
    logger.info("writing %d phantoms to %s", d.phantom_cases, root)
    write_phantom_dataset(
        root,
        d.phantom_cases,
        d.split_seed,
        n_unlabelled=max(2, d.phantom_cases // 4),
        shape=d.phantom_shape,
        spacing=d.phantom_spacing,
    )


def _align(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k, "") for k in keys} for r in rows]
