"""The three stages of ``contrasuite sr train`` in one run folder.

``RUN/pretrain`` (L1 from scratch), then from its weights ``RUN/pcl`` (L1 + w * PCL) and
``RUN/l1`` (the L1-only control), with the same seed, schedule and training patches: each a
resumable Trainer run. ``RUN/weights.pt`` holds both fine-tuned networks (``pcl.*``, ``l1.*``),
``RUN/metrics.json`` the parameter count and each stage's final training metrics,
``RUN/history.csv`` every stage's epochs (a ``stage`` column first).

Several processes (``torchrun``, DDP): the same command under ``torchrun`` trains every stage
with ``data.batch_size`` patches per rank, each rank drawing its share of an epoch's
``batch_size * batches_per_epoch`` patches; the discriminator's loss is taken over the
gathered global batch and its gradients averaged like the generator's, so every rank holds the
same two networks (checked after each stage); rank 0 alone writes the run folder.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler

from shared.config import to_dict
from shared.distributed import check_ranks_agree, init_from_env, on_rank0, world_size
from shared.errors import InputError
from shared.io import read_json
from shared.runtime import resolve_device
from shared.training import Trainer
from shared.training.run import RunFolder, data_fingerprint
from shared.training.trainer import seed_everything
from vision.sr.config import SRConfig
from vision.sr.data import (
    ImagePair,
    PatchDataset,
    bundled_store,
    check_scale,
    to_tensor,
)
from vision.sr.imaging import BUNDLED_TRAIN, BUNDLED_VAL, list_images
from vision.sr.model import EDSR, count_parameters
from vision.sr.tasks import DiscriminatorState, SRTask

__all__ = ["MODELS", "STAGES", "build_models", "load_models", "train"]

logger = logging.getLogger(__name__)

#: The fine-tuned models of a run, in report order.
MODELS = ("l1", "pcl")
#: The stages of a run, in order.
STAGES = ("pretrain", "pcl", "l1")


def build_models(cfg: SRConfig) -> nn.ModuleDict:
    """The run's two EDSR networks (``l1``, ``pcl``) in one module, as ``weights.pt`` holds them."""
    return nn.ModuleDict(
        {
            name: EDSR.from_size(cfg.data.scale, cfg.model.size, cfg.model.res_scale)
            for name in MODELS
        }
    )


