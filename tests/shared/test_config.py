from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import torch
import yaml

from shared.config import (
    ConfigError,
    apply_overrides,
    dump_yaml,
    from_dict,
    load_config,
    to_dict,
)
from shared.errors import InputError
from shared.io import (
    atomic_open,
    atomic_torch_save,
    atomic_write_text,
    read_json,
    write_csv,
    write_json,
)
from shared.training import TrainerConfig


@dataclass(frozen=True)
class Head:
    dims: tuple[int, ...] = (64, 32)
    norm: Literal["bn", "ln", "none"] = "bn"


@dataclass(frozen=True)
class Experiment:
    name: str
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    head: Head = field(default_factory=Head)
    temperature: float = 0.1
    checkpoint: str | None = None
    tags: list[str] = field(default_factory=list)
    path: Path = Path("data")

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"Expected `temperature` to be > 0, but got {self.temperature}.")


# ---------------------------------------------------------------- from_dict


def test_from_dict_builds_nested_and_coerces_types():
    cfg = from_dict(
        Experiment,
        {
            "name": "demo",
            "trainer": {"lr": "1e-4", "epochs": "3", "amp": "no", "grad_clip": 1, "patience": 2.0},
            "head": {"dims": [8, "4"], "norm": "ln"},
            "temperature": 1,
            "tags": "a,b",
            "path": "x/y",
        },
    )
    assert cfg.trainer.lr == pytest.approx(1e-4)
    assert isinstance(cfg.trainer.lr, float)
    assert cfg.trainer.epochs == 3
    assert cfg.trainer.amp is False
    assert cfg.trainer.grad_clip == 1.0
    assert isinstance(cfg.trainer.grad_clip, float)
    assert cfg.trainer.patience == 2
    assert cfg.head == Head(dims=(8, 4), norm="ln")
    assert cfg.temperature == 1.0
    assert isinstance(cfg.temperature, float)
    assert cfg.tags == ["a", "b"]
    assert cfg.path == Path("x/y")
    assert cfg.trainer.optimizer == "adamw"  # default kept


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("Yes", True), ("1", True), (1, True), ("off", False), ("0", False)],
)
def test_bool_coercion(raw, expected):
    assert from_dict(TrainerConfig, {"amp": raw}).amp is expected


@pytest.mark.parametrize("raw", ["maybe", 2, 0.5])
def test_bad_bool_is_an_error(raw):
    with pytest.raises(ConfigError, match=r"`amp` to be true or false"):
        from_dict(TrainerConfig, {"amp": raw})


def test_unknown_key_names_path_source_and_closest_match():
    with pytest.raises(ConfigError) as info:
        from_dict(Experiment, {"name": "x", "trainer": {"lrr": 0.1}}, source="exp.yaml")
    message = str(info.value)
    assert "exp.yaml" in message
    assert "`trainer.lrr`" in message
    assert "did you mean `trainer.lr`?" in message
    assert isinstance(info.value, InputError)


def test_unknown_top_level_key_suggests_nested_key():
    with pytest.raises(ConfigError, match=r"unknown key `epochs`; did you mean `trainer.epochs`"):
        from_dict(Experiment, {"name": "x", "epochs": 3})


def test_missing_required_key_is_an_error():
    with pytest.raises(ConfigError, match=r"missing required key `name`"):
        from_dict(Experiment, {})


