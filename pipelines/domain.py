"""The domain template: a :class:`shared.domain.DomainSpec` becomes a command group and demo step.

Adding a domain (the smallest complete one is ``vision/digits``):

1. a package with its code, its config dataclass (with a ``trainer: TrainerConfig`` field),
   handlers ``fn(args, cfg)`` / ``fn(args)``, a demo step ``fn(ctx) -> DemoResult``, all run
   folders through :class:`shared.training.run.RunFolder`;
2. a light ``<package>/domain.py`` defining ``DOMAIN = DomainSpec(...)``;
3. one line in :data:`pipelines.cli.DOMAINS`;
4. one test file.

:func:`register_domain` gives each command the common options of the contract (``--out``,
``--seed``, ``--device``, ``--epochs``, ``--config``, ``key=value``) when it has a config, its
own options, a "config keys" list generated from the config dataclass at ``--help`` time, and
registers the demo step. Nothing of the domain is imported until a command or step runs.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import textwrap
from collections.abc import Callable
from typing import Any

from pipelines.common import (
    CliParser,
    add_common_options,
    add_subcommand,
    register_command,
    resolve_config,
)
from pipelines.demo import register_demo_step
from shared.config import dump_yaml, to_dict
from shared.domain import CommandSpec, DemoContext, DemoResult, DomainSpec
from shared.errors import InputError

__all__ = ["config_key_help", "load_ref", "register_domain"]


def load_ref(ref: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute.

    Examples:
        >>> load_ref("shared.domain:DomainSpec").__name__
        'DomainSpec'
    """
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def config_key_help(cls: type, width: int = 92) -> str:
    """The ``--help`` paragraph listing every key of a config class, grouped by section.

    Examples:
        >>> from shared.training import TrainerConfig
        >>> print(config_key_help(TrainerConfig).splitlines()[1][:38])
          epochs, lr, optimizer, weight_decay,
    """
    from shared.config import config_keys

    groups: dict[str, list[str]] = {}
    for key in config_keys(cls):
        head, _, leaf = key.rpartition(".")
        groups.setdefault(head, []).append(leaf)
    parts = [
        ", ".join(leaves) if not head else f"{head}.{{{','.join(leaves)}}}"
        for head, leaves in groups.items()
    ]
    body = textwrap.fill(
        ", ".join(parts),
        width=width,
        initial_indent="  ",
        subsequent_indent="  ",
        break_on_hyphens=False,
        break_long_words=False,
    )
    return "config keys (KEY=VALUE after the options; --config FILE.yaml for many):\n" + body


def _epilog(spec: CommandSpec) -> str:
    if not spec.examples:
        return ""
    lines = "\n".join("  " + line for line in spec.examples.strip().splitlines())
    return f"examples:\n{lines}\n"


def _refuse_epochs(domain: str, spec: CommandSpec, args: argparse.Namespace) -> None:
    """``--epochs`` on a command that trains nothing (no ``epochs`` in its option keys)."""
    epochs = getattr(args, "epochs", None)
    if epochs is None or "epochs" in spec.option_keys:
        return
    note = f" ({spec.epochs_note.strip()})" if spec.epochs_note.strip() else ""
    raise InputError(
        f"--epochs {epochs}: `contrasuite {domain} {spec.name}` trains nothing, so it has no "
        f"epochs to set{note}; the training epochs are set at `contrasuite {domain} train` "
        "(its --epochs)."
    )


def _run(domain: str, spec: CommandSpec, args: argparse.Namespace) -> int | None:
    handler: Callable[..., int | None] = load_ref(spec.run)
    if spec.config is None:
        return handler(args)
    _refuse_epochs(domain, spec, args)
    cls = load_ref(spec.config)
    option_keys = dict(spec.option_keys)
    option_keys.update({o.dest: o.key for o in spec.options if o.key})
    cfg = resolve_config(cls, args, option_keys=option_keys)
    if spec.prepare is not None:
        cfg = load_ref(spec.prepare)(args, cfg)
    if getattr(args, "print_config", False):
        print(dump_yaml(to_dict(cfg)), end="")
        return 0
    return handler(args, cfg)


def _add_command(subparsers: Any, domain: str, spec: CommandSpec) -> None:
    parser = add_subcommand(
        subparsers,
        spec.name,
        help=spec.help,
        description=spec.description or spec.help,
        epilog=_epilog(spec),
    )
    if spec.config is not None:
        add_common_options(
            parser,
            out_required=spec.out_required,
            out_help=spec.out_help,
            option_help=spec.common_help,
        )
        config_ref = spec.config
        if isinstance(parser, CliParser):
            parser.help_appendix = lambda: config_key_help(load_ref(config_ref))
    group = parser.add_argument_group(f"{spec.name} options") if spec.options else parser
    for option in spec.options:
        group.add_argument(*option.flags, help=option.help, **dict(option.kwargs))
    parser.set_defaults(handler=functools.partial(_run, domain, spec))


def register_domain(spec: DomainSpec) -> DomainSpec:
    """Register a domain's command group and demo step.

    Args:
        spec: The domain's declaration.

    Returns:
        ``spec``.

    Raises:
        ValueError: If the command or demo step name is taken, or a spec is inconsistent.
    """
    if not spec.commands:
        raise ValueError(f"Domain {spec.name!r} declares no commands.")
    names = [c.name for c in spec.commands]
    if len(set(names)) != len(names):
        raise ValueError(f"Domain {spec.name!r} declares a command twice: {names}.")
    for command in spec.commands:
        if ":" not in command.run or (command.config is not None and ":" not in command.config):
            raise ValueError(
                f"{spec.name} {command.name}: run run and config must be 'module:name'."
            )

    def configure(parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(
            dest=f"{spec.name}_command", metavar="COMMAND", title="commands", parser_class=CliParser
        )
        sub.required = True
        for command in spec.commands:
            _add_command(sub, spec.name, command)

    examples = "\n".join(
        "  " + c.examples.strip().splitlines()[0] for c in spec.commands if c.examples.strip()
    )
    register_command(  # argparse lists the commands (title "commands"); the epilog does not
        spec.name,
        help=spec.help,
        description=spec.description or spec.help,
        epilog=(f"examples:\n{examples}\n\n" if examples else "")
        + f"run 'contrasuite {spec.name} COMMAND --help' for one.\n",
    )(configure)
    if spec.demo is not None:
        demo_ref = spec.demo

        def demo_step(ctx: DemoContext) -> DemoResult:
            result = load_ref(demo_ref)(ctx)
            if not isinstance(result, DemoResult):
                raise TypeError(f"{demo_ref} returned {type(result).__name__}, not a DemoResult.")
            return result

        register_demo_step(spec.name, title=spec.demo_title or spec.help)(demo_step)
    return spec
