"""The domain template: a DomainSpec becomes subcommands with common options and key help."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

import pipelines.domain as template
from pipelines.common import CliParser
from shared.domain import CommandSpec, DomainSpec, Option
from shared.errors import InputError
from shared.training import TrainerConfig


@dataclass(frozen=True)
class ModelConfig:
    name: str = "small"
    width: int = 8


@dataclass(frozen=True)
class ToyConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data_dir: str = ""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


CALLS: list[tuple] = []


def _train(args, cfg):
    CALLS.append(("train", cfg))
    return 0


def _make(args):
    CALLS.append(("make", args.n))
    return 3


@dataclass(frozen=True)
class ToyEvaluateConfig:
    data_dir: str = ""
    seed: int = 2020
    device: str = "auto"


def _evaluate(args, cfg):
    CALLS.append(("evaluate", cfg))
    return 0


REFS = {
    "toy:train": _train,
    "toy:make": _make,
    "toy:Config": ToyConfig,
    "toy:evaluate": _evaluate,
    "toy:EvaluateConfig": ToyEvaluateConfig,
}

SPEC = DomainSpec(
    name="toy",
    help="a toy domain",
    commands=(
        CommandSpec(
            "train",
            help="train it",
            run="toy:train",
            config="toy:Config",
            examples="contrasuite toy train --out runs/t",
            options=(
                Option(
                    ("--model",),
                    help="model",
                    key="model.name",
                    kwargs={"choices": ("small", "big")},
                ),
                Option(("--data-dir",), help="data", key="data_dir", kwargs={"metavar": "DIR"}),
            ),
        ),
        CommandSpec(
            "evaluate",
            help="evaluate it",
            run="toy:evaluate",
            config="toy:EvaluateConfig",
            out_required=False,
            out_help="folder to write (default: the run folder)",
            common_help={"seed": "seed of the toy bootstrap", "epochs": "not used here"},
            option_keys={"seed": "seed", "device": "device"},
            epochs_note="its probes converge instead",
            options=(
                Option(("--data-dir",), help="data", key="data_dir", kwargs={"metavar": "DIR"}),
            ),
        ),
        CommandSpec(
            "make",
            help="make data",
            run="toy:make",
            options=(Option(("--n",), help="how many", kwargs={"type": int, "default": 2}),),
        ),
    ),
)


@pytest.fixture
def parser(monkeypatch):
    monkeypatch.setattr(template, "load_ref", REFS.__getitem__)
    root = CliParser(prog="contrasuite")
    sub = root.add_subparsers(dest="cmd", parser_class=CliParser)
    for command in SPEC.commands:
        template._add_command(sub, SPEC.name, command)
    CALLS.clear()
    return root


def _run(parser, argv):
    args, extra = parser.parse_known_args(argv)
    if hasattr(args, "overrides"):
        args.overrides += [a for a in extra if "=" in a]
    return args.handler(args)


def test_config_command_resolves_options_keys_and_overrides(parser):
    status = _run(
        parser,
        [
            "train",
            "--out",
            "r",
            "--seed",
            "7",
            "--epochs",
            "3",
            "--model",
            "big",
            "--data-dir",
            "/d",
            "model.width=16",
            "trainer.lr=0.01",
        ],
    )
    assert status == 0
    ((_, cfg),) = CALLS
    assert (cfg.model.name, cfg.model.width, cfg.data_dir) == ("big", 16, "/d")
    assert (cfg.trainer.seed, cfg.trainer.epochs, cfg.trainer.lr) == (7, 3, 0.01)


def test_option_without_config_is_passed_as_is(parser):
    assert _run(parser, ["make", "--n", "5"]) == 3
    assert CALLS == [("make", 5)]


def test_unknown_key_names_the_closest(parser):
    with pytest.raises(InputError, match=r"model\.width"):
        _run(parser, ["train", "--out", "r", "model.widht=3"])


def test_a_command_without_epochs_refuses_them_and_has_an_optional_out(parser, capsys):
    assert _run(parser, ["evaluate", "--seed", "7", "--data-dir", "/d", "device=cpu"]) == 0
    ((_, cfg),) = CALLS
    assert cfg == ToyEvaluateConfig(data_dir="/d", seed=7, device="cpu")
    with pytest.raises(InputError, match=r"--epochs 3: `contrasuite toy evaluate` trains nothing"):
        _run(parser, ["evaluate", "--epochs", "3"])
    with pytest.raises(InputError, match=r"\(its probes converge instead\); the training epochs"):
        _run(parser, ["evaluate", "--epochs", "3"])
    with pytest.raises(InputError, match=r"did you mean `seed`"):
        _run(parser, ["evaluate", "sead=3"])
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--help"])
    out = capsys.readouterr().out
    assert "seed of the toy bootstrap" in out
    assert "not used here" in out
    assert "default: the run folder" in out


def test_help_lists_generated_config_keys(parser, capsys):
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    out = capsys.readouterr().out
    assert "config keys" in out
    assert "model.{name,width}" in out
    assert "trainer.{epochs,lr," in out
    assert "contrasuite toy train --out runs/t" in out
    assert "--seed N" in out


def test_spec_errors():
    bad = DomainSpec("bad", help="x", commands=(CommandSpec("a", help="x", run="nocolon"),))
    with pytest.raises(ValueError, match="module:name"):
        template.register_domain(bad)
    with pytest.raises(ValueError, match="no commands"):
        template.register_domain(DomainSpec("empty", help="x", commands=()))


def test_config_key_help_groups_sections():
    text = template.config_key_help(ToyConfig)
    assert " ".join(text.split()).startswith(
        "config keys (KEY=VALUE after the options; --config FILE.yaml for many): "
        "model.{name,width}, data_dir, trainer.{"
    )
