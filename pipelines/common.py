"""Building blocks shared by every ``contrasuite`` subcommand.

A domain adds its command group in one light module (argparse only; heavy imports such as torch,
RecBole or MONAI go inside the handler so that ``contrasuite --help`` stays fast) and one import
line in :mod:`pipelines.cli`::

    from pipelines.common import add_common_options, add_subcommand, register_command

    @register_command("ecg", help="ProtoECGNet on PTB-XL", description=__doc__)
    def _configure(parser):
        sub = parser.add_subparsers(dest="ecg_command", metavar="COMMAND", required=True)
        train = add_subcommand(sub, "train", help="...", description="...", epilog="...")
        add_common_options(train)
        train.set_defaults(handler=_train)

    def _train(args) -> int:
        from pipelines.ecg_pipeline import ECGConfig, run   # heavy imports here
        cfg = resolve_config(ECGConfig, args)               # YAML < CLI options < key=value
        run(cfg, out=args.out)
        return 0

Handlers take the parsed :class:`argparse.Namespace` and return an exit status (or ``None``
for 0). Bad user input raises :class:`shared.errors.InputError` (exit status 2).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from pipelines.config_io import read_yaml
from pipelines.registry import Registry, closest_match
from shared.config import build_config
from shared.domain import DEVICES, nonnegative_int, positive_int
from shared.errors import InputError

logger = logging.getLogger(__name__)

PROG = "contrasuite"
DEFAULT_SEED = 2020
#: The largest seed: numpy's legacy RNG, scikit-learn's ``random_state`` and RecBole's
#: ``init_seed`` take 0 .. 2**32 - 1. Every ``--seed``/``--seeds`` option and every ``seed`` /
#: ``seeds`` config key is held to this range (see :class:`CliParser`, :func:`resolve_config`).
MAX_SEED = 2**32 - 1
#: Options whose metavar says they name a file or folder (``DIR``, ``FILE.yaml``, ``RUN``,
#: ``FILE_OR_DIR``, ``PATH``), and those (by ``dest``) that take a name or a path (recsys'
#: ``--dataset``); an empty value would silently mean the current folder.
_PATH_METAVAR = re.compile(r"DIR|FILE|PATH|RUN")
_PATH_DESTS = ("dataset",)
#: Options (by ``dest``) that take a seed or a comma-separated list of seeds.
_SEED_DESTS = ("seed", "seeds")

#: Where the common CLI options land in a pipeline's config dataclass (dotted keys).
DEFAULT_OPTION_KEYS: Mapping[str, str] = {
    "seed": "trainer.seed",
    "device": "trainer.device",
    "epochs": "trainer.epochs",
}

C = TypeVar("C")
Handler = Callable[[argparse.Namespace], "int | None"]
Configure = Callable[[argparse.ArgumentParser], None]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and example epilogs; wider option column."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr with a closest-match hint.

    argparse prints the usage and the error over several lines; the suite's contract is one
    line, ``contrasuite: error: <message>``, and exit status 2. Abbreviated long options are
    refused (``--epoch`` is an error that suggests ``--epochs``), so that scripts keep working
    when options are added.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        #: Text computed when ``--help`` is shown and appended to it (e.g. the config keys
        #: generated from a config class, imported only then).
        self.help_appendix: Callable[[], str] | None = None

    def format_help(self) -> str:
        """The usual help, then :attr:`help_appendix` when set."""
        text = super().format_help()
        if self.help_appendix is not None:
            text = text.rstrip("\n") + "\n\n" + self.help_appendix().rstrip("\n") + "\n"
        return text

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse as argparse does, then check the values that every command shares.

        A seed (an option with ``dest`` ``seed`` or ``seeds``) must lie in 0 .. :data:`MAX_SEED`
        and a path (an option whose metavar names a ``DIR``, ``FILE``, ``PATH`` or ``RUN``) must
        not be empty; otherwise the usual one-line error and exit status 2. Subcommand parsers
        are parsed by this method too, so each checks its own options.
        """
        parsed, extra = super().parse_known_args(args, namespace)
        for action in self._actions:
            if action.option_strings:
                problem = _value_problem(action, getattr(parsed, action.dest, None))
                if problem:
                    self.error(f"argument {'/'.join(action.option_strings)}: {problem}")
        return parsed, extra

    def error(self, message: str) -> NoReturn:
        """Print ``message`` (with a "did you mean" hint and a pointer to --help) and exit 2."""
        message = message + self._hint(message)
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")

    def _hint(self, message: str) -> str:
        unknown = re.match(r"unrecognized arguments: (\S+)", message)
        if unknown and unknown.group(1).startswith("-"):
            option = unknown.group(1).split("=", 1)[0]
            hint = closest_match(option, self._option_string_actions)
            return f"; did you mean {hint!r}?" if hint else ""
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            options = re.findall(r"'([^']*)'", choice.group(2))
            hint = closest_match(choice.group(1), options)
            return f"; did you mean {hint!r}?" if hint else ""
        return ""


