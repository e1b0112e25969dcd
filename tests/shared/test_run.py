"""RunFolder: ownership, config and data checks before any write, stages, stamped weights."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from shared.errors import InputError
from shared.io import read_csv, write_csv
from shared.training.run import (
    MARKER,
    RunFolder,
    data_fingerprint,
    describe_diff,
    run_id_of,
    stamp_run_id,
)


def _prepare(path, **kw):
    args = {"domain": "toy", "command": "train", "config": {"lr": 0.1, "trainer": {"seed": 1}}}
    args.update(kw)
    return RunFolder.prepare(path, **args)


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_prepare_writes_nothing_and_create_writes_marker_and_config(tmp_path):
    out = tmp_path / "a" / "run"
    run = _prepare(out)
    assert not out.exists()
    assert not run.resumed
    run.create()
    marker = json.loads((out / MARKER).read_text())
    assert (marker["domain"], marker["command"]) == ("toy", "train")
    assert "lr: 0.1" in (out / "config.yaml").read_text()
    again = _prepare(out)
    assert again.resumed
    assert again.run_id == run.run_id


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"config.yaml": "thesis draft"}, "not empty and holds no contrasuite run"),
        ({"notes.txt": "x"}, "not empty and holds no contrasuite run"),
    ],
)
def test_foreign_folder_is_refused_untouched(tmp_path, content, message):
    for name, text in content.items():
        (tmp_path / name).write_text(text)
    before = _snapshot(tmp_path)
    with pytest.raises(InputError, match=message):
        _prepare(tmp_path)
    assert _snapshot(tmp_path) == before


def test_a_file_is_refused(tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    with pytest.raises(InputError, match="expected a folder for the run, but it is a file"):
        _prepare(path)


def test_other_domain_command_config_and_data_are_refused(tmp_path):
    run = _prepare(tmp_path / "r", data="aaa").create()
    before = _snapshot(run.path)
    with pytest.raises(InputError, match="holds a toy train run, not an other train run"):
        _prepare(run.path, domain="other")
    with pytest.raises(InputError, match="not a toy evaluate run"):
        _prepare(run.path, command="evaluate")
    with pytest.raises(InputError, match=r"another config: lr \(0.1 -> 0.2\); use another --out"):
        _prepare(run.path, config={"lr": 0.2, "trainer": {"seed": 1}})
    with pytest.raises(InputError, match="other input data"):
        _prepare(run.path, data="bbb")
    assert _snapshot(run.path) == before
    # safe keys may change
    safe = {"lr": 0.1, "trainer": {"seed": 1, "device": "cpu", "threads": 2}}
    assert _prepare(run.path, config=safe, data="aaa").resumed


def test_describe_diff_is_short_and_one_line():
    old = {f"k{i}": i for i in range(10)}
    new = {f"k{i}": i + 1 for i in range(10)}
    text = describe_diff(old, new)
    assert text.endswith("and 7 more")
    assert "\n" not in text
    assert text.count("->") == 3


def test_open_existing_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        RunFolder.open_existing(tmp_path / "none", domain="toy")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="it is a file"):
        RunFolder.open_existing(tmp_path / "file", domain="toy")
    with pytest.raises(InputError, match="holds no"):
        RunFolder.open_existing(tmp_path, domain="toy")
    run = _prepare(tmp_path / "r").create()
    with pytest.raises(InputError, match="expected an ecg run"):
        RunFolder.open_existing(run.path, domain="ecg")
    assert RunFolder.open_existing(run.path, domain="toy").run_id == run.run_id


def test_stages_survive_reopening(tmp_path):
    run = _prepare(tmp_path / "r").create()
    assert not run.is_finished("stage1")
    run.mark_finished("stage1", mean=[0.5, 1.0])
    reopened = RunFolder.open_existing(run.path, domain="toy")
    assert reopened.is_finished("stage1")
    assert reopened.stage_info("stage1")["mean"] == [0.5, 1.0]


def test_stage_history_joins_the_stages_in_order_with_a_name_column(tmp_path):
    run = _prepare(tmp_path / "r").create()
    write_csv(run.stage_dir("b") / "history.csv", [{"epoch": 1, "train/loss": 2.0}])
    write_csv(
        run.stage_dir("a") / "history.csv",
        [{"epoch": 1, "train/loss": 3.0}, {"epoch": 2, "train/loss": 1.5, "val/acc": 0.5}],
    )
    # "c" has not started: no rows; the columns are the union, the name column first
    run.write_stage_history(["a", "b", "c"], column="method")
    rows = read_csv(run.path / "history.csv")
    assert list(rows[0]) == ["method", "epoch", "train/loss", "val/acc"]
    with pytest.raises(InputError, match=r"c/history\.csv"):
        read_csv(run.stage_dir("c") / "history.csv")
    assert [(r["method"], r["epoch"], r["train/loss"], r["val/acc"]) for r in rows] == [
        ("a", "1", "3.0", ""),
        ("a", "2", "1.5", "0.5"),
        ("b", "1", "2.0", ""),
    ]


def test_weights_carry_the_run_id_and_swaps_are_refused(tmp_path):
    torch.manual_seed(0)
    a = _prepare(tmp_path / "a").create()
    b = _prepare(tmp_path / "b").create()
    a.save_weights(nn.Linear(3, 2).state_dict())
    b.save_weights(nn.Linear(3, 2).state_dict())
    plain = torch.load(a.path / "weights.pt", weights_only=True)
    nn.Linear(3, 2).load_state_dict(plain)  # still a plain state_dict
    assert run_id_of(plain) == a.run_id
    a.load_weights(nn.Linear(3, 2))
    (a.path / "weights.pt").write_bytes((b.path / "weights.pt").read_bytes())
    with pytest.raises(InputError, match="written by another run"):
        a.load_weights(nn.Linear(3, 2))


def test_stamp_keeps_tensors():
    sd = nn.Linear(2, 2).state_dict()
    stamped = stamp_run_id(sd, "x")
    assert all(torch.equal(sd[k], stamped[k]) for k in sd)


def test_data_fingerprint(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("1")
    first = data_fingerprint(tmp_path / "d")
    (tmp_path / "d" / "a.txt").write_text("2")
    assert data_fingerprint(tmp_path / "d") != first
    assert data_fingerprint(np.ones(3)) == data_fingerprint(torch.ones(3, dtype=torch.float64))
    with pytest.raises(InputError, match="does not exist"):
        data_fingerprint(tmp_path / "missing")


def _two_ranks_share_one_run(rank, world):
    """Runs in each of two gloo processes (see test_ranks_share_rank0s_run_and_errors)."""
    import os

    import torch.distributed as dist

    root = os.environ["CONTRASUITE_TEST_RUN_BASE"]
    args: dict[str, Any] = {"domain": "toy", "command": "train", "config": {"lr": 0.1}}
    run = RunFolder.prepare(f"{root}/run", **args)
    run.create()  # rank 0 writes; the barrier lets every rank see the folder
    seen: list[Any] = [None] * world
    dist.all_gather_object(seen, (run.run_id, run.resumed, (run.path / MARKER).is_file()))
    assert seen[0] == seen[1] == (seen[0][0], False, True), seen
    run.mark_finished("stage1")
    assert json.loads((run.path / MARKER).read_text())["stages"]["stage1"]["finished"]
    run.save_weights(nn.Linear(2, 1).state_dict())  # rank 0 only: no second writer
    run.write_json("m.json", {"rank": rank})
    dist.barrier()
    assert json.loads((run.path / "m.json").read_text()) == {"rank": 0}
    again = RunFolder.prepare(f"{root}/run", **args)
    assert (again.resumed, again.run_id) == (True, run.run_id)
    assert again.is_finished("stage1")
    if rank == 0:  # a foreign folder: rank 0's check fails, and every rank gets its InputError
        (run.path.parent / "foreign").mkdir()
        (run.path.parent / "foreign" / "x.txt").write_text("x")
    with pytest.raises(InputError, match="not empty and holds no contrasuite run") as info:
        RunFolder.prepare(f"{root}/foreign", **args)
    assert info.value.from_rank0 == (rank != 0)  # only rank 0 prints it


@pytest.mark.ddp
def test_ranks_share_rank0s_run_and_errors(tmp_path, monkeypatch, caplog):
    from tests.shared._ddp import run_gloo

    monkeypatch.setenv("CONTRASUITE_TEST_RUN_BASE", str(tmp_path))  # the children inherit it
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_gloo(_two_ranks_share_one_run)
    assert not list(tmp_path.rglob("*.tmp"))
    assert json.loads((tmp_path / "run" / MARKER).read_text())["processes"] == 2
    # resumed by one process: allowed, with a warning that the run changes from here on
    with caplog.at_level("WARNING", logger="shared.training.run"):
        again = RunFolder.prepare(tmp_path / "run", domain="toy", command="train",
                                  config={"lr": 0.1})  # fmt: skip
    assert again.resumed
    assert "started with 2 process(es) with 1" in caplog.text
    caplog.clear()
    again.create()  # records the new count: no warning on the next resume
    with caplog.at_level("WARNING", logger="shared.training.run"):
        RunFolder.prepare(tmp_path / "run", domain="toy", command="train", config={"lr": 0.1})
    assert "process(es)" not in caplog.text


def test_check_output_path(tmp_path):
    from shared.training.run import check_output_path

    run = _prepare(tmp_path / "run").create()
    with pytest.raises(InputError, match="inside the run folder"):
        check_output_path(run.path / "weights.pt")
    with pytest.raises(InputError, match="inside the run folder"):
        check_output_path(run.path)
    with pytest.raises(InputError, match="inside the input"):
        check_output_path(tmp_path / "in", inputs=(tmp_path / "in",))
    assert check_output_path(tmp_path / "out", inputs=(tmp_path / "in",)) == tmp_path / "out"
