"""Handlers of ``contrasuite sepclr make-data | train | evaluate`` and the demo step."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

from medical.sepclr.config import SepCLRConfig, SepCLREvaluateConfig
from medical.sepclr.report import comparison_rows, markdown_table
from shared.distributed import is_main_process
from shared.domain import DemoContext, DemoResult
from shared.report import html_link, html_table

__all__ = ["demo_step", "evaluate", "make_data", "prepare_evaluate", "train"]

logger = logging.getLogger(__name__)


def make_data(args: argparse.Namespace) -> int:
    """``contrasuite sepclr make-data --out DIR``: write the generated set."""
    from medical.sepclr.synth import write_generated
    from shared.training.run import check_output_path

    check_output_path(args.out, option="--out")  # never inside a run folder
    path = write_generated(args.out, args.n_per_group, args.size, args.seed)
    print(f"wrote {path} and {path.parent / 'preview.png'}")
    return 0


def _print_probes(metrics: dict[str, Any], run: Path) -> None:
    probes = metrics["probes"]
    cols = sorted({c for p in probes.values() for c in p}, key=lambda c: (not c.startswith("g"), c))
    rows = [[s] + [probes[s].get(c, float("nan")) for c in cols] for s in probes]
    print(f"{metrics['label']} on {metrics['dataset']} -> {run}")
    print(markdown_table(["space", *cols], rows))


def train(args: argparse.Namespace, cfg: SepCLRConfig) -> int:
    """``contrasuite sepclr train --out RUN [--data PATH] [--method M]``."""
    from medical.sepclr.train import train_run

    metrics = train_run(cfg, args.out)
    if is_main_process():  # under torchrun the other ranks print nothing
        _print_probes(metrics, Path(args.out))
    return 0


def prepare_evaluate(args: argparse.Namespace, cfg: SepCLREvaluateConfig) -> SepCLREvaluateConfig:
    """The run's ``trainer.seed`` when no seed is given (read from its config, nothing else)."""
    if cfg.seed is not None:
        return cfg
    from shared.config import from_dict
    from shared.training.run import RunFolder

    folder = RunFolder.open_existing(args.run, domain="sepclr", command="train")
    trained = from_dict(SepCLRConfig, folder.config, source=str(folder.path / "config.yaml"))
    return dataclasses.replace(cfg, seed=trained.trainer.seed)


def evaluate(args: argparse.Namespace, cfg: SepCLREvaluateConfig) -> int:
    """``contrasuite sepclr evaluate --run RUN [--compare RUN ...] [--out DIR]``: probes."""
    from medical.sepclr.train import evaluate_run
    from shared.training.run import OutputFolder

    out = None
    if args.out is not None:  # checked before anything is read
        out = OutputFolder.prepare(args.out, config=cfg)
    metrics = evaluate_run(args.run, cfg.device, compare=cfg.compare, seed=cfg.seed, out=out)
    _print_probes(metrics, out.path if out is not None else Path(args.run))
    return 0


def _demo_config(ctx: DemoContext, method: str) -> SepCLRConfig:
    from shared.config import apply_overrides

    if ctx.smoke:
        sizes = ["data.n_per_group=40", "trainer.epochs=1", "model.width=4", "batch_size=32"]
    elif ctx.quick:
        sizes = ["data.n_per_group=300", "trainer.epochs=4", "model.width=16", "batch_size=128"]
    else:
        sizes = ["data.n_per_group=600", "trainer.epochs=10", "model.width=16", "batch_size=128"]
    run = [f"trainer.seed={ctx.seed}", f"trainer.device={ctx.device}"]
    run.append(f"trainer.progress={ctx.progress}")
    return apply_overrides(SepCLRConfig(), [f"method={method}", *sizes, *run])


def demo_step(ctx: DemoContext) -> DemoResult:
    """SepCLR vs SimCLR on the generated set: probe table and the maps of each space.

    Writes one run folder per method in ``ctx.run_dir`` (one per mode).
    """
    from medical.sepclr.train import train_run

    results: dict[str, dict[str, Any]] = {}
    for method in ("sepclr", "simclr"):
        results[method] = train_run(_demo_config(ctx, method), ctx.run_dir / method)
    headers, rows = comparison_rows(results)
    metrics: dict[str, float] = {}
    for method, m in results.items():
        for space, probes in m["probes"].items():
            for probe in ("digit_linear", "texture_linear"):
                if probe in probes:
                    metrics[f"{method}/{space}/{probe}"] = round(probes[probe], 4)
    links = {f"{m} report": f"{ctx.run_name}/{m}/report.html" for m in results}
    step = ctx.out_dir.name
    summary = (
        html_table(headers, rows, digits=3)
        + "<p class='note'>Balanced accuracy of linear/kNN probes on the test split; digit "
        "(salient factor) should be high from the salient space and low from the common one, "
        "texture (common factor) the reverse. Maps: "
        + ", ".join(html_link(f"{step}/{p}", label) for label, p in links.items())
        + ".</p>"
    )
    return DemoResult(
        title="SepCLR: common vs salient spaces on the generated texture + digit set",
        metrics=metrics,
        summary_html=summary,
        links=links,
        notes="SepCLR (two encoders, k-JEM) and SimCLR (one space) trained on the generated set; "
        "chance: digit 0.1, texture 0.25, group 0.5.",
    )
