"""What an evaluation produces: training runs and models over seeds, with their JSON entries.

:class:`ModelResult` is one training run (a model, seed and dropout); :class:`ModelSummary` one
model over its seeds at the dropout selected on validation.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsys.stats import mean_std
from shared.io import read_json

__all__ = ["ModelResult", "ModelSummary", "select_dropout"]


@dataclass
class ModelResult:
    """One training run (one model, seed and dropout).

    Attributes:
        name: The model name.
        test: Test metrics (``hit@10`` ...).
        valid: Best validation metrics.
        train_seconds: Seconds of training (evaluation excluded).
        epochs: Epochs trained.
        params: Number of parameters.
        best_epoch: The selected epoch (1-based).
        eval_seconds: Mean seconds of one validation pass.
        test_seconds: Seconds of the test pass.
        seed: The seed.
        dropout: The dropout (None: the model's own default).
        history: One row per epoch.
        users: Test users' ids (tokens of the data set). Shape: (U,).
        positions: Position of each user's target in the top-K list (0 = not in it). Shape: (U,).
    """

    name: str
    test: dict[str, float]
    valid: dict[str, float]
    train_seconds: float
    epochs: int
    params: int
    best_epoch: int
    eval_seconds: float
    test_seconds: float
    seed: int = 2020
    dropout: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    users: np.ndarray | None = None
    positions: np.ndarray | None = None

    def contract(self) -> dict[str, Any]:
        """The ``results.json`` entry."""
        return {
            "test": dict(self.test),
            "valid": dict(self.valid),
            "train_seconds": round(self.train_seconds, 3),
            "epochs": self.epochs,
            "params": self.params,
        }

    @classmethod
    def load(cls, folder: Path, name: str, *, seed: int, dropout: float | None) -> ModelResult:
        """A finished run from its folder (``metrics.json``, ``history.csv``, per-user file).

        Args:
            folder: The run's folder (``RUN/<model>/seed2021_dropout0.5``).
            name: The model name.
            seed: The run's seed.
            dropout: The run's dropout (None: the model's default).
        """
        data = read_json(folder / "metrics.json")
        users, positions = _read_per_user(folder / "per_user_test.csv")
        return cls(
            name,
            data["test"],
            data["valid"],
            data["train_seconds"],
            data["epochs"],
            data["params"],
            data["best_epoch"],
            data["eval_seconds"],
            data["test_seconds"],
            seed=seed,
            dropout=dropout,
            history=_read_history(folder / "history.csv"),
            users=users,
            positions=positions,
        )

    def summary(self) -> dict[str, Any]:
        """The run folder's ``metrics.json``."""
        out = self.contract()
        epoch_seconds = self.train_seconds / self.epochs if self.epochs else 0.0
        out.update(
            best_epoch=self.best_epoch,
            epoch_seconds=round(epoch_seconds, 3),
            eval_seconds=round(self.eval_seconds, 3),
            test_seconds=round(self.test_seconds, 3),
            seed=self.seed,
            dropout=self.dropout,
        )
        return out


