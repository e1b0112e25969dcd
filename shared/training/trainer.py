"""One small training loop for every domain: the Task says what a step is, the Trainer runs it.

The loop: device placement, AMP on CUDA (bf16, or fp16 with a persistent GradScaler), gradient
accumulation and clipping, a per-epoch LR schedule, validation every ``eval_every`` epochs,
early stopping, callbacks, a tqdm bar on rank 0, and DDP under ``torchrun``.

Exact resume: the data order and dropout masks of epoch ``e`` depend only on
``(seed, e, rank)`` (every RNG is reseeded at each epoch start), and ``state.pt`` is rewritten
atomically after every epoch. A run killed at any moment and started again with the same
command resumes after its last complete epoch and ends with the same weights and metrics as an
uninterrupted run (on deterministic kernels, e.g. the CPU). A finished run started again only
reloads its weights and reports its metrics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from shared.config import ConfigError, to_dict
from shared.distributed import (
    all_reduce_sum_,
    init_from_env,
    is_main_process,
    rank,
    world_size,
)
from shared.errors import InputError
from shared.io import atomic_torch_save, jsonable, write_csv, write_json
from shared.runtime import resolve_device, torch_threads
from shared.training.callbacks import Callback, EarlyStopping
from shared.training.checkpoint import (
    FORMAT_VERSION,
    get_rng_state,
    safe_load,
    set_rng_state,
)
from shared.training.run import RunFolder, stamp_run_id
from shared.training.task import Task

__all__ = ["Trainer", "TrainerConfig", "seed_everything"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainerConfig:
    """Settings of the training loop (the ``trainer:`` section of every pipeline config).

    Attributes:
        epochs: Number of training epochs.
        lr: Peak learning rate.
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (with ``momentum``).
        weight_decay: Weight decay (decoupled for AdamW).
        momentum: SGD momentum; ignored by Adam(W).
        scheduler: Per-epoch LR schedule after warm-up: ``"none"`` (constant), ``"cosine"``
            (down to ``min_lr`` at the last epoch) or ``"step"`` (times ``gamma`` every
            ``step_size`` epochs).
        warmup_epochs: Epochs of linear warm-up, from ``lr / (warmup_epochs + 1)`` to ``lr``.
        step_size: Epochs between decays of the ``"step"`` schedule.
        gamma: Decay factor of the ``"step"`` schedule.
        min_lr: Final LR of the ``"cosine"`` schedule.
        grad_clip: Maximum global gradient norm; ``None`` turns clipping off.
        accumulate: Batches whose gradients are accumulated per optimizer step (each batch's
            loss is divided by the group size, so ``accumulate=2`` with batch ``b`` matches
            batch ``2b`` for mean losses without batch statistics).
        amp: Mixed precision; only effective on CUDA.
        amp_dtype: ``"bfloat16"``, ``"float16"`` (with a GradScaler) or ``"auto"`` (bf16 where
            the GPU supports it).
        eval_every: Validate every this many epochs (and always after the last epoch).
        monitor: Metric that chooses the best epoch and drives early stopping: a key of the
            task's validation metrics (``"auroc"``), or with no validation loader a training
            loss key (``"loss"``). ``"train/..."`` or ``"val/..."`` names a row key directly.
        mode: ``"min"`` if a lower ``monitor`` is better, ``"max"`` otherwise.
        patience: Evaluated epochs without improvement before stopping; ``None`` = never.
        min_delta: Smallest change of ``monitor`` that counts as an improvement.
        weights: What ``weights.pt`` (and the task after ``fit``) holds: the ``"best"`` epoch by
            ``monitor``, or the ``"last"`` one. ``metrics.json`` reports the validation
            metrics of that same epoch.
        seed: Base seed; epoch ``e`` on rank ``r`` reseeds python, numpy and torch from
            ``(seed, e, r)``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
        max_train_batches: Cap on training batches per epoch (quick runs); ``None`` = all.
        max_val_batches: Cap on validation batches per evaluation; ``None`` = all.
        find_unused_parameters: Passed to ``DistributedDataParallel`` (tasks whose steps leave
            some parameters unused).
        progress: Show a tqdm bar on rank 0 (when tqdm is installed).
        log_every: Log the running loss every this many batches; 0 turns it off.
        threads: CPU threads torch uses during ``fit`` (intra-op); ``None`` leaves torch's
            setting. May change when a run is resumed, like ``device``.
    """

    epochs: int = 10
    lr: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: Literal["none", "cosine", "step"] = "none"
    warmup_epochs: int = 0
    step_size: int = 30
    gamma: float = 0.1
    min_lr: float = 0.0
    grad_clip: float | None = None
    accumulate: int = 1
    amp: bool = True
    amp_dtype: Literal["auto", "bfloat16", "float16"] = "auto"
    eval_every: int = 1
    monitor: str = "loss"
    mode: Literal["min", "max"] = "min"
    patience: int | None = None
    min_delta: float = 0.0
    weights: Literal["best", "last"] = "best"
    seed: int = 2020
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_train_batches: int | None = None
    max_val_batches: int | None = None
    find_unused_parameters: bool = False
    progress: bool = True
    log_every: int = 50
    threads: int | None = None

    def __post_init__(self) -> None:
        """Check ranges and choices.

        Raises:
            ConfigError: If a value is out of range or not a valid choice.
        """
        at_least = {
            "epochs": 1,
            "accumulate": 1,
            "eval_every": 1,
            "step_size": 1,
            "warmup_epochs": 0,
            "seed": 0,
            "log_every": 0,
            "max_train_batches": 1,
            "max_val_batches": 1,
            "patience": 0,
            "threads": 1,
        }
        for name, low in at_least.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise ConfigError(f"Expected `trainer.{name}` to be >= {low}, but got {value}.")
        for name in ("weight_decay", "momentum", "min_lr", "min_delta"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"Expected `trainer.{name}` to be >= 0, but got {getattr(self, name)}."
                )
        for name in ("lr", "gamma", "grad_clip"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"Expected `trainer.{name}` to be > 0, but got {value}.")
        choices = {
            "optimizer": ("adam", "adamw", "sgd"),
            "scheduler": ("none", "cosine", "step"),
            "amp_dtype": ("auto", "bfloat16", "float16"),
            "mode": ("min", "max"),
            "weights": ("best", "last"),
            "device": ("auto", "cpu", "cuda"),
        }
        for name, options in choices.items():
            if getattr(self, name) not in options:
                raise ConfigError(
                    f"Expected `trainer.{name}` to be one of {', '.join(map(repr, options))}, "
                    f"but got {getattr(self, name)!r}."
                )


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global RNG and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - user code may draw from the global RNG
    torch.manual_seed(seed)


def _epoch_seed(seed: int, epoch: int, rank_: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank_]).generate_state(1)[0])


def _build_optimizer(params: list[nn.Parameter], cfg: TrainerConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _lr_factor(cfg: TrainerConfig, epoch: int) -> float:
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    e = epoch - cfg.warmup_epochs
    if cfg.scheduler == "cosine":
        floor = cfg.min_lr / cfg.lr
        # Cosine over the post-warmup epochs, as CosineAnnealingLR(T_max=epochs) stepped per
        # epoch: the last epoch still trains (above min_lr).
        t = min(1.0, e / max(1, cfg.epochs - cfg.warmup_epochs))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    if cfg.scheduler == "step":
        return float(cfg.gamma ** (e // cfg.step_size))
    return 1.0


def _num_batches(loader: Any, cap: int | None) -> int | None:
    try:
        n = len(loader)
    except TypeError:  # an IterableDataset without __len__
        return cap
    return n if cap is None else min(n, cap)


def _set_epoch(loader: Any, epoch: int) -> None:
    for sampler in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        set_epoch = getattr(sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)


class Trainer:
    """Runs a :class:`~shared.training.task.Task`; writes a run folder when ``run_dir`` is set.

    Args:
        config: The loop settings.
        run_dir: The run folder (``config.yaml``, ``metrics.json``, ``history.csv``,
            ``log.txt``, ``weights.pt``, ``state.pt``), opened as a
            :class:`~shared.training.run.RunFolder` of domain ``"trainer"``; ``None`` writes
            nothing. A folder that already holds this run is resumed, and one that holds
            anything else is refused before anything is written; only rank 0 writes.
        callbacks: Extra :class:`~shared.training.callbacks.Callback` objects, called in order
            after the trainer's own :class:`~shared.training.callbacks.EarlyStopping`.
        config_dict: The whole experiment config (plain data or a dataclass); written to
            ``config.yaml`` with ``trainer`` set to ``config``, and compared on resume.

    Examples:
        >>> class Mean(Task):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.mu = nn.Parameter(torch.zeros(1))
        ...     def training_step(self, batch):
        ...         loss = (batch[0] - self.mu).pow(2).mean()
        ...         return {"loss": loss}
        >>> data = torch.utils.data.TensorDataset(torch.full((8,), 3.0))
        >>> loader = torch.utils.data.DataLoader(data, batch_size=4)
        >>> cfg = TrainerConfig(epochs=30, lr=0.3, optimizer="sgd", momentum=0.0, progress=False)
        >>> metrics = Trainer(cfg).fit(Mean(), loader)
        >>> round(metrics["train/loss"], 4)
        0.0
    """

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None

    def __init__(
        self,
        config: TrainerConfig,
        run_dir: str | os.PathLike[str] | None = None,
        callbacks: Sequence[Callback] = (),
        config_dict: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.callbacks = list(callbacks)
        if dataclasses.is_dataclass(config_dict) and not isinstance(config_dict, type):
            config_dict = to_dict(config_dict)
        self.config_dict: dict[str, Any] = jsonable(dict(config_dict or {}))
        self.epoch = 0
        self.global_step = 0
        self.history: list[dict[str, float]] = []
        self.should_stop = False
        self.device = torch.device("cpu")
        self.early_stopping = EarlyStopping(config.monitor, config.mode, config.patience)
        self._best_state: dict[str, Tensor] | None = None
        self.run: RunFolder | None = None

    # ------------------------------------------------------------------ public

    def fit(self, task: Task, train_loader: Any, val_loader: Any | None = None) -> dict[str, float]:
        """Train ``task``, resuming from ``run_dir/state.pt`` when it exists.

        Args:
            task: The task; trained in place. Afterwards it holds the weights of ``weights.pt``.
            train_loader: An iterable of batches (a ``DataLoader``; under DDP give it a
                ``DistributedSampler``, whose ``set_epoch`` is called every epoch).
            val_loader: Batches for :meth:`Task.validation_step`, or ``None``. Under DDP every
                rank validates its own loader and rank 0's metrics are used, so give every rank
                the whole validation set for exact metrics.

        Returns:
            Validation metrics of the epoch held by ``weights.pt`` (plain names), the last
            epoch's ``train/<loss key>`` averages, ``best_epoch`` (1-based) and ``epochs``
            (epochs trained). The same dict is written to ``metrics.json``.

        Raises:
            InputError: If ``run_dir`` is not empty and not this run, holds a run of a different
                config, or on an empty loader or a ``monitor`` that the metrics lack.
            FloatingPointError: If the training loss becomes NaN or infinite.
        """
        if val_loader is not None and not task.has_validation:
            raise ValueError(
                f"A val_loader was given, but {type(task).__name__} has no validation_step()."
            )
        self.device = resolve_device(self.config.device)
        # before the run folder's checks: under DDP rank 0 checks and creates it for all
        init_from_env(self.device)
        if self.run_dir is not None:  # every check before anything is written
            self.run = RunFolder.prepare(
                self.run_dir, domain="trainer", command="fit", config=self._run_config()
            )
        with torch_threads(self.config.threads):
            return self._fit(task, train_loader, val_loader)

    def _fit(self, task: Task, train_loader: Any, val_loader: Any | None) -> dict[str, float]:
        cfg = self.config
        task.to(self.device)
        self.optimizer = _build_optimizer([p for p in task.parameters() if p.requires_grad], cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda e: _lr_factor(cfg, e)
        )
        amp = cfg.amp and self.device.type == "cuda"
        bf16 = cfg.amp_dtype == "bfloat16" or (
            cfg.amp_dtype == "auto" and amp and torch.cuda.is_bf16_supported()
        )
        self.amp_dtype = (torch.bfloat16 if bf16 else torch.float16) if amp else None
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        monitor = (
            cfg.monitor
            if cfg.monitor.startswith(("train/", "val/"))
            else (f"{'val' if val_loader is not None else 'train'}/{cfg.monitor}")
        )
        self.early_stopping = EarlyStopping(monitor, cfg.mode, cfg.patience, cfg.min_delta)
        self.history, self.global_step, self.should_stop, self._best_state = [], 0, False, None
        if self.run is not None:
            self.run.create()  # rank 0 writes; every rank waits for the folder
        with self._log_to_run_dir():
            start, finished = self._resume(task)
            if finished:
                logger.info("%s already finished; reporting its metrics.", self.run_dir)
                return self._finish(task, call_back=False)
            model: nn.Module = task
            if world_size() > 1:
                model = nn.parallel.DistributedDataParallel(
                    task,
                    device_ids=[self.device.index] if self.device.type == "cuda" else None,
                    find_unused_parameters=cfg.find_unused_parameters,
                )
            for cb in self.callbacks:
                cb.on_fit_start(self, task)
            for epoch in range(start, cfg.epochs):
                if self.should_stop:
                    break
                self._run_epoch(model, task, train_loader, val_loader, epoch)
            return self._finish(task, call_back=True)

    # ------------------------------------------------------------------ one epoch

    def _run_epoch(
        self, model: nn.Module, task: Task, train_loader: Any, val_loader: Any, epoch: int
    ) -> None:
        cfg, self.epoch, start = self.config, epoch, time.perf_counter()
        seed_everything(_epoch_seed(cfg.seed, epoch, rank()))
        _set_epoch(train_loader, epoch)
        _set_epoch(val_loader, epoch)
        lr = float(self.optimizer.param_groups[0]["lr"])
        row: dict[str, float] = {"epoch": epoch + 1}
        row.update(
            {f"train/{k}": v for k, v in self._train_epoch(model, task, train_loader).items()}
        )
        evaluate = (
            val_loader is None or (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs
        )
        if world_size() > 1:
            # DDP syncs buffers at each forward, so after the last one every rank holds its own
            # BatchNorm statistics: take rank 0's, so that validation, the selected weights and
            # the task after fit are the same on every rank (and equal weights.pt).
            for buffer in task.buffers():
                dist.broadcast(buffer, src=0)
        if val_loader is not None and evaluate:
            row.update({f"val/{k}": v for k, v in self._validate(task, val_loader).items()})
        self.scheduler.step()
        row.update(seconds=round(time.perf_counter() - start, 3), lr=lr)
        self.history.append(row)
        self.early_stopping.improved = False
        if evaluate:
            for cb in [self.early_stopping, *self.callbacks]:
                cb.on_validation_end(self, task, row)
        if self.early_stopping.improved and cfg.weights == "best":
            self._best_state = {k: v.detach().cpu().clone() for k, v in task.state_dict().items()}
        logger.info(
            "epoch %d/%d: %s",
            epoch + 1,
            cfg.epochs,
            "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"),
        )
        if self.should_stop:
            logger.info("Stopping early after epoch %d.", epoch + 1)
        state = self._state(task, finished=False)
        self._save(state, weights_changed=cfg.weights == "last" or self.early_stopping.improved)
        for cb in self.callbacks:
            cb.on_checkpoint(self, state)

    def _train_epoch(self, model: nn.Module, task: Task, loader: Any) -> dict[str, float]:
        cfg, optimizer = self.config, self.optimizer
        task.train()
        total = _num_batches(loader, cfg.max_train_batches)
        bar = self._progress_bar(total)
        sums: dict[str, Tensor] = {}
        count = pending = group = 0
        optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(loader):
            if total is not None and i >= total:
                break
            if pending == 0:
                group = cfg.accumulate if total is None else min(cfg.accumulate, total - i)
            pending += 1
            sync = pending == group or not isinstance(model, nn.parallel.DistributedDataParallel)
            with contextlib.nullcontext() if sync else model.no_sync():  # type: ignore[operator]
                with self._autocast():
                    out = model(task.move_batch(batch, self.device))
                loss = out.get("loss") if isinstance(out, Mapping) else None
                if not isinstance(loss, Tensor) or loss.ndim != 0 or not loss.requires_grad:
                    raise TypeError(
                        f"{type(task).__name__}.training_step must return a dict whose "
                        f"'loss' is a scalar tensor with a gradient, but got {out!r}."
                    )
                self.scaler.scale(loss / group).backward()
            if pending == group:
                self._optimizer_step(task)
                pending = 0
            parts = {
                k: torch.as_tensor(v, device=self.device).detach().float().reshape(())
                for k, v in out.items()
            }
            for k, v in parts.items():
                sums[k] = sums[k] + v if k in sums else v
            count += 1
            for cb in self.callbacks:
                cb.on_train_batch_end(self, task, parts, i)
            if bar is not None:
                bar.update(1)
            if cfg.log_every and (i + 1) % cfg.log_every == 0:
                running = float(sums["loss"]) / count
                logger.info("epoch %d batch %d: loss %.4g", self.epoch + 1, i + 1, running)
                if bar is not None:
                    bar.set_postfix(loss=f"{running:.4g}")
        if pending:  # a loader without len() ended inside an accumulation group
            self._optimizer_step(task)
        if bar is not None:
            bar.close()
        if count == 0:
            raise InputError(
                "Expected the training loader to yield batches, but it yielded none "
                "(is the training set empty?)."
            )
        keys = sorted(sums)
        totals = torch.stack([*(sums[k] for k in keys), sums["loss"].new_tensor(float(count))])
        totals = totals.double()
        all_reduce_sum_(totals)  # the mean over every rank's batches
        means = {k: float(totals[j] / totals[-1]) for j, k in enumerate(keys)}
        if not math.isfinite(means["loss"]):
            raise FloatingPointError(
                f"The training loss of epoch {self.epoch + 1} is {means['loss']}; "
                "lower trainer.lr or set trainer.grad_clip."
            )
        return means

    def _optimizer_step(self, task: Task) -> None:
        if self.config.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(task.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1

    @torch.no_grad()
    def _validate(self, task: Task, loader: Any) -> dict[str, float]:
        task.eval()
        total = _num_batches(loader, self.config.max_val_batches)
        outputs: list[Mapping[str, Tensor | float]] = []
        for i, batch in enumerate(loader):
            if total is not None and i >= total:
                break
            with self._autocast():
                out = task.validation_step(task.move_batch(batch, self.device))
            outputs.append({k: _to_cpu(v) for k, v in out.items()})
        if not outputs:
            raise InputError(
                "Expected the validation loader to yield batches, but it yielded none "
                "(is the validation set empty?)."
            )
        metrics = {k: float(v) for k, v in task.validation_epoch_end(outputs).items()}
        if world_size() > 1:
            box: list[Any] = [metrics]
            dist.broadcast_object_list(box, src=0)
            metrics = box[0]
        return metrics

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _progress_bar(self, total: int | None) -> Any:
        if not (self.config.progress and is_main_process()):
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        desc = f"epoch {self.epoch + 1}/{self.config.epochs}"
        return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)

    # ------------------------------------------------------------------ state and files

    def _run_config(self) -> dict[str, Any]:
        return {**self.config_dict, "trainer": to_dict(self.config)}

    def _state(self, task: Task, finished: bool) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "config": self._run_config(),
            "epoch": len(self.history),
            "global_step": self.global_step,
            "finished": finished,
            "should_stop": self.should_stop,
            "model": task.state_dict(),
            "best_model": self._best_state,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "early_stopping": self.early_stopping.state_dict(),
            "callbacks": {
                f"{i}:{type(cb).__name__}": cb.state_dict() for i, cb in enumerate(self.callbacks)
            },
            "history": self.history,
            "rng": get_rng_state(),
        }

    def _selected_weights(self, task: Task) -> Mapping[str, Tensor]:
        if self.config.weights == "best" and self._best_state is not None:
            return self._best_state
        return task.state_dict()

    def _save(self, state: Mapping[str, Any], weights_changed: bool) -> None:
        """Write the run folder; ``state.pt`` last, as the commit point of the epoch."""
        if self.run_dir is None or not is_main_process():
            return
        if weights_changed or not (self.run_dir / "weights.pt").exists():
            weights = (
                state["best_model"]
                if self.config.weights == "best" and state["best_model"]
                else state["model"]
            )
            run_id = self.run.run_id if self.run is not None else ""
            atomic_torch_save(stamp_run_id(weights, run_id), self.run_dir / "weights.pt")
        write_csv(self.run_dir / "history.csv", self.history)
        write_json(self.run_dir / "metrics.json", self._metrics())
        atomic_torch_save(dict(state), self.run_dir / "state.pt")

    def _resume(self, task: Task) -> tuple[int, bool]:
        """Restore ``run_dir/state.pt`` if present; return (first epoch to run, finished)."""
        path = None if self.run_dir is None else self.run_dir / "state.pt"
        if path is None or not path.exists():
            return 0, False
        state = safe_load(path)
        if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
            raise InputError(
                f"Expected {path} to be a training state of format {FORMAT_VERSION}; "
                f"use another --out folder or delete {self.run_dir}."
            )
        task.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.early_stopping.load_state_dict(state["early_stopping"])
        for i, cb in enumerate(self.callbacks):
            cb.load_state_dict(state["callbacks"].get(f"{i}:{type(cb).__name__}", {}))
        self.history = [dict(row) for row in state["history"]]
        self.global_step = int(state["global_step"])
        self._best_state = state["best_model"]
        self.should_stop = bool(state["should_stop"])
        set_rng_state(state["rng"])
        self._save(state, weights_changed=True)  # re-derive weights.pt, history.csv, metrics.json
        logger.info("Resumed %s after epoch %d.", self.run_dir, state["epoch"])
        return int(state["epoch"]), bool(state["finished"])

    def _metrics(self) -> dict[str, float]:
        last = self.history[-1]
        best = self.early_stopping.best_epoch
        chosen = self.history[best] if self.config.weights == "best" and best >= 0 else last
        metrics = {k[4:]: v for k, v in chosen.items() if k.startswith("val/")}
        metrics.update({k: v for k, v in last.items() if k.startswith("train/")})
        metrics.update(best_epoch=best + 1, epochs=last["epoch"])
        return metrics

    def _finish(self, task: Task, call_back: bool) -> dict[str, float]:
        if call_back:  # save before loading the best weights into the task
            self._save(self._state(task, finished=True), weights_changed=True)
        task.load_state_dict(self._selected_weights(task))
        metrics = self._metrics()
        if call_back:
            for cb in self.callbacks:
                cb.on_fit_end(self, task, metrics)
        return metrics

    @contextlib.contextmanager
    def _log_to_run_dir(self) -> Iterator[None]:
        """Copy this package's log records to ``run_dir/log.txt`` (rank 0) during ``fit``."""
        if self.run is None or not is_main_process():
            yield
            return
        with self.run.logging("shared.training"):
            yield


def _to_cpu(value: Any) -> Any:
    if not isinstance(value, Tensor):
        return value
    value = value.detach()
    if value.is_floating_point() and value.dtype in (torch.float16, torch.bfloat16):
        value = value.float()
    return value.cpu()
