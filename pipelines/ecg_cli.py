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

__all__ = ["demo_step", "register"]

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
    _add_train(subparsers)
    _add_evaluate(subparsers)
    _add_explain(subparsers)


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


# --------------------------------------------------------------------------------------------
# contrasuite ecg train | evaluate | explain, and the demo step (the model's commands)

_TRAIN_EPILOG = """\
examples:
  contrasuite ecg train --data-dir /data/ptb-xl-1.0.3 --out runs/protoecgnet
  contrasuite ecg train --data-dir data/synth --out runs/quick --epochs 5 model.width=16
  contrasuite ecg train --data-dir DIR --out runs/super data.label_set=superdiagnostic
  contrasuite ecg train --data-dir DIR --out runs/baseline model.architecture=resnet1d
  contrasuite ecg train --data-dir DIR --out runs/official model.pooling=mean \\
      data.val_sampling=official stages.frozen_eval=false stages.fusion_input=raw \\
      loss.pos_weight=label_instances          # the official code's behaviour everywhere

stages (each its own resumable run in OUT/<branch>/<stage>/; --epochs sets them all):
  feature (backbone + linear head) -> joint (prototype loss) -> [prototypes] -> projection
  (onto real training windows) -> [classifier] -> fusion, for the branches rhythm (1D),
  morphology (2D, partial prototypes) and global (2D); then the test fold 10 is evaluated.

writes:
  OUT/config.yaml, metrics.json (macro_auc, weighted_auc, n_test, per_label, label_set, ...),
  history.csv, log.txt, weights.pt, state.pt, prototypes.json (ecg_id, branch, class, window
  in samples and seconds, similarity of every prototype), test_predictions.csv.
  Started again with the same command, a run resumes from its last complete epoch.

config keys (KEY=VALUE, dotted):
  data.{label_set,sampling_rate,remove_baseline,standardize,batch_size,val_sampling,cache_dir}
  model.{architecture,branches,branch_labels,width,layers,dropout,ppc_rhythm,ppc_morphology,
         ppc_global,proto_time_len,pooling,similarity_scale}
  loss.{clustering,separation,sparsity,diversity,contrastive,l1,pos_weight,cooccurrence_form}
  stages.{feature_epochs,joint_epochs,prototype_epochs,project,classifier_epochs,fusion_epochs,
          fusion_lr,fusion_input,frozen_eval}
  trainer.{epochs,lr,optimizer,weight_decay,scheduler,patience,monitor,seed,device,...}
  threads (torch intra-op threads; 1 is fastest on a small CPU shared with other jobs)
"""


def _add_train(subparsers: Any) -> None:
    from pipelines.common import add_common_options

    parser = add_subcommand(
        subparsers,
        "train",
        help="train ProtoECGNet (all stages) on a PTB-XL folder and evaluate it on fold 10",
        description=(
            "Train ProtoECGNet on folds 1-8 of a PTB-XL folder (validation: fold 9), through\n"
            "every stage, project its prototypes onto real training ECGs, and evaluate macro\n"
            "and weighted AUROC on the whole test fold 10. Defaults are the paper's (Adam,\n"
            "lr 1e-4, 200 epochs with early stopping on validation AUROC; loss weights\n"
            "0.004 / 0.0004 / 250 / 300); use --epochs for a shorter run."
        ),
        epilog=_TRAIN_EPILOG,
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", required=True,
        help="PTB-XL folder (ptbxl_database.csv, scp_statements.csv, records100/)",
    )  # fmt: skip
    add_common_options(parser)
    parser.add_argument(
        "--print-config", action="store_true",
        help="print the resolved config as YAML and exit without training",
    )  # fmt: skip
    parser.set_defaults(handler=_train_command)


def _with_data_dir(cfg: Any, data_dir: str | None) -> Any:
    import dataclasses
    from pathlib import Path

    if not data_dir:
        return cfg
    data = dataclasses.replace(cfg.data, data_dir=str(Path(data_dir).expanduser().resolve()))
    return dataclasses.replace(cfg, data=data)


