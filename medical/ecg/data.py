"""PTB-XL as published: the two csv files, WFDB records at 100 or 500 Hz, folds, label sets.

The folder layout (PhysioNet PTB-XL v1.0.3; Wagner et al., Sci Data 2020)::

    DATA_DIR/ptbxl_database.csv     one row per ECG (index ecg_id), scp_codes, strat_fold, ...
    DATA_DIR/scp_statements.csv     the 71 SCP statements (index = code) and their groupings
    DATA_DIR/records100/00000/00001_lr.{hea,dat}   (filename_lr column; 1000 x 12 samples)
    DATA_DIR/records500/00000/00001_hr.{hea,dat}   (filename_hr column; 5000 x 12 samples)

Everything here validates as it reads: a folder that does not match the layout raises a
:class:`PTBXLError` (an :class:`~shared.errors.InputError`, so the command line exits with
status 2) whose one-line message names the file, column or record and says what was expected.

Label sets follow the PTB-XL benchmark (Strodthoff et al. 2021, ``compute_label_aggregations``)
and ProtoECGNet's ``ecg_utils.py``; the column order is fixed by ``scp_statements.csv`` (see
:func:`label_names`), never by which codes happen to occur in the loaded records.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.signal
import torch
import wfdb
from tqdm.auto import tqdm

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
    "BRANCHES",
    "BRANCH_CODES",
    "DATABASE_COLUMNS",
    "LABEL_SETS",
    "LEAD_NAMES",
    "PTBXL",
    "RECORD_SECONDS",
    "SAMPLING_RATES",
    "SPLITS",
    "STATEMENT_COLUMNS",
    "CSVError",
    "PTBXLError",
    "RecordError",
    "branch_groups",
    "branch_of",
    "highpass_filter",
    "label_matrix",
    "label_names",
    "load_ptbxl",
    "read_database",
    "read_record",
    "read_statements",
]

#: The 12 standard leads, in PTB-XL's order (headers spell them I, II, III, AVR, AVL, AVF, ...;
#: names are matched case-insensitively and a permuted header is reordered to this order).
LEAD_NAMES: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)  # fmt: skip
#: The two published sampling rates (Hz) and the csv column naming each rate's records.
SAMPLING_RATES: Mapping[int, str] = {100: "filename_lr", 500: "filename_hr"}
#: Every PTB-XL record lasts 10 s.
RECORD_SECONDS = 10
#: Label sets of the PTB-XL benchmark (71 / 44 / 23 / 5 / 19 / 12 labels on the full release).
LABEL_SETS: tuple[str, ...] = (
    "all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm",
)  # fmt: skip
#: The benchmark's splits by ``strat_fold``: train 1-8, validation 9, test 10.
SPLITS: Mapping[str, tuple[int, int]] = {"train": (1, 8), "val": (9, 9), "test": (10, 10)}

#: Columns of ``ptbxl_database.csv`` that the loader needs (plus the active filename column).
DATABASE_COLUMNS: tuple[str, ...] = ("ecg_id", "scp_codes", "strat_fold")
#: Columns of ``scp_statements.csv`` (besides its unnamed index of codes) that the loader needs.
STATEMENT_COLUMNS: tuple[str, ...] = (
    "description", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass",
)  # fmt: skip

#: ProtoECGNet's grouping of the 71 statements into its three branches (column
#: ``prototype_category`` of ``scp_statementsRegrouped2.csv`` in sahilsethi0105/protoecgnet:
#: 1 = rhythm, 1D ResNet, global prototypes; 3 = local morphology, 2D ResNet, time-localized
#: partial prototypes; 4 = global, 2D ResNet, prototypes over the whole 10 s). Order: the order
#: of ``scp_statements.csv``.
BRANCH_CODES: Mapping[str, tuple[str, ...]] = {
    "rhythm": (
        "1AVB", "IVCD", "3AVB", "2AVB", "SR", "AFIB", "STACH", "SARRH", "SBRAD", "PACE",
        "SVARR", "BIGU", "AFLT", "SVTAC", "PSVT", "TRIGU",
    ),
    "morphology": (
        "NDT", "NST_", "LNGQT", "IMI", "ASMI", "LVH", "LAFB", "ISC_", "IRBBB", "ISCAL",
        "CRBBB", "CLBBB", "ILMI", "LAO/LAE", "AMI", "ALMI", "ISCIN", "INJAS", "LMI", "ISCIL",
        "LPFB", "ISCAS", "INJAL", "ISCLA", "RVH", "ANEUR", "RAO/RAE", "WPW", "ILBBB", "IPLMI",
        "ISCAN", "IPMI", "SEHYP", "INJIN", "INJLA", "PMI", "INJIL", "ABQRS", "PVC", "STD_",
        "VCLVH", "QWAVE", "LOWT", "NT_", "PAC", "LPR", "INVT", "LVOLT", "HVOLT", "TAB_",
        "STE_", "PRC(S)",
    ),
    "global": ("DIG", "NORM", "EL"),
}  # fmt: skip
#: The branch names, in ProtoECGNet's fusion order (1D rhythm, 2D partial, 2D global).
BRANCHES: tuple[str, ...] = tuple(BRANCH_CODES)
_BRANCH_OF = {code: branch for branch, codes in BRANCH_CODES.items() for code in codes}

# Bumped whenever the cached arrays would change for the same inputs.
_CACHE_FORMAT = 1
# Bytes per sample of the WFDB formats that a size check can use (format 16: PTB-XL's).
_FMT_BYTES = {"16": 2.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5, "24": 3.0, "32": 4.0}

PathLike = str | os.PathLike[str]
LabelSet = Literal["all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm"]
Split = Literal["train", "val", "test"]


# --------------------------------------------------------------------------------------------
# Errors


class PTBXLError(InputError):
    """A PTB-XL folder, csv file or record that does not match the published layout."""


class CSVError(PTBXLError):
    """A problem in ``ptbxl_database.csv`` or ``scp_statements.csv``.

    Attributes:
        path: The csv file.
        column: The column concerned, when there is one.
        ecg_id: The row concerned, when there is one.
    """

    def __init__(
        self,
        path: PathLike,
        problem: str,
        *,
        column: str | None = None,
        ecg_id: Any = None,
    ) -> None:
        self.path = Path(path)
        self.column = column
        self.ecg_id = ecg_id
        where = str(path)
        if column is not None:
            where += f", column {column!r}"
        if ecg_id is not None:
            where += f", ecg_id {ecg_id}"
        super().__init__(f"{where}: {problem}")


class RecordError(PTBXLError):
    """A problem in one WFDB record (header, signal file or samples).

    Attributes:
        record: The record path as the csv gives it (e.g. ``records100/00000/00001_lr``).
        ecg_id: The record's ``ecg_id`` when known.
    """

    def __init__(self, record: str, problem: str, *, ecg_id: Any = None, root: Any = None) -> None:
        self.record = record
        self.ecg_id = ecg_id
        name = f"record {record}" + (f" (ecg_id {ecg_id})" if ecg_id is not None else "")
        if root is not None:
            name += f" in {root}"
        super().__init__(f"PTB-XL {name}: {problem}")


# --------------------------------------------------------------------------------------------
# The csv files


def _check_dir(data_dir: PathLike) -> Path:
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise PTBXLError(
            f"Expected a PTB-XL folder (with ptbxl_database.csv, scp_statements.csv and "
            f"records100/ or records500/) at {root}, but it "
            + ("is not a folder." if root.exists() else "does not exist.")
        )
    return root


def _read_csv(path: Path, **kwargs: Any) -> pd.DataFrame:
    if not path.is_file():
        raise CSVError(
            path, "expected this file (part of the published PTB-XL layout), but it does not exist."
        )
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        problem = " ".join(str(exc).split())
        raise CSVError(path, f"expected a readable csv file, but got: {problem}") from None


def _require_columns(path: Path, frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        hint = closest(missing[0], [str(c) for c in frame.columns])
        raise CSVError(
            path,
            f"expected the column(s) {', '.join(map(repr, missing))} of the published file, "
            f"but they are missing" + (f" (found {hint!r})." if hint else "."),
            column=missing[0],
        )


def read_statements(data_dir: PathLike) -> pd.DataFrame:
    """Read and check ``scp_statements.csv``.

    Args:
        data_dir: The PTB-XL folder.

    Returns:
        One row per SCP code (index: the code, in file order), with at least the columns of
        :data:`STATEMENT_COLUMNS`; ``diagnostic``, ``form`` and ``rhythm`` are booleans.

    Raises:
        CSVError: If the file is missing or unreadable, lacks a column, has an empty or
            duplicate code, or a flag that is neither 1 nor empty.
    """
    path = _check_dir(data_dir) / "scp_statements.csv"
    frame = _read_csv(path, index_col=0)
    _require_columns(path, frame, STATEMENT_COLUMNS)
    codes = [str(c).strip() if isinstance(c, str) else c for c in frame.index]
    for code in codes:
        if not isinstance(code, str) or not code:
            raise CSVError(path, f"expected an SCP code in the first column, but got {code!r}.")
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise CSVError(path, f"expected each SCP code once, but {duplicates[0]!r} repeats.")
    frame.index = pd.Index(codes, name="scp_code")
    for column in ("diagnostic", "form", "rhythm"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame.index[(values.isna() & frame[column].notna()) | ~values.isin([0, 1, np.nan])]
        if len(bad):
            raise CSVError(
                path,
                f"expected 1 or an empty cell, but got {frame.at[bad[0], column]!r} "
                f"for {bad[0]!r}.",
                column=column,
            )
        frame[column] = values.fillna(0).astype(bool)
    for column in ("diagnostic_class", "diagnostic_subclass"):
        missing = frame.index[frame["diagnostic"] & frame[column].isna()]
        if len(missing):
            raise CSVError(
                path,
                f"expected a value for the diagnostic statement {missing[0]!r}, but the cell is "
                "empty.",
                column=column,
            )
    return frame


def _parse_scp_codes(path: Path, ecg_id: Any, text: Any, known: Mapping[str, Any]) -> dict:
    example = "a dict string like \"{'NORM': 100.0, 'SR': 0.0}\""
    if not isinstance(text, str):
        raise CSVError(
            path, f"expected {example}, but the cell is empty.", column="scp_codes", ecg_id=ecg_id
        )
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise CSVError(
            path, f"expected {example}, but got {shown!r}.", column="scp_codes", ecg_id=ecg_id
        )
    for code, likelihood in value.items():
        if code not in known:
            hint = closest(code, list(known))
            raise CSVError(
                path,
                f"unknown SCP code {code!r}: expected one of the codes of scp_statements.csv"
                + (f" (did you mean {hint!r}?)." if hint else "."),
                column="scp_codes",
                ecg_id=ecg_id,
            )
        if not (math.isfinite(likelihood) and 0 <= likelihood <= 100):
            raise CSVError(
                path,
                f"expected likelihoods between 0 and 100, but {code!r} has {likelihood!r}.",
                column="scp_codes",
                ecg_id=ecg_id,
            )
    return {k: float(v) for k, v in value.items()}


def read_database(
    data_dir: PathLike,
    statements: pd.DataFrame | None = None,
    *,
    filename_column: str | None = None,
) -> pd.DataFrame:
    """Read and check ``ptbxl_database.csv``.

    Args:
        data_dir: The PTB-XL folder.
        statements: The result of :func:`read_statements` (read here when ``None``); every code
            in ``scp_codes`` must be one of its rows.
        filename_column: ``"filename_lr"`` or ``"filename_hr"`` to require that column too.

    Returns:
        The table with index ``ecg_id`` (int, unique), in file order; ``scp_codes`` parsed to
        ``dict[str, float]`` (code -> likelihood) and ``strat_fold`` as int in 1..10. Every
        other column is kept as read (age, sex, report, ... for reports).

    Raises:
        CSVError: If the file is missing or unreadable, a needed column is missing, an
            ``ecg_id`` is missing, not an integer or repeated, a ``strat_fold`` is not in
            1..10, a filename is empty, or ``scp_codes`` cannot be parsed or names an unknown
            code (the message names the ``ecg_id`` and the column).
    """
    root = _check_dir(data_dir)
    if statements is None:
        statements = read_statements(root)
    path = root / "ptbxl_database.csv"
    frame = _read_csv(path)
    needed = list(DATABASE_COLUMNS) + ([filename_column] if filename_column else [])
    _require_columns(path, frame, needed)
    if frame.empty:
        raise CSVError(path, "expected at least one ECG, but the table has no rows.")
    ids = pd.to_numeric(frame["ecg_id"], errors="coerce")
    bad = ids.isna() | (ids != ids.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CSVError(
            path,
            f"expected integer ecg_ids, but row {row + 1} has {frame['ecg_id'].iloc[row]!r}.",
            column="ecg_id",
        )
    frame["ecg_id"] = ids.astype(np.int64)
    repeated = frame["ecg_id"][frame["ecg_id"].duplicated()]
    if len(repeated):
        raise CSVError(
            path,
            "expected unique ecg_ids, but this one repeats.",
            column="ecg_id",
            ecg_id=int(repeated.iloc[0]),
        )
    frame = frame.set_index("ecg_id")
    folds = pd.to_numeric(frame["strat_fold"], errors="coerce")
    bad = ~folds.isin(list(range(1, 11)))
    if bad.any():
        ecg_id = frame.index[bad.to_numpy()][0]
        raise CSVError(
            path,
            f"expected a fold number 1..10, but got {frame.at[ecg_id, 'strat_fold']!r}.",
            column="strat_fold",
            ecg_id=int(ecg_id),
        )
    frame["strat_fold"] = folds.astype(np.int64)
    if filename_column:
        names = frame[filename_column]
        empty = names.isna() | (names.astype(str).str.strip() == "")
        if empty.any():
            ecg_id = frame.index[empty.to_numpy()][0]
            raise CSVError(
                path,
                "expected a record path like records100/00000/00001_lr, but the cell is empty.",
                column=filename_column,
                ecg_id=int(ecg_id),
            )
    known = dict.fromkeys(statements.index)
    parsed: dict[Any, dict[str, float]] = {}  # many ECGs share one scp_codes text
    codes = []
    for ecg_id, text in zip(frame.index, frame["scp_codes"]):
        key = text if isinstance(text, str) else None
        if key not in parsed:
            parsed[key] = _parse_scp_codes(path, ecg_id, text, known)
        codes.append(dict(parsed[key]))
    frame["scp_codes"] = codes
    return frame


# --------------------------------------------------------------------------------------------
# Label sets and branches


def _check_label_set(label_set: str) -> str:
    if label_set in LABEL_SETS:
        return label_set
    hint = closest(str(label_set), LABEL_SETS)
    raise InputError(
        f"Expected the label set to be one of {', '.join(LABEL_SETS)}, but got {label_set!r}."
        + (f" Did you mean {hint!r}?" if hint else "")
    )


def label_names(statements: pd.DataFrame, label_set: str = "all") -> list[str]:
    """The label columns of a label set, in a fixed order.

    * ``all``: every code of ``scp_statements.csv`` in file order (71; ProtoECGNet's fusion
      targets).
    * ``diagnostic`` / ``form`` / ``rhythm``: the codes flagged in that column, file order
      (44 / 19 / 12).
    * ``subdiagnostic`` / ``superdiagnostic``: the distinct ``diagnostic_subclass`` /
      ``diagnostic_class`` values of the diagnostic codes, in order of first appearance in the
      file (23 / 5: STTC, NORM, MI, HYP, CD), as ProtoECGNet's ``load_label_mappings`` does.

    Every defined label is a column even when no loaded record carries it (the PTB-XL
    benchmark instead drops labels it never sees), so that the columns of a 500-record subset,
    a synthetic set and the full release are the same.

    Args:
        statements: From :func:`read_statements`.
        label_set: One of :data:`LABEL_SETS`.

    Returns:
        The label names (SCP codes, or class names for the two aggregated sets).

    Raises:
        InputError: If ``label_set`` is unknown (with the closest valid name).
    """
    label_set = _check_label_set(label_set)
    if label_set == "all":
        return list(statements.index)
    if label_set in ("diagnostic", "form", "rhythm"):
        return list(statements.index[statements[label_set].to_numpy(bool)])
    column = "diagnostic_subclass" if label_set == "subdiagnostic" else "diagnostic_class"
    values = statements.loc[statements["diagnostic"].to_numpy(bool), column]
    return list(dict.fromkeys(str(v) for v in values))


def label_matrix(
    scp_codes: Sequence[Mapping[str, float]],
    statements: pd.DataFrame,
    label_set: str = "all",
    *,
    min_likelihood: float = 0.0,
) -> tuple[np.ndarray, list[str]]:
    """Multi-hot labels of a label set.

    A code counts when its likelihood is at least ``min_likelihood``; with the default 0 every
    listed code counts, likelihood 0 included (the benchmark and ProtoECGNet ignore the
    likelihood). For ``subdiagnostic``/``superdiagnostic`` a record gets the (sub)class of each
    of its diagnostic codes.

    Args:
        scp_codes: One ``{code: likelihood}`` dict per record.
        statements: From :func:`read_statements`.
        label_set: One of :data:`LABEL_SETS`.
        min_likelihood: The smallest likelihood (0-100) that makes a code count.

    Returns:
        ``(labels, names)``: labels of shape (N, C), float32 in {0, 1}, and the C names of
        :func:`label_names`.

    Raises:
        InputError: If ``label_set`` is unknown.
    """
    names = label_names(statements, label_set)
    column_of = {name: j for j, name in enumerate(names)}
    if label_set in ("subdiagnostic", "superdiagnostic"):
        column = "diagnostic_subclass" if label_set == "subdiagnostic" else "diagnostic_class"
        diagnostic = statements.loc[statements["diagnostic"].to_numpy(bool), column]
        target = {code: str(value) for code, value in diagnostic.items()}
    else:
        target = {code: code for code in names}
    labels = np.zeros((len(scp_codes), len(names)), dtype=np.float32)
    for i, codes in enumerate(scp_codes):
        for code, likelihood in codes.items():
            name = target.get(code)
            if name is not None and likelihood >= min_likelihood:
                labels[i, column_of[name]] = 1.0
    return labels, names


def branch_of(code: str) -> str:
    """ProtoECGNet's branch of one SCP code: ``"rhythm"``, ``"morphology"`` or ``"global"``.

    Raises:
        InputError: If ``code`` is not one of the 71 PTB-XL statements.

    Examples:
        >>> branch_of("AFIB"), branch_of("CLBBB"), branch_of("NORM")
        ('rhythm', 'morphology', 'global')
    """
    try:
        return _BRANCH_OF[code]
    except KeyError:
        hint = closest(str(code), list(_BRANCH_OF))
        raise InputError(
            f"Expected one of the 71 PTB-XL SCP codes, but got {code!r}."
            + (f" Did you mean {hint!r}?" if hint else "")
        ) from None


def branch_groups(names: Sequence[str]) -> dict[str, list[int]]:
    """Split label columns into ProtoECGNet's three branches (:data:`BRANCH_CODES`).

    With the 71 codes of ``label_set="all"`` this gives 16 rhythm, 52 morphology and 3 global
    columns. Columns keep their order within each branch.

    Args:
        names: Label names, SCP codes (e.g. ``PTBXL.label_names``).

    Returns:
        ``{"rhythm": [...], "morphology": [...], "global": [...]}``: column indices into
        ``names``; a branch without any of the given codes gets an empty list.

    Raises:
        InputError: If a name is not an SCP code (the aggregated ``subdiagnostic`` and
            ``superdiagnostic`` sets have no branch grouping).

    Examples:
        >>> branch_groups(["SR", "NORM", "IMI", "AFIB"])
        {'rhythm': [0, 3], 'morphology': [2], 'global': [1]}
    """
    groups: dict[str, list[int]] = {branch: [] for branch in BRANCHES}
    for j, name in enumerate(names):
        groups[branch_of(name)].append(j)
    return groups


# --------------------------------------------------------------------------------------------
# Records and preprocessing


@functools.lru_cache(maxsize=16)
def _butter_highpass(order: int, cutoff: float, fs: float) -> tuple[np.ndarray, np.ndarray]:
    b, a = scipy.signal.butter(order, cutoff, btype="highpass", fs=fs)
    return b, a


def highpass_filter(
    signals: np.ndarray, sampling_rate: float, cutoff: float = 0.5, order: int = 1
) -> np.ndarray:
    """Remove baseline wander: zero-phase Butterworth high-pass along the last axis.

    ProtoECGNet's ``remove_baseline_wander``: a first-order Butterworth at 0.5 Hz applied
    forward and backward (``scipy.signal.filtfilt``, so no phase shift), per lead.

    Args:
        signals: Shape (..., T), the time axis last (e.g. (12, T) or (N, 12, T)).
        sampling_rate: Samples per second.
        cutoff: The -3 dB frequency in Hz.
        order: The Butterworth order (doubled by the forward-backward pass).

    Returns:
        The filtered signals, same shape, float32.

    Examples:
        >>> t = np.arange(1000) / 100.0
        >>> drift = 2.0 + np.sin(2 * np.pi * 0.05 * t)      # offset + slow wander, no ECG
        >>> bool(np.abs(highpass_filter(drift, 100)[100:-100]).max() < 0.2)
        True
    """
    b, a = _butter_highpass(order, float(cutoff), float(sampling_rate))
    return scipy.signal.filtfilt(b, a, np.asarray(signals, dtype=np.float64), axis=-1).astype(
        np.float32
    )


def _record_files(root: Path, record: str) -> tuple[Path, Path]:
    base = root / record
    return base.with_name(base.name + ".hea"), base.with_name(base.name + ".dat")


def _check_header(
    header: Any, hea: Path, sampling_rate: int, fail: Callable[[str], RecordError]
) -> list[str]:
    """Check a wfdb header (or record) against PTB-XL; returns the lead names as written."""
    n_sig = int(header.n_sig or 0)
    if n_sig != len(LEAD_NAMES):
        raise fail(
            f"expected {len(LEAD_NAMES)} leads ({', '.join(LEAD_NAMES)}), but the header "
            f"lists {n_sig}: {', '.join(header.sig_name or [])}."
        )
    names = [str(n) for n in header.sig_name]
    upper = [n.upper() for n in names]
    wanted = [n.upper() for n in LEAD_NAMES]
    if sorted(upper) != sorted(wanted):
        unexpected = [n for n, u in zip(names, upper) if u not in wanted]
        raise fail(
            f"expected the leads {', '.join(LEAD_NAMES)}, but the header lists "
            f"{', '.join(names)} ({', '.join(unexpected) or 'a lead twice'} unexpected)."
        )
    if float(header.fs) != float(sampling_rate):
        raise fail(
            f"expected a sampling rate of {sampling_rate} Hz, but the header says {header.fs:g} Hz."
        )
    length = RECORD_SECONDS * sampling_rate
    if int(header.sig_len or 0) != length:
        raise fail(
            f"expected {length} samples per lead ({RECORD_SECONDS} s at {sampling_rate} "
            f"Hz), but the header says {header.sig_len}."
        )
    units = {str(u) for u in (header.units or [])}
    if units - {"mV"}:
        raise fail(f"expected signals in mV, but the header gives units {sorted(units)}.")
    files = {str(f) for f in header.file_name}
    if len(files) != 1:
        raise fail(f"expected one signal file, but the header names {sorted(files)}.")
    dat = hea.parent / files.pop()
    if not dat.is_file():
        raise fail(f"expected the signal file {dat}, but it does not exist.")
    fmt = str(header.fmt[0])
    if fmt in _FMT_BYTES and len(set(header.fmt)) == 1:
        offset = int((header.byte_offset or [0])[0] or 0)
        needed = offset + math.ceil(length * n_sig * _FMT_BYTES[fmt])
        size = dat.stat().st_size
        if size < needed:
            raise fail(
                f"expected {dat.name} to hold {needed} bytes ({length} samples x {n_sig} "
                f"leads, format {fmt}), but it has {size}: the file is truncated."
            )
    return names


def read_record(
    data_dir: PathLike,
    record: str,
    *,
    sampling_rate: int = 100,
    ecg_id: Any = None,
) -> np.ndarray:
    """Read and check one WFDB record of PTB-XL.

    Args:
        data_dir: The PTB-XL folder.
        record: The record path relative to it, as in ``filename_lr`` / ``filename_hr``.
        sampling_rate: The rate the record must have (100 or 500 Hz).
        ecg_id: For messages.

    Returns:
        The signals in mV, shape (12, T) with T = 10 * sampling_rate, float32, leads in the
        order of :data:`LEAD_NAMES`.

    Raises:
        RecordError: If the header or signal file is missing or unreadable, the header lists
            another number of leads, other lead names, another sampling rate or length, or
            units other than mV, the ``.dat`` file is shorter than the header says, or a sample
            is not finite (NaN, the WFDB "no value" sample, or infinite, e.g. from a zero gain).
    """
    root = Path(data_dir)
    hea, _ = _record_files(root, record)

    def fail(problem: str) -> RecordError:
        return RecordError(record, problem, ecg_id=ecg_id, root=root)

    if not hea.is_file():
        raise fail(f"expected the header file {hea}, but it does not exist.")
    base = str(hea.with_suffix(""))
    # One wfdb call reads header and samples (wfdb's header parsing is most of its cost);
    # when it fails, the header alone is read to say what is wrong.
    try:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # checked below
            rec = wfdb.rdrecord(base, return_res=32)
    except Exception as exc:  # wfdb raises many types on malformed input
        try:
            header = wfdb.rdheader(base)
        except Exception as header_exc:
            raise fail(
                f"expected a WFDB header in {hea.name}, but wfdb could not parse it: "
                f"{type(header_exc).__name__}: {header_exc}"
            ) from None
        _check_header(header, hea, sampling_rate, fail)
        raise fail(f"wfdb could not read the samples: {type(exc).__name__}: {exc}") from None
    names = _check_header(rec, hea, sampling_rate, fail)
    upper = [n.upper() for n in names]
    wanted = [n.upper() for n in LEAD_NAMES]
    length, n_sig = RECORD_SECONDS * sampling_rate, len(LEAD_NAMES)
    signal = np.asarray(rec.p_signal, dtype=np.float32)
    if signal.shape != (length, n_sig):
        raise fail(f"expected {length} x {n_sig} samples, but read {signal.shape}.")
    bad = ~np.isfinite(signal)
    if bad.any():
        sample, lead = (int(v) for v in np.argwhere(bad)[0])
        value = signal[sample, lead]
        what = "no value (NaN)" if np.isnan(value) else f"an infinite value ({value})"
        hint = "" if np.isnan(value) else " (check the gain and units in the header)"
        raise fail(
            f"expected finite samples, but lead {rec.sig_name[lead]} has {what} at sample {sample} "
            f"({sample / sampling_rate:.2f} s); {int(bad.sum())} non-finite samples in all{hint}."
        )
    order = [upper.index(w) for w in wanted]
    return np.ascontiguousarray(signal[:, order].T)


# --------------------------------------------------------------------------------------------
# The data set


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

    def _slice(self, start: int, stop: int) -> PTBXL:
        rows = None
        if self._rows is not None:
            rows = (self._rows[0] + start, self._rows[0] + stop)
        return dataclasses.replace(
            self,
            signals=self.signals[start:stop],
            labels=self.labels[start:stop],
            ecg_ids=self.ecg_ids[start:stop],
            folds=self.folds[start:stop],
            meta=self.meta.iloc[start:stop],
            _rows=rows,
        )

    def split(self, name: Split) -> PTBXL:
        """The records of one split: ``train`` (folds 1-8), ``val`` (9) or ``test`` (10).

        A view: the signals stay memory-mapped. Labels, label names and standardization are
        those of the whole set.

        Args:
            name: ``"train"``, ``"val"`` or ``"test"``.

        Returns:
            The split.

        Raises:
            InputError: If ``name`` is unknown or the split has no records.
        """
        if name not in SPLITS:
            hint = closest(str(name), list(SPLITS))
            raise InputError(
                f"Expected the split to be one of {', '.join(SPLITS)}, but got {name!r}."
                + (f" Did you mean {hint!r}?" if hint else "")
            )
        low, high = SPLITS[name]
        start = int(np.searchsorted(self.folds, low, side="left"))
        stop = int(np.searchsorted(self.folds, high, side="right"))
        if stop <= start:
            folds = f"fold {low}" if low == high else f"folds {low}-{high}"
            raise InputError(
                f"Expected records in the {name} split ({folds} of strat_fold) of "
                f"{self.data_dir}, but there are none."
            )
        return self._slice(start, stop)

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
    logger.info("read %d records in %.1f s", len(records), time.perf_counter() - started)


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
        train = (folds >= SPLITS["train"][0]) & (folds <= SPLITS["train"][1]) & keep
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
                low, high = SPLITS["train"]
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