def _value_problem(action: argparse.Action, value: Any) -> str | None:
    """What is wrong with an option's parsed value (see :meth:`CliParser.parse_known_args`)."""
    if value is None or value is argparse.SUPPRESS:
        return None
    values = value if isinstance(value, list) else [value]
    if action.dest in _SEED_DESTS:
        for item in values:
            for part in str(item).split(","):
                try:
                    seed = int(part)
                except ValueError:
                    continue  # not a number: the option's own parser says so
                if not 0 <= seed <= MAX_SEED:
                    return f"expected a seed from 0 to {MAX_SEED}, got {part.strip()!r}"
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    if _PATH_METAVAR.search(metavar) or action.dest in _PATH_DESTS:
        for item in values:
            if isinstance(item, str) and not item.strip():
                return f"expected a path, got {item!r} (an empty path means the current folder)"
    return None


@dataclass(frozen=True)
class Command:
    """A top-level subcommand (or command group) of ``contrasuite``.

    Attributes:
        name: What users type (``"demo"``, ``"ecg"``).
        help: One line for the list in ``contrasuite --help``.
        configure: Adds the command's options (and nested subcommands) to its parser and sets
            ``handler`` with ``parser.set_defaults(handler=...)``.
        description: The text at the top of the command's ``--help``.
        epilog: Examples, shown at the bottom of its ``--help`` as written.
    """

    name: str
    help: str
    configure: Configure
    description: str = ""
    epilog: str = ""


#: Every top-level command, in the order ``contrasuite --help`` lists them.
COMMANDS: Registry[Command] = Registry("command")


def register_command(
    name: str, *, help: str, description: str = "", epilog: str = ""
) -> Callable[[Configure], Configure]:
    """Register a top-level command whose parser is set up by the decorated function.

    Args:
        name: What users type.
        help: One line for ``contrasuite --help``.
        description: The top of the command's own ``--help``.
        epilog: Examples for the bottom of its ``--help``.

    Returns:
        A decorator that registers the function and returns it unchanged.

    Raises:
        ValueError: If ``name`` is already registered.
    """

    def decorator(configure: Configure) -> Configure:
        COMMANDS.add(name, Command(name, help, configure, description or help, epilog))
        return configure

    return decorator


