"""Text-file -> atomic-file conversion, data set resolution, RecBole loading, and bad input."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from recsys.data import (
    check_atomic_folder,
    convert_text_to_atomic,
    read_sequences,
    resolve_dataset,
)
from shared.errors import InputError

# ----------------------------------------------------------------------------- conversion


def test_conversion_writes_time_ordered_atomic_file(tmp_path: Path) -> None:
    src = tmp_path / "shop.txt"
    src.write_text("7 10 11 12\n8 11 13\n\n9 12 10 10 14\n")
    info = convert_text_to_atomic(src, tmp_path / "out" / "shop")
    lines = (tmp_path / "out" / "shop" / "shop.inter").read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\ttimestamp:float"
    rows = [line.split("\t") for line in lines[1:]]
    assert rows[:3] == [["7", "10", "0"], ["7", "11", "1"], ["7", "12", "2"]]
    assert [r for r in rows if r[0] == "9"] == [
        ["9", "12", "0"],
        ["9", "10", "1"],
        ["9", "10", "2"],
        ["9", "14", "3"],
    ]
    assert (info.name, info.n_users, info.n_items, info.n_interactions) == ("shop", 3, 5, 9)
    assert info.dropped_users == 0


def test_single_interaction_users_are_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "d.txt"
    src.write_text("1 5 6 7\n2 5\n3 6 7\n")
    with caplog.at_level(logging.WARNING, logger="recsys.data"):
        info = convert_text_to_atomic(src, tmp_path / "d")
    assert info.n_users == 2
    assert info.dropped_users == 1
    assert "1 user(s) with a single interaction" in caplog.text
    assert "2" in caplog.text
    assert "2\t" not in (tmp_path / "d" / "d.inter").read_text().split("\n", 1)[1]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("1 2 3\n4\n", r"line 2: expected 'user item item \.\.\.'"),
        ("1 2 3\n1 4 5\n", r"line 2: user '1' already has line 1"),
        ("", "the file is empty"),
        ("\n\n", "the file is empty"),
        ("1 2\n3 4\n", "no user has two or more interactions"),
        ("1,2,3\n", "a user without items"),
    ],
)
def test_malformed_text_files_raise_input_error(tmp_path: Path, content: str, match: str) -> None:
    src = tmp_path / "bad.txt"
    src.write_text(content)
    with pytest.raises(InputError, match=match) as err:
        read_sequences(src)
    assert str(src) in str(err.value)


def test_binary_and_missing_files_raise_input_error(tmp_path: Path) -> None:
    src = tmp_path / "bin.txt"
    src.write_bytes(b"\xff\xfe\x00\x01 \x80\x81\n")
    with pytest.raises(InputError, match="not text"):
        read_sequences(src)
    with pytest.raises(InputError, match="does not exist"):
        read_sequences(tmp_path / "nope.txt")


def test_text_file_names_are_mapped_and_folder_names_checked(tmp_path: Path) -> None:
    src = tmp_path / "-x.txt"
    src.write_text("1 2 3\n")
    assert convert_text_to_atomic(src, tmp_path / "o").name == "x"
    src = tmp_path / "——.txt"
    src.write_text("1 2 3\n")
    with pytest.raises(InputError, match="no data set name"):
        convert_text_to_atomic(src, tmp_path / "o")
    folder = tmp_path / "Beauté"
    folder.mkdir()
    with pytest.raises(InputError, match=r"ASCII letters \(A-Z, a-z\), digits, '_', '-' and '.'"):
        check_atomic_folder(folder)


def test_tab_separated_ids_with_spaces_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "d.txt"
    src.write_text("u1\t1\t2\t3\nu2\t4\t5\n")
    sequences, _ = read_sequences(src)
    assert sequences == {"u1": ["1", "2", "3"], "u2": ["4", "5"]}
    src.write_text("u1\t1\t2\t3\nu2\tred shoe\t5\n")
    with pytest.raises(InputError, match="line 2: tab-separated ids with spaces inside"):
        read_sequences(src)


# ----------------------------------------------------------------------------- atomic folders


def _atomic(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{folder.name}.inter").write_text(text)
    return folder


def test_atomic_folder_checks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = _atomic(
        tmp_path / "good",
        "user_id:token\titem_id:token\ttimestamp:float\n1\t1\t0\n1\t2\t1\n2\t1\t5\n",
    )
    with caplog.at_level(logging.WARNING, logger="recsys.data"):
        info = check_atomic_folder(good)
    assert (info.n_users, info.n_items, info.n_interactions, info.dropped_users) == (1, 2, 2, 1)
    assert "single interaction" in caplog.text

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "other.inter").write_text("x")
    with pytest.raises(InputError, match=r"wrong\.inter.*rename it"):
        check_atomic_folder(wrong)
    no_time = _atomic(tmp_path / "notime", "user_id:token\titem_id:token\n1\t2\n")
    with pytest.raises(InputError, match="timestamp"):
        check_atomic_folder(no_time)
    ragged = _atomic(tmp_path / "ragged", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\n")
    with pytest.raises(InputError, match="line 2: expected 3 tab-separated columns"):
        check_atomic_folder(ragged)
    empty = _atomic(tmp_path / "empty", "user_id:token\titem_id:token\ttimestamp:float\n")
    with pytest.raises(InputError, match="no interactions"):
        check_atomic_folder(empty)


def test_resolve_dataset_kinds(tmp_path: Path, tiny_text: Path) -> None:
    builtin = resolve_dataset("ml-100k", tmp_path)
    assert builtin.kind == "builtin"
    assert builtin.name == "ml-100k"
    text = resolve_dataset(str(tiny_text), tmp_path / "run")
    assert text.kind == "text"
    assert text.name == "tiny"
    assert (tmp_path / "run" / "data" / "tiny" / "tiny.inter").is_file()
    folder = resolve_dataset(str(tmp_path / "run" / "data" / "tiny"), tmp_path)
    assert folder.kind == "atomic"
    assert folder.data_path == (tmp_path / "run" / "data").resolve()
    with pytest.raises(InputError, match="Did you mean 'ml-100k'"):
        resolve_dataset("ml-100", tmp_path)


# ----------------------------------------------------------------------------- RecBole loading


def test_load_data_leaves_no_trace(
    tmp_path: Path, tiny_text: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recbole.model.sequential_recommender import SASRec

    from recsys.loading import build_config, load_data

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["prog", "--epochs=999", "--learning_rate=7"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    root_handlers = list(logging.getLogger().handlers)
    source = resolve_dataset(str(tiny_text), tmp_path / "run")
    config = build_config(
        SASRec,
        source,
        {"epochs": 2, "train_batch_size": 16},
        checkpoint_dir=tmp_path / "run" / "ck",
        device="cpu",
    )
    assert config["epochs"] == 2
    assert config["learning_rate"] == 0.001
    _, train, valid, test = load_data(config)
    assert os.listdir(cwd) == []
    assert logging.getLogger().handlers == root_handlers
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert sys.argv[1] == "--epochs=999"
    # leave-one-out: one validation and one test example per user
    n_users = len(tiny_text.read_text().splitlines())
    assert len(valid.dataset) == n_users
    assert len(test.dataset) == n_users
    batch = next(iter(train))
    assert batch["item_id_list"].shape[1] == 50


@pytest.mark.realdata
def test_beauty_conversion_matches_published_statistics(shared_data: Path, tmp_path: Path) -> None:
    beauty = shared_data / "seqrec" / "Beauty.txt"
    if not beauty.is_file():
        pytest.skip(f"{beauty} is absent")
    info = convert_text_to_atomic(beauty, tmp_path / "Beauty")
    # methods.md 2.2: 22,363 users, 12,101 items, 198,502 actions.
    assert (info.n_users, info.n_items, info.n_interactions) == (22363, 12101, 198502)


def test_atomic_float_columns_are_checked_before_any_run_folder(tmp_path: Path) -> None:
    from pipelines.cli import main

    folder = tmp_path / "atomC"
    folder.mkdir()
    (folder / "atomC.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n1\t2\tnot-a-time\n1\t3\t5\n"
    )
    with pytest.raises(InputError, match=r"line 2: expected a number in column 'timestamp:float'"):
        check_atomic_folder(folder)
    out = tmp_path / "out"
    assert main(["recsys", "evaluate", "--dataset", str(folder), "--out", str(out)]) == 2
    assert not out.exists()
