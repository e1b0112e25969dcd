"""ECG benchmark: data reading speed, training throughput per branch, and real-subset AUROC.

Three parts, JSON on stdout (progress on stderr):

* ``data``: records per second read with plain wfdb vs from the memory-mapped cache, on the
  shared PTB-XL subset (:func:`bench_ecg_data.bench_data`).
* ``throughput``: training samples per second at batch 32 on the CPU, for each ProtoECGNet
  branch at the paper's size (ResNet-18 width 64, 100 Hz, 1000 samples; ppc 5 / 18 / 7 over
  16 / 52 / 3 classes), in the ``feature`` stage (backbone + linear head, BCE) and the ``joint``
  stage (the whole prototype loss), for the black-box ResNet1D baseline (71 labels), and the
  inference rate of the fused model. Random inputs: the speed does not depend on the data.
  Measured with 1 intra-op thread and with torch's default.
* ``real_subset`` (``--real``): ``ecg train`` on folds 1-8 of the real 500-record subset,
  test fold 10, for ``superdiagnostic`` and ``all``: ProtoECGNet with ``preset=suite`` and
  ``preset=paper`` and the ResNet1D baseline of the same backbone size, trained with the same
  trainer settings, two seeds each; a table of macro and weighted AUROC with bootstrap 95 %
  intervals. Runs are resumable folders under ``--work-dir``.

Usage::

    .venv/bin/python benchmarks/bench_ecg.py                      # data + throughput
    .venv/bin/python benchmarks/bench_ecg.py --real --skip-data   # + the real-subset runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from medical.ecg.config import ECGConfig
from medical.ecg.infer import build_model
from medical.ecg.losses import LossConfig, jaccard_matrix
from medical.ecg.model import PrototypeBranch, ResNet1DClassifier
from medical.ecg.tasks import FeatureTask, JointTask, SupervisedTask
from medical.ecg.train import train
from shared.config import load_config

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptbxl-subset"
BRANCH_SPECS = {  # name: (kind, classes, ppc, T_p)
    "rhythm": ("1d", 16, 5, None),
    "morphology": ("2d", 52, 18, 3),
    "global": ("2d", 3, 7, None),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _rate(step: Any, batch: int, warmup: int, min_steps: int, min_seconds: float) -> float:
    for _ in range(warmup):
        step()
    n, start = 0, time.perf_counter()
    while n < min_steps or time.perf_counter() - start < min_seconds:
        step()
        n += 1
    return n * batch / (time.perf_counter() - start)


def _train_step(task: Any, x: torch.Tensor, y: torch.Tensor) -> Any:
    params = [p for p in task.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-4, weight_decay=1.7e-4)
    task.train()
    batch = (x, y, torch.arange(len(x)))

    def step() -> None:
        out = task.training_step(batch)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()

    return step


def bench_throughput(
    batch: int = 32, length: int = 1000, threads: int = 0, min_seconds: float = 8.0
) -> dict[str, Any]:
    """Samples per second of one training step per branch and stage (see the module doc)."""
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        x = torch.randn(batch, 12, length)
        out: dict[str, Any] = {
            "threads": torch.get_num_threads(),
            "batch": batch,
            "samples": length,
        }
        for name, (kind, c, ppc, t_p) in BRANCH_SPECS.items():
            y = (torch.rand(batch, c) < 0.2).float()
            idx = torch.arange(c)
            branch = PrototypeBranch(kind, c, ppc, length, proto_time_len=t_p, dropout=0.35)  # type: ignore[arg-type]
            feature = FeatureTask(branch, idx, None)
            rate_f = _rate(_train_step(feature, x, y), batch, 2, 3, min_seconds)
            joint = JointTask(branch, idx, None, jaccard_matrix(y), LossConfig())
            rate_j = _rate(_train_step(joint, x, y), batch, 2, 3, min_seconds)
            out[name] = {
                "feature_samples_per_s": rate_f,
                "joint_samples_per_s": rate_j,
                "params": sum(p.numel() for p in branch.parameters()),
                "prototypes": branch.num_prototypes,
            }
            log(f"  {name}: feature {rate_f:.1f}/s, joint {rate_j:.1f}/s")
        y = (torch.rand(batch, 71) < 0.1).float()
        base = SupervisedTask(ResNet1DClassifier(71), torch.arange(71), None)
        rate_b = _rate(_train_step(base, x, y), batch, 2, 3, min_seconds)
        out["resnet1d_baseline"] = {
            "samples_per_s": rate_b,
            "params": sum(p.numel() for p in base.parameters()),
        }
        log(f"  resnet1d baseline: {rate_b:.1f}/s")
        groups = {
            "rhythm": list(range(16)),
            "morphology": list(range(16, 68)),
            "global": list(range(68, 71)),
        }
        model = build_model(ECGConfig(), groups, 71, length).eval()
        with torch.no_grad():
            rate_i = _rate(lambda: model(x), batch, 1, 3, min_seconds / 2)
        out["fused_inference_samples_per_s"] = rate_i
        out["fused_params"] = sum(p.numel() for p in model.parameters())
        log(f"  fused model inference: {rate_i:.1f}/s")
        return out
    finally:
        torch.set_num_threads(before)


def bench_real(
    data_dir: Path,
    work_dir: Path,
    epochs: int,
    lr: float,
    label_sets: list[str],
    archs: tuple[str, ...] = ("resnet1d", "protoecgnet"),
    baseline_epochs: int | None = None,
    presets: tuple[str, ...] = ("suite", "paper"),
    seeds: tuple[int, ...] = (2020, 2021),
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """ProtoECGNet (each preset) vs the ResNet1D baseline on the real subset, test fold 10.

    Every model is trained once per seed; each row reports the test macro and weighted AUROC
    with their bootstrap 95 % intervals over the test ECGs (200 resamples), how many labels
    were scored, and the mean over seeds.
    """
    baseline_epochs = baseline_epochs or 2 * epochs  # a branch backbone: feature + joint stages
    results: dict[str, Any] = {
        "data_dir": str(data_dir),
        "epochs_per_stage": epochs,
        "baseline_epochs": baseline_epochs,
        "lr": lr,
        "seeds": list(seeds),
        "settings": list(extra),
        "runs": {},
    }
    common = [f"trainer.lr={lr}", "trainer.progress=false", "trainer.threads=1",
              "trainer.device=cpu", *extra]  # fmt: skip
    models = [("resnet1d", "suite")] if "resnet1d" in archs else []
    models += [("protoecgnet", p) for p in presets] if "protoecgnet" in archs else []
    for label_set in label_sets:
        for arch, preset in models:
            for seed in seeds:
                cfg = load_config(
                    ECGConfig,
                    {"data": {"data_dir": str(data_dir)}},
                    [
                        *common,
                        f"trainer.epochs={baseline_epochs if arch == 'resnet1d' else epochs}",
                        f"trainer.seed={seed}",
                        f"data.label_set={label_set}",
                        f"model.architecture={arch}",
                        f"preset={preset}",
                    ],
                )
                name = arch if arch == "resnet1d" else f"{arch}-{preset}"
                run = work_dir / f"{label_set}-{name}-seed{seed}"
                log(f"[real subset] {label_set} / {name} / seed {seed} -> {run}")
                start = time.perf_counter()
                m = train(cfg, run, progress=False)
                results["runs"][f"{label_set}/{name}/{seed}"] = {
                    "macro_auc": m["macro_auc"],
                    "weighted_auc": m["weighted_auc"],
                    "ci95": m.get("ci95"),
                    "n_test": m["n_test"],
                    "n_labels": m["n_labels"],
                    "n_labels_evaluated": m["n_labels_evaluated"],
                    "labels_skipped": m["labels_skipped"],
                    "params": m["params"],
                    "train_seconds": m.get("train_seconds"),
                    "wall_seconds_this_call": time.perf_counter() - start,
                    "run": str(run),
                    "branches": m.get("branches"),
                }
                log(f"  macro AUROC {m['macro_auc']:.4f}, weighted {m['weighted_auc']:.4f}")
    results["table"] = real_table(results["runs"])
    log(results["table"])
    return results


def _f(value: Any) -> str:
    return "nan" if value is None else f"{float(value):.3f}"


def real_table(runs: dict[str, Any]) -> str:
    """A markdown table of the real-subset runs: one row per label set, model and seed."""
    lines = [
        "| label set | model | seed | macro AUROC [95% CI] | weighted AUROC [95% CI] | "
        "labels scored |",
        "|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for key, r in runs.items():
        label_set, model, seed = key.split("/")
        ci = r.get("ci95") or {"macro_auc": [None, None], "weighted_auc": [None, None]}
        lines.append(
            f"| {label_set} | {model} | {seed} | {_f(r['macro_auc'])} "
            f"[{_f(ci['macro_auc'][0])}, {_f(ci['macro_auc'][1])}] | {_f(r['weighted_auc'])} "
            f"[{_f(ci['weighted_auc'][0])}, {_f(ci['weighted_auc'][1])}] | "
            f"{r['n_labels_evaluated']} of {r['n_labels']} |"
        )
        groups.setdefault((label_set, model), []).append(r)
    for (label_set, model), rs in groups.items():
        if len(rs) > 1:
            macro = [r["macro_auc"] for r in rs if r["macro_auc"] is not None]
            weighted = [r["weighted_auc"] for r in rs if r["weighted_auc"] is not None]
            lines.append(
                f"| {label_set} | {model} | mean of {len(rs)} | "
                f"{_f(sum(macro) / len(macro) if macro else None)} | "
                f"{_f(sum(weighted) / len(weighted) if weighted else None)} | |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA, help="the real PTB-XL subset"
    )
    parser.add_argument("--skip-data", action="store_true", help="skip the data-reading part")
    parser.add_argument("--skip-throughput", action="store_true", help="skip the throughput part")
    parser.add_argument("--real", action="store_true", help="train on the real subset (long)")
    parser.add_argument(
        "--work-dir", type=Path, default=Path("runs/bench_ecg"), help="run folders of --real"
    )
    parser.add_argument(
        "--epochs", type=int, default=12, help="epochs per stage for --real (default 12)"
    )
    parser.add_argument(
        "--baseline-epochs",
        type=int,
        default=None,
        help="epochs of the baseline (default: 2 x --epochs, a branch backbone's feature + joint)",
    )
    parser.add_argument(
        "--lr", type=float, default=1e-3, help="learning rate for --real (default 1e-3)"
    )
    parser.add_argument("--label-sets", default="superdiagnostic,all", help="label sets for --real")
    parser.add_argument("--archs", default="resnet1d,protoecgnet", help="architectures for --real")
    parser.add_argument("--presets", default="suite,paper", help="ProtoECGNet presets for --real")
    parser.add_argument("--seeds", default="2020,2021", help="seeds of each --real model")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="extra config setting of every --real run (repeatable), e.g. model.width=16",
    )  # fmt: skip
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="minimum timing per throughput case"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
        },
    }
    if not args.skip_data:
        from bench_ecg_data import bench_data

        log("[data] wfdb vs cache on the real subset")
        results["data"] = bench_data(args.data_dir, (100,), repeats=5)
    if not args.skip_throughput:
        results["throughput"] = {}
        for threads in (1, 0):
            log(f"[throughput] batch 32, {threads or 'default'} thread(s)")
            results["throughput"][f"threads_{threads or 'default'}"] = bench_throughput(
                threads=threads, min_seconds=args.seconds
            )
    if args.real:
        labels = [s for s in args.label_sets.split(",") if s]
        archs = tuple(a for a in args.archs.split(",") if a)
        results["real_subset"] = bench_real(
            args.data_dir,
            args.work_dir,
            args.epochs,
            args.lr,
            labels,
            archs,
            args.baseline_epochs,
            tuple(p for p in args.presets.split(",") if p),
            tuple(int(v) for v in args.seeds.split(",") if v),
            tuple(args.set),
        )
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
