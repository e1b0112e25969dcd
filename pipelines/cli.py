"""The ``contrasuite`` command line (also ``python -m pipelines``).

Commands come from :data:`pipelines.common.COMMANDS`, filled by the explicit imports below; a
domain adds its command group with one more import line. Exit status: 0 on success, 2 on bad
input (:class:`shared.errors.InputError` or an argparse error: one line on stderr, no
traceback; under ``torchrun`` an InputError that rank 0 met is printed by rank 0 alone), 1 on
an internal failure (a short message; the traceback with ``--debug`` or
``CONTRASUITE_DEBUG=1``), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
import traceback
from collections.abc import Sequence

from pipelines.common import (
    COMMANDS,
    PROG,
    CliParser,
    HelpFormatter,
    add_logging_options,
    debug_enabled,
    print_error,
)
from pipelines.domain import register_domain
from shared.errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["COMMAND_MODULES", "DOMAINS", "build_parser", "main"]

#: The modules that register commands and demo steps, imported in this order: it is the order
#: of the commands in `contrasuite --help` and of the demo's steps. A new domain adds one line.
#: Keep them light (argparse only; heavy imports inside the handlers).
COMMAND_MODULES = (
    "pipelines.demo",  # contrasuite demo
)
#: The domains, each a light module defining ``DOMAIN`` (a :class:`shared.domain.DomainSpec`),
#: in the order of `contrasuite --help` and of the demo's steps (after the modules above).
#: Adding a domain is one line here (see pipelines/domain.py and the README).
DOMAINS: tuple[str, ...] = (
    "vision.digits.domain",  # the reference domain: contrastive methods on 8x8 digits
    "medical.ecg.domain",  # ProtoECGNet on PTB-XL
    "recsys.domain",  # MCLRec and offline evaluation on RecBole
    "medical.prostate.domain",  # PI-RADS zones, dual-path CNN
    "medical.sepclr.domain",  # SepCLR: common vs salient
    "vision.sr.domain",  # PCL-SR super-resolution
)

for _module in COMMAND_MODULES:
    importlib.import_module(_module)
for _module in DOMAINS:
    register_domain(importlib.import_module(_module).DOMAIN)

_EPILOG = """\
examples:
  contrasuite demo                      # every pipeline end to end -> ./contrasuite-demo/index.html
  contrasuite demo --quick --out /tmp/d # small settings: about 3 min on 2 CPU cores
  contrasuite digits train --out runs/digits --methods all --epochs 30
  contrasuite ecg train --help          # options and config keys of one command

exit status:
  0    success
  1    internal error (a bug): a short message; the traceback with --debug
  2    bad input (a missing or corrupt file, an unknown option or key, a wrong value, a folder
       that holds something else): one line on stderr naming the file or option; nothing
       already written is lost
  130  interrupted (Ctrl-C): start the same command again to resume
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser from the registered commands.

    Returns:
        The root parser; each leaf parser sets ``handler`` in its defaults.
    """
    parser = CliParser(
        prog=PROG,
        description=(
            "contrasuite: contrastive learning for medicine and recommendation.\n"
            "One contrastive core (shared/), domain pipelines, one command line."
        ),
        epilog=_EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    add_logging_options(parser, top_level=True)
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", parser_class=CliParser
    )
    sub.required = True
    for name, command in COMMANDS.items():
        cmd_parser = sub.add_parser(
            name,
            help=command.help,
            description=command.description,
            epilog=command.epilog,
            formatter_class=HelpFormatter,
        )
        add_logging_options(cmd_parser, top_level=False)
        cmd_parser.set_defaults(_leaf_parser=cmd_parser)
        command.configure(cmd_parser)
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("contrasuite")
    except Exception:  # not installed (running from a checkout)
        return "unknown"


#: A ``key=value`` setting (a dotted config key, then ``=``), as opposed to a path.
_SETTING = re.compile(r"[A-Za-z_][\w.]*=")


def _claim_settings(args: argparse.Namespace) -> list[str]:
    """Take the ``key=value`` settings that an option of several values swallowed.

    argparse gives ``--compare a b seed=3`` all three words; ``seed=3`` is a setting, not a
    run. Values of the list-valued options that look like settings (a config key, then ``=``)
    are removed there and returned, in order. A folder whose name has that form is given
    with a slash (``./a=b``), which no setting has.
    """
    claimed: list[str] = []
    for dest, value in vars(args).items():
        if dest == "overrides" or not isinstance(value, list):
            continue
        settings = [v for v in value if isinstance(v, str) and _SETTING.match(v)]
        if settings:
            setattr(args, dest, [v for v in value if v not in settings] or None)
            claimed += settings
    return claimed


def _torchrun_rank() -> int:
    """This process's rank under ``torchrun`` (``WORLD_SIZE`` > 1); 0 otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return int(os.environ.get("RANK", "0"))
    return 0


