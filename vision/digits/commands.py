"""The digits domain's command handlers and demo step (wired by :mod:`vision.digits.domain`).

Handlers get the parsed arguments and the resolved config; all the work is in
:func:`vision.digits.pipeline.train_digits`, which the demo step calls too.
"""

from __future__ import annotations

import argparse

from shared.distributed import is_main_process
from shared.domain import DemoContext, DemoResult
from vision.digits import pipeline
from vision.digits.config import QUICK, SMOKE, DigitsConfig, build

__all__ = ["DEMO_TITLE", "demo_step", "train"]

DEMO_TITLE = "Contrastive core on 8x8 digits: SimCLR vs SupCon"


def train(args: argparse.Namespace, cfg: DigitsConfig) -> int:
    """``contrasuite digits train``: train the methods, probe them, write the run folder.

    Args:
        args: The parsed arguments (``out``, ``print_config``).
        cfg: The resolved config.

    Returns:
        0.

    Raises:
        InputError: If ``--out`` cannot hold this run (nothing is written then).
    """
    result = pipeline.train_digits(cfg, args.out)
    if not is_main_process():  # under torchrun the other ranks print nothing
        return 0
    for name, row in result.rows.items():
        print(f"{name:8s} linear probe {row['probe_acc']:.4f}   kNN {row['knn_acc']:.4f}")
    print(f"report: {result.out_dir / 'report.html'}")
    return 0


def demo_step(ctx: DemoContext) -> DemoResult:
    """The demo's digits step: SimCLR vs SupCon, the same code as ``digits train``.

    Writes the run folder ``ctx.run_dir`` (one per mode), so that the quick and full runs live
    side by side and each is reused when the demo runs again.
    """
    preset = SMOKE if ctx.smoke else QUICK if ctx.quick else {}
    name = ctx.run_name
    cfg = build(
        preset,
        {
            "methods": ["simclr", "supcon"],
            "trainer": {"seed": ctx.seed, "device": ctx.device, "progress": ctx.progress},
        },
        source="demo settings",
    )
    result = pipeline.train_digits(cfg, ctx.run_dir, link_prefix=f"{ctx.out_dir.name}/{name}/")
    metrics = {
        f"probe_acc/{m}": row["probe_acc"]
        for m, row in result.rows.items()
        if m != "random" and row["probe_acc"] is not None
    }
    links = {"report": f"{name}/report.html", "results": f"{name}/results.md"}
    links.update({m: f"{name}/{m}/" for m in cfg.methods})
    return DemoResult(
        title=DEMO_TITLE,
        metrics=metrics,
        summary_html=result.summary_html,
        links=links,
        notes="One CNN architecture, two contrastive objectives, the shared Trainer; "
        "frozen features judged by a linear probe against raw pixels "
        "(`contrasuite digits train --methods all` compares eight).",
    )
