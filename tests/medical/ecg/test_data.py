"""PTB-XL reading: layout, label sets, branches, folds, preprocessing, cache, every error path.

The inputs are small synthetic PTB-XL folders (``medical.ecg.synth``) and corrupt copies of
them in ``tmp_path``; the ``realdata`` tests read the shared 500-record subset.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medical.ecg import (
    BRANCH_CODES,
    LEAD_NAMES,
    CSVError,
    PTBXLError,
    RecordError,
    branch_of,
    highpass_filter,
    label_names,
    load_ptbxl,
    read_database,
    read_record,
    read_statements,
)
from medical.ecg.synth import _write_record, write_synthetic_ptbxl
from shared.errors import InputError

N_SMALL = 20
EXPECTED_SIZES = {
    "all": 71,
    "diagnostic": 44,
    "subdiagnostic": 23,
    "superdiagnostic": 5,
    "form": 19,
    "rhythm": 12,
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20-record synthetic PTB-XL folder with records100/ and records500/ (read-only use)."""
    out = tmp_path_factory.mktemp("ptbxl") / "small"
    write_synthetic_ptbxl(out, n_records=N_SMALL, sampling_rates=(100, 500), seed=3, progress=False)
    return out


@pytest.fixture
def copy(small: Path, tmp_path: Path) -> Path:
    """A private copy of the small folder, to corrupt."""
    target = tmp_path / "copy"
    shutil.copytree(small, target)
    return target


def load(data_dir: Path, tmp_path: Path, **kwargs: object):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("cache_dir", tmp_path / "cache")
    return load_ptbxl(data_dir, **kwargs)  # type: ignore[arg-type]


def first_record(data_dir: Path, rate: int = 100) -> tuple[int, str]:
    db = pd.read_csv(data_dir / "ptbxl_database.csv", index_col="ecg_id")
    ecg_id = int(db.index[0])
    return ecg_id, str(db.loc[ecg_id, "filename_lr" if rate == 100 else "filename_hr"])


def rewrite_csv(path: Path, edit) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(frame)
    frame.to_csv(path, index=False)


# --------------------------------------------------------------------------------------------
# Reading and labels


def test_reads_layout_shapes_and_order(small: Path, tmp_path: Path) -> None:
    ds = load(small, tmp_path)
    assert ds.signals.shape == (N_SMALL, 12, 1000)
    assert ds.signals.dtype == np.float32
    assert ds.labels.shape == (N_SMALL, 71)
    assert ds.labels.dtype == np.float32
    assert ds.lead_names == LEAD_NAMES
    assert ds.sampling_rate == 100
    assert ds.duration == 10.0
    assert len(ds.ecg_ids) == len(ds.folds) == len(ds.meta) == N_SMALL
    keys = list(zip(ds.folds.tolist(), ds.ecg_ids.tolist()))
    assert keys == sorted(keys), "records are ordered by (strat_fold, ecg_id)"
    assert list(ds.meta.index) == ds.ecg_ids.tolist()
    assert {"age", "sex", "report"} <= set(ds.meta.columns)
    # Labels are the binary presence of the codes of scp_codes.
    for row, ecg_id in enumerate(ds.ecg_ids):
        codes = ds.meta.loc[ecg_id, "scp_codes"]
        assert {n for n, v in zip(ds.label_names, ds.labels[row]) if v} == set(codes)
    hi = load(small, tmp_path, sampling_rate=500)
    assert hi.signals.shape == (N_SMALL, 12, 5000)
    assert hi.sampling_rate == 500


def test_torch_dataset_interface(small: Path, tmp_path: Path) -> None:
    ds = load(small, tmp_path)
    x, y = ds[3]
    assert x.shape == (12, 1000)
    assert y.shape == (71,)
    assert x.dtype == torch.float32
    assert y.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(np.array(ds.signals[3])))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch[0].shape == (4, 12, 1000)
    assert batch[1].shape == (4, 71)


