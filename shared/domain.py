"""What a domain declares to be wired into the ``contrasuite`` command line and demo.

A domain package keeps one light module, ``<package>/domain.py``, that imports only this one and
defines ``DOMAIN``, a :class:`DomainSpec`: its name, its commands (each a :class:`CommandSpec`
naming its handler and config class by import path, so nothing heavy is imported until the
command runs) and its demo step. ``pipelines.domain`` turns the spec into subcommands with the
common options, a generated list of config keys in ``--help``, and a demo step; one line in
``pipelines.cli.DOMAINS`` registers it. The smallest complete example is ``vision/digits``.

Handlers are called as ``fn(args, cfg)`` when the command has a config class (``cfg`` is the
resolved, frozen config: defaults < ``--config`` YAML < options < ``key=value``), else as
``fn(args)``. They return an exit status or ``None`` (0), and raise
:class:`~shared.errors.InputError` for bad input (exit status 2, one line on stderr).

This module imports nothing but the standard library.

Examples:
    >>> spec = DomainSpec(
    ...     name="toy",
    ...     help="a toy domain",
    ...     commands=(CommandSpec("train", help="train it", run="toy.commands:train",
    ...                           config="toy.config:ToyConfig"),),
    ... )
    >>> spec.command("train").run
    'toy.commands:train'
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_SEED",
    "DEVICES",
    "CommandSpec",
    "DemoContext",
    "DemoResult",
    "DomainSpec",
    "Option",
    "device_option",
    "nonnegative_int",
    "positive_int",
    "run_option",
]

DEFAULT_SEED = 2020
DEVICES = ("auto", "cpu", "cuda")


def _int(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer >= 1.

    Examples:
        >>> positive_int("3")
        3
    """
    return _int(text, 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    """An argparse ``type``: an integer >= 0 (e.g. a seed).

    Examples:
        >>> nonnegative_int("0")
        0
    """
    return _int(text, 0, "an integer >= 0")


@dataclass(frozen=True)
class Option:
    """One extra command-line option of a command.

    Attributes:
        flags: The option strings, e.g. ``("--data-dir",)``, or a positional name.
        help: Its help text.
        kwargs: Further ``ArgumentParser.add_argument`` arguments (``type``, ``default``,
            ``choices``, ``metavar``, ``required``, ``action``, ``nargs``).
        key: For commands with a config: the dotted config key that a given value sets
            (``"model.name"``), applied before the ``key=value`` arguments.
    """

    flags: tuple[str, ...]
    help: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None

    @property
    def dest(self) -> str:
        """The attribute name argparse stores the value under."""
        if "dest" in self.kwargs:
            return str(self.kwargs["dest"])
        longs = [f for f in self.flags if f.startswith("--")]
        name = (longs or list(self.flags))[0].lstrip("-")
        return name.replace("-", "_")


def run_option(help: str = "a run folder of this domain's train command") -> Option:
    """``--run RUN`` (required): the run folder an evaluate/predict/explain command reads.

    Examples:
        >>> run_option().dest
        'run'
    """
    return Option(("--run",), help=help, kwargs={"required": True, "metavar": "RUN"})


def device_option(default: str | None = "auto", help: str | None = None) -> Option:
    """``--device auto|cpu|cuda`` for commands without a config (those with one get it anyway).

    Args:
        default: The default (``None``: the run's own setting).
        help: Help text (default: says what the default means).

    Examples:
        >>> device_option().kwargs["choices"]
        ('auto', 'cpu', 'cuda')
    """
    text = help or (
        "where to compute: cpu, cuda, or auto = cuda when available (default: "
        + ("the run's)" if default is None else f"{default})")
    )
    return Option(("--device",), help=text, kwargs={"choices": DEVICES, "default": default})


@dataclass(frozen=True)
class CommandSpec:
    """One subcommand of a domain.

    Attributes:
        name: What users type after the domain name (``"train"``).
        help: One line for the domain's ``--help``.
        run: ``"package.module:function"``, the handler (imported when the command runs).
        config: ``"package.module:ConfigClass"`` for commands that take a config: they get
            ``--out DIR``, ``--seed``, ``--device``, ``--epochs``, ``--config FILE.yaml`` and
            trailing ``key=value`` settings, and the handler is called ``fn(args, cfg)``.
            ``None``: only ``options``, and ``fn(args)``.
        description: The top of the command's ``--help`` (default: ``help``).
        examples: Example lines for the bottom of its ``--help``.
        options: Extra options.
        out_help: Help text of ``--out`` (commands with a config).
        out_required: Whether ``--out`` must be given (an evaluate command's is optional: it
            writes into its run folder by default).
        common_help: Help texts of common options by ``dest`` (``seed``, ``device``,
            ``epochs``, ``config``, ``print_config``, ``overrides``) where the generic ones
            would not say what the option means for this command.
        option_keys: Where ``--seed``, ``--device``, ``--epochs`` land in the config. A command
            without an ``epochs`` entry trains nothing: ``--epochs`` is then an error (exit
            status 2) that points to the domain's ``train`` command.
        epochs_note: Added to that error in brackets (e.g. what is fitted instead, and how).
        prepare: ``"package.module:function"``, ``fn(args, cfg) -> cfg``: the command's own
            settings on top of the resolved config (``--quick``, absolute paths), applied
            before ``--print-config`` prints it and before the handler runs.
    """

    name: str
    help: str
    run: str
    config: str | None = None
    prepare: str | None = None
    description: str = ""
    examples: str = ""
    options: tuple[Option, ...] = ()
    out_help: str = "run folder to write (created; an existing run of the same command resumes)"
    out_required: bool = True
    common_help: Mapping[str, str] = field(default_factory=dict)
    option_keys: Mapping[str, str] = field(
        default_factory=lambda: {
            "seed": "trainer.seed",
            "device": "trainer.device",
            "epochs": "trainer.epochs",
        }
    )
    epochs_note: str = ""


@dataclass(frozen=True)
class DomainSpec:
    """A domain: its commands and its demo step.

    Attributes:
        name: The command group users type (``"ecg"``) and the demo step's folder name.
        help: One line for ``contrasuite --help``.
        commands: Its subcommands, in ``--help`` order.
        description: The top of ``contrasuite NAME --help`` (default: ``help``).
        demo: ``"package.module:function"``, its demo step (``fn(ctx: DemoContext) ->
            DemoResult``), or ``None``.
        demo_title: One line describing the demo step.
    """

    name: str
    help: str
    commands: tuple[CommandSpec, ...]
    description: str = ""
    demo: str | None = None
    demo_title: str = ""

    def command(self, name: str) -> CommandSpec:
        """The command called ``name``.

        Raises:
            KeyError: If there is none.
        """
        for spec in self.commands:
            if spec.name == name:
                return spec
        raise KeyError(name)


@dataclass(frozen=True)
class DemoContext:
    """What a demo step is told.

    A step writes its runs under :attr:`run_dir` (``DIR/<step>/run``, ``run-quick`` or
    ``run-smoke``), so that one demo folder holds the runs of every mode side by side and a
    call in another mode neither reuses nor refuses the runs of an earlier one. Links in its
    :class:`DemoResult` then start with :attr:`run_name`.

    Attributes:
        out_dir: The step's own folder, ``DIR/<step>`` (may already hold earlier runs).
        quick: ``--quick``: small settings.
        seed: Random seed.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: Whether the Trainer shows progress bars.
        smoke: Test-only, even smaller than ``quick`` (hidden ``--smoke`` option).

    Examples:
        >>> DemoContext(Path("demo/digits"), quick=True).run_dir.as_posix()
        'demo/digits/run-quick'
        >>> DemoContext(Path("demo/digits")).run_name
        'run'
        >>> DemoContext(Path("demo/digits"), quick=True, seed=7).run_name
        'run-quick-seed7'
    """

    out_dir: Path
    quick: bool = False
    seed: int = DEFAULT_SEED
    device: str = "auto"
    progress: bool = True
    smoke: bool = False

    @property
    def mode(self) -> str:
        """``"smoke"``, ``"quick"`` or ``"full"`` (``smoke`` wins over ``quick``)."""
        return "smoke" if self.smoke else "quick" if self.quick else "full"

    @property
    def run_name(self) -> str:
        """This mode's folder name in :attr:`out_dir`: ``run``, ``run-quick`` or ``run-smoke``.

        A seed other than the default adds ``-seed<N>`` (``run-quick-seed7``), so that calls
        with other seeds keep their runs side by side too.
        """
        name = "run" if self.mode == "full" else f"run-{self.mode}"
        return name if self.seed == DEFAULT_SEED else f"{name}-seed{self.seed}"

    @property
    def run_dir(self) -> Path:
        """This mode's folder, ``out_dir / run_name``, which holds the step's runs and reports."""
        return Path(self.out_dir) / self.run_name


@dataclass(frozen=True)
class DemoResult:
    """What a demo step reports back for the index page.

    Attributes:
        title: A heading for the step's section.
        metrics: Headline numbers for the index table (plain floats/ints), e.g.
            ``{"probe_acc/supcon": 0.98}``.
        summary_html: An HTML fragment (tables, embedded figures) shown in the index. Relative
            links in it must be relative to ``DIR`` (prefix them with the step name).
        links: ``{label: path relative to the step folder}`` of the step's files to link.
        notes: One line shown under the title (what was run, on which data).
    """

    title: str
    metrics: Mapping[str, float | int] = field(default_factory=dict)
    summary_html: str = ""
    links: Mapping[str, str] = field(default_factory=dict)
    notes: str = ""