def _num(value: Any, digits: int = 4) -> str:
    """A metric for printing; NaN (``None`` in JSON) when no label was evaluable."""
    return "nan" if value is None else f"{float(value):.{digits}f}"


def _print_metrics(metrics: dict[str, Any]) -> None:
    print(
        f"test fold 10 ({metrics['label_set']}, {metrics['n_test']} ECGs, "
        f"{metrics['n_labels_evaluated']}/{metrics['n_labels']} labels evaluable): "
        f"macro AUROC {_num(metrics['macro_auc'])}, "
        f"weighted AUROC {_num(metrics['weighted_auc'])}"
    )
    for name, b in (metrics.get("branches") or {}).items():
        print(f"  {name:10s} branch classifier: macro AUROC {_num(b['macro_auc'])}")


def _train_command(args: argparse.Namespace) -> int:
    from medical.ecg.train import ECGConfig, train
    from pipelines.common import resolve_config
    from shared.config import dump_yaml, to_dict

    cfg = _with_data_dir(resolve_config(ECGConfig, args), args.data_dir)
    if args.print_config:
        print(dump_yaml(to_dict(cfg)), end="")
        return 0
    metrics = train(cfg, args.out, progress=not getattr(args, "quiet", 0))
    _print_metrics(metrics)
    print(f"run folder: {args.out}")
    return 0


def _add_evaluate(subparsers: Any) -> None:
    from pipelines.common import DEVICES

    parser = add_subcommand(
        subparsers,
        "evaluate",
        help="test-fold (strat_fold 10) AUROC of a trained run -> RUN/metrics.json",
        description=(
            "Evaluate a finished `contrasuite ecg train` run on the whole test fold 10:\n"
            "macro and weighted AUROC and per-label AUROC, written to RUN/metrics.json\n"
            "(with the per-ECG probabilities in RUN/test_predictions.csv)."
        ),
        epilog=(
            "examples:\n"
            "  contrasuite ecg evaluate --run runs/protoecgnet\n"
            "  contrasuite ecg evaluate --run runs/protoecgnet --data-dir /data/ptb-xl-1.0.3\n"
        ),
    )
    parser.add_argument("--run", metavar="RUN", required=True, help="run folder of `ecg train`")
    parser.add_argument(
        "--data-dir", metavar="DIR", default=None,
        help="PTB-XL folder (default: the one the run was trained on)",
    )  # fmt: skip
    parser.add_argument(
        "--device", choices=DEVICES, default=None, help="where to compute (default: the run's)"
    )
    parser.set_defaults(handler=_evaluate_command)


def _evaluate_command(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from medical.ecg.train import evaluate_model, load_data, load_run
    from pipelines.common import check_device
    from shared.io import read_json, write_json

    run = load_run(args.run)
    cfg = _with_data_dir(run.config, args.data_dir)
    if args.device:
        check_device(args.device)
        cfg = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, device=args.device))
    data = load_data(cfg.data, progress=not getattr(args, "quiet", 0))
    if list(data.label_names) != run.label_names:
        from shared.errors import InputError

        raise InputError(
            f"The data in {cfg.data.data_dir} has other labels than the run in {run.path} "
            f"({len(data.label_names)} vs {len(run.label_names)})."
        )
    metrics = evaluate_model(run.model, cfg, data, run.path)
    path = Path(run.path) / "metrics.json"
    old = read_json(path) if path.exists() else {}
    write_json(path, {**old, **metrics, "data_dir": cfg.data.data_dir})
    _print_metrics(metrics)
    print(f"wrote {path}")
    return 0


