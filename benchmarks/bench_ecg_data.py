"""PTB-XL reading speed: plain wfdb, the loader's first read, and the memory-mapped cache.

For each sampling rate, on a PTB-XL folder (default: the shared 500-record subset):

* ``wfdb_rdsamp``: ``wfdb.rdsamp`` on every record, the way the PTB-XL benchmark loads them
  (``load_raw_data_ptbxl``): no checks, no filter, no cache;
* ``first_read``: :func:`medical.ecg.load_ptbxl` with an empty cache folder: every record read
  with wfdb and checked, high-passed, and written to the cache (what a user waits for once);
* ``cached_load``: the same call again (median of ``--repeats``): csv parsing and checks, a
  ``stat`` of every record file, and the memory map of the cached array;
* ``cached_load_and_touch``: the same plus reading every sample of the map (``signals.sum()``),
  so that the comparison does not hinge on lazy paging;
* ``dataset_iteration``: ``ds[i]`` for every row (what a DataLoader does per sample).

Rates are records per second; ``speedup_*`` divide the first-read (or wfdb) time by the cached
time. The files are usually in the OS page cache already (earlier runs), which favours wfdb.
JSON goes to stdout, progress to stderr::

    .venv/bin/python benchmarks/bench_ecg_data.py                       # the shared subset
    .venv/bin/python benchmarks/bench_ecg_data.py --data-dir PTBXL --rates 100

:func:`bench_data` is importable (``benchmarks/bench_ecg.py`` puts its result under ``data``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import wfdb

from medical.ecg import SAMPLING_RATES, load_ptbxl

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptbxl-subset"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_rate(data_dir: Path, sampling_rate: int, repeats: int = 5) -> dict[str, Any]:
    """Time the three ways of reading ``data_dir`` at one sampling rate.

    Args:
        data_dir: A PTB-XL folder.
        sampling_rate: 100 or 500.
        repeats: Repetitions of the cached load (the median is reported).

    Returns:
        Seconds, records per second and speed-ups (see the module docstring).
    """
    column = SAMPLING_RATES[sampling_rate]
    db = pd.read_csv(data_dir / "ptbxl_database.csv", index_col="ecg_id")
    paths = [str(data_dir / f) for f in db[column]]
    present = [p for p in paths if os.path.exists(p + ".hea")]
    missing = "skip" if len(present) < len(paths) else "error"
    n = len(present)
    log(f"[{sampling_rate} Hz] {n} of {len(paths)} records present")

    wfdb_s, _ = _timed(lambda: [wfdb.rdsamp(p) for p in present])
    log(f"[{sampling_rate} Hz] wfdb.rdsamp: {wfdb_s:.2f} s")
    with tempfile.TemporaryDirectory(prefix="bench-ecg-cache-") as cache_dir:

        def load() -> Any:
            return load_ptbxl(
                data_dir,
                sampling_rate=sampling_rate,
                missing=missing,  # type: ignore[arg-type]
                cache_dir=cache_dir,
                progress=False,
            )

        first_s, ds = _timed(load)
        log(f"[{sampling_rate} Hz] first read (wfdb, checks, filter, cache write): {first_s:.2f} s")
        cached = [_timed(load)[0] for _ in range(repeats)]
        cached_s = statistics.median(cached)
        touched = [
            _timed(lambda: float(np.asarray(load().signals).sum()))[0] for _ in range(repeats)
        ]
        touched_s = statistics.median(touched)
        iter_s, _ = _timed(lambda: [ds[i] for i in range(len(ds))])
        cache_bytes = os.path.getsize(ds.cache_file) if ds.cache_file else 0
        log(
            f"[{sampling_rate} Hz] cached load: {cached_s * 1000:.1f} ms "
            f"(touching every sample: {touched_s * 1000:.1f} ms)"
        )

    return {
        "records": n,
        "samples_per_record": int(ds.signals.shape[-1]),
        "seconds": {
            "wfdb_rdsamp": wfdb_s,
            "first_read": first_s,
            "cached_load": cached_s,
            "cached_load_and_touch": touched_s,
            "dataset_iteration": iter_s,
        },
        "records_per_second": {
            "wfdb_rdsamp": n / wfdb_s,
            "first_read": n / first_s,
            "cached_load": n / cached_s,
            "cached_load_and_touch": n / touched_s,
            "dataset_iteration": n / iter_s,
        },
        "speedup_cached_vs_first_read": first_s / cached_s,
        "speedup_cached_vs_wfdb_rdsamp": wfdb_s / cached_s,
        "speedup_cached_and_touched_vs_wfdb_rdsamp": wfdb_s / touched_s,
        "cached_load_repeats_s": cached,
        "cache_file_bytes": cache_bytes,
    }


def bench_data(
    data_dir: Path = DEFAULT_DATA, rates: Sequence[int] = (100, 500), repeats: int = 5
) -> dict[str, Any]:
    """The data part of the ECG benchmark: :func:`bench_rate` for each sampling rate."""
    data_dir = Path(data_dir)
    results: dict[str, Any] = {
        "data_dir": str(data_dir),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "wfdb": wfdb.__version__,
        },
    }
    for rate in rates:
        results[f"{rate}hz"] = bench_rate(data_dir, rate, repeats)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="a PTB-XL folder")
    parser.add_argument(
        "--rates", default="100,500", help="comma-separated sampling rates (default: 100,500)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="cached-load repetitions")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    if not (args.data_dir / "ptbxl_database.csv").is_file():
        print(f"error: no PTB-XL folder at {args.data_dir}", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",") if r]
    results = bench_data(args.data_dir, rates, args.repeats)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