def test_label_sets_follow_the_statements_file(small: Path) -> None:
    statements = read_statements(small)
    for name, size in EXPECTED_SIZES.items():
        assert len(label_names(statements, name)) == size, name
    assert label_names(statements, "all") == list(statements.index)
    assert label_names(statements, "superdiagnostic") == ["STTC", "NORM", "MI", "HYP", "CD"]
    assert label_names(statements, "rhythm")[:3] == ["SR", "AFIB", "STACH"]
    with pytest.raises(InputError, match="Did you mean 'superdiagnostic'"):
        label_names(statements, "superdiagnostics")


def test_aggregated_labels_and_unlabeled_records(small: Path, tmp_path: Path) -> None:
    full = load(small, tmp_path, label_set="all")
    sup = load(small, tmp_path, label_set="superdiagnostic")
    statements = read_statements(small)
    cls = statements["diagnostic_class"]
    expected_ids = []
    for ecg_id in full.ecg_ids:
        codes = full.meta.loc[ecg_id, "scp_codes"]
        classes = {cls[c] for c in codes if statements.loc[c, "diagnostic"]}
        if classes:
            expected_ids.append(ecg_id)
            row = sup.index_of(ecg_id)
            assert {n for n, v in zip(sup.label_names, sup.labels[row]) if v} == classes
    # ProtoECGNet drops records without a (super)diagnostic label only for the aggregated sets.
    assert sorted(sup.ecg_ids.tolist()) == sorted(expected_ids)
    assert len(sup) < len(full)
    assert len(load(small, tmp_path, label_set="rhythm")) == len(full)
    kept = load(small, tmp_path, label_set="superdiagnostic", drop_unlabeled=False)
    assert len(kept) == len(full)
    # Aggregated sets still map row i to the same signal.
    row = int(full.index_of(sup.ecg_ids[0]))
    np.testing.assert_array_equal(sup.signals[0], full.signals[row])


def test_min_likelihood(small: Path, tmp_path: Path) -> None:
    everything = load(small, tmp_path)
    confident = load(small, tmp_path, min_likelihood=60.0)
    assert confident.labels.sum() < everything.labels.sum()
    j = everything.label_names.index("SR")  # rhythm codes carry likelihood 0
    assert confident.labels[:, j].sum() == 0 < everything.labels[:, j].sum()


def test_branches_of_the_71_statements(small: Path) -> None:
    names = label_names(read_statements(small), "all")
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(branch_of(name), []).append(name)
    assert [len(groups[b]) for b in ("rhythm", "morphology", "global")] == [16, 52, 3]
    assert groups["global"] == ["DIG", "NORM", "EL"]
    assert set(groups["rhythm"]) == set(BRANCH_CODES["rhythm"])
    assert branch_of("AFIB") == "rhythm"
    assert branch_of("CLBBB") == "morphology"
    with pytest.raises(InputError, match="PTB-XL SCP codes"):
        branch_of("MI")


def test_index_of_with_labels_and_descriptions(small: Path, tmp_path: Path) -> None:
    ds = load(small, tmp_path)
    assert ds.ecg_ids[ds.index_of(int(ds.ecg_ids[5]))] == ds.ecg_ids[5]
    with pytest.raises(InputError, match="ecg_id 99999"):
        ds.index_of(99999)
    rhythm = ds.with_labels(["SR", "AFIB"])
    assert rhythm.labels.shape == (N_SMALL, 2)
    assert rhythm.signals is ds.signals
    np.testing.assert_array_equal(rhythm.labels[:, 1], ds.labels[:, ds.label_names.index("AFIB")])
    with pytest.raises(InputError, match="Did you mean 'AFIB'"):
        ds.with_labels(["AFIBB"])
    assert rhythm.descriptions() == ["sinus rhythm", "atrial fibrillation"]


def test_pickling_reopens_the_memory_map(small: Path, tmp_path: Path) -> None:
    test = load(small, tmp_path)
    blob = pickle.dumps(test)
    assert len(blob) < test.signals.nbytes, "the signals are not copied into the pickle"
    back = pickle.loads(blob)
    assert isinstance(back.signals, np.memmap)
    np.testing.assert_array_equal(back.signals, test.signals)