def _add_explain(subparsers: Any) -> None:
    parser = add_subcommand(
        subparsers,
        "explain",
        help="clinical prototype explanation report(s): one self-contained HTML file per ECG",
        description=(
            "Explain ProtoECGNet's predictions for ECGs: the 12-lead trace on the paper grid\n"
            "(25 mm/s, 10 mm/mV), the predicted statements, and for the top predictions the\n"
            "prototypes that drove them: the matching window of this ECG beside the prototype's\n"
            "source segment of a training ECG, with similarity and contribution to the logit.\n"
            "Each report is one HTML file with its images embedded (it opens offline)."
        ),
        epilog=(
            "examples:\n"
            "  contrasuite ecg explain --run runs/p --data-dir DIR --ecg-id 9 --out ecg9.html\n"
            "  contrasuite ecg explain --run runs/p --data-dir DIR --ecg-id 9 --ecg-id 17\n"
            "  contrasuite ecg explain --run runs/p --data-dir DIR --fold 10 --out reports/\n"
            "\n"
            "One --ecg-id: --out is the HTML file (default RUN/explanations/ecg_ID.html).\n"
            "Several, or --fold: --out is a folder (default RUN/explanations) with one report\n"
            "per ECG and index.html.\n"
        ),
    )
    parser.add_argument("--run", metavar="RUN", required=True, help="run folder of `ecg train`")
    parser.add_argument(
        "--data-dir", metavar="DIR", default=None,
        help="PTB-XL folder holding the ECGs (default: the one the run was trained on)",
    )  # fmt: skip
    parser.add_argument(
        "--ecg-id", metavar="ID", type=int, action="append", default=[],
        help="ecg_id to explain; repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--fold", metavar="N", type=int, default=None, help="explain a whole strat_fold"
    )
    parser.add_argument(
        "--out", metavar="PATH", default=None, help="HTML file or folder (see below)"
    )
    parser.add_argument(
        "--top", metavar="N", type=int, default=3, help="statements explained per ECG (default: 3)"
    )
    parser.add_argument(
        "--prototypes", metavar="N", type=int, default=3,
        help="prototypes shown per statement (default: 3)",
    )  # fmt: skip
    parser.set_defaults(handler=_explain_command)


def _explain_command(args: argparse.Namespace) -> int:
    from medical.ecg.explain import ExplainOptions, explain
    from shared.errors import InputError

    if args.top < 1 or args.prototypes < 1:
        raise InputError(
            f"Expected --top and --prototypes >= 1, but got {args.top} and {args.prototypes}."
        )
    paths = explain(
        args.run,
        data_dir=args.data_dir,
        ecg_ids=args.ecg_id,
        fold=args.fold,
        out=args.out,
        options=ExplainOptions(top_predictions=args.top, prototypes_per_prediction=args.prototypes),
        progress=not getattr(args, "quiet", 0),
    )
    for path in paths:
        print(path)
    return 0


#: ``contrasuite demo``'s ECG settings (a small model that trains in about a minute on CPU).
DEMO_QUICK: dict[str, Any] = {
    "model": {"width": 8, "layers": [1, 1, 1, 1], "ppc_rhythm": 3, "ppc_morphology": 4,
              "ppc_global": 3},
    "trainer": {"epochs": 6, "lr": 3e-3, "patience": None},
}  # fmt: skip
DEMO_FULL: dict[str, Any] = {
    "model": {"width": 16, "layers": [1, 1, 1, 1], "ppc_rhythm": 5, "ppc_morphology": 6,
              "ppc_global": 5},
    "trainer": {"epochs": 10, "lr": 3e-3, "patience": None},
}  # fmt: skip


