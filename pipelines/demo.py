"""``contrasuite demo``: every registered pipeline end to end, with one HTML index.

Each demo step writes its own folder ``DIR/<step>/`` and returns a :class:`DemoResult`; the
command then writes ``DIR/index.html`` (a table of every step's headline numbers, links to its
files, and the step's own summary) and ``DIR/demo.json`` (the same numbers as JSON).

A domain declares its step in its :class:`shared.domain.DomainSpec` (``demo=``), and
:mod:`pipelines.domain` registers it here with :func:`register_demo_step`; the step function
(``fn(ctx: DemoContext) -> DemoResult``, both from :mod:`shared.domain`) is imported when it runs.

Steps must be re-runnable into the same folder: finished runs are reused, interrupted ones
resumed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipelines.common import (
    DEFAULT_SEED,
    DEVICES,
    check_device,
    debug_enabled,
    parse_names,
    register_command,
)
from pipelines.registry import Registry
from shared.domain import DemoContext, DemoResult, nonnegative_int
from shared.errors import InputError
from shared.io import atomic_write_text
from shared.report import esc, html_link, html_page, html_table

logger = logging.getLogger(__name__)

__all__ = ["DEMO_STEPS", "DemoContext", "DemoResult", "DemoStep", "register_demo_step", "run_demo"]

DEFAULT_OUT = "contrasuite-demo"
#: Marks a folder as a demo folder (written before the first step runs).
DEMO_MARKER = ".contrasuite-demo"


@dataclass(frozen=True)
class DemoStep:
    """A registered demo step.

    Attributes:
        name: Its folder name and what ``--steps`` accepts.
        title: A one-line description.
        run: The function that runs the step.
    """

    name: str
    title: str
    run: Callable[[DemoContext], DemoResult]


#: The demo's steps, in the order they run.
DEMO_STEPS: Registry[DemoStep] = Registry("demo step")


def register_demo_step(
    name: str, *, title: str
) -> Callable[[Callable[[DemoContext], DemoResult]], Callable[[DemoContext], DemoResult]]:
    """Register a demo step under ``name``.

    Args:
        name: Folder name and ``--steps`` name (letters, digits, ``-``, ``_``).
        title: One line describing the step.

    Returns:
        A decorator that registers the step function and returns it unchanged.

    Raises:
        ValueError: If the name is already taken or is not a valid folder name.
    """
    if not name or not all(ch.isalnum() or ch in "-_" for ch in name):
        raise ValueError(f"Expected a demo step name of letters, digits, '-', '_', got {name!r}.")

    def decorator(
        fn: Callable[[DemoContext], DemoResult],
    ) -> Callable[[DemoContext], DemoResult]:
        DEMO_STEPS.add(name, DemoStep(name, title, fn))
        return fn

    return decorator


@dataclass
class _Outcome:
    step: DemoStep
    status: str  # "ok" | "failed"
    seconds: float
    result: DemoResult | None = None
    error: str = ""
    bad_input: bool = False


def run_demo(
    out: str | Path,
    *,
    steps: list[str] | None = None,
    quick: bool = False,
    seed: int = DEFAULT_SEED,
    device: str = "auto",
    progress: bool = True,
    smoke: bool = False,
    debug: bool = False,
) -> int:
    """Run demo steps into ``out`` and write ``out/index.html`` and ``out/demo.json``.

    A step that fails is reported in the index (the others still run).

    Args:
        out: The demo folder.
        steps: Names of the steps to run (default: all, in registration order).
        quick: Small settings.
        seed: Random seed.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: Show progress bars.
        smoke: Test-only tiny settings.
        debug: Log the traceback of a failing step.

    Returns:
        0 when every step succeeded; 2 when the failures were all bad input
        (:class:`~shared.errors.InputError`, e.g. a run folder of another config); 1 otherwise.

    Raises:
        InputError: If ``out`` exists and is not a folder, or a step name is unknown.
    """
    out_dir = Path(out)
    names = list(steps) if steps is not None else list(DEMO_STEPS.names())
    chosen = [DEMO_STEPS.get(n) for n in names]
    _check_demo_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DEMO_MARKER).touch()
    started = time.time()
    outcomes: list[_Outcome] = []
    for i, step in enumerate(chosen, 1):
        logger.info(
            "[demo %d/%d] %s: %s -> %s", i, len(chosen), step.name, step.title, out_dir / step.name
        )
        ctx = DemoContext(
            out_dir=out_dir / step.name,
            quick=quick,
            seed=seed,
            device=device,
            progress=progress,
            smoke=smoke,
        )
        t0 = time.perf_counter()
        try:
            result = step.run(ctx)
        except KeyboardInterrupt:
            raise
        except Exception as err:
            seconds = time.perf_counter() - t0
            logger.error(
                "[demo] step %r failed after %.1f s: %s: %s",
                step.name,
                seconds,
                type(err).__name__,
                err,
                exc_info=debug,
            )
            bad_input = isinstance(err, InputError)
            error = str(err) if bad_input else f"{type(err).__name__}: {err}"
            outcomes.append(_Outcome(step, "failed", seconds, error=error, bad_input=bad_input))
            continue
        seconds = time.perf_counter() - t0
        logger.info("[demo] %s done in %.1f s", step.name, seconds)
        outcomes.append(_Outcome(step, "ok", seconds, result=result))
    total = time.time() - started
    settings = {"quick": quick, "seed": seed, "device": device, "smoke": smoke}
    atomic_write_text(out_dir / "demo.json", _demo_json(outcomes, settings, total))
    index = atomic_write_text(out_dir / "index.html", _index_html(outcomes, settings, total))
    failed = [o.step.name for o in outcomes if o.status != "ok"]
    if failed:
        logger.error(
            "[demo] %d of %d steps failed (%s); see %s",
            len(failed),
            len(outcomes),
            ", ".join(failed),
            index,
        )
        return 2 if all(o.bad_input for o in outcomes if o.status != "ok") else 1
    logger.info("[demo] finished in %.1f s; open %s", total, index.resolve())
    return 0


def _check_demo_folder(out_dir: Path) -> None:
    """Refuse ``--out`` unless it is new, empty, or an earlier demo folder (nothing written)."""
    from shared.training.run import MARKER

    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {str(out_dir)!r} exists and is not a folder.")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if (out_dir / DEMO_MARKER).is_file() or (out_dir / "demo.json").is_file():
        return
    what = (
        "holds a run folder of a domain command"
        if (out_dir / MARKER).is_file()
        else "is not empty and holds no earlier demo"
    )
    raise InputError(
        f"--out {out_dir}: the folder {what}; give the demo a new or empty folder (or an "
        "earlier demo folder, whose finished steps it reuses)."
    )


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _demo_json(outcomes: list[_Outcome], settings: Mapping[str, Any], total: float) -> str:
    data = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": dict(settings),
        "seconds": round(total, 2),
        "steps": {
            o.step.name: {
                "title": o.result.title if o.result else o.step.title,
                "status": o.status,
                "seconds": round(o.seconds, 2),
                "metrics": {
                    k: _json_number(v) for k, v in (o.result.metrics if o.result else {}).items()
                },
                "links": {
                    k: f"{o.step.name}/{v}" for k, v in (o.result.links if o.result else {}).items()
                },
                **({"error": o.error} if o.error else {}),
            }
            for o in outcomes
        },
    }
    return json.dumps(data, indent=2) + "\n"


def _index_html(outcomes: list[_Outcome], settings: Mapping[str, Any], total: float) -> str:
    rows = []
    for o in outcomes:
        title = o.result.title if o.result else o.step.title
        status = f'<span class="{esc(o.status)}">{esc(o.status)}</span>'
        headline = ""
        links = ""
        if o.result:
            headline = "<br>".join(
                f"{esc(k)} = {esc(_fmt(v))}" for k, v in o.result.metrics.items()
            )
            links = " · ".join(
                html_link(f"{o.step.name}/{href}", label) for label, href in o.result.links.items()
            )
        else:
            headline = esc(o.error)
        rows.append(
            [
                html_link(f"{o.step.name}/", o.step.name),
                title,
                status,
                headline,
                f"{o.seconds:.1f}",
                links,
            ]
        )
    table = html_table(
        ["step", "what", "status", "headline numbers", "seconds", "files"],
        rows,
        raw_html_columns=(0, 2, 3, 4, 5),
    )
    sections = []
    for o in outcomes:
        if not o.result:
            sections.append(
                f'<h2 id="{esc(o.step.name)}">{esc(o.step.title)}</h2>\n'
                f'<p class="failed">Failed: {esc(o.error)}</p>'
            )
            continue
        notes = f'<p class="note">{esc(o.result.notes)}</p>\n' if o.result.notes else ""
        sections.append(
            f'<h2 id="{esc(o.step.name)}">{esc(o.result.title)}</h2>\n{notes}'
            f"{o.result.summary_html}"
        )
    mode = "smoke" if settings.get("smoke") else "quick" if settings.get("quick") else "full"
    subtitle = (
        f"{len(outcomes)} step(s), {mode} settings, seed {settings.get('seed')}, "
        f"device {settings.get('device')}, {total:.0f} s; "
        f"written {datetime.now().strftime('%Y-%m-%d %H:%M')}"
    )
    body = (
        table
        + "\n"
        + "\n".join(sections)
        + (
            '\n<p class="note">Each step folder holds its run folders (config.yaml, '
            "metrics.json, history.csv, log.txt, weights.pt, state.pt). Running the same "
            "command again reuses finished runs and resumes interrupted ones.</p>"
        )
    )
    return html_page(
        "contrasuite demo", body, subtitle=subtitle, meta={"generator": "contrasuite demo"}
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


_DEMO_EPILOG = """\
examples:
  contrasuite demo                        # full settings, into ./contrasuite-demo
  contrasuite demo --quick --out /tmp/d   # small settings, about a minute on 2 CPU cores
  contrasuite demo --steps digits        # only some steps (comma-separated)
  contrasuite demo --list                 # list the steps