def test_literal_choice_error_has_hint():
    with pytest.raises(ConfigError, match=r"one of 'adam', 'adamw', 'sgd'.*Did you mean 'adamw'"):
        from_dict(TrainerConfig, {"optimizer": "adamww"})


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"lr": "fast"}, r"`lr` to be a number"),
        ({"epochs": 2.5}, r"`epochs` to be an integer"),
        ({"epochs": True}, r"`epochs` to be an integer"),
        ({"monitor": 3}, r"`monitor` to be a string"),
        ({"epochs": 0}, r"`trainer.epochs` to be >= 1"),
        ({"lr": -1}, r"`trainer.lr` to be > 0"),
    ],
)
def test_bad_values_are_errors(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        from_dict(TrainerConfig, data)


def test_post_init_value_error_becomes_config_error():
    with pytest.raises(ConfigError, match=r"temperature"):
        from_dict(Experiment, {"name": "x", "temperature": -1})


def test_section_must_be_a_mapping():
    with pytest.raises(ConfigError, match=r"`trainer` to be a mapping"):
        from_dict(Experiment, {"name": "x", "trainer": 3})


def test_optional_accepts_none():
    cfg = from_dict(Experiment, {"name": "x", "checkpoint": None})
    assert cfg.checkpoint is None


def test_fixed_length_tuple():
    @dataclass(frozen=True)
    class Pair:
        size: tuple[int, float] = (1, 2.0)

    assert from_dict(Pair, {"size": ["3", "0.5"]}).size == (3, 0.5)
    with pytest.raises(ConfigError, match=r"a list of values \(an integer, a number\)"):
        from_dict(Pair, {"size": [1, 2, 3]})

    @dataclass(frozen=True)
    class Roi:
        roi: tuple[int, int, int] = (1, 2, 3)

    with pytest.raises(ConfigError, match=r"to be a list of 3 values, each an integer, but got"):
        apply_overrides(Roi(), ["roi=32,32"])


def test_from_dict_does_not_mutate_input():
    data = {"name": "x", "trainer": {"lr": "0.1"}}
    snapshot = json.dumps(data)
    from_dict(Experiment, data)
    assert json.dumps(data) == snapshot


# ---------------------------------------------------------------- overrides


def test_overrides_parse_against_field_types_and_return_new_object():
    base = from_dict(Experiment, {"name": "x"})
    new = apply_overrides(
        base,
        [
            "trainer.lr=3e-4",
            "trainer.grad_clip=none",
            "trainer.patience=5",
            "head.dims=[16, 8]",
            "head.norm=ln",
            "checkpoint=null",
            "name='quoted name'",
            "trainer.amp=false",
        ],
    )
    assert new.trainer.lr == pytest.approx(3e-4)
    assert new.trainer.grad_clip is None
    assert new.trainer.patience == 5
    assert new.head.dims == (16, 8)
    assert new.head.norm == "ln"
    assert new.name == "quoted name"
    assert new.trainer.amp is False
    # the original is untouched and still frozen
    assert base.trainer.lr == 1e-3
    assert base.head.dims == (64, 32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.trainer.lr = 0.5  # type: ignore[misc]


def test_override_value_may_contain_equals_sign():
    cfg = apply_overrides(from_dict(Experiment, {"name": "x"}), ["name=a=b"])
    assert cfg.name == "a=b"


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("trainer.lr", r"Invalid override `trainer.lr`: expected the form key=value"),
        ("=3", r"expected the form key=value"),
        ("trainer..lr=1", r"expected the form key=value"),
        ("trainer.lrr=1", r"override `trainer.lrr=1`.*did you mean `trainer.lr`"),
        ("trainer.lr=abc", r"override `trainer.lr=abc`.*`trainer.lr` to be a number"),
        ("trainer.optimizer=sgdd", r"Did you mean 'sgd'"),
        ("trainer=1", r"`trainer` is a section"),
        ("name.sub=1", r"`name` has no sub-keys"),
        ("trainer.epochs=-1", r"override `trainer.epochs=-1`.*>= 1"),
        ("lr=0.1", r"did you mean `trainer.lr`"),
    ],
)
def test_bad_overrides(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        apply_overrides(from_dict(Experiment, {"name": "x"}), [override])


def test_load_config_applies_overrides_after_data():
    cfg = load_config(Experiment, {"name": "x", "trainer": {"lr": 0.1}}, ["trainer.lr=0.2"])
    assert cfg.trainer.lr == 0.2
    assert load_config(TrainerConfig, None) == TrainerConfig()


# ---------------------------------------------------------------- dict and YAML


def test_to_dict_is_plain_json_and_round_trips():
    cfg = from_dict(Experiment, {"name": "x", "head": {"dims": [3]}, "tags": ["t"]})
    data = to_dict(cfg)
    json.dumps(data, allow_nan=False)
    assert data["head"]["dims"] == [3]
    assert data["path"] == "data"
    assert from_dict(Experiment, data) == cfg


def test_yaml_round_trip_of_a_config():
    cfg = from_dict(Experiment, {"name": "yes", "trainer": {"lr": 1e-5, "grad_clip": 1e20}})
    text = dump_yaml(to_dict(cfg))
    loaded = yaml.safe_load(text)
    assert loaded == to_dict(cfg)
    assert from_dict(Experiment, loaded) == cfg


TRICKY = {
    "strings": [
        "",
        "yes",
        "No",
        "null",
        "~",
        "1e-4",
        "0x10",
        "12:30",
        "a: b",
        "#c",
        "- x",
        'quote"d',
        "back\\slash",
        "tab\tnew\nline",
        "ünï©ødé",
        "😀",
        "\x85\x07",
        " lead",
        "trail ",
        "[x]",
        "{y}",
        "*ref",
        "&a",
        "!tag",
        "%p",
        "@a",
        "`b",
        "True",
        "on",
        "2020-01-01",
        ".inf",
        "-",
        "?",
        "|",
        ">",
    ],
    "numbers": [0, -3, 10**20, 0.1, -2.5, 1e-5, 1e20, 1.5e-300, 5e-324, 1e16],
    "flags": [True, False, None],
    "nested": {"a": {"b": {}}, "list_of_dicts": [{"x": 1}, {"y": [1, 2]}, [3, [4]]]},
    "empty_list": [],
    "1": "key that looks like a number",
    "weird key: yes": 1,
}


def test_dump_yaml_round_trips_tricky_values():
    assert yaml.safe_load(dump_yaml(TRICKY)) == TRICKY


def test_dump_yaml_special_floats():
    loaded = yaml.safe_load(dump_yaml({"a": float("nan"), "b": float("inf"), "c": -float("inf")}))
    assert math.isnan(loaded["a"])
    assert loaded["b"] == float("inf")
    assert loaded["c"] == -float("inf")


def test_dump_yaml_empty_and_bad_input():
    assert yaml.safe_load(dump_yaml({})) == {}
    with pytest.raises(TypeError, match="cannot write a"):
        dump_yaml({"a": object()})


# ---------------------------------------------------------------- atomic io


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"auc": 0.9})

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        write_json(path, {"auc": object()})
    with pytest.raises(RuntimeError, match="boom"):
        atomic_torch_save({"x": Unsaveable()}, path)

    def write_half() -> None:
        with atomic_open(path) as handle:
            handle.write("{half")
            raise RuntimeError("midway")

    with pytest.raises(RuntimeError, match="midway"):
        write_half()
    assert read_json(path) == {"auc": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no tmp files left


def test_atomic_write_replaces_content_and_creates_folders(tmp_path):
    path = tmp_path / "a" / "b.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    atomic_torch_save({"w": torch.ones(2)}, tmp_path / "w.pt")
    assert torch.equal(torch.load(tmp_path / "w.pt", weights_only=True)["w"], torch.ones(2))


def test_write_json_is_strict_and_read_json_errors(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, {"nan": float("nan"), "t": torch.tensor(0.5), "tuple": (1, 2)})
    assert json.loads(path.read_text()) == {"nan": None, "t": 0.5, "tuple": [1, 2]}
    with pytest.raises(InputError, match="does not exist"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(InputError, match=r"bad\.json"):
        read_json(tmp_path / "bad.json")


def test_write_csv_union_of_columns(tmp_path):
    path = tmp_path / "h.csv"
    write_csv(path, [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4, "val/auc": 0.7}])
    assert path.read_text().splitlines() == ["epoch,loss,val/auc", "1,0.5,", "2,0.4,0.7"]


@dataclass(frozen=True)
class _Inner:
    epochs: int = 10
    lr: float = 1e-3


@dataclass(frozen=True)
class _Outer:
    inner: _Inner = field(default_factory=lambda: _Inner(epochs=60))


def test_nested_section_keeps_parent_default_factory():
    cfg = from_dict(_Outer, {"inner": {"lr": 0.1}})
    assert cfg.inner == _Inner(epochs=60, lr=0.1)
    assert from_dict(_Outer, {}).inner.epochs == 60
    with pytest.raises(ConfigError, match="lrr"):
        from_dict(_Outer, {"inner": {"lrr": 0.1}})