def _center_crop(pair: ImagePair, side: int, scale: int) -> ImagePair:
    h, w = pair.hr.shape[:2]
    ch, cw = min(h, side) // scale * scale, min(w, side) // scale * scale
    y, x = (h - ch) // 2 // scale * scale, (w - cw) // 2 // scale * scale
    hr = pair.hr[y : y + ch, x : x + cw]
    lr = pair.lr[y // scale : (y + ch) // scale, x // scale : (x + cw) // scale]
    return dataclasses.replace(pair, hr=np.ascontiguousarray(hr), lr=np.ascontiguousarray(lr))


def _datasets(cfg: SRConfig) -> tuple[list[ImagePair], list[ImagePair], str]:
    """Training and validation images, and the data fingerprint (bad input: InputError)."""
    d = cfg.data
    check_scale(d.scale)
    if d.dir is None:
        train = bundled_store(d.scale, "train", d.patch_size)
        val = bundled_store(d.scale, "val") if d.n_val else []
        return train, val, data_fingerprint("bundled", *BUNDLED_TRAIN, *BUNDLED_VAL)
    paths = list_images(d.dir, "--data-dir")
    if d.n_val and len(paths) <= d.n_val:
        raise InputError(
            f"--data-dir {d.dir}: expected more than data.n_val={d.n_val} images (the last "
            f"{d.n_val} are held out for validation), but it holds {len(paths)}; add images "
            "or set data.n_val=0."
        )
    train_paths = paths[: len(paths) - d.n_val] if d.n_val else paths
    from vision.sr.data import load_pairs

    train = load_pairs(train_paths, d.scale, d.patch_size)
    val = load_pairs(paths[len(train_paths) :], d.scale) if d.n_val else []
    return train, val, data_fingerprint(Path(d.dir))


def _loaders(
    cfg: SRConfig, train: Sequence[ImagePair], val: Sequence[ImagePair]
) -> tuple[DataLoader[Any], list[tuple[Tensor, Tensor]] | None]:
    d = cfg.data
    dataset = PatchDataset(train, d.scale, d.patch_size, d.batch_size * d.batches_per_epoch)
    # under DDP each rank draws its share of the epoch's patches (the draws are already random)
    sampler: DistributedSampler[Any] | None = None
    if world_size() > 1:
        sampler = DistributedSampler(dataset, shuffle=False)
    loader = DataLoader(dataset, batch_size=d.batch_size, sampler=sampler, num_workers=0)
    if not val:
        return loader, None
    crops = [_center_crop(p, d.val_crop, d.scale) for p in val]
    batches = [(to_tensor(p.lr)[None], to_tensor(p.hr)[None]) for p in crops]
    return loader, batches


def train(cfg: SRConfig, out: str | os.PathLike[str]) -> dict[str, Any]:
    """Run (or resume) the three stages into the run folder ``out``.

    Args:
        cfg: The resolved config.
        out: The run folder.

    Returns:
        What ``RUN/metrics.json`` holds: ``scale``, ``size``, ``params``, ``stages``
        (each stage's final Trainer metrics).

    Raises:
        InputError: On bad data or options, or a folder that holds another run; nothing is
            written before every check passed.
    """
    check_scale(cfg.data.scale)
    init_from_env(resolve_device(cfg.trainer.device))  # before the run folder's checks
    train_pairs, val_pairs, fingerprint = on_rank0(lambda: _datasets(cfg), everywhere=True)
    run = RunFolder.prepare(out, domain="sr", command="train", config=cfg, data=fingerprint)
    loader, val = _loaders(cfg, train_pairs, val_pairs)
    models = build_models(cfg)
    run.create()
    config_dict = to_dict(cfg)
    stages: dict[str, Any] = {}
    with run.logging("vision.sr", "shared.training", "shared.distributed"):
        logger.info(
            "sr train: x%d EDSR-%s (%d parameters), %d training images, %d validation images",
            cfg.data.scale,
            cfg.model.size,
            count_parameters(models["l1"]),
            len(train_pairs),
            len(val_pairs),
        )
        seed_everything(cfg.trainer.seed)  # the initial weights depend on the seed only
        pre = SRTask(EDSR.from_size(cfg.data.scale, cfg.model.size, cfg.model.res_scale))
        pre_cfg = dataclasses.replace(cfg.trainer, epochs=cfg.pretrain.epochs, lr=cfg.pretrain.lr)
        stages["pretrain"] = Trainer(
            pre_cfg, run_dir=run.stage_dir("pretrain"), config_dict=config_dict
        ).fit(pre, loader, val)
        check_ranks_agree(pre)
        run.mark_finished("pretrain", **stages["pretrain"])
        run.write_stage_history(STAGES)
        start = {k: v.detach().clone() for k, v in pre.model.state_dict().items()}
        for name in ("pcl", "l1"):
            model = cast(EDSR, models[name])
            model.load_state_dict(start)
            pcl = cfg.pcl if name == "pcl" else None
            d_lr = cfg.pcl.d_lr if cfg.pcl.d_lr is not None else cfg.trainer.lr
            seed_everything(cfg.trainer.seed + 1)  # the discriminator's initial weights
            task = SRTask(model, pcl, d_lr)
            callbacks = [DiscriminatorState(task)] if pcl is not None else []
            stages[name] = Trainer(
                cfg.trainer,
                run_dir=run.stage_dir(name),
                callbacks=callbacks,
                config_dict={**config_dict, "stage": name},
            ).fit(task, loader, val)
            check_ranks_agree(task)  # the generator and (PCL) the discriminator
            run.mark_finished(name, **stages[name])
            run.write_stage_history(STAGES)
        run.save_weights(models.state_dict())
        metrics = {
            "scale": cfg.data.scale,
            "size": cfg.model.size,
            "params": count_parameters(models["l1"]),
            "stages": stages,
        }
        previous = _read_metrics(run.path)
        run.write_json("metrics.json", {**previous, **metrics})
        logger.info(
            "sr train done: val psnr_y pretrain %s, pcl %s, l1 %s",
            *(f"{stages[s].get('psnr_y', float('nan')):.3f}" for s in STAGES),
        )
    return metrics


def _read_metrics(path: Path) -> dict[str, Any]:
    file = path / "metrics.json"
    if not file.is_file():
        return {}
    data = read_json(file)
    return dict(data) if isinstance(data, dict) else {}


def load_models(
    run_path: str | os.PathLike[str], option: str = "--run"
) -> tuple[RunFolder, SRConfig, nn.ModuleDict]:
    """Open a finished ``sr train`` run and load its two networks (eval mode).

    Raises:
        InputError: If the folder is not a finished sr train run, or its ``weights.pt`` does
            not fit the run's scale and size (or comes from another run).
    """
    from shared.config import from_dict

    run = RunFolder.open_existing(run_path, domain="sr", command="train", option=option)
    cfg = from_dict(SRConfig, run.config, source=f"{run.path}/config")
    unfinished = [s for s in STAGES if not run.is_finished(s)]
    if unfinished:
        raise InputError(
            f"{option} {run.path}: the run has not finished (stage(s) {', '.join(unfinished)} "
            "to go); run the same `contrasuite sr train` command again to complete it."
        )
    if not (run.path / "weights.pt").is_file():
        raise InputError(
            f"{option} {run.path}: weights.pt is missing although every stage finished; run "
            "the same `contrasuite sr train` command again to rewrite it."
        )
    models = build_models(cfg)
    try:
        run.load_weights(models)
    except InputError as err:
        raise InputError(
            f"{run.path / 'weights.pt'}: expected the x{cfg.data.scale} EDSR-{cfg.model.size} "
            f"networks of this run, but loading failed: {err}"
        ) from None
    models.eval()
    return run, cfg, models