def add_subcommand(
    subparsers: Any,
    name: str,
    *,
    help: str,
    description: str = "",
    epilog: str = "",
) -> argparse.ArgumentParser:
    """Add a subcommand parser with the suite's help formatting and logging options.

    Args:
        subparsers: The object returned by ``parser.add_subparsers()``.
        name: What users type.
        help: One line for the parent's ``--help``.
        description: The top of the subcommand's ``--help``.
        epilog: Examples, shown as written.

    Returns:
        The new parser.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=epilog,
        formatter_class=HelpFormatter,
    )
    add_logging_options(parser, top_level=False)
    parser.set_defaults(_leaf_parser=parser)
    return parser


def add_logging_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """Add ``-v/--verbose``, ``-q/--quiet`` and ``--debug`` to ``parser``.

    Subcommand parsers get them with suppressed defaults, so that ``contrasuite -v demo`` and
    ``contrasuite demo -v`` mean the same thing.

    Args:
        parser: The parser to extend.
        top_level: ``True`` for the root parser (which holds the defaults).
    """
    default: Any = 0 if top_level else argparse.SUPPRESS
    group = parser.add_argument_group("output")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="more log messages (DEBUG); repeatable",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=default,
        help="only warnings and errors, and no progress bars",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=False if top_level else argparse.SUPPRESS,
        help="show the full traceback of an internal error (also: CONTRASUITE_DEBUG=1)",
    )


def add_common_options(
    parser: argparse.ArgumentParser,
    *,
    out_required: bool = True,
    default_out: str | None = None,
    out_help: str = "run folder to write (created; an existing run there is resumed)",
    overrides: bool = True,
    option_help: Mapping[str, str] | None = None,
) -> None:
    """Add the options every train/evaluate command shares.

    ``--out DIR``, ``--seed N``, ``--device cpu|cuda|auto``, ``--epochs N``,
    ``--config FILE.yaml``, ``--print-config`` and trailing ``key=value`` overrides.
    ``--seed``, ``--device`` and ``--epochs`` default to ``None`` here so that a value in the
    YAML file is not clobbered; the config dataclass holds the real defaults (seed 2020,
    device auto).

    Args:
        parser: The subcommand's parser.
        out_required: Whether ``--out`` must be given.
        default_out: The default of ``--out`` when it is optional.
        out_help: Help text of ``--out``.
        overrides: Whether to accept trailing ``key=value`` arguments.
        option_help: Help texts by ``dest`` (``seed``, ``device``, ``epochs``, ``config``,
            ``print_config``, ``overrides``) that replace the generic ones, for a command on
            which an option means something else (e.g. an evaluate command's ``--seed`` seeds
            its bootstrap, and its ``--epochs`` is refused because it trains nothing).
    """
    texts = {
        "seed": f"random seed (default: {DEFAULT_SEED})",
        "device": "where to train: cpu, cuda, or auto = cuda when available (default: auto)",
        "epochs": "number of training epochs (default: the config's)",
        "config": "YAML file with settings; options and key=value arguments override it",
        "print_config": "print the resolved config as YAML and exit (nothing is read, trained "
        "or written)",
        "overrides": "override any config setting, e.g. trainer.lr=3e-4 (dotted keys of the "
        "config; an unknown key is an error naming the closest valid one)",
    }
    unknown = set(option_help or {}) - set(texts)
    if unknown:
        raise ValueError(f"option_help: unknown options {sorted(unknown)}; expected {list(texts)}.")
    texts.update(option_help or {})
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--out",
        metavar="DIR",
        required=out_required,
        default=default_out,
        help=out_help + (f" (default: {default_out})" if default_out else ""),
    )
    group.add_argument(
        "--seed", metavar="N", type=nonnegative_int, default=None, help=texts["seed"]
    )
    group.add_argument("--device", choices=DEVICES, default=None, help=texts["device"])
    group.add_argument(
        "--epochs", metavar="N", type=positive_int, default=None, help=texts["epochs"]
    )
    group.add_argument("--config", metavar="FILE.yaml", default=None, help=texts["config"])
    group.add_argument("--print-config", action="store_true", help=texts["print_config"])
    if overrides:
        parser.add_argument(
            "overrides", nargs="*", metavar="KEY=VALUE", default=[], help=texts["overrides"]
        )


def cli_overrides(
    args: argparse.Namespace, option_keys: Mapping[str, str] = DEFAULT_OPTION_KEYS
) -> list[str]:
    """Turn the common options given on the command line into ``key=value`` overrides.

    Args:
        args: The parsed arguments.
        option_keys: Maps an option's ``dest`` to its dotted config key.

    Returns:
        ``["trainer.seed=7", ...]`` for the options that were given (not ``None``); the values
        of an option that takes several (``nargs``) are joined by commas, the list form of
        ``key=value``.
    """
    out = []
    for dest, key in option_keys.items():
        value = getattr(args, dest, None)
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        if value is not None:
            out.append(f"{key}={value}")
    return out


def resolve_config(
    cls: type[C],
    args: argparse.Namespace,
    *,
    option_keys: Mapping[str, str] = DEFAULT_OPTION_KEYS,
    defaults: Mapping[str, Any] | None = None,
) -> C:
    """Build a pipeline's frozen config from its defaults, the YAML file, options and overrides.

    Later sources win: the dataclass defaults, then ``defaults`` (e.g. ``--quick`` settings),
    then ``--config FILE.yaml``, then the common options (``--seed``, ``--device``,
    ``--epochs``; see ``option_keys``), then the trailing ``key=value`` arguments. ``-q`` turns
    the trainer's progress bars off when the config has ``trainer.progress``.

    Args:
        cls: The pipeline's config dataclass.
        args: The parsed arguments (``config``, ``overrides`` and the options of
            ``option_keys`` are read when present).
        option_keys: Maps an option's ``dest`` to its dotted config key.
        defaults: A nested mapping of settings applied before the YAML file.

    Returns:
        The resolved, frozen config.

    Raises:
        InputError: On a missing or invalid YAML file, an unknown key (the message names the
            closest valid one), a value of the wrong type, or ``cuda`` asked for on a machine
            without CUDA.
    """
    from shared.config import apply_overrides

    config_file = getattr(args, "config", None)
    if config_file:
        cfg = build_config(
            cls, defaults or {}, read_yaml(config_file), source=f"config file {config_file!r}"
        )
    else:
        cfg = build_config(cls, defaults or {}, source="defaults")
    overrides = cli_overrides(args, option_keys)
    # an error in a value given as an option names the option, as the user typed it
    sources = [
        f"--{dest.replace('_', '-')} {getattr(args, dest)}"
        for dest in option_keys
        if getattr(args, dest, None) is not None
    ]
    if getattr(args, "quiet", 0) and _has_key(cls, "trainer.progress"):
        overrides.insert(0, "trainer.progress=false")
        sources.insert(0, "-q")
    overrides += list(getattr(args, "overrides", None) or [])
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise InputError(
                f"Expected a setting as KEY=VALUE (e.g. trainer.lr=3e-4), but got {item!r}."
            )
    cfg = apply_overrides(cfg, overrides, sources)
    for key, seed in _config_seeds(cfg):
        if not 0 <= seed <= MAX_SEED:
            raise InputError(f"Expected `{key}` to be a seed from 0 to {MAX_SEED}, but got {seed}.")
    device_key = option_keys.get("device")
    if device_key is not None:
        check_device(str(_get_key(cfg, device_key)))
    return cfg


def check_device(device: str) -> str:
    """Check that ``device`` can be used here (see :func:`shared.runtime.resolve_device`).

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns:
        ``device`` unchanged.

    Raises:
        InputError: If CUDA is asked for but not available, or the name is unknown.
    """
    from shared.runtime import resolve_device

    resolve_device(device)
    return device


def _config_seeds(cfg: Any, prefix: str = "") -> Iterator[tuple[str, int]]:
    """``(dotted key, seed)`` for every seed field of a config, at any depth.

    Seed fields are ``seed``, ``seeds`` and any ``*_seed`` (``data.split_seed``).
    """
    import dataclasses

    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            yield from _config_seeds(value, f"{prefix}{f.name}.")
        elif f.name in _SEED_DESTS or f.name.endswith("_seed"):
            for seed in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(seed, int):
                    yield f"{prefix}{f.name}", seed


def _get_key(cfg: Any, dotted: str) -> Any:
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _has_key(cls: Any, dotted: str) -> bool:
    import dataclasses
    import typing

    obj = cls
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(obj):
            return False
        hints = typing.get_type_hints(obj)
        if part not in hints:
            return False
        obj = hints[part]
    return True


def debug_enabled(args: argparse.Namespace | None = None) -> bool:
    """Whether tracebacks of internal errors are shown (``--debug`` or ``CONTRASUITE_DEBUG=1``)."""
    env = os.environ.get("CONTRASUITE_DEBUG", "").strip().lower()
    return bool(getattr(args, "debug", False)) or env not in ("", "0", "false", "no")


def print_error(message: str) -> None:
    """Print ``contrasuite: error: <message>`` as one line on stderr."""
    one_line = " ".join(line.strip() for line in message.splitlines() if line.strip())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)


def parse_names(text: str, registry: Registry[Any]) -> list[str]:
    """Parse a comma-separated list of registered names (``"a,b"``), keeping the given order.

    Args:
        text: The user's list.
        registry: Where the names must be registered.

    Returns:
        The names, without duplicates.

    Raises:
        InputError: If a name is unknown (the message lists the available ones and the
            closest match) or the list is empty.
    """
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue
        registry.get(name)
        if name not in names:
            names.append(name)
    if not names:
        raise InputError(
            f"Expected a comma-separated list of {registry.kind}s "
            f"({', '.join(registry.names())}), but got {text!r}."
        )
    return names
