"""The explicit registries of commands and demo steps, and the config file reader."""

from __future__ import annotations

import pytest

from pipelines.common import COMMANDS, register_command
from pipelines.config_io import read_yaml
from pipelines.demo import DEMO_STEPS, register_demo_step
from pipelines.registry import Registry, closest_match
from shared.errors import InputError
from shared.io import atomic_write_text


def test_register_and_get_in_order():
    reg: Registry[object] = Registry("widget")
    reg.add("b", 2)

    @reg.register("a")
    def make() -> int:
        return 1

    assert reg.names() == ("b", "a")
    assert reg.get("a") is make
    assert "b" in reg
    assert len(reg) == 2
    assert [name for name, _ in reg.items()] == ["b", "a"]


def test_duplicate_names_are_refused():
    reg: Registry[int] = Registry("widget")
    reg.add("x", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("x", 2)
    assert reg.get("x") == 1


def test_lookup_error_lists_names_and_closest():
    reg: Registry[int] = Registry("demo step")
    reg.add("core", 1)
    reg.add("ecg", 2)
    with pytest.raises(
        InputError,
        match=r"Unknown demo step 'coer'\. Available: core, ecg\. "
        r"Did you mean 'core'\?",
    ):
        reg.get("coer")
    with pytest.raises(InputError) as info:
        reg.get("zzzzzz")
    assert "Did you mean" not in str(info.value)


def test_closest_match():
    assert closest_match("--epoch", ["--epochs", "--out"]) == "--epochs"
    assert closest_match("qqq", ["--epochs"]) is None


def test_commands_and_demo_steps_are_registered():
    import pipelines.cli  # noqa: F401  (the explicit import list fills the registries)

    assert {"demo", "digits"} <= set(COMMANDS.names())
    assert "digits" in DEMO_STEPS.names()


def test_register_command_refuses_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):
        register_command("demo", help="again")(lambda parser: None)


def test_register_demo_step_checks_names():
    with pytest.raises(ValueError, match="already registered"):
        register_demo_step("digits", title="again")(lambda ctx: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="letters"):
        register_demo_step("a/b", title="bad folder name")


def test_read_yaml(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_yaml(empty) == {}
    good = tmp_path / "good.yaml"
    good.write_text("trainer:\n  epochs: 3\n")
    assert read_yaml(good) == {"trainer": {"epochs": 3}}
    with pytest.raises(InputError, match="is a directory"):
        read_yaml(tmp_path)
    keys = tmp_path / "keys.yaml"
    keys.write_text("1: a\n")
    with pytest.raises(InputError, match="non-string keys"):
        read_yaml(keys)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(InputError, match=r"scalar\.yaml.*mapping.*str"):
        read_yaml(scalar)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1\n")
    with pytest.raises(InputError, match=r"broken\.yaml' is not valid YAML at line \d+"):
        read_yaml(broken)


def test_atomic_write_text_replaces_whole_files(tmp_path):
    target = tmp_path / "sub" / "index.html"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["index.html"]  # no temporary left
