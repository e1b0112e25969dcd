"""PTB-XL's published format: constants, the two csv files, label sets and their errors.

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
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from shared.errors import InputError
from shared.validation import closest

__all__ = [
    "BRANCH_CODES",
    "DATABASE_COLUMNS",
    "LABEL_SETS",
    "LEAD_NAMES",
    "RECORD_SECONDS",
    "SAMPLING_RATES",
    "STATEMENT_COLUMNS",
    "CSVError",
    "PTBXLError",
    "RecordError",
    "branch_of",
    "label_matrix",
    "label_names",
    "read_database",
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
_BRANCH_OF = {code: branch for branch, codes in BRANCH_CODES.items() for code in codes}

# Bytes per sample of the WFDB formats that a size check can use (format 16: PTB-XL's).
_FMT_BYTES = {"16": 2.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5, "24": 3.0, "32": 4.0}

PathLike = str | os.PathLike[str]
LabelSet = Literal["all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm"]


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
