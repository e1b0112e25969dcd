"""``contrasuite demo``: every registered pipeline end to end, with one HTML index.

Each demo step writes its own folder ``DIR/<step>/`` and returns a :class:`DemoResult`; the
command then writes ``DIR/index.html`` (a table of every step's headline numbers, links to its
files, and the step's own summary) and ``DIR/demo.json`` (the same as JSON, with each step's
settings and time, so that a later call can keep the step in its index).

Inside its folder a step keeps one run folder per mode (:attr:`DemoContext.run_dir`: ``run``,
``run-quick``, ``run-smoke``), so calls in different modes into one demo folder live side by
side. The index lists the steps of this call and, from the earlier ``demo.json``, the steps an
earlier call ran with the same settings (quick, smoke, seed), marked as such.

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
#: The settings an earlier call's step must share with this call to stay in the index.
MATCHING_SETTINGS = ("quick", "smoke", "seed")


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

    A step that fails is reported in the index (the others still run). The index and
    ``demo.json`` also keep the steps of an earlier call into ``out`` that this call did not
    run, when that call had the same quick, smoke and seed settings.

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
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entries = {o.step.name: _entry(o, settings, created) for o in outcomes}
    earlier = _earlier_entries(out_dir, settings, ran=set(entries))
    merged = _in_step_order({**earlier, **entries})
    atomic_write_text(out_dir / "demo.json", _demo_json(merged, settings, total, created))
    index = atomic_write_text(
        out_dir / "index.html", _index_html(merged, set(earlier), settings, total)
    )
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


def _entry(o: _Outcome, settings: Mapping[str, Any], created: str) -> dict[str, Any]:
    """One step's ``demo.json`` entry; links are relative to the demo folder."""
    r = o.result
    return {
        "title": r.title if r else o.step.title,
        "status": o.status,
        "seconds": round(o.seconds, 2),
        "metrics": {k: _json_number(v) for k, v in (r.metrics if r else {}).items()},
        "links": {k: f"{o.step.name}/{v}" for k, v in (r.links if r else {}).items()},
        **({"error": o.error} if o.error else {}),
        "notes": r.notes if r else "",
        "summary_html": r.summary_html if r else "",
        "settings": dict(settings),
        "created": created,
    }


def _earlier_entries(
    out_dir: Path, settings: Mapping[str, Any], *, ran: set[str]
) -> dict[str, dict[str, Any]]:
    """The entries of ``out_dir/demo.json`` to keep: steps not in ``ran``, same settings.

    An unreadable ``demo.json`` is logged and ignored (the index then lists this call only), as
    is an entry of another shape or of an ``ok`` step whose linked files are gone.
    """
    path = out_dir / "demo.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        steps = data["steps"]
        if not isinstance(steps, dict):
            raise TypeError(f"expected 'steps' to be an object, got {type(steps).__name__}")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.warning("[demo] ignoring the earlier %s (%s: %s)", path, type(err).__name__, err)
        return {}
    kept: dict[str, dict[str, Any]] = {}
    other: list[str] = []
    for name, entry in steps.items():
        if name in ran:
            continue
        try:
            clean = _clean_entry(entry, data.get("settings"), data.get("created"))
        except (TypeError, ValueError, KeyError) as err:
            logger.warning("[demo] ignoring step %r of the earlier %s: %s", name, path, err)
            continue
        if any(clean["settings"].get(k) != settings[k] for k in MATCHING_SETTINGS):
            other.append(name)
        elif clean["status"] == "ok" and not all(
            (out_dir / link.split("#")[0]).exists() for link in clean["links"].values()
        ):
            logger.info("[demo] the index drops %r: its files are gone", name)
        else:
            kept[name] = clean
    if other:
        logger.info(
            "[demo] the index lists this call's settings only; it drops %s (run earlier with "
            "other settings; their files stay)",
            ", ".join(other),
        )
    return kept


def _clean_entry(entry: Any, settings: Any, created: Any) -> dict[str, Any]:
    """An earlier ``demo.json`` entry in this version's shape (older files lack some keys).

    Raises:
        TypeError: If a field has another type.
        KeyError: If ``status`` is missing.
    """

    def typed(value: Any, kind: type, what: str) -> Any:
        if not isinstance(value, kind):
            raise TypeError(f"expected {what} to be {kind.__name__}, got {type(value).__name__}")
        return value

    typed(entry, dict, "the entry")
    return {
        "title": str(entry.get("title", "")),
        "status": typed(entry["status"], str, "status"),
        "seconds": float(entry.get("seconds") or 0.0),
        "metrics": dict(typed(entry.get("metrics", {}), dict, "metrics")),
        "links": {
            str(k): typed(v, str, "a link")
            for k, v in typed(entry.get("links", {}), dict, "links").items()
        },
        **({"error": str(entry["error"])} if entry.get("error") else {}),
        "notes": str(entry.get("notes", "")),
        "summary_html": typed(entry.get("summary_html", ""), str, "summary_html"),
        "settings": dict(typed(entry.get("settings", settings), dict, "settings")),
        "created": str(entry.get("created", created or "")),
    }


