"""Handlers of ``contrasuite prostate phantom | train | predict | evaluate`` and the demo step."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from medical.prostate import ZONES
from medical.prostate.config import ProstateConfig, ProstateEvaluateConfig
from shared.distributed import is_main_process, on_rank0
from shared.domain import DemoContext, DemoResult
from shared.errors import InputError
from shared.io import read_json
from shared.report import html_link, html_table
from shared.training.run import OutputFolder, check_output_path

__all__ = ["demo_step", "evaluate", "phantom", "predict", "train"]

logger = logging.getLogger(__name__)


def phantom(args: argparse.Namespace) -> int:
    """``contrasuite prostate phantom --out DIR [--n-cases N] [--seed S] [--from-masks DIR]``."""
    from medical.prostate.phantom import write_phantom_dataset

    root = write_phantom_dataset(  # an earlier phantom set in --out is replaced as a whole
        args.out,
        args.n_cases,
        args.seed,
        n_unlabelled=args.n_unlabelled,
        shape=args.shape,
        spacing=args.spacing,
        from_masks=args.from_masks,
    )
    meta = read_json(root / "dataset.json")
    n_train, n_test = meta["numTraining"], meta["numTest"]
    where = " (imagesTs/)" if n_test else ""
    print(
        f"wrote {root}: {n_train} labelled cases (imagesTr/, labelsTr/), {n_test} unlabelled "
        f"images{where} and dataset.json"
    )
    return 0


def _summary_lines(metrics: dict[str, Any]) -> str:
    lines = [f"{metrics['model']} on {metrics['n_cases']} cases"]
    tables = dict(metrics.get("stages", {metrics["final"]: metrics["per_zone"]}))
    if "baseline" in metrics:
        tables = {"baseline": metrics["baseline"]["per_zone"], **tables}
    for name, per_zone in tables.items():
        cells = []
        for zone, s in per_zone.items():
            dice = "n/a" if s["dice"] is None else f"{s['dice']:.3f}"
            masd = "missing" if s["masd_mm"] is None else f"{s['masd_mm']:.2f}mm"
            cells.append(f"{zone} dice {dice} masd {masd}")
        lines.append(f"  {name}: " + "; ".join(cells))
    for stage, change in metrics.get("relative_masd_change_pct", {}).items():
        cells = [f"{z} {'n/a' if v is None else f'{v:+.1f}%'}" for z, v in change.items()]
        lines.append(f"  MASD change vs baseline ({stage}): " + ", ".join(cells))
    return "\n".join(lines)


def train(args: argparse.Namespace, cfg: ProstateConfig) -> int:
    """``contrasuite prostate train --out RUN [--data-dir DIR] [--model baseline|dual-path]``."""
    from medical.prostate.evaluate import evaluate as run_evaluate
    from medical.prostate.train import train as run_train

    run = run_train(cfg, args.out)

    def test() -> dict[str, Any] | None:  # rank 0 alone under torchrun; the others wait
        info = read_json(run.path / "split.json")
        if not info["test"]:
            return None
        return run_evaluate(run.path, info["data_dir"], device=cfg.trainer.device)

    metrics = on_rank0(test)
    if is_main_process():
        if metrics is not None:
            print(_summary_lines(metrics))
        print(f"run folder: {run.path}")
    return 0


def evaluate(args: argparse.Namespace, cfg: ProstateEvaluateConfig) -> int:
    """``contrasuite prostate evaluate --run RUN --data-dir DIR [--baseline RUN] [--out DIR]``.

    ``cfg.seed`` is only recorded (in ``--out``'s ``config.yaml``): nothing here is random.
    """
    from medical.prostate.evaluate import evaluate as run_evaluate

    if not cfg.data_dir:
        raise InputError("Expected --data-dir DIR (an MSD-layout folder with labels).")
    out = None
    if args.out is not None:  # checked before anything is read
        inputs = (cfg.data_dir, *([cfg.baseline] if cfg.baseline else []))
        out = OutputFolder.prepare(args.out, config=cfg, inputs=inputs)
    metrics = run_evaluate(
        args.run, cfg.data_dir, baseline=cfg.baseline, device=cfg.device, out=out
    )
    print(_summary_lines(metrics))
    print(f"wrote {(out.path if out else Path(args.run)) / 'metrics.json'}")
    return 0


def predict(args: argparse.Namespace) -> int:
    """``contrasuite prostate predict --run RUN --input FILE_OR_DIR --out DIR``."""
    from medical.prostate.evaluate import predict as run_predict

    check_output_path(args.out, option="--out", inputs=(args.input,))
    written = run_predict(
        args.run, args.input, args.out, device=args.device, report=not args.no_report
    )
    n, s = len(written), "" if len(written) == 1 else "s"
    reports = "" if args.no_report else f" and {n} HTML report{s}"
    print(f"wrote {n} label map{s}{reports} to {args.out}")
    return 0


def _demo_overrides(ctx: DemoContext, data_dir: Path) -> list[str]:
    if ctx.smoke:
        sizes = [
            "data.roi=16,16,4",
            "data.spacing=4,4,6",
            "trainer.epochs=1",
            "stage2.epochs=1",
            "model.base_filters=2",
            "trainer.max_train_batches=1",
        ]
    elif ctx.quick:
        sizes = [
            "data.roi=32,32,8",
            "data.spacing=2,2,6",
            "trainer.epochs=4",
            "stage2.epochs=2",
            "model.base_filters=4",
        ]
    else:
        sizes = [
            "data.roi=32,32,8",
            "data.spacing=2,2,6",
            "trainer.epochs=12",
            "stage2.epochs=6",
            "model.base_filters=4",
        ]
    return [
        f"data.dir={data_dir}",
        "data.samples_per_volume=2",
        "data.test_fraction=0.25",
        "data.val_fraction=0.15",
        f"trainer.seed={ctx.seed}",
        f"trainer.device={ctx.device}",
        f"trainer.progress={ctx.progress}",
        "trainer.threads=1" if ctx.device != "cuda" else "trainer.threads=null",
        *sizes,
    ]


def demo_step(ctx: DemoContext) -> DemoResult:
    """Baseline vs dual-path (stage 1 and 2) on phantoms; one case report.

    Writes the phantoms, both run folders and the report in ``ctx.run_dir`` (one per mode: the
    phantoms' size depends on it too).
    """
    from medical.prostate.evaluate import evaluate as run_evaluate
    from medical.prostate.evaluate import predict as run_predict
    from medical.prostate.phantom import write_phantom_dataset
    from medical.prostate.train import train as run_train
    from shared.config import apply_overrides

    data = ctx.run_dir / "phantoms"
    n_cases = 6 if ctx.smoke else 10 if ctx.quick else 14
    shape = (32, 32, 8) if ctx.smoke else (48, 48, 12)
    spacing = (4.0, 4.0, 6.0) if ctx.smoke else (1.5, 1.5, 4.0)
    if not (data / "dataset.json").is_file():
        write_phantom_dataset(data, n_cases, ctx.seed, n_unlabelled=2, shape=shape, spacing=spacing)
    base = _demo_overrides(ctx, data)
    runs = {}
    for model in ("baseline", "dual-path"):
        cfg = apply_overrides(ProstateConfig(), [*base, f"model.name={model}"])
        runs[model] = run_train(cfg, ctx.run_dir / model).path
    metrics = run_evaluate(runs["dual-path"], data, baseline=runs["baseline"], device=ctx.device)
    import json

    first = json.loads((runs["dual-path"] / "split.json").read_text())["test"][0]
    run_predict(
        runs["dual-path"],
        data / "imagesTr" / f"{first}.nii.gz",
        ctx.run_dir / "report",
        device=ctx.device,
    )
    step = f"{ctx.out_dir.name}/{ctx.run_name}"
    zones = metrics["zones_scored"]
    tables = {"baseline": metrics["baseline"]["per_zone"], **metrics["stages"]}
    rows = []
    headline: dict[str, float] = {}
    for name, per_zone in tables.items():
        row: list[Any] = [name]
        for zone in zones:
            s = per_zone[zone]
            row += [s["dice"], s["masd_mm"]]
            if s["dice"] is not None:
                headline[f"{name}/dice/{zone}"] = round(s["dice"], 4)
        rows.append(row)
    headers = ["model"] + [f"{z} {m}" for z in zones for m in ("Dice", "MASD mm")]
    change = metrics["relative_masd_change_pct"]
    change_rows = [[k] + [v.get(z) for z in zones] for k, v in change.items()]
    change_rows.append(
        ["paper (abstract)"] + [-metrics["paper_masd_improvement_pct"][z] for z in zones]
    )
    summary = (
        html_table(headers, rows, digits=3)
        + "<p>Relative MASD change of the dual-path net vs the baseline (%, negative = better):</p>"
        + html_table(["stage", *zones], change_rows, digits=1)
        + f"<p class='note'>{metrics['n_cases']} held-out phantom cases; "
        + html_link(f"{step}/report/{first}.html", f"case report {first}")
        + ". Tiny CPU settings: these numbers show the pipeline runs, not the paper's effect.</p>"
    )
    return DemoResult(
        title="Prostate zones: baseline vs dual-path on phantoms",
        metrics=headline,
        summary_html=summary,
        links={
            "case report": f"{ctx.run_name}/report/{first}.html",
            "metrics": f"{ctx.run_name}/dual-path/metrics.json",
            "results": f"{ctx.run_name}/dual-path/results.md",
        },
        notes=f"Anisotropic 3D U-Net vs dual-path multi-task net (stage 1, stage 2) on "
        f"{n_cases} T2-like phantoms with zones {', '.join(ZONES)}.",
    )
