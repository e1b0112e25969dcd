"""The loaded data set as the training stages need it, its folds, and its batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from medical.ecg.config import DataConfig, ModelConfig
from medical.ecg.losses import class_counts_pos_weight
from shared.config import ConfigError
from shared.errors import InputError

__all__ = [
    "TEST_FOLDS",
    "TRAIN_FOLDS",
    "VAL_FOLDS",
    "ECGArrays",
    "branch_label_index",
    "load_data",
    "make_loader",
    "val_loader",
]


@dataclass
class ECGArrays:
    """The loaded data set, as the training code needs it.

    Attributes:
        signals: Shape: (N, leads, T), float32 (a memory map is fine).
        labels: Multi-hot labels of the label set. Shape: (N, C).
        label_names: The ``C`` statement codes, in column order.
        ecg_ids: Shape: (N,), int.
        folds: ``strat_fold`` (1-10). Shape: (N,), int.
        sampling_rate: Hz.
        groups: Branch name -> statement codes of the branch grouping (rhythm, morphology,
            global).
        dataset: The :class:`~medical.ecg.data.PTBXL` set it came from (metadata,
            descriptions, signals in mV), or ``None``.
        fingerprint: Content hash of the data set (``PTBXL.fingerprint``); ``""`` if unknown.
    """

    signals: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    ecg_ids: np.ndarray
    folds: np.ndarray
    sampling_rate: int
    groups: dict[str, list[str]]
    dataset: Any = None
    fingerprint: str = ""

    def rows(self, folds: Sequence[int]) -> np.ndarray:
        """Row indices of the ECGs in ``folds``."""
        return np.flatnonzero(np.isin(self.folds, list(folds)))

    def row_of(self, ecg_id: int) -> int:
        """Row of ``ecg_id``.

        Raises:
            InputError: If the data set has no such ECG.
        """
        hits = np.flatnonzero(self.ecg_ids == int(ecg_id))
        if len(hits) == 0:
            raise InputError(
                f"Expected --ecg-id {ecg_id} to be an ecg_id of the data set "
                f"({len(self.ecg_ids)} records, ecg_id {int(self.ecg_ids.min())}.."
                f"{int(self.ecg_ids.max())}), but it is not."
            )
        return int(hits[0])


TRAIN_FOLDS = tuple(range(1, 9))
VAL_FOLDS = (9,)
TEST_FOLDS = (10,)


def load_data(cfg: DataConfig, *, progress: bool = True) -> ECGArrays:
    """Read a PTB-XL folder with :func:`medical.ecg.data.load_ptbxl` (cached).

    Args:
        cfg: The data settings.
        progress: Show the progress bar of a first (uncached) read.

    Returns:
        The data set.

    Raises:
        InputError: On a missing or invalid data folder (from the reader).
    """
    from medical.ecg.data import BRANCH_CODES, load_ptbxl

    if not cfg.data_dir:
        raise InputError("Expected a PTB-XL folder (--data-dir DIR), but none was given.")
    ds = load_ptbxl(
        cfg.data_dir,
        sampling_rate=cfg.sampling_rate,
        label_set=cfg.label_set,
        highpass=cfg.remove_baseline,
        standardize=cfg.standardize,
        cache=cfg.cache,
        cache_dir=cfg.cache_dir or None,
        progress=progress,
    )
    return ECGArrays(
        signals=ds.signals,
        labels=np.asarray(ds.labels, dtype=np.float32),
        label_names=[str(n) for n in ds.label_names],
        ecg_ids=np.asarray(ds.ecg_ids, dtype=np.int64),
        folds=np.asarray(ds.folds, dtype=np.int64),
        sampling_rate=int(ds.sampling_rate),
        groups={k: list(v) for k, v in BRANCH_CODES.items()},
        dataset=ds,
        fingerprint=ds.fingerprint,
    )


class _Rows(Dataset[tuple[Tensor, Tensor, Tensor]]):
    """``(signal, labels, row)`` of the given rows."""

    def __init__(self, data: ECGArrays, rows: np.ndarray) -> None:
        self.data, self.rows_ = data, rows

    def __len__(self) -> int:
        return len(self.rows_)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        r = int(self.rows_[i])
        x = torch.from_numpy(np.array(self.data.signals[r], dtype=np.float32))
        y = torch.from_numpy(np.asarray(self.data.labels[r], dtype=np.float32))
        return x, y, torch.tensor(r)


def make_loader(
    data: ECGArrays, rows: np.ndarray, batch_size: int, *, shuffle: bool, sampler: Any = None
) -> DataLoader[Any]:
    """Batches ``(signals (B, leads, T), labels (B, C), rows (B,))`` of the given rows."""
    return DataLoader(
        _Rows(data, rows),
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=0,
    )


def val_loader(
    data: ECGArrays, rows: np.ndarray, cfg: DataConfig, label_index: Tensor | None
) -> DataLoader[Any]:
    """Fold-9 batches: every ECG once (``full``) or the official weighted sampler."""
    if cfg.val_sampling == "full" or label_index is None:
        return make_loader(data, rows, cfg.batch_size, shuffle=False)
    # The official fold-9 loader: weight of an ECG = sum over its labels of the class weights;
    # ECGs without a label of this branch get 0 and are never drawn (with replacement).
    y = torch.as_tensor(np.asarray(data.labels[rows]))[:, label_index]
    class_w = class_counts_pos_weight(y, "label_instances")
    assert class_w is not None
    weights = (y * class_w).sum(dim=1).double()
    if not bool((weights > 0).any()):
        return make_loader(data, rows, cfg.batch_size, shuffle=False)
    sampler = WeightedRandomSampler(weights.tolist(), num_samples=len(rows), replacement=True)
    return make_loader(data, rows, cfg.batch_size, shuffle=False, sampler=sampler)


def branch_label_index(data: ECGArrays, cfg: ModelConfig, label_set: str) -> dict[str, list[int]]:
    """Columns of each branch's classes in the label set.

    Args:
        data: The data set (its ``label_names`` and ``groups``).
        cfg: The model config (``branches``, ``branch_labels``).
        label_set: The data's label set.

    Returns:
        Branch name -> column indices (in the label set's column order).

    Raises:
        ConfigError: If ``grouped`` is asked for another label set than ``all``, or a branch
            would have no class.
    """
    mode = cfg.branch_labels
    if mode == "auto":
        mode = "grouped" if label_set == "all" else "shared"
    if mode == "grouped" and label_set != "all":
        raise ConfigError(
            f"`model.branch_labels=grouped` needs `data.label_set=all`, but got {label_set!r}; "
            "use model.branch_labels=shared."
        )
    out: dict[str, list[int]] = {}
    col = {n: i for i, n in enumerate(data.label_names)}
    for name in cfg.branches:
        if mode == "shared":
            out[name] = list(range(len(data.label_names)))
            continue
        codes = data.groups.get(name, [])
        out[name] = [col[c] for c in codes if c in col]
        if not out[name]:
            raise ConfigError(
                f"Branch {name!r} has no statement in the label set; drop it from model.branches."
            )
    return out