def configure_logging(verbose: int = 0, quiet: int = 0) -> None:
    """Send log records to stderr: INFO by default, DEBUG with ``-v``, WARNING with ``-q``.

    Only the command line configures handlers; library modules just log (style rule 14). Under
    ``torchrun`` the ranks other than 0 show warnings and errors only (rank 0 tells the story).

    Args:
        verbose: How many ``-v`` were given.
        quiet: How many ``-q`` were given.
    """
    level = logging.DEBUG if verbose > 0 else logging.WARNING if quiet > 0 else logging.INFO
    fmt = "%(levelname)s %(name)s: %(message)s" if verbose > 0 else "%(message)s"
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_contrasuite", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    handler.setLevel(level)  # also when a library lowers its own logger's level (log files)
    if _torchrun_rank() != 0:
        handler.setLevel(max(level, logging.WARNING))
    handler._contrasuite = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter stays at WARNING unless asked for twice.
    noisy_level = logging.DEBUG if verbose > 1 else logging.WARNING
    for name in ("matplotlib", "PIL", "numba", "h5py", "urllib3", "fsspec"):
        logging.getLogger(name).setLevel(noisy_level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``contrasuite`` with ``argv`` (default: ``sys.argv[1:]``).

    Args:
        argv: The arguments, without the program name.

    Returns:
        The exit status (0 success, 1 internal error, 2 bad input, 130 interrupted), so that
        ``sys.exit(main())`` works.
    """
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(None if argv is None else list(argv))
        if isinstance(getattr(args, "overrides", None), list):
            # key=value settings given between or after options: argparse leaves them over,
            # or hands them to an option that takes several values (`--compare a b seed=3`).
            settings = [a for a in extra if "=" in a and not a.startswith("-")]
            extra = [a for a in extra if a not in settings]
            args.overrides = args.overrides + _claim_settings(args) + settings
        if extra:
            leaf = getattr(args, "_leaf_parser", parser)
            leaf.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # argparse: 0 after --help/--version, 2 on a usage error
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    configure_logging(getattr(args, "verbose", 0), getattr(args, "quiet", 0))
    handler = getattr(args, "handler", None)
    if handler is None:  # a command group called without its subcommand
        parser.print_help(sys.stderr)
        return 2
    finished = False
    try:
        status = handler(args)
        finished = True
    except InputError as err:
        if debug_enabled(args):
            traceback.print_exc()
        rank = _torchrun_rank()
        if rank == 0:
            print_error(str(err))
        elif not err.from_rank0:  # rank 0 prints the errors it met; this one is this rank's own
            print_error(f"rank {rank}: {err}")
        return 2
    except KeyboardInterrupt:
        print_error("interrupted; start the same command again to resume.")
        return 130
    except (PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError) as err:
        # A path the user named (or one inside it) cannot be written or read as asked: bad
        # input, whichever command it reached.
        if debug_enabled(args):
            traceback.print_exc()
        where = f"{err.filename}: " if err.filename else ""
        print_error(f"{where}{err.strerror or err}; choose another path.")
        return 2
    except Exception as err:
        if debug_enabled(args):
            traceback.print_exc()
        print_error(
            f"internal error: {type(err).__name__}: {err} "
            "(run again with --debug or CONTRASUITE_DEBUG=1 for the traceback)"
        )
        return 1
    finally:
        _end_torchrun(finished)
    return 0 if status is None else int(status)


def _end_torchrun(synchronise: bool) -> None:
    """Under ``torchrun``, close the process group the command started.

    See :func:`shared.distributed.end_process_group`; imported only there, to keep the CLI light.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from shared.distributed import end_process_group

        try:
            end_process_group(synchronise=synchronise)
        except RuntimeError as err:  # a rank that left early; torchrun reports that one
            logger.warning("could not close the process group: %s", err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