# --------------------------------------------------------------------------------------------
# Preprocessing


def test_highpass_is_the_zero_phase_butterworth(small: Path, tmp_path: Path) -> None:
    raw = load(small, tmp_path, highpass=False)
    filtered = load(small, tmp_path)
    assert raw.highpass is None
    assert filtered.highpass == 0.5
    np.testing.assert_allclose(
        filtered.signals[:3], highpass_filter(np.asarray(raw.signals[:3]), 100), atol=1e-5
    )
    # A pure offset and a 0.05 Hz wander are removed; a 10 Hz component passes unchanged.
    t = np.arange(1000) / 100.0
    fast = np.sin(2 * np.pi * 10 * t)
    out = highpass_filter(fast + 1.5 + np.sin(2 * np.pi * 0.05 * t), 100)
    assert np.abs(out - fast)[100:-100].max() < 0.15
    other = load(small, tmp_path, highpass=2.0)
    assert other.highpass == 2.0
    assert other.cache_file != filtered.cache_file
    with pytest.raises(InputError, match="high-pass cutoff"):
        load(small, tmp_path, highpass=-1.0)


def test_standardization_is_fit_on_training_folds_only(small: Path, tmp_path: Path) -> None:
    plain = load(small, tmp_path)
    std = load(small, tmp_path, standardize=True)
    train = np.asarray(plain.signals[plain.folds <= 8], dtype=np.float64)
    np.testing.assert_allclose(std.mean, train.mean(axis=(0, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(std.std, train.std(axis=(0, 2)), rtol=1e-4)
    z = np.asarray(std.signals[std.folds <= 8], dtype=np.float64)
    np.testing.assert_allclose(z.mean(axis=(0, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=(0, 2)), 1.0, atol=1e-3)
    # The test fold is transformed with the training statistics, not its own.
    zt = np.asarray(std.signals[std.folds == 10], dtype=np.float64)
    assert np.abs(zt.mean(axis=(0, 2))).max() > 1e-4 or np.abs(zt.std(axis=(0, 2)) - 1).max() > 1e-3
    np.testing.assert_allclose(std.signal_mv(0), plain.signals[0], atol=1e-5)
    again = load(small, tmp_path, standardize=True)  # from the cache, statistics included
    assert isinstance(again.signals, np.memmap)
    np.testing.assert_array_equal(again.mean, std.mean)
    np.testing.assert_array_equal(again.signals, std.signals)


# --------------------------------------------------------------------------------------------
# Cache


def test_cache_first_read_shows_progress_then_memory_maps(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = load(small, tmp_path, progress=True)
    assert "Reading PTB-XL 100 Hz" in capsys.readouterr().err
    second = load(small, tmp_path, progress=True)
    assert "Reading PTB-XL" not in capsys.readouterr().err
    assert isinstance(second.signals, np.memmap)
    assert not second.signals.flags.writeable
    assert second.cache_file == first.cache_file
    assert second.cache_file.parent == tmp_path / "cache"
    uncached = load(small, tmp_path, cache=False)
    assert uncached.cache_file is None
    assert not isinstance(uncached.signals, np.memmap)
    np.testing.assert_array_equal(uncached.signals, second.signals)
    assert not list((tmp_path / "cache").glob("*.tmp")), "no temporary files are left"


def test_cache_key_follows_the_csv_and_the_record_files(copy: Path, tmp_path: Path) -> None:
    before = load(copy, tmp_path)
    ecg_id, record = first_record(copy)
    row = before.index_of(ecg_id)
    # A record file rewritten after caching is noticed (size / mtime fingerprint).
    hea = (copy / record).with_suffix(".hea")
    time.sleep(0.01)
    _write_record(
        hea.parent, hea.stem, np.full((12, 1000), 0.25), 100, [n.upper() for n in LEAD_NAMES]
    )
    after = load(copy, tmp_path, highpass=False)
    np.testing.assert_allclose(after.signals[row], 0.25)
    # A changed csv gives another cache entry.
    db = copy / "ptbxl_database.csv"
    db.write_text(db.read_text().replace("(synthetic)", "(synthetic; edited)"))
    edited = load(copy, tmp_path)
    assert edited.cache_file != before.cache_file


def test_unwritable_cache_falls_back_to_memory(
    small: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="medical.ecg.data"):
        ds = load(small, tmp_path, cache_dir=blocker / "cache")
    assert ds.cache_file is None
    assert ds.signals.shape == (N_SMALL, 12, 1000)
    assert "cannot write the cache" in caplog.text


def test_damaged_cache_entry_is_rebuilt(small: Path, tmp_path: Path) -> None:
    good = load(small, tmp_path)
    assert good.cache_file is not None
    reference = np.array(good.signals)
    del good
    good_file = tmp_path / "cache" / next(p.name for p in (tmp_path / "cache").glob("*.npy"))
    good_file.write_bytes(b"garbage")
    again = load(small, tmp_path)
    np.testing.assert_array_equal(again.signals, reference)


# --------------------------------------------------------------------------------------------
# Bad input: every error is a PTBXLError (InputError) naming the file, column or record.


def test_missing_folder_and_files(copy: Path, tmp_path: Path) -> None:
    with pytest.raises(PTBXLError, match="does not exist"):
        load(tmp_path / "nowhere", tmp_path)
    (copy / "scp_statements.csv").unlink()
    with pytest.raises(CSVError, match=r"scp_statements\.csv: expected this file"):
        load(copy, tmp_path)


def test_missing_database_csv(copy: Path, tmp_path: Path) -> None:
    (copy / "ptbxl_database.csv").unlink()
    with pytest.raises(CSVError, match=r"ptbxl_database\.csv: expected this file"):
        load(copy, tmp_path)


@pytest.mark.parametrize("column", ["scp_codes", "strat_fold", "filename_lr", "ecg_id"])
def test_missing_database_column(copy: Path, tmp_path: Path, column: str) -> None:
    rewrite_csv(copy / "ptbxl_database.csv", lambda f: f.drop(columns=[column], inplace=True))
    with pytest.raises(CSVError, match=f"column '{column}'.*'{column}'") as info:
        load(copy, tmp_path)
    assert info.value.column == column


def test_filename_hr_needed_only_at_500_hz(copy: Path, tmp_path: Path) -> None:
    rewrite_csv(
        copy / "ptbxl_database.csv", lambda f: f.drop(columns=["filename_hr"], inplace=True)
    )
    assert len(load(copy, tmp_path)) == N_SMALL
    with pytest.raises(CSVError, match="'filename_hr'"):
        load(copy, tmp_path, sampling_rate=500)


@pytest.mark.parametrize("column", ["diagnostic_class", "rhythm"])
def test_missing_statements_column(copy: Path, tmp_path: Path, column: str) -> None:
    path = copy / "scp_statements.csv"
    frame = pd.read_csv(path, index_col=0).drop(columns=[column])
    frame.to_csv(path)
    with pytest.raises(CSVError, match=f"scp_statements.csv, column '{column}'"):
        load(copy, tmp_path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{'NORM': 100.0", "expected a dict string"),
        ("['NORM']", "expected a dict string"),
        ("{'NORM': 'high'}", "expected a dict string"),
        ("", "the cell is empty"),
        ("{'NORMAL': 100.0}", "unknown SCP code 'NORMAL'.*did you mean 'NORM'"),
        ("{'NORM': 250.0}", "between 0 and 100"),
    ],
)
def test_unparsable_scp_codes(copy: Path, tmp_path: Path, text: str, match: str) -> None:
    ecg_id, _ = first_record(copy)

    def edit(frame: pd.DataFrame) -> None:
        frame.loc[frame["ecg_id"] == str(ecg_id), "scp_codes"] = text

    rewrite_csv(copy / "ptbxl_database.csv", edit)
    with pytest.raises(CSVError, match=f"column 'scp_codes', ecg_id {ecg_id}: .*{match}") as info:
        load(copy, tmp_path)
    assert info.value.ecg_id == ecg_id
    assert info.value.column == "scp_codes"


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("strat_fold", "11", "expected a fold number 1..10, but got 11"),
        ("strat_fold", "x", "expected a fold number 1..10"),
        ("ecg_id", "abc", "expected integer ecg_ids"),
        ("filename_lr", "", "expected a record path"),
    ],
)
def test_bad_database_values(
    copy: Path, tmp_path: Path, column: str, value: str, match: str
) -> None:
    def edit(frame: pd.DataFrame) -> None:
        frame.loc[0, column] = value

    rewrite_csv(copy / "ptbxl_database.csv", edit)
    with pytest.raises(CSVError, match=f"column '{column}'.*{match}"):
        load(copy, tmp_path)


def test_duplicate_ecg_id(copy: Path, tmp_path: Path) -> None:
    def edit(frame: pd.DataFrame) -> None:
        frame.loc[1, "ecg_id"] = frame.loc[0, "ecg_id"]

    rewrite_csv(copy / "ptbxl_database.csv", edit)
    with pytest.raises(CSVError, match="expected unique ecg_ids"):
        load(copy, tmp_path)


def test_empty_database(copy: Path, tmp_path: Path) -> None:
    rewrite_csv(copy / "ptbxl_database.csv", lambda f: f.drop(index=f.index, inplace=True))
    with pytest.raises(CSVError, match="no rows"):
        load(copy, tmp_path)


def test_bad_statement_flag(copy: Path, tmp_path: Path) -> None:
    path = copy / "scp_statements.csv"
    frame = pd.read_csv(path, index_col=0)
    frame.loc["NORM", "form"] = 7
    frame.to_csv(path)
    with pytest.raises(CSVError, match=r"column 'form': expected 1 or an empty cell.*'NORM'"):
        load(copy, tmp_path)


def _record_paths(data_dir: Path, rate: int = 100) -> tuple[int, str, Path, Path]:
    ecg_id, record = first_record(data_dir, rate)
    base = data_dir / record
    return ecg_id, record, base.with_suffix(".hea"), base.with_suffix(".dat")


def _expect_record_error(data_dir: Path, tmp_path: Path, match: str, rate: int = 100) -> None:
    ecg_id, record, _, _ = _record_paths(data_dir, rate)
    with pytest.raises(RecordError, match=match) as info:
        load(data_dir, tmp_path, sampling_rate=rate)
    assert info.value.record == record
    assert info.value.ecg_id == ecg_id
    assert f"record {record} (ecg_id {ecg_id})" in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, InputError)


def test_wrong_lead_count(copy: Path, tmp_path: Path) -> None:
    _, _, hea, _ = _record_paths(copy)
    names = [n.upper() for n in LEAD_NAMES[:11]]
    _write_record(hea.parent, hea.stem, np.zeros((11, 1000)), 100, names)
    _expect_record_error(copy, tmp_path, "expected 12 leads .*but the header lists 11")


def test_wrong_lead_names(copy: Path, tmp_path: Path) -> None:
    _, _, hea, _ = _record_paths(copy)
    hea.write_text(hea.read_text().replace(" V6\n", " V7\n"))
    _expect_record_error(copy, tmp_path, r"expected the leads I, II, .* \(V7 unexpected\)")


def test_permuted_leads_are_reordered(copy: Path, tmp_path: Path) -> None:
    ecg_id, _, hea, _ = _record_paths(copy)
    original = load(copy, tmp_path, highpass=False, cache=False)
    row = original.index_of(ecg_id)
    signal = np.asarray(original.signals[row], dtype=np.float64)
    order = [6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5]
    names = [LEAD_NAMES[i].lower() for i in order]  # also lower case: names match loosely
    _write_record(hea.parent, hea.stem, signal[order], 100, names)
    permuted = load(copy, tmp_path, highpass=False, cache=False)
    np.testing.assert_allclose(permuted.signals[row], signal, atol=1e-6)


def test_wrong_sampling_rate(copy: Path, tmp_path: Path) -> None:
    _, _, hea, _ = _record_paths(copy)
    lines = hea.read_text().splitlines()
    name, n_sig, _, length = lines[0].split()
    hea.write_text("\n".join([f"{name} {n_sig} 250 {length}", *lines[1:]]) + "\n")
    _expect_record_error(
        copy, tmp_path, "expected a sampling rate of 100 Hz, but the header says 250 Hz"
    )


def test_wrong_length(copy: Path, tmp_path: Path) -> None:
    _, _, hea, _ = _record_paths(copy)
    _write_record(hea.parent, hea.stem, np.zeros((12, 900)), 100, [n.upper() for n in LEAD_NAMES])
    _expect_record_error(
        copy,
        tmp_path,
        r"expected 1000 samples per lead \(10 s at 100 Hz\), but the header says 900",
    )


def test_units_other_than_millivolts(copy: Path, tmp_path: Path) -> None:
    _, _, hea, _ = _record_paths(copy)
    hea.write_text(hea.read_text().replace("/mV", "/uV"))
    _expect_record_error(copy, tmp_path, "expected signals in mV")


def test_missing_dat(copy: Path, tmp_path: Path) -> None:
    _, _, _, dat = _record_paths(copy)
    dat.unlink()
    _expect_record_error(
        copy, tmp_path, r"expected the signal file .*_lr\.dat, but it does not exist"
    )


def test_missing_header(copy: Path, tmp_path: Path) -> None:
    _, _, hea, _ = _record_paths(copy)
    hea.unlink()
    _expect_record_error(
        copy, tmp_path, r"expected the header file .*_lr\.hea, but it does not exist"
    )


def test_truncated_dat(copy: Path, tmp_path: Path) -> None:
    _, _, _, dat = _record_paths(copy)
    dat.write_bytes(dat.read_bytes()[:10_000])
    _expect_record_error(
        copy, tmp_path, "expected .* to hold 24000 bytes .* but it has 10000: the file is truncated"
    )


def test_nan_samples(copy: Path, tmp_path: Path) -> None:
    _, _, _, dat = _record_paths(copy)
    data = np.frombuffer(dat.read_bytes(), dtype="<i2").copy()
    data[12 * 500 + 3] = -32768  # WFDB's "no value" sample: lead aVR at sample 500
    dat.write_bytes(data.tobytes())
    _expect_record_error(copy, tmp_path, r"lead AVR has no value \(NaN\) at sample 500 \(5.00 s\)")


def test_corrupt_header(copy: Path, tmp_path: Path) -> None:
    _, _, hea, _ = _record_paths(copy)
    hea.write_text("this is not a header\n")
    _expect_record_error(copy, tmp_path, "wfdb could not parse it|expected 12 leads")


def test_absent_records_error_or_skip(
    copy: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ecg_id, _, hea, dat = _record_paths(copy, 500)
    hea.unlink()
    dat.unlink()
    _expect_record_error(copy, tmp_path, "expected the header file", rate=500)
    with caplog.at_level(logging.WARNING, logger="medical.ecg.data"):
        ds = load(copy, tmp_path, sampling_rate=500, missing="skip")
    assert len(ds) == N_SMALL - 1
    assert ecg_id not in ds.ecg_ids.tolist()
    assert "skipping 1 of 20 ECGs" in caplog.text
    # A record with its header but no signal file is corrupt, not absent: still an error.
    _, _, _, dat2 = _record_paths(copy, 100)
    dat2.unlink()
    with pytest.raises(RecordError, match="signal file"):
        load(copy, tmp_path, missing="skip")


def test_bad_options(small: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="100 or 500 Hz"):
        load(small, tmp_path, sampling_rate=250)
    with pytest.raises(InputError, match="Did you mean 'rhythm'"):
        load(small, tmp_path, label_set="rythm")
    with pytest.raises(InputError, match="'error' or 'skip'"):
        load(small, tmp_path, missing="ignore")


def test_read_record_and_read_database_directly(small: Path) -> None:
    ecg_id, record = first_record(small)
    signal = read_record(small, record, sampling_rate=100, ecg_id=ecg_id)
    assert signal.shape == (12, 1000)
    assert signal.dtype == np.float32
    db = read_database(small)
    assert db.index.name == "ecg_id"
    assert isinstance(db.loc[ecg_id, "scp_codes"], dict)
    assert db["strat_fold"].between(1, 10).all()


# --------------------------------------------------------------------------------------------
# The real subset (skipped when ../shared/data is absent)

SUBSET_CACHE: dict[str, Path] = {}


@pytest.fixture(scope="module")
def subset_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ptbxl-subset-cache")


@pytest.mark.realdata
def test_real_subset_shapes_folds_and_labels(shared_data: Path, subset_cache: Path) -> None:
    root = shared_data / "ptbxl-subset"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    ds = load_ptbxl(root, cache_dir=subset_cache, progress=False)
    assert ds.signals.shape == (500, 12, 1000)
    assert ds.labels.shape == (500, 71)
    assert sorted(set(ds.folds.tolist())) == list(range(1, 11))
    # ECG 1: "sinusrhythmus periphere niederspannung", {'NORM': 100, 'LVOLT': 0, 'SR': 0}, fold 3.
    row = ds.index_of(1)
    assert ds.folds[row] == 3
    assert {n for n, v in zip(ds.label_names, ds.labels[row]) if v} == {"NORM", "LVOLT", "SR"}
    assert ds.meta.loc[1, "age"] == 56
    assert ds.meta.loc[1, "sex"] == 1
    # Amplitudes are millivolts and the 0.5 Hz high-pass leaves a zero-mean signal.
    assert 0.05 < float(np.abs(ds.signals[row]).max()) < 10
    assert abs(float(np.mean(ds.signals[row]))) < 0.05
    for name, size in EXPECTED_SIZES.items():
        sub = load_ptbxl(root, label_set=name, cache_dir=subset_cache, progress=False)
        assert len(sub.label_names) == size
        if name in ("subdiagnostic", "superdiagnostic"):
            assert len(sub) < 500
            assert sub.labels.any(axis=1).all()
        else:
            assert len(sub) == 500
    sup = load_ptbxl(root, label_set="superdiagnostic", cache_dir=subset_cache, progress=False)
    assert sup.labels[sup.index_of(1)].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]  # NORM
    branches = [branch_of(n) for n in ds.label_names]
    assert [branches.count(b) for b in ("rhythm", "morphology", "global")] == [16, 52, 3]


@pytest.mark.realdata
def test_real_subset_500_hz(shared_data: Path, subset_cache: Path) -> None:
    root = shared_data / "ptbxl-subset"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    with pytest.raises(RecordError, match=r"record records500/00000/\d+_hr \(ecg_id \d+\)"):
        load_ptbxl(root, sampling_rate=500, cache_dir=subset_cache, progress=False)
    hi = load_ptbxl(root, sampling_rate=500, missing="skip", cache_dir=subset_cache, progress=False)
    assert hi.signals.shape == (100, 12, 5000)
    assert set(hi.ecg_ids.tolist()) == set(range(1, 101))
    lo = load_ptbxl(root, cache_dir=subset_cache, progress=False)
    # The 100 Hz record is the 500 Hz one decimated: the same ECG at both rates.
    a = np.asarray(lo.signals[lo.index_of(1)])[1]
    b = np.asarray(hi.signals[hi.index_of(1)])[1, ::5]
    assert np.corrcoef(a, b)[0, 1] > 0.9
    assert hi.cache_file is not None
    assert os.path.getsize(hi.cache_file) >= 100 * 12 * 5000 * 4