@dataclass
class ModelSummary:
    """One model over its seeds, at the dropout selected on validation.

    Attributes:
        name: The model name.
        runs: The selected variant's run per seed, in seed order.
        dropout: The selected dropout (None: no grid, the default).
        selection: ``{dropout: mean validation metric}`` over the grid (empty without one).
        ran_as: What actually ran (:attr:`ModelSpec.ran_as`).
    """

    name: str
    runs: dict[int, ModelResult]
    dropout: float | None = None
    selection: dict[float, float] = field(default_factory=dict)
    ran_as: str = ""

    def _mean(self, attr: str) -> dict[str, float]:
        keys = getattr(next(iter(self.runs.values())), attr).keys()
        return {k: mean_std([getattr(r, attr)[k] for r in self.runs.values()])[0] for k in keys}

    @property
    def test(self) -> dict[str, float]:
        """Test metrics, mean over the seeds."""
        return self._mean("test")

    @property
    def test_std(self) -> dict[str, float]:
        """Sample standard deviation of the test metrics over the seeds (0 for one seed)."""
        keys = next(iter(self.runs.values())).test.keys()
        return {k: mean_std([r.test[k] for r in self.runs.values()])[1] for k in keys}

    @property
    def valid(self) -> dict[str, float]:
        """Best validation metrics, mean over the seeds."""
        return self._mean("valid")

    @property
    def epochs(self) -> int:
        """Epochs trained, mean over the seeds (rounded)."""
        return round(float(np.mean([r.epochs for r in self.runs.values()])))

    @property
    def params(self) -> int:
        """Number of parameters."""
        return next(iter(self.runs.values())).params

    @property
    def train_seconds(self) -> float:
        """Training seconds, mean over the seeds."""
        return float(np.mean([r.train_seconds for r in self.runs.values()]))

    @property
    def best_epoch(self) -> int:
        """The first seed's selected epoch."""
        return next(iter(self.runs.values())).best_epoch

    @property
    def history(self) -> list[dict[str, Any]]:
        """The first seed's epochs."""
        return next(iter(self.runs.values())).history

    def per_user(self, metric: str = "ndcg@10") -> dict[str, float]:
        """``{user: metric}`` averaged over the seeds (users present in every seed's test)."""
        from recsys.stats import per_user_metric

        tables = []
        for run in self.runs.values():
            if run.users is None or run.positions is None:
                return {}
            values = per_user_metric(run.positions, metric)
            tables.append(dict(zip(run.users.tolist(), values.tolist())))
        users = set(tables[0]).intersection(*tables[1:])
        return {u: float(np.mean([t[u] for t in tables])) for u in users}

    def summary(self) -> dict[str, Any]:
        """Timing and selection, averaged over the seeds."""
        runs = list(self.runs.values())
        seconds = sum(r.train_seconds for r in runs)
        epochs = sum(r.epochs for r in runs)
        return {
            "epoch_seconds": round(seconds / epochs, 3) if epochs else 0.0,
            "eval_seconds": round(float(np.mean([r.eval_seconds for r in runs])), 3),
            "best_epoch": self.best_epoch,
        }

    def contract(self) -> dict[str, Any]:
        """The ``results.json`` entry: contract keys; ``test_std`` and ``seeds`` with several."""
        out: dict[str, Any] = {
            "test": self.test,
            "valid": self.valid,
            "train_seconds": round(self.train_seconds, 3),
            "epochs": self.epochs,
            "params": self.params,
        }
        if len(self.runs) > 1:
            out["test_std"] = self.test_std
            out["seeds"] = {
                str(seed): {"test": dict(r.test), "valid": dict(r.valid), "epochs": r.epochs}
                for seed, r in self.runs.items()
            }
        if self.selection:
            out["dropout"] = self.dropout
            out["dropout_selection"] = {f"{d:g}": v for d, v in self.selection.items()}
        return out


def select_dropout(
    name: str, results: Sequence[ModelResult], metric: str = "ndcg@10", *, ran_as: str = ""
) -> ModelSummary:
    """One model over its seeds at the dropout with the best mean validation ``metric``.

    Args:
        name: The model name.
        results: Its finished runs (every seed and dropout).
        metric: The validation metric that selects (ties: the dropout met first).
        ran_as: What ran (:attr:`ModelSummary.ran_as`).
    """
    by_dropout: dict[float | None, list[ModelResult]] = {}
    for r in results:
        by_dropout.setdefault(r.dropout, []).append(r)
    selection = {
        d: float(np.mean([r.valid.get(metric, float("nan")) for r in rs]))
        for d, rs in by_dropout.items()
    }
    best = max(selection, key=lambda d: (selection[d], -list(selection).index(d)))
    return ModelSummary(
        name,
        {r.seed: r for r in by_dropout[best]},
        dropout=best,
        selection={d: v for d, v in selection.items() if d is not None},
        ran_as=ran_as,
    )


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        parsed: dict[str, Any] = {}
        for key, value in row.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                parsed[key] = value
                continue
            parsed[key] = int(number) if key in ("epoch", "batches") else number
        out.append(parsed)
    return out


def _read_per_user(path: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not path.exists():
        return None, None
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    users = np.array([row["user"] for row in rows], dtype=object)
    return users, np.array([int(row["position"]) for row in rows], dtype=np.int64)


def _metrics(result: Mapping[str, Any] | None) -> dict[str, float]:
    return {str(k).lower(): float(v) for k, v in (result or {}).items()}
