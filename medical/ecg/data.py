"""PTB-XL as published, loaded: the :class:`PTBXL` set and :func:`load_ptbxl` (cached).

The format (the two csv files, label sets, errors) is in :mod:`medical.ecg.ptbxl_format`,
single records and the baseline filter in :mod:`medical.ecg.records`; their public names are
re-exported here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from medical.ecg.ptbxl_format import (
    BRANCH_CODES,
    DATABASE_COLUMNS,
    LABEL_SETS,
    LEAD_NAMES,
    RECORD_SECONDS,
    SAMPLING_RATES,
    STATEMENT_COLUMNS,
    CSVError,
    PathLike,
    PTBXLError,
    RecordError,
    _check_dir,
    _check_label_set,
    branch_of,
    label_matrix,
    label_names,
    read_database,
    read_statements,
)
from medical.ecg.records import highpass_filter, read_record
from shared.cache import (
    ArrayCache,
    default_cache_dir,
    file_sha256,
    files_fingerprint,
    stable_hash,
    stat_files,
)
from shared.errors import InputError
from shared.validation import closest

logger = logging.getLogger(__name__)

__all__ = [
    "BRANCH_CODES",
    "DATABASE_COLUMNS",
    "LABEL_SETS",
    "LEAD_NAMES",
    "PTBXL",
    "RECORD_SECONDS",
    "SAMPLING_RATES",
    "STATEMENT_COLUMNS",
    "CSVError",
    "PTBXLError",
    "RecordError",
    "branch_of",
    "highpass_filter",
    "label_matrix",
    "label_names",
    "load_ptbxl",
    "read_database",
    "read_record",
    "read_statements",
]

# Bumped whenever the cached arrays would change for the same inputs.
_CACHE_FORMAT = 1
# strat_fold of the training records (standardization statistics are fit on them).
_TRAIN_FOLDS = (1, 8)


@dataclasses.dataclass(eq=False)
class PTBXL(torch.utils.data.Dataset):
    """PTB-XL records with labels and folds, ordered by ``(strat_fold, ecg_id)``.

    The order makes each split a contiguous block, so :meth:`split` returns views of the
    memory-mapped cache without copying. As a map-style torch ``Dataset``, ``ds[i]`` is
    ``(signal, label)``: tensors of shape (12, T) and (C,), float32; row ``i`` is ECG
    ``ds.ecg_ids[i]``.

    Attributes:
        signals: Shape (N, 12, T), float32, in mV (or standardized units, see ``mean``); a
            read-only memory map of the cache file when the cache is used.
        labels: Shape (N, C), float32 multi-hot.
        label_names: The C label names (:func:`label_names` order).
        label_set: The label set's name.
        ecg_ids: Shape (N,), int64.
        folds: Shape (N,), int64 ``strat_fold`` in 1..10, non-decreasing.
        meta: The rows of ``ptbxl_database.csv`` for these ECGs (index ``ecg_id``, same order
            as ``signals``); ``scp_codes`` parsed to dicts. Age, sex, report, ... for reports.
        statements: ``scp_statements.csv`` (index: code), for descriptions.
        lead_names: :data:`LEAD_NAMES`.
        sampling_rate: 100 or 500 (Hz).
        highpass: The high-pass cutoff in Hz, or ``None`` when off.
        mean: Shape (12,), float32: the per-lead training-fold mean subtracted, or ``None``
            without standardization.
        std: Shape (12,), float32: the per-lead training-fold std divided by, or ``None``.
        data_dir: The PTB-XL folder.
        cache_file: The ``.npy`` file ``signals`` maps, or ``None``.
        fingerprint: A content hash of the data set (both csv files and every record's
            preprocessed samples): the same for a copy of the folder elsewhere, different as
            soon as a label or a sample differs.
    """

    signals: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]
    label_set: str
    ecg_ids: np.ndarray
    folds: np.ndarray
    meta: pd.DataFrame
    statements: pd.DataFrame
    sampling_rate: int
    lead_names: tuple[str, ...] = LEAD_NAMES
    highpass: float | None = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    data_dir: Path | None = None
    cache_file: Path | None = None
    fingerprint: str = ""
    _rows: tuple[int, int] | None = dataclasses.field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.signals.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One ECG: ``(signal (12, T), label (C,))``, float32 tensors (copies)."""
        signal = torch.from_numpy(np.array(self.signals[index], dtype=np.float32))
        return signal, torch.from_numpy(self.labels[index].copy())

    def __repr__(self) -> str:
        return (
            f"PTBXL(n={len(self)}, label_set={self.label_set!r}, C={len(self.label_names)}, "
            f"sampling_rate={self.sampling_rate}, T={self.signals.shape[-1]}, "
            f"folds={sorted(set(self.folds.tolist()))}, data_dir={str(self.data_dir)!r})"
        )

    # Pickling (DataLoader workers): re-open the memory map instead of copying the signals.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self.cache_file is not None and self._rows is not None:
            state["signals"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.signals is None and self.cache_file is not None and self._rows is not None:
            start, stop = self._rows
            self.signals = np.load(self.cache_file, mmap_mode="r")[start:stop]

    @property
    def duration(self) -> float:
        """Seconds per record (10 for PTB-XL)."""
        return self.signals.shape[-1] / self.sampling_rate

    def index_of(self, ecg_id: int) -> int:
        """The row of ECG ``ecg_id``.

        Raises:
            InputError: If the ECG is not in this set (the message names the ``ecg_id``).
        """
        rows = np.flatnonzero(self.ecg_ids == int(ecg_id))
        if len(rows) == 0:
            raise InputError(
                f"ecg_id {ecg_id} is not among the {len(self)} ECGs loaded from "
                f"{self.data_dir} (label set {self.label_set!r}); expected an ecg_id of "
                "ptbxl_database.csv."
            )
        return int(rows[0])

    def signal_mv(self, index: int) -> np.ndarray:
        """Row ``index``'s signals in mV (standardization undone), shape (12, T), float32."""
        signal = np.array(self.signals[index], dtype=np.float32)
        if self.mean is not None and self.std is not None:
            signal = signal * self.std[:, None] + self.mean[:, None]
        return signal

    def with_labels(self, names: Sequence[str]) -> PTBXL:
        """The same ECGs with only the label columns ``names`` (e.g. one branch's codes).

        Args:
            names: Label names, all in ``label_names``; their order becomes the new order.

        Returns:
            A view sharing the signals.

        Raises:
            InputError: If a name is not a label of this set.
        """
        columns = []
        for name in names:
            if name not in self.label_names:
                hint = closest(str(name), self.label_names)
                raise InputError(
                    f"Expected labels of the {self.label_set!r} set, but got {name!r}."
                    + (f" Did you mean {hint!r}?" if hint else "")
                )
            columns.append(self.label_names.index(name))
        return dataclasses.replace(self, labels=self.labels[:, columns], label_names=tuple(names))

    def descriptions(self) -> list[str]:
        """A readable description per label column ("atrial fibrillation", ...)."""
        text = self.statements["description"]
        out = []
        for name in self.label_names:
            if name in text.index and isinstance(text[name], str):
                out.append(text[name])
            else:  # an aggregated class name (MI, STTC, ...)
                out.append(name)
        return out


def _standardization_stats(signals: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead mean and std over ``signals[rows]`` (N, 12, T), accumulated in float64."""
    total = np.zeros(signals.shape[1])
    total_sq = np.zeros(signals.shape[1])
    count = 0
    for i in range(0, len(rows), 512):
        block = np.asarray(signals[rows[i : i + 512]], dtype=np.float64)
        total += block.sum(axis=(0, 2))
        total_sq += np.square(block).sum(axis=(0, 2))
        count += block.shape[0] * block.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    std[std < 1e-8] = 1.0  # a flat lead: leave its scale alone (scikit-learn's rule)
    return mean.astype(np.float32), std.astype(np.float32)


def _content_hash(signals: np.ndarray) -> str:
    """SHA-1 of an array's shape and bytes, read in blocks (works on a memory map)."""
    digest = hashlib.sha1(f"{signals.shape}:{signals.dtype}".encode())
    for i in range(0, len(signals), 512):
        digest.update(np.ascontiguousarray(signals[i : i + 512]).tobytes())
    return digest.hexdigest()[:16]


def _read_all(
    root: Path,
    records: Sequence[str],
    ecg_ids: Sequence[int],
    sampling_rate: int,
    cutoff: float | None,
    out: np.ndarray,
    progress: bool,
) -> None:
    bar = tqdm(
        total=len(records),
        desc=f"Reading PTB-XL {sampling_rate} Hz",
        unit="rec",
        disable=not progress,
        leave=False,
    )
    started = time.perf_counter()
    with bar:
        for i, (record, ecg_id) in enumerate(zip(records, ecg_ids)):
            signal = read_record(root, record, sampling_rate=sampling_rate, ecg_id=ecg_id)
            if cutoff is not None:
                signal = highpass_filter(signal, sampling_rate, cutoff)
            out[i] = signal
            bar.update()
    logger.debug("read %d records in %.1f s", len(records), time.perf_counter() - started)


def _cutoff(highpass: bool | float | None) -> float | None:
    if highpass is None or highpass is False:
        return None
    if highpass is True:
        return 0.5
    value = float(highpass)
    if not (math.isfinite(value) and value >= 0):
        raise InputError(
            f"Expected the high-pass cutoff to be a positive frequency in Hz "
            f"(or True for 0.5 Hz, False for none), but got {highpass!r}."
        )
    return None if value == 0 else value


def load_ptbxl(
    data_dir: PathLike,
    *,
    sampling_rate: int = 100,
    label_set: str = "all",
    highpass: bool | float = True,
    standardize: bool = False,
    drop_unlabeled: bool | None = None,
    min_likelihood: float = 0.0,
    missing: Literal["error", "skip"] = "error",
    cache: bool = True,
    cache_dir: PathLike | None = None,
    progress: bool = True,
) -> PTBXL:
    """Load a PTB-XL folder (the real release, the subset or a synthetic one).

    The first call reads every record with wfdb (a progress bar), checks it, high-passes it and
    stores the result in the cache; later calls with the same csv, sampling rate and filter
    memory-map the stored array (see :mod:`shared.cache`).

    Args:
        data_dir: The folder with ``ptbxl_database.csv``, ``scp_statements.csv`` and
            ``records100/`` or ``records500/``.
        sampling_rate: 100 (``filename_lr``, T = 1000) or 500 (``filename_hr``, T = 5000).
        label_set: One of :data:`LABEL_SETS`; columns as in :func:`label_names`.
        highpass: Baseline-wander removal: ``True`` = first-order Butterworth high-pass at
            0.5 Hz, zero-phase (ProtoECGNet's default); a float = that cutoff in Hz; ``False``
            = raw signals.
        standardize: Subtract the per-lead mean and divide by the per-lead std, both computed
            on the training folds (1-8) of the selected records only; stored in ``mean`` and
            ``std``.
        drop_unlabeled: Drop records with no label in the set. ``None`` (default) follows
            ProtoECGNet: drop only for ``subdiagnostic`` and ``superdiagnostic``.
        min_likelihood: Smallest likelihood (0-100) for a code to count (default 0: all).
        missing: ``"error"`` (default): a record whose header and signal file are both absent
            is an error. ``"skip"``: leave such records out with a warning (e.g. the 500 Hz
            files of the shared subset, which holds only ECGs 1-100 at 500 Hz). A record with
            only one of its two files is always an error.
        cache: Use the on-disk cache. ``False`` reads into memory every time.
        cache_dir: Cache folder; default :func:`~shared.cache.default_cache_dir`. When it
            cannot be written the data are read into memory with a warning.
        progress: Show a progress bar while reading records.

    Returns:
        The :class:`PTBXL` set, records ordered by ``(strat_fold, ecg_id)``.

    Raises:
        PTBXLError: (an :class:`~shared.errors.InputError`) for a missing folder or csv file,
            a missing column, an unparsable ``scp_codes`` cell, a bad ``strat_fold`` or
            ``ecg_id``, and for any record with a missing or truncated file, a wrong lead
            count, lead names, sampling rate or length, or NaN samples; the message names the
            file, column or record.
        InputError: For an unknown ``label_set``, ``sampling_rate`` or ``missing`` value, or
            when no record is left.
    """
    if sampling_rate not in SAMPLING_RATES:
        raise InputError(
            f"Expected a sampling rate of 100 or 500 Hz (PTB-XL's two), but got {sampling_rate!r}."
        )
    sampling_rate = int(sampling_rate)
    _check_label_set(label_set)
    if missing not in ("error", "skip"):
        raise InputError(f"Expected `missing` to be 'error' or 'skip', but got {missing!r}.")
    cutoff = _cutoff(highpass)
    root = _check_dir(data_dir).resolve()
    statements = read_statements(root)
    column = SAMPLING_RATES[sampling_rate]
    database = read_database(root, statements, filename_column=column)
    # Order by (strat_fold, ecg_id): every split is then a contiguous block of rows.
    database = database.sort_index(kind="stable").sort_values("strat_fold", kind="stable")

    records = [str(r).strip() for r in database[column]]
    prefix = str(root) + os.sep
    files = [prefix + r + suffix for r in records for suffix in (".hea", ".dat")]
    stats = stat_files(files)
    fingerprint = files_fingerprint(files, stats)
    if missing == "skip":
        absent = [h is None and d is None for h, d in zip(stats[0::2], stats[1::2])]
        if any(absent):
            gone = [r for r, a in zip(records, absent) if a]
            logger.warning(
                "skipping %d of %d ECGs whose %d Hz records are absent (first: %s)",
                len(gone),
                len(records),
                sampling_rate,
                gone[0],
            )
            database = database[~np.asarray(absent)]
            records = [r for r, a in zip(records, absent) if not a]
    if database.empty:
        raise InputError(
            f"Expected at least one {sampling_rate} Hz record in {root}, but none "
            "of the ECGs of ptbxl_database.csv has its record files."
        )
    ecg_ids = database.index.to_numpy(np.int64)
    folds = database["strat_fold"].to_numpy(np.int64)
    shape = (len(records), len(LEAD_NAMES), RECORD_SECONDS * sampling_rate)

    key_parts = {
        "format": _CACHE_FORMAT,
        "database_sha256": file_sha256(root / "ptbxl_database.csv"),
        "sampling_rate": sampling_rate,
        "highpass": None
        if cutoff is None
        else {"cutoff_hz": cutoff, "order": 1, "type": "butterworth filtfilt"},
        "records": stable_hash(records),
    }
    store = None
    if cache:
        store = ArrayCache(cache_dir if cache_dir is not None else default_cache_dir())
    name = f"ptbxl-{sampling_rate}hz-{stable_hash(key_parts)}"
    signals: np.ndarray | None = None
    cache_file: Path | None = None
    content: str | None = None
    if store is not None:
        hit = store.load(name)
        if hit is not None and hit[1].get("fingerprint") != fingerprint:
            logger.info(
                "record files changed since %s was written; reading them again",
                store.array_path(name),
            )
            hit = None
        if hit is not None:
            signals, cache_file = hit[0], store.array_path(name)
            content = hit[1].get("content")
        else:
            logger.info(
                "reading %d PTB-XL records from %s into the cache %s",
                len(records),
                root,
                store.array_path(name),
            )
            meta = {
                "key": key_parts,
                "fingerprint": fingerprint,
                "data_dir": str(root),
                "ecg_ids": ecg_ids.tolist(),
            }
            try:
                with store.writer(name, shape, np.float32, meta) as out:
                    _read_all(root, records, ecg_ids, sampling_rate, cutoff, out, progress)
                    meta["content"] = content = _content_hash(out)
            except OSError as exc:
                logger.warning(
                    "cannot write the cache in %s (%s); reading into memory", store.folder, exc
                )
            else:
                loaded = store.load(name)
                if loaded is not None:
                    signals, cache_file = loaded[0], store.array_path(name)
    if signals is None:
        signals = np.zeros(shape, dtype=np.float32)
        _read_all(root, records, ecg_ids, sampling_rate, cutoff, signals, progress)
    if content is None:
        content = _content_hash(signals)
    fingerprint_of_data = stable_hash(
        {
            "database_sha256": key_parts["database_sha256"],
            "statements_sha256": file_sha256(root / "scp_statements.csv"),
            "ecg_ids": stable_hash(ecg_ids.tolist()),
            "signals": content,
        }
    )

    labels, names = label_matrix(
        list(database["scp_codes"]), statements, label_set, min_likelihood=min_likelihood
    )
    if drop_unlabeled is None:
        drop_unlabeled = label_set in ("subdiagnostic", "superdiagnostic")
    keep = labels.any(axis=1) if drop_unlabeled else np.ones(len(labels), dtype=bool)
    if not keep.any():
        raise InputError(
            f"Expected ECGs with at least one {label_set!r} label in {root}, but none has one."
        )
    mean = std = None
    if standardize:
        train = (folds >= _TRAIN_FOLDS[0]) & (folds <= _TRAIN_FOLDS[1]) & keep
        if not train.any():
            raise InputError(
                f"Expected training records (strat_fold 1-8) in {root} to fit "
                "the standardization on, but there are none."
            )
    if not keep.all() or standardize:
        rows = np.flatnonzero(keep)
        derived_parts = {
            "base": name,
            "rows": stable_hash(rows.tolist()),
            "standardize": bool(standardize),
        }
        derived = f"{name}-{stable_hash(derived_parts, 12)}"
        result: np.ndarray | None = None
        if store is not None and cache_file is not None:
            hit = store.load(derived)
            if hit is not None and hit[1].get("fingerprint") == fingerprint:
                result = hit[0]
                if standardize:
                    mean = np.asarray(hit[1]["mean"], np.float32)
                    std = np.asarray(hit[1]["std"], np.float32)
                cache_file = store.array_path(derived)
        if result is None:
            source = signals
            if standardize:
                low, high = _TRAIN_FOLDS
                train_rows = rows[(folds[rows] >= low) & (folds[rows] <= high)]
                mean, std = _standardization_stats(source, train_rows)
            meta = {
                "key": derived_parts,
                "fingerprint": fingerprint,
                "mean": None if mean is None else mean.tolist(),
                "std": None if std is None else std.tolist(),
            }
            target_shape = (len(rows), *shape[1:])

            def fill(out: np.ndarray) -> None:
                for i in range(0, len(rows), 512):
                    block = np.asarray(source[rows[i : i + 512]], dtype=np.float32)
                    if mean is not None and std is not None:
                        block = (block - mean[:, None]) / std[:, None]
                    out[i : i + len(block)] = block

            written = False
            if store is not None and cache_file is not None:
                try:
                    with store.writer(derived, target_shape, np.float32, meta) as out:
                        fill(out)
                    loaded = store.load(derived)
                    if loaded is not None:
                        result, cache_file, written = loaded[0], store.array_path(derived), True
                except OSError as exc:
                    logger.warning("cannot write the cache in %s (%s)", store.folder, exc)
            if not written:
                result = np.zeros(target_shape, dtype=np.float32)
                fill(result)
                cache_file = None
        assert result is not None
        signals = result
        database = database.iloc[rows]
        labels, ecg_ids, folds = labels[rows], ecg_ids[rows], folds[rows]

    return PTBXL(
        signals=signals,
        labels=labels,
        label_names=tuple(names),
        label_set=label_set,
        ecg_ids=ecg_ids,
        folds=folds,
        meta=database,
        statements=statements,
        sampling_rate=sampling_rate,
        highpass=cutoff,
        mean=mean,
        std=std,
        data_dir=root,
        cache_file=cache_file,
        fingerprint=fingerprint_of_data,
        _rows=(0, len(ecg_ids)) if cache_file is not None else None,
    )