def _in_step_order(entries: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``entries`` in the order the steps run (steps no longer registered last)."""
    order = {name: i for i, name in enumerate(DEMO_STEPS.names())}
    names = sorted(entries, key=lambda n: order.get(n, len(order)))  # stable: old order kept
    return {n: entries[n] for n in names}


def _demo_json(
    entries: Mapping[str, Mapping[str, Any]],
    settings: Mapping[str, Any],
    total: float,
    created: str,
) -> str:
    data = {
        "created": created,
        "settings": dict(settings),
        "seconds": round(total, 2),
        "steps": {name: dict(entry) for name, entry in entries.items()},
    }
    return json.dumps(data, indent=2) + "\n"


def _index_html(
    entries: Mapping[str, Mapping[str, Any]],
    earlier: set[str],
    settings: Mapping[str, Any],
    total: float,
) -> str:
    rows = []
    sections = []
    for name, e in entries.items():
        status = f'<span class="{esc(e["status"])}">{esc(e["status"])}</span>'
        when = ""
        if name in earlier:
            status += f'<br><span class="note">earlier call, {esc(_when(e["created"]))}</span>'
            when = f'<p class="note">From an earlier call ({esc(_when(e["created"]))}).</p>\n'
        if e["status"] == "ok":
            headline = "<br>".join(f"{esc(k)} = {esc(_fmt(v))}" for k, v in e["metrics"].items())
        else:
            headline = esc(e.get("error", ""))
        links = " · ".join(html_link(href, label) for label, href in e["links"].items())
        rows.append(
            [
                html_link(f"{name}/", name),
                e["title"],
                status,
                headline,
                f"{e['seconds']:.1f}",
                links,
            ]
        )
        if e["status"] != "ok":
            sections.append(
                f'<h2 id="{esc(name)}">{esc(e["title"])}</h2>\n{when}'
                f'<p class="failed">Failed: {esc(e.get("error", ""))}</p>'
            )
            continue
        notes = f'<p class="note">{esc(e["notes"])}</p>\n' if e["notes"] else ""
        sections.append(
            f'<h2 id="{esc(name)}">{esc(e["title"])}</h2>\n{when}{notes}{e["summary_html"]}'
        )
    table = html_table(
        ["step", "what", "status", "headline numbers", "seconds", "files"],
        rows,
        raw_html_columns=(0, 2, 3, 4, 5),
    )
    mode = "smoke" if settings.get("smoke") else "quick" if settings.get("quick") else "full"
    kept = f" ({len(earlier)} from an earlier call)" if earlier else ""
    subtitle = (
        f"{len(entries)} step(s){kept}, {mode} settings, seed {settings.get('seed')}, "
        f"device {settings.get('device')}, {total:.0f} s; "
        f"written {datetime.now().strftime('%Y-%m-%d %H:%M')}"
    )
    body = (
        table
        + "\n"
        + "\n".join(sections)
        + (
            '\n<p class="note">Each step folder holds one folder per mode (run, run-quick) '
            "with its run folders (config.yaml, metrics.json, history.csv, log.txt, weights.pt, "
            "state.pt). Running the same command again reuses finished runs and resumes "
            "interrupted ones.</p>"
        )
    )
    return html_page(
        "contrasuite demo", body, subtitle=subtitle, meta={"generator": "contrasuite demo"}
    )


def _when(created: str) -> str:
    """``created`` (ISO 8601, UTC) in local time, to the minute; as given if unparseable."""
    try:
        return datetime.fromisoformat(created).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return created


def _fmt(value: Any) -> str:
    if value is None:  # a NaN, written to demo.json as null
        return "nan"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


_DEMO_EPILOG = """\
examples:
  contrasuite demo                        # full settings, into ./contrasuite-demo
  contrasuite demo --quick --out /tmp/d   # small settings: about 3 min on 2 CPU cores
  contrasuite demo --steps digits         # only some steps (comma-separated)
  contrasuite demo --list                 # list the steps

Each step writes DIR/<step>/ (its run folders); DIR/index.html links and summarizes them and
opens offline. Running the same command again reuses finished runs and resumes interrupted ones.
Each mode keeps its own runs (DIR/<step>/run, run-quick), so a --quick call and a full one can
share DIR; the index also lists the steps an earlier call ran with the same --quick and --seed.
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
        help="small settings: the whole demo in about 3 minutes on 2 CPU cores (the full one "
        "takes about 11; --steps picks fewer)",
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
