"""Command line of the core showcase: ``contrasuite showcase`` and the demo's ``core`` step.

Light on purpose (argparse only); the pipeline in :mod:`pipelines.showcase` is imported when a
command runs.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from pipelines.common import (
    add_common_options,
    build_config,
    register_command,
    resolve_config,
)
from pipelines.demo import DemoContext, DemoResult, register_demo_step

logger = logging.getLogger(__name__)

_EPILOG = """\
examples:
  contrasuite showcase --out runs/core
  contrasuite showcase --out runs/core-quick --quick
  contrasuite showcase --out runs/t --epochs 100 trainer.lr=1e-3 loss.simclr_temperature=0.2
  contrasuite showcase --out runs/s --config showcase.yaml methods=supcon
  contrasuite showcase --out runs/p --print-config   # the resolved config as YAML, then exit

writes:
  OUT/report.html  (table + embedding plot, self-contained), OUT/metrics.json, OUT/config.yaml,
  OUT/simclr/ and OUT/supcon/ (run folders: config.yaml, metrics.json, history.csv, log.txt,
  weights.pt, state.pt). Running the same command again reuses or resumes the runs.

config keys (KEY=VALUE, dotted): methods, batch_size, data.{test_fraction,split_seed,image_size},
  augment.{scale_min,scale_max,aspect,shift,rotation,intensity,noise_std,noise_prob,erase_prob,
  erase_area}, model.{width,num_features,head_hidden,head_out,head_layers},
  loss.{simclr_temperature,supcon_temperature}, probe.{cs,cv_folds,max_iter,knn_k,views_seed},
  plot.method (tsne|pca), trainer.{epochs,lr,optimizer,weight_decay,scheduler,warmup_epochs,
  grad_clip,seed,device,...}
"""


@register_command(
    "showcase",
    help="the contrastive core on 8x8 digits: SimCLR vs SupCon, linear probe, HTML report",
    description=(
        "Train one small CNN twice with the shared Trainer, (a) SimCLR (NT-Xent, no labels) and\n"
        "(b) SupCon (labels), on scikit-learn's bundled 8x8 digits, then compare linear probes\n"
        "on the frozen features with the same probe on raw pixels and on an untrained encoder."
    ),
    epilog=_EPILOG,
)
def _configure(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small settings (15 epochs, fixed probe C, PCA plot): about a minute",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config as YAML and exit without training",
    )
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=_showcase_command)


def _showcase_command(args: argparse.Namespace) -> int:
    from pipelines.showcase import QUICK, SMOKE, ShowcaseConfig, run_showcase
    from shared.config import dump_yaml, to_dict

    defaults: Any = SMOKE if args.smoke else QUICK if args.quick else None
    cfg = resolve_config(ShowcaseConfig, args, defaults=defaults)
    if args.print_config:
        print(dump_yaml(to_dict(cfg)), end="")
        return 0
    result = run_showcase(cfg, args.out)
    for name, row in result.rows.items():
        print(f"{name:8s} linear probe {row['probe_acc']:.4f}   kNN {row['knn_acc']:.4f}")
    print(f"report: {result.out_dir / 'report.html'}")
    return 0


@register_demo_step("core", title="Contrastive core: SimCLR vs SupCon on 8x8 digits")
def _core_demo(ctx: DemoContext) -> DemoResult:
    from pipelines.showcase import QUICK, SMOKE, ShowcaseConfig, run_showcase

    defaults = SMOKE if ctx.smoke else QUICK if ctx.quick else {}
    suffix = "-smoke" if ctx.smoke else "-quick" if ctx.quick else ""
    cfg = build_config(
        ShowcaseConfig,
        defaults,
        {"trainer": {"seed": ctx.seed, "device": ctx.device, "progress": ctx.progress}},
        source="demo settings",
    )
    result = run_showcase(cfg, ctx.out_dir, run_suffix=suffix, link_prefix=f"{ctx.out_dir.name}/")
    metrics = {
        f"probe_acc/{name}": row["probe_acc"]
        for name, row in result.rows.items()
        if name != "random" and row["probe_acc"] is not None
    }
    links = {"report": "report.html", "metrics": "metrics.json"}
    links.update({m: f"{m}{suffix}/" for m in cfg.methods})
    return DemoResult(
        title="Contrastive core: SimCLR vs SupCon on 8x8 digits",
        metrics=metrics,
        summary_html=result.summary_html,
        links=links,
        notes="One CNN architecture, two contrastive objectives, the shared Trainer; "
        "frozen features judged by a linear probe against raw pixels.",
    )
