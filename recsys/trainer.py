"""RecBole ``Trainer`` subclasses: run-folder checkpoints, progress, history, MCLRec's update.

RecBole owns the training loop (``Trainer.fit``: epochs, validation every epoch, early stopping
on the validation metric). :class:`RecTrainer` wraps it without copying it:

* checkpoints are plain state_dicts written atomically into the model's run folder
  (``weights.pt`` = the best epoch's model, ``state.pt`` = everything needed to resume after the
  last complete epoch), both loadable with ``torch.load(weights_only=True)``; RecBole's own
  pickled checkpoints (which hold its ``Config`` and fail to load under torch >= 2.6) are never
  written;
* a progress bar per model and epoch (tqdm, on stderr, off with ``progress=False``);
* one history row per epoch in the suite's vocabulary: ``epoch``, ``train/<loss term>``,
  ``val/<metric>``, ``seconds`` (plus ``train_seconds``, ``valid_seconds``, ``batches``), ``lr``;
* optional masking of each user's earlier items at evaluation (:class:`HistoryMask`; off by
  default, as in the papers).

:class:`MCLRecTrainer` runs MCLRec's alternating update (paper Algorithm 1 as the official code
runs it, methods.md 2.6): per batch, the same two augmented views, then

1. augmenters frozen: minimise the encoder loss, step the encoder's Adam;
2. augmenters trainable: recompute with the updated encoder, minimise the augmenter loss, step
   the augmenters' Adam (lr 1e-3);
3. augmenters frozen: minimise the encoder loss again, step the encoder's Adam.

So the encoder takes two steps per batch and the augmenters one. With ``joint`` set (MCLRec-J),
RecBole's own single-optimizer epoch runs the model's joint loss over every parameter.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from recbole.trainer import Trainer
from torch import Tensor, nn
from torch.nn.utils import clip_grad_norm_
from tqdm.auto import tqdm

from recsys._recbole import recbole_scope
from recsys.models import MIN_CONTRAST_BATCH, MCLRec
from shared.errors import InputError
from shared.io import atomic_torch_save, write_csv
from shared.training.checkpoint import (
    FORMAT_VERSION,
    get_rng_state,
    load_weights,
    safe_load,
    set_rng_state,
)
from shared.training.run import stamp_run_id

logger = logging.getLogger(__name__)

__all__ = ["HistoryMask", "MCLRecTrainer", "RecTrainer"]


class HistoryMask:
    """Each user's items before the evaluation target, to exclude them from the ranking.

    Built from RecBole's split data sets (time-ordered leave-one-out): at validation a user's
    history is every item of their training examples; at test it also holds the validation
    target. The target itself is never masked (a repeated purchase still counts).

    Args:
        train_dataset: The training split (``item_id``, ``item_id_list``, ``item_length``).
        valid_dataset: The validation split.
        uid_field: RecBole's user field.
        iid_field: RecBole's item field.
        n_users: Number of user ids (including the padding id 0).
    """

    def __init__(
        self,
        train_dataset: Any,
        valid_dataset: Any,
        *,
        uid_field: str,
        iid_field: str,
        n_users: int,
    ) -> None:
        seq_field = iid_field + "_list"
        train = train_dataset.inter_feat
        uids = train[uid_field]
        items = train[iid_field]
        first = train["item_length"] == 1
        uids = torch.cat([uids, train[uid_field][first]])
        items = torch.cat([items, train[seq_field][first, 0]])
        valid = valid_dataset.inter_feat
        self._phases = {
            "valid": self._csr(uids, items, n_users),
            "test": self._csr(
                torch.cat([uids, valid[uid_field]]), torch.cat([items, valid[iid_field]]), n_users
            ),
        }

    @staticmethod
    def _csr(uids: Tensor, items: Tensor, n_users: int) -> tuple[Tensor, Tensor]:
        pairs = torch.unique(torch.stack([uids, items]), dim=1)
        counts = torch.bincount(pairs[0], minlength=n_users)
        indptr = torch.zeros(n_users + 1, dtype=torch.long)
        indptr[1:] = counts.cumsum(0)
        return indptr, pairs[1].contiguous()

    def items(self, uids: Tensor, phase: str) -> tuple[Tensor, Tensor]:
        """Row and item indices of the history of each user in ``uids``.

        Args:
            uids: Shape: (B,), long.
            phase: ``"valid"`` or ``"test"``.

        Returns:
            ``(rows, items)``, both of shape (K,): row ``rows[k]`` of the batch has
            ``items[k]`` in its history.
        """
        indptr, indices = self._phases[phase]
        uids = uids.cpu()
        starts = indptr[uids]
        counts = indptr[uids + 1] - starts
        rows = torch.repeat_interleave(torch.arange(len(uids)), counts)
        offsets = torch.arange(int(counts.sum())) - torch.repeat_interleave(
            counts.cumsum(0) - counts, counts
        )
        return rows, indices[torch.repeat_interleave(starts, counts) + offsets]

    def apply(self, scores: Tensor, uids: Tensor, targets: Tensor, phase: str) -> Tensor:
        """Set the scores of history items to -inf in place, except each row's target.

        Args:
            scores: Shape: (B, N_items), float.
            uids: Shape: (B,), long.
            targets: Shape: (B,), long.
            phase: ``"valid"`` or ``"test"``.

        Returns:
            ``scores``.
        """
        rows, items = self.items(uids, phase)
        rows, items = rows.to(scores.device), items.to(scores.device)
        batch = torch.arange(scores.shape[0], device=scores.device)
        kept = scores[batch, targets].clone()
        scores[rows, items] = -math.inf
        scores[batch, targets] = kept
        return scores


class _Progress:
    """Iterates a RecBole loader with a tqdm bar and an optional batch limit."""

    def __init__(self, loader: Any, desc: str, enabled: bool, limit: int | None) -> None:
        self.loader = loader
        self.desc = desc
        self.enabled = enabled
        self.limit = limit
        self.bar: Any = None

    def __len__(self) -> int:
        n = len(self.loader)
        return n if self.limit is None else min(n, self.limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator[Any]:
        total = len(self)
        self.bar = tqdm(
            total=total,
            desc=self.desc,
            disable=not self.enabled,
            leave=False,
            dynamic_ncols=True,
            unit="batch",
        )
        try:
            for i, batch in enumerate(self.loader):
                if i >= total:
                    break
                yield batch
                self.bar.update(1)
        finally:
            self.bar.close()


def _set_requires_grad(params: Iterator[nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


class RecTrainer(Trainer):
    """RecBole's ``Trainer`` with safe checkpoints, resume, progress, history and history masking.

    Args:
        config: RecBole config (``checkpoint_dir`` should be ``run_dir``).
        model: The RecBole model.
        run_dir: The model's run folder (``weights.pt``, ``state.pt``, ``history.csv``).
        label: Name shown in progress bars and logs.
        progress: Show tqdm bars.
        history_mask: Mask each user's earlier items at evaluation (None: do not).
        max_batches: Train on at most this many batches per epoch (smoke runs, benchmarks).
        run_id: The id of the run folder (:class:`shared.training.run.RunFolder`) this
            training belongs to: stamped into ``weights.pt`` and ``state.pt``, and a
            ``state.pt`` of another run is refused. None: not checked.
    """

    def __init__(
        self,
        config: Any,
        model: nn.Module,
        *,
        run_dir: str | Path,
        label: str | None = None,
        progress: bool = True,
        history_mask: HistoryMask | None = None,
        max_batches: int | None = None,
        run_id: str | None = None,
    ) -> None:
        self.run_id = run_id
        with recbole_scope():
            super().__init__(config, model)
        self.logger = logging.getLogger("recsys.trainer")
        self.run_dir = Path(run_dir)
        self.label = label or config["model"]
        self.progress = progress
        self.history_mask = history_mask
        self.max_batches = max_batches
        self.history: list[dict[str, Any]] = []
        self.best_epoch = -1
        self.finished = False
        self.stopped_early = False
        self._best_state: dict[str, Tensor] | None = None
        self._validating = False
        self._phase = "test"
        self._terms: dict[str, float] = defaultdict(float)
        self._batches = 0
        self._train_seconds = 0.0
        self._valid_seconds = 0.0
        self._train_loader: Any = None
        self._last_valid: dict[str, float] = {}
        self._eval_uids: list[Tensor] = []
        #: ``(user ids, positions)`` of the last :meth:`evaluate`: each user's internal id and
        #: the 1-based position of its target in the top-K list (0 = not in it); see
        #: :mod:`recsys.stats`.
        self.last_per_user: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ optimisers

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer whose state must survive a resume, by name."""
        return {"optimizer": self.optimizer}

    # ------------------------------------------------------------------ training epoch

    def _record(self, terms: Mapping[str, Any]) -> None:
        for key, value in terms.items():
            self._terms[key] += float(value.detach()) if isinstance(value, Tensor) else float(value)
        self._batches += 1

    def _loss_and_record(self, interaction: Any) -> Tensor:
        model: Any = self.model
        if hasattr(model, "training_terms"):
            terms = model.training_terms(interaction)
        else:
            terms = {"loss": model.calculate_loss(interaction)}
        self._record(terms)
        return terms["loss"]

    def _progress(self, train_data: Any, epoch_idx: int) -> _Progress:
        desc = f"{self.label} epoch {epoch_idx + 1}/{self.epochs}"
        return _Progress(train_data, desc, self.progress, self.max_batches)

    def _train_epoch(
        self, train_data: Any, epoch_idx: int, loss_func: Any = None, show_progress: bool = False
    ) -> Any:
        self._terms = defaultdict(float)
        self._batches = 0
        start = time.perf_counter()
        with recbole_scope():
            total = super()._train_epoch(
                self._progress(train_data, epoch_idx),
                epoch_idx,
                loss_func=loss_func or self._loss_and_record,
                show_progress=False,
            )
        self._train_seconds = time.perf_counter() - start
        return total

    def _check_nan(self, loss: Tensor) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.label}: the training loss is {float(loss)}.")

    # ------------------------------------------------------------------ evaluation

    def _valid_epoch(self, valid_data: Any, show_progress: bool = False) -> tuple[float, dict]:
        start = time.perf_counter()
        self._validating = True  # RecBole's _valid_epoch calls self.evaluate without a phase
        try:
            score, result = super()._valid_epoch(valid_data, show_progress=False)
        finally:
            self._validating = False
        self._valid_seconds = time.perf_counter() - start
        self._last_valid = {k: float(v) for k, v in result.items()}
        return score, result

    def _full_sort_batch_eval(self, batched_data: Any) -> Any:
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        model: Any = self.model
        self._eval_uids.append(interaction[model.USER_ID].detach().cpu())
        if self.history_mask is not None:
            self.history_mask.apply(
                scores,
                interaction[model.USER_ID],
                interaction[model.ITEM_ID].to(scores.device),
                self._phase,
            )
        return interaction, scores, positive_u, positive_i

    def evaluate(
        self,
        eval_data: Any,
        load_best_model: bool = True,
        model_file: Any = None,
        show_progress: bool = False,
        phase: str | None = None,
    ) -> Any:
        """RecBole's evaluation; the best weights come from our state_dict, never a pickle.

        Args:
            eval_data: A RecBole full-sort evaluation loader.
            load_best_model: Load the best epoch's weights first.
            model_file: A ``weights.pt`` to load instead of the best weights.
            show_progress: Ignored (evaluation is quick).
            phase: ``"valid"`` or ``"test"`` (which history to mask); default: ``"test"``
                (``"valid"`` inside the training loop's validation).

        Returns:
            ``{"hit@10": x, ...}`` (RecBole's metric names, lower case).
        """
        if load_best_model or model_file is not None:
            self.load_best(model_file)
        if phase is None:
            phase = "valid" if self._validating else "test"
        if phase not in ("valid", "test"):
            raise ValueError(f"Expected phase 'valid' or 'test', but got {phase!r}.")
        self._phase = phase
        self._eval_uids = []
        captured: dict[str, Any] = {}
        evaluator = self.evaluator
        original = evaluator.evaluate

        def capture(struct: Any) -> Any:
            captured["topk"] = struct.get("rec.topk")
            return original(struct)

        evaluator.evaluate = capture
        try:
            with recbole_scope():
                result = super().evaluate(eval_data, load_best_model=False, show_progress=False)
        finally:
            del evaluator.evaluate  # back to the class's method
        self.last_per_user = self._positions(captured.get("topk"))
        return result

    def _positions(self, topk: Tensor | None) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-user target positions from RecBole's ``rec.topk`` (hit flags + #positives)."""
        if topk is None or not self._eval_uids:
            return None
        hits = topk[:, :-1].numpy() > 0
        positions = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
        uids = torch.cat(self._eval_uids).numpy()
        if len(uids) != len(positions):
            return None
        return uids, positions

    # ------------------------------------------------------------------ checkpoints

    def _state_dict_cpu(self) -> dict[str, Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def _save_checkpoint(self, epoch: int, verbose: bool = True, **kwargs: Any) -> None:
        """Called by ``fit`` when the validation metric improves: keep the best weights."""
        self._best_state = self._state_dict_cpu()
        self.best_epoch = epoch
        state = self._best_state
        if self.run_id is not None:
            state = stamp_run_id(state, self.run_id)
        atomic_torch_save(state, self.run_dir / "weights.pt")

    def load_best(self, path: str | Path | None = None) -> None:
        """Load the best epoch's weights (or those in ``path``) into the model.

        Raises:
            InputError: If the file is missing, does not fit the model, or (with a ``run_id``)
                was written by another run.
        """
        if path is None and self._best_state is not None:
            self.model.load_state_dict(self._best_state)
            return
        load_weights(path or self.run_dir / "weights.pt", self.model, run_id=self.run_id)

    def _epoch_end(self, epoch_idx: int, valid_score: float) -> None:
        """``fit``'s per-epoch callback: history row, then the resumable state."""
        row: dict[str, Any] = {"epoch": epoch_idx + 1, "batches": self._batches}
        for key, value in self._terms.items():
            row[f"train/{key}"] = value / max(self._batches, 1)
        for key, value in self._last_valid.items():
            row[f"val/{key}"] = float(value)
        row["seconds"] = round(self._train_seconds + self._valid_seconds, 3)
        row["train_seconds"] = round(self._train_seconds, 3)
        row["valid_seconds"] = round(self._valid_seconds, 3)
        row["lr"] = float(self.optimizer.param_groups[0]["lr"])
        self.history.append(row)
        self.stopped_early = int(getattr(self, "cur_step", 0)) > self.stopping_step
        self.start_epoch = epoch_idx + 1
        self.finished = self.stopped_early or self.start_epoch >= self.epochs
        write_csv(self.run_dir / "history.csv", self.history)
        self.save_state()
        self.logger.info(
            "%s epoch %d/%d: loss %.4f, valid %s %.4f%s (train %.1f s, eval %.1f s)",
            self.label,
            epoch_idx + 1,
            self.epochs,
            row.get("train/loss", float("nan")),
            self.valid_metric,
            valid_score,
            " *" if self.best_epoch == epoch_idx else "",
            self._train_seconds,
            self._valid_seconds,
        )

    def save_state(self) -> None:
        """Write ``state.pt``: model, optimizers, early stopping, history, RNG states."""
        loader = self._train_loader
        state = {
            "format_version": FORMAT_VERSION,
            "run_id": self.run_id,
            "epoch": self.start_epoch,
            "stopped_early": self.stopped_early,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "best_valid_result": {k: float(v) for k, v in (self.best_valid_result or {}).items()},
            "best_epoch": self.best_epoch,
            "model": self._state_dict_cpu(),
            "best_model": self._best_state,
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers().items()},
            "history": self.history,
            "rng": get_rng_state(),
            "loader_rng": loader.generator.get_state() if loader is not None else None,
        }
        atomic_torch_save(state, self.run_dir / "state.pt")

    def load_state(self, train_data: Any) -> bool:
        """Restore ``state.pt`` if the run folder holds one.

        Returns:
            Whether a state was restored.
        """
        path = self.run_dir / "state.pt"
        if not path.exists():
            return False
        state = safe_load(path)
        if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{path}: not a recsys training state of format {FORMAT_VERSION}.")
        if self.run_id is not None and state.get("run_id") != self.run_id:
            raise InputError(
                f"{path} belongs to another run (id {state.get('run_id')}), not to the run in "
                f"{self.run_dir.parent} (id {self.run_id}); copy whole run folders only."
            )
        self.model.load_state_dict(state["model"])
        for name, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])
        self.start_epoch = int(state["epoch"])
        self.stopped_early = bool(state["stopped_early"])
        self.finished = self.stopped_early or self.start_epoch >= self.epochs
        self.cur_step = int(state["cur_step"])
        self.best_valid_score = float(state["best_valid_score"])
        self.best_valid_result = dict(state["best_valid_result"]) or None
        self.best_epoch = int(state["best_epoch"])
        self._best_state = state["best_model"]
        self.history = list(state["history"])
        set_rng_state(state["rng"])
        if state["loader_rng"] is not None:
            train_data.generator.set_state(state["loader_rng"])
        self.logger.info(
            "%s: resuming after epoch %d (best epoch %d)",
            self.label,
            self.start_epoch,
            self.best_epoch + 1,
        )
        return True

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        train_data: Any,
        valid_data: Any = None,
        verbose: bool = False,
        saved: bool = True,
        show_progress: bool = False,
        callback_fn: Any = None,
    ) -> tuple[float, Any]:
        """Train with RecBole's loop, resuming from ``state.pt`` when the run folder has one.

        Returns:
            ``(best_valid_score, best_valid_result)``.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._train_loader = train_data
        self.load_state(train_data)
        if self.finished:
            return self.best_valid_score, self.best_valid_result

        def callback(epoch_idx: int, valid_score: float) -> None:
            self._epoch_end(epoch_idx, valid_score)
            if callback_fn is not None:
                callback_fn(epoch_idx, valid_score)

        with recbole_scope():
            result = super().fit(
                train_data,
                valid_data,
                verbose=verbose,
                saved=saved,
                show_progress=False,
                callback_fn=callback,
            )
        self.finished = True
        return result

    @property
    def epochs_run(self) -> int:
        """Completed training epochs."""
        return len(self.history)

    def total_train_seconds(self) -> float:
        """Seconds spent in training epochs (evaluation excluded)."""
        return float(np.sum([row["train_seconds"] for row in self.history]))


class MCLRecTrainer(RecTrainer):
    """MCLRec's alternating update (see the module docstring); ``joint`` -> MCLRec-J.

    Args:
        config: RecBole config; ``joint`` (bool) and ``augmenter_lr`` (float, default: the
            learning rate) are read from it.
        model: An :class:`~recsys.models.MCLRec`.
        **kwargs: As :class:`RecTrainer`.
    """

    def __init__(self, config: Any, model: MCLRec, **kwargs: Any) -> None:
        if not isinstance(model, MCLRec):
            raise TypeError(f"Expected an MCLRec model, but got {type(model).__name__}.")
        self.joint = bool(config["joint"])
        super().__init__(config, model, **kwargs)
        # Same learner (Adam) and weight decay as the encoder's, as in the official Trainer.
        self.augmenter_optimizer = self._build_optimizer(
            params=model.augmenter_parameters(),
            learning_rate=config["augmenter_lr"] or config["learning_rate"],
        )

    def _build_optimizer(self, **kwargs: Any) -> torch.optim.Optimizer:
        if "params" not in kwargs:
            model: Any = self.model
            kwargs["params"] = model.parameters() if self.joint else model.encoder_parameters()
        return super()._build_optimizer(**kwargs)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The encoder's and the augmenters' optimizers."""
        return {"optimizer": self.optimizer, "augmenter_optimizer": self.augmenter_optimizer}

    def _backward_step(self, loss: Tensor, optimizer: torch.optim.Optimizer, params: Any) -> None:
        self._check_nan(loss)
        loss.backward()
        if self.clip_grad_norm:
            clip_grad_norm_(list(params), **self.clip_grad_norm)
        optimizer.step()

    def train_step(self, interaction: Any) -> dict[str, float]:
        """One batch of the alternating update (three steps on the same two views).

        The augmenter step does not change the encoder, so the encoder's forward pass over the
        input and the two views after step 1 serves both step 2 (detached: the augmenters'
        loss and gradients are those of a ``no_grad`` re-run) and step 3 (with the augmenters
        updated by step 2). That is the official schedule with one forward pass of the views
        fewer (:meth:`train_step_reference`); with dropout on, steps 2 and 3 share their
        dropout masks instead of drawing their own (the same law for each step).

        Args:
            interaction: A RecBole batch on the model's device.

        Returns:
            The named losses of steps 1 (``loss``, ``loss/rec``, ...), 2 (``augmenter/...``).
        """
        model: Any = self.model
        if model.recommendation_only:
            return self.train_step_reference(interaction)
        views = model.make_views(interaction)
        augmenters = model.augmenter_parameters
        # step 1: encoder, augmenters frozen
        _set_requires_grad(augmenters(), False)
        self.optimizer.zero_grad()
        terms = model.encoder_loss(interaction, *model.encode_batch(interaction, views))
        self._backward_step(terms["loss"], self.optimizer, model.encoder_parameters())
        record = {k: float(v.detach()) for k, v in terms.items()}
        h, h1, h2 = model.encode_batch(interaction, views)  # the updated encoder, once
        # step 2: augmenters on the detached views (skipped for a batch of one row)
        if len(views.len1) >= MIN_CONTRAST_BATCH:
            _set_requires_grad(augmenters(), True)
            self.augmenter_optimizer.zero_grad()
            terms = model.augmenter_loss(h1.detach(), h2.detach())
            self._backward_step(terms["loss"], self.augmenter_optimizer, augmenters())
            record.update({f"augmenter/{k}": float(v.detach()) for k, v in terms.items()})
            _set_requires_grad(augmenters(), False)
        # step 3: encoder again, with the updated augmenters frozen
        self.optimizer.zero_grad()
        terms = model.encoder_loss(interaction, h, h1, h2)
        self._backward_step(terms["loss"], self.optimizer, model.encoder_parameters())
        _set_requires_grad(augmenters(), True)
        return record

    def train_step_reference(self, interaction: Any) -> dict[str, float]:
        """One batch of the alternating update written as the official Trainer runs it.

        Three forward passes: the encoder step, the augmenter step (the updated encoder re-run
        under ``no_grad``), the encoder step again. :meth:`train_step` computes the same thing
        with one encoder forward less (tested equal with dropout off).

        Args:
            interaction: A RecBole batch on the model's device.

        Returns:
            The named losses of steps 1 (``loss``, ``loss/rec``, ...), 2 (``augmenter/...``).
        """
        model: Any = self.model
        if model.recommendation_only:  # SASRec2Step: two steps on L_rec, augmenters unused
            first: dict[str, float] = {}
            for _ in range(2):
                self.optimizer.zero_grad()
                terms = model.loss_terms(interaction, None, "encoder")
                self._backward_step(terms["loss"], self.optimizer, model.encoder_parameters())
                first = first or {k: float(v.detach()) for k, v in terms.items()}
            return first
        views = model.make_views(interaction)
        record: dict[str, float] = {}
        # step 1: encoder, augmenters frozen
        _set_requires_grad(model.augmenter_parameters(), False)
        self.optimizer.zero_grad()
        terms = model.loss_terms(interaction, views, "encoder")
        self._backward_step(terms["loss"], self.optimizer, model.encoder_parameters())
        record.update({k: float(v.detach()) for k, v in terms.items()})
        # step 2: augmenters, with the updated encoder (skipped for a batch of one row: the
        # augmenter loss has no term that depends on them then)
        _set_requires_grad(model.augmenter_parameters(), True)
        if len(views.len1) >= MIN_CONTRAST_BATCH:
            self.augmenter_optimizer.zero_grad()
            terms = model.loss_terms(interaction, views, "augmenter")
            self._backward_step(
                terms["loss"], self.augmenter_optimizer, model.augmenter_parameters()
            )
            record.update({f"augmenter/{k}": float(v.detach()) for k, v in terms.items()})
        # step 3: encoder again, augmenters frozen
        _set_requires_grad(model.augmenter_parameters(), False)
        self.optimizer.zero_grad()
        terms = model.loss_terms(interaction, views, "encoder")
        self._backward_step(terms["loss"], self.optimizer, model.encoder_parameters())
        _set_requires_grad(model.augmenter_parameters(), True)
        return record

    def _train_epoch(
        self, train_data: Any, epoch_idx: int, loss_func: Any = None, show_progress: bool = False
    ) -> Any:
        if self.joint:
            return super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        self.model.train()
        self._terms = defaultdict(float)
        self._batches = 0
        start = time.perf_counter()
        total = 0.0
        for interaction in self._progress(train_data, epoch_idx):
            record = self.train_step(interaction.to(self.device))
            self._record(record)
            total += record["loss"]
        self._train_seconds = time.perf_counter() - start
        return total
