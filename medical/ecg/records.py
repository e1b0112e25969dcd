"""PTB-XL records: reading and checking one WFDB record, and the baseline-wander filter."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal
import wfdb

from medical.ecg.ptbxl_format import (
    _FMT_BYTES,
    LEAD_NAMES,
    RECORD_SECONDS,
    PathLike,
    RecordError,
)

__all__ = ["highpass_filter", "read_record"]


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