def demo_step(
    out_dir: Any,
    quick: bool,
    *,
    seed: int = 2020,
    device: str = "auto",
    progress: bool = True,
    smoke: bool = False,
) -> dict[str, Any]:
    """The demo's ECG step: synthetic PTB-XL, a small ProtoECGNet, one explanation report.

    Writes ``out_dir/data`` (synthetic PTB-XL, its cache in ``out_dir/cache``), ``out_dir/run``
    (the run folder) and ``out_dir/run/explanations/ecg_<id>.html``. Re-running it reuses the
    data and the finished run (or resumes an interrupted one).

    Args:
        out_dir: The step's folder.
        quick: Smaller data and model.
        seed: Random seed (data and training).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: Show progress bars.
        smoke: Test-only: even smaller.

    Returns:
        The fields of :class:`pipelines.demo.DemoResult`: ``title``, ``metrics``,
        ``summary_html``, ``links`` (relative to ``out_dir``) and ``notes``.
    """
    import html
    from pathlib import Path

    import numpy as np

    from medical.ecg.explain import explain
    from medical.ecg.synth import write_synthetic_ptbxl
    from medical.ecg.train import ECGConfig, load_data, train
    from pipelines.common import build_config

    out = Path(out_dir)
    n_records = 120 if smoke else 300 if quick else 400
    data_dir = out / "data"
    if not (data_dir / "ptbxl_database.csv").exists():
        write_synthetic_ptbxl(data_dir, n_records=n_records, seed=seed, progress=progress)
    preset = DEMO_QUICK if (quick or smoke) else DEMO_FULL
    layers: list[dict[str, Any]] = [preset]
    if smoke:
        layers.append({"trainer": {"epochs": 2}})
    layers.append({
        "data": {"data_dir": str(data_dir.resolve()), "cache_dir": str((out / "cache").resolve())},
        "trainer": {"seed": seed, "device": device, "progress": progress},
        "threads": 1,  # one intra-op thread: no oversubscription on small shared CPUs
    })  # fmt: skip
    cfg = build_config(ECGConfig, *layers, source="demo settings")
    run_dir = out / "run"
    metrics = train(cfg, run_dir, progress=progress)
    # Explain the test ECG the model is most confident about among its reference statements.
    data = load_data(cfg.data, progress=False)
    import csv

    with open(run_dir / "test_predictions.csv", encoding="utf-8") as handle:
        preds = list(csv.DictReader(handle))
    best_id, best_p = int(preds[0]["ecg_id"]), -1.0
    for row in preds:
        i = int(row["ecg_id"])
        labels = data.labels[data.row_of(i)]
        for name, y in zip(data.label_names, labels):
            if y > 0 and float(row[name]) > best_p:
                best_id, best_p = i, float(row[name])
    report = explain(run_dir, ecg_ids=[best_id], progress=False)[0]
    rel = report.relative_to(out).as_posix()
    branch_rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{b['macro_auc']:.3f}</td></tr>"
        for n, b in (metrics.get("branches") or {}).items()
        if b.get("macro_auc") is not None and np.isfinite(b["macro_auc"])
    )
    prefix = f"{out.name}/"
    summary = (
        f"<p>Test fold 10: macro AUROC <b>{_num(metrics['macro_auc'], 3)}</b>, weighted AUROC "
        f"{_num(metrics['weighted_auc'], 3)} over {metrics['n_labels_evaluated']} statements "
        f"present in {metrics['n_test']} synthetic ECGs.</p>"
        f"<table><tr><th>branch classifier</th><th>macro AUROC</th></tr>{branch_rows}</table>"
        f"<p><a href='{html.escape(prefix + rel)}'>Explanation report for ECG {best_id}</a>: "
        "its 12-lead trace, predicted statements, and the prototypes (real training ECG "
        "segments) behind the top predictions.</p>"
    )
    return {
        "title": "ProtoECGNet on synthetic PTB-XL",
        "metrics": {
            "macro_auc": float(_num(metrics["macro_auc"], 6)),
            "weighted_auc": float(_num(metrics["weighted_auc"], 6)),
            "n_test": int(metrics["n_test"]),
        },
        "summary_html": summary,
        "links": {
            "report": rel,
            "run": "run/",
            "metrics": "run/metrics.json",
            "prototypes": "run/prototypes.json",
        },
        "notes": (
            f"{n_records} synthetic 12-lead ECGs in the PTB-XL layout (`ecg synth`), a small "
            "ProtoECGNet (three prototype branches + fusion, all stages, projection onto real "
            "training windows), evaluated on fold 10."
        ),
    }
