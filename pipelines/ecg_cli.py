"""Command line of the ECG domain: ``contrasuite ecg synth | train | evaluate | explain``.

Light on purpose (argparse only): :mod:`medical.ecg` (wfdb, pandas, scipy, torch) is imported
when a command runs. :func:`register` adds every ``ecg`` subcommand to a subparsers object;
the ``ecg`` command group itself is registered with :func:`pipelines.common.register_command`
when :mod:`pipelines.cli` imports this module.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from pipelines.common import CliParser, add_subcommand, register_command

logger = logging.getLogger(__name__)

__all__ = ["register"]

_EPILOG = """\
examples:
  contrasuite ecg synth --out data/synth-ptbxl                 # 1000 ECGs at 100 Hz
  contrasuite ecg synth --out data/s500 --n-records 300 --sampling-rate 500
  contrasuite ecg synth --help
"""


@register_command(
    "ecg",
    help="ProtoECGNet on PTB-XL: synthetic data, training, evaluation, explanation reports",
    description=(
        "ProtoECGNet (Sethi et al., MLHC 2025) on PTB-XL-format data: a folder with\n"
        "ptbxl_database.csv, scp_statements.csv and records100/ (or records500/), either the\n"
        "real PTB-XL release or one written by `contrasuite ecg synth`."
    ),
    epilog=_EPILOG,
)
def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="ecg_command", metavar="COMMAND", title="commands", parser_class=CliParser
    )
    sub.required = True
    register(sub)


def register(subparsers: Any) -> None:
    """Add the ``ecg`` subcommands to ``subparsers`` (from ``parser.add_subparsers()``).

    Args:
        subparsers: The ``ecg`` group's subparsers object.
    """
    _add_synth(subparsers)
    # ---- train / evaluate / explain (the model's commands) go here, after synth ----


# --------------------------------------------------------------------------------------------
# contrasuite ecg synth

_SYNTH_EPILOG = """\
examples:
  contrasuite ecg synth --out data/synth-ptbxl
  contrasuite ecg synth --out data/synth-ptbxl --n-records 2000 --sampling-rate both --seed 7

writes:
  OUT/ptbxl_database.csv, OUT/scp_statements.csv (the 71 PTB-XL statements),
  OUT/records100/00000/00001_lr.{hea,dat} (and/or records500/..._hr), OUT/SYNTHETIC_README.txt.
  Classes: SR, STACH, SBRAD, AFIB (rhythm); IMI, ASMI, CLBBB, CRBBB, ISCLA+STD_, STE_, LVH
  (morphology); NORM, DIG (global). Folds 1-10 in strat_fold. Running it again with the same
  --out replaces the earlier synthetic set; any other non-empty folder is refused.
"""


def _add_synth(subparsers: Any) -> None:
    parser = add_subcommand(
        subparsers,
        "synth",
        help="write a synthetic PTB-XL-format data set (WFDB records + the two csv files)",
        description=(
            "Write synthetic 12-lead ECGs in the exact PTB-XL layout, so that the real loader\n"
            "reads them: WFDB records (format 16, mV), ptbxl_database.csv with scp_codes and\n"
            "strat_fold 1-10, scp_statements.csv with the 71 statements. The classes cover\n"
            "ProtoECGNet's three branches and are learnable from the signal."
        ),
        epilog=_SYNTH_EPILOG,
    )
    parser.add_argument("--out", metavar="DIR", required=True, help="folder to write")
    parser.add_argument(
        "--n-records", metavar="N", type=_at_least_10, default=1000,
        help="number of ECGs (default: 1000; at least 10)",
    )  # fmt: skip
    parser.add_argument(
        "--sampling-rate", choices=("100", "500", "both"), default="100",
        help="records100/ (100 Hz, default), records500/ (500 Hz) or both",
    )  # fmt: skip
    parser.add_argument(
        "--seed", metavar="N", type=int, default=2020,
        help="random seed (default: 2020); the same seed writes the same data",
    )  # fmt: skip
    parser.set_defaults(handler=_synth_command)


def _at_least_10(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 10, got {text!r}") from None
    if value < 10:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 10 (one ECG per fold), got {value}"
        )
    return value


def _synth_command(args: argparse.Namespace) -> int:
    from medical.ecg.synth import write_synthetic_ptbxl

    rates = (100, 500) if args.sampling_rate == "both" else (int(args.sampling_rate),)
    out = write_synthetic_ptbxl(
        args.out,
        n_records=args.n_records,
        sampling_rates=rates,
        seed=args.seed,
        progress=not getattr(args, "quiet", 0),
    )
    print(f"wrote {args.n_records} synthetic ECGs ({'+'.join(map(str, rates))} Hz) to {out}")
    return 0