Each step writes DIR/<step>/ (its run folders); DIR/index.html links and summarizes them and
opens offline. Running the same command again reuses finished runs and resumes interrupted ones.
"""


@register_command(
    "demo",
    help="the main job: every pipeline end to end on embedded data -> DIR/index.html",
    description=(
        "Run every registered demo step end to end on data shipped with the install (no\n"
        "network), each into DIR/<step>/, and write DIR/index.html linking their results."
    ),
    epilog=_DEMO_EPILOG,
)
def _configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=DEFAULT_OUT,
        help=f"demo folder (default: ./{DEFAULT_OUT})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small settings: the whole demo in about a minute on a laptop CPU",
    )
    parser.add_argument(
        "--steps",
        metavar="A,B",
        default=None,
        help="run only these steps (default: all; see --list)",
    )
    parser.add_argument("--list", action="store_true", help="list the demo steps and exit")
    parser.add_argument(
        "--seed",
        metavar="N",
        type=nonnegative_int,
        default=DEFAULT_SEED,
        help=f"random seed (default: {DEFAULT_SEED})",
    )
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="cpu, cuda, or auto = cuda when available (default: auto)",
    )
    # Test-only: even smaller than --quick (the end-to-end test of the test suite).
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=_demo_command)


def _demo_command(args: argparse.Namespace) -> int:
    if args.list:
        for name, step in DEMO_STEPS.items():
            print(f"{name:12s} {step.title}")
        return 0
    steps = parse_names(args.steps, DEMO_STEPS) if args.steps is not None else None
    check_device(args.device)
    return run_demo(
        args.out,
        steps=steps,
        quick=args.quick or args.smoke,
        seed=args.seed,
        device=args.device,
        progress=not getattr(args, "quiet", 0),
        smoke=args.smoke,
        debug=debug_enabled(args),
    )
