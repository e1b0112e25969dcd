"""The ECG domain's command handlers and demo step (wired by :mod:`medical.ecg.domain`).

``contrasuite ecg synth | train | evaluate | explain``. Every handler checks its output place
before it reads any data, and raises :class:`~shared.errors.InputError` (exit status 2) for bad
input. The demo step calls the same functions as the commands.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import html
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medical.ecg.arrays import ECGArrays, load_data
from medical.ecg.config import ECGConfig, ECGEvaluateConfig, build
from medical.ecg.explain import ExplainOptions, index_html, render_report, top_predictions
from medical.ecg.infer import DOMAIN, LoadedRun, evaluate_model, load_run
from medical.ecg.model import ProtoECGNet
from medical.ecg.synth import write_synthetic_ptbxl
from medical.ecg.train import train as train_run
from shared.config import from_dict
from shared.distributed import is_main_process
from shared.domain import DEFAULT_SEED, DemoContext, DemoResult
from shared.errors import InputError
from shared.io import atomic_write_text, read_json, write_json
from shared.training.run import MARKER, OutputFolder, RunFolder, check_output_path

__all__ = [
    "DEMO_FULL",
    "DEMO_QUICK",
    "demo_step",
    "evaluate",
    "explain",
    "explain_command",
    "prepare_evaluate",
    "prepare_train",
    "synth",
    "train",
]

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- output checks


def _nearest_existing(path: Path) -> Path:
    node = path.absolute()
    while not node.exists() and node != node.parent:
        node = node.parent
    return node


def _check_writable_folder(path: Path, option: str) -> None:
    """Refuse ``path`` as an output folder unless it is (or can become) a writable folder."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: expected a folder, but it is a file.")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise InputError(f"{option} {path}: {base} is a file, so the folder cannot be created.")
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot write in {base} (permission denied).")


def _check_writable_file(path: Path, option: str) -> None:
    """Refuse ``path`` as an output file unless it can be written (a new or existing file)."""
    if path.is_dir():
        raise InputError(
            f"{option} {path}: expected an HTML file name for one --ecg-id, but it is a folder; "
            "give a file name, or several --ecg-id for a folder of reports."
        )
    _check_writable_folder(path.parent, option)


# ----------------------------------------------------------------------------- synth


def synth(args: argparse.Namespace) -> int:
    """``contrasuite ecg synth``: write a synthetic PTB-XL-format data set."""
    rates = (100, 500) if args.sampling_rate == "both" else (int(args.sampling_rate),)
    _check_writable_folder(Path(args.out), "--out")
    out = write_synthetic_ptbxl(
        args.out,
        n_records=args.n_records,
        sampling_rates=rates,
        seed=args.seed,
        progress=not getattr(args, "quiet", 0),
    )
    print(f"wrote {args.n_records} synthetic ECGs ({'+'.join(map(str, rates))} Hz) to {out}")
    return 0


# ----------------------------------------------------------------------------- train, evaluate


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
    ci = metrics.get("ci95")
    if ci:
        print(
            f"  95% interval ({metrics['bootstrap']} bootstrap resamples of the test ECGs): "
            f"macro [{_num(ci['macro_auc'][0])}, {_num(ci['macro_auc'][1])}], "
            f"weighted [{_num(ci['weighted_auc'][0])}, {_num(ci['weighted_auc'][1])}]"
        )
    skipped = list(metrics.get("labels_skipped") or [])
    if skipped:
        more = f" and {len(skipped) - 12} more" if len(skipped) > 12 else ""
        print(
            f"  not scored (no positive or no negative among the test ECGs): "
            f"{', '.join(skipped[:12])}{more}"
        )
    for name, b in (metrics.get("branches") or {}).items():
        print(f"  {name:10s} branch classifier: macro AUROC {_num(b['macro_auc'])}")


def prepare_train(args: argparse.Namespace, cfg: ECGConfig) -> ECGConfig:
    """The data folder as an absolute path (what the run's config.yaml records)."""
    if cfg.data.data_dir:
        path = str(Path(cfg.data.data_dir).expanduser().resolve())
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_dir=path))
    return cfg


def train(args: argparse.Namespace, cfg: ECGConfig) -> int:
    """``contrasuite ecg train``: every stage, then the test fold; resumes a killed run."""
    # trainer.progress=false turns every bar off, the data reading's too (as -q does)
    progress = cfg.trainer.progress and not getattr(args, "quiet", 0)
    metrics = train_run(cfg, args.out, progress=progress)
    if is_main_process():  # under torchrun the other ranks print nothing
        _print_metrics(metrics)
        print(f"run folder: {args.out}")
    return 0


def _data_of(run: LoadedRun, data_dir: str | None) -> ECGConfig:
    cfg = run.config
    if data_dir:
        path = str(Path(data_dir).expanduser().resolve())
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_dir=path))
    return cfg


def _check_labels(run: LoadedRun, data: ECGArrays) -> None:
    if list(data.label_names) != list(run.label_names):
        raise InputError(
            f"--data-dir {data.dataset.data_dir if data.dataset is not None else '?'}: its "
            f"{len(data.label_names)} labels are not the run's {len(run.label_names)} "
            f"({run.config.data.label_set}); use the run's label set."
        )


def _same_data(run: LoadedRun, data: ECGArrays) -> bool:
    known = run.folder.data if run.folder is not None else None
    return known is None or not data.fingerprint or data.fingerprint == known


def prepare_evaluate(args: argparse.Namespace, cfg: ECGEvaluateConfig) -> ECGEvaluateConfig:
    """The settings ``ecg evaluate`` will use: the run's data folder and seed where none is given.

    A given data folder becomes absolute. Only the run's config is read (not its weights or any
    data), so that ``--print-config`` shows the values the evaluation will use.
    """
    if cfg.data_dir:
        cfg = dataclasses.replace(cfg, data_dir=str(Path(cfg.data_dir).expanduser().resolve()))
    if cfg.data_dir is None or cfg.seed is None:
        folder = RunFolder.open_existing(args.run, domain=DOMAIN, command="train")
        trained = from_dict(ECGConfig, folder.config, source=str(folder.path / MARKER))
        cfg = dataclasses.replace(
            cfg,
            data_dir=trained.data.data_dir if cfg.data_dir is None else cfg.data_dir,
            seed=trained.trainer.seed if cfg.seed is None else cfg.seed,
        )
    return cfg


def evaluate(args: argparse.Namespace, cfg: ECGEvaluateConfig) -> int:
    """``contrasuite ecg evaluate``: test-fold metrics of a trained run.

    On the run's own data (the default) they go to ``RUN/metrics.json``; on other data (a
    ``--data-dir`` with another fingerprint) to ``RUN/evaluations/<fingerprint>/``, so that
    no file mixes numbers of two data sets. With ``--out DIR`` they go to ``DIR`` (with
    ``config.yaml``, the resolved settings) and nothing is written into the run.
    """
    out = None
    if args.out is not None:  # checked before anything is read
        inputs = (cfg.data_dir,) if cfg.data_dir else ()
        out = OutputFolder.prepare(args.out, config=cfg, inputs=inputs)
    run = load_run(args.run)
    if out is None and not os.access(run.path, os.W_OK | os.X_OK):
        raise InputError(f"--run {run.path}: cannot write metrics there (permission denied).")
    data_dir = None if cfg.data_dir == run.config.data.data_dir else cfg.data_dir
    data_cfg = _data_of(run, data_dir)
    trainer = dataclasses.replace(data_cfg.trainer, device=cfg.device)
    data_cfg = dataclasses.replace(data_cfg, trainer=trainer)
    data = load_data(data_cfg.data, progress=not getattr(args, "quiet", 0))
    _check_labels(run, data)

    def score(folder: Path) -> dict[str, Any]:
        return evaluate_model(
            run.model, data_cfg, data, folder, bootstrap=cfg.bootstrap, seed=cfg.seed
        )

    where = {"data_dir": data_cfg.data.data_dir}
    if out is not None:
        out.create()
        metrics = score(out.path)
        path = out.write_json(
            "metrics.json", {**metrics, **where, "data": data.fingerprint, "run": str(run.path)}
        )
    elif _same_data(run, data):
        metrics = score(run.path)
        path = run.path / "metrics.json"
        old = read_json(path) if path.exists() else {}
        write_json(path, {**old, **metrics, **where})
    else:
        folder = run.path / "evaluations" / data.fingerprint
        folder.mkdir(parents=True, exist_ok=True)
        logger.warning(
            "%s is not the data the run was trained on: its metrics go to %s",
            data_cfg.data.data_dir,
            folder,
        )
        metrics = score(folder)
        path = folder / "metrics.json"
        write_json(path, {**metrics, **where, "data": data.fingerprint})
    _print_metrics(metrics)
    print(f"wrote {path}")
    return 0


# ----------------------------------------------------------------------------- explain


def explain(
    run_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    ecg_ids: Sequence[int] = (),
    fold: int | None = None,
    out: str | Path | None = None,
    options: ExplainOptions | None = None,
    progress: bool = True,
) -> list[Path]:
    """Write explanation reports for ECGs of a trained run.

    One ECG (a single ``ecg_ids`` entry, no ``fold``): ``out`` is the HTML file (default
    ``RUN/explanations/ecg_<id>.html``), or, when it ends with a slash or is an existing folder,
    the folder that gets ``ecg_<id>.html``. Several ECGs or a whole ``fold``: ``out`` is a folder
    (default ``RUN/explanations``) with one report per ECG and ``index.html``.

    The prototypes' source segments are always read from the data the run was trained on (its
    fingerprint is checked). When ``data_dir`` holds other data, the patient ECGs come from
    it, and each report says so at the top.

    Args:
        run_dir: A finished ``ecg train`` run folder.
        data_dir: The PTB-XL folder holding the ECGs (default: the run's).
        ecg_ids: ECGs to explain.
        fold: Explain every ECG of this ``strat_fold`` (e.g. 10, the test fold).
        out: Output file or folder (see above).
        options: What each report shows.
        progress: Show the progress bar of a first (uncached) data read.

    Returns:
        The written files (reports, then the index if any).

    Raises:
        InputError: If the run folder is not a finished ECG run, is a baseline without
            prototypes, ``out`` cannot be written (checked before any data is read), an
            ``ecg_id`` is unknown, the fold is empty, the data holds another label set, or
            nothing was asked for.
    """
    run = load_run(run_dir)
    if not isinstance(run.model, ProtoECGNet):
        raise InputError(
            f"--run {run.path} holds the black-box baseline ({run.config.model.architecture}); "
            "it has no prototypes to explain."
        )
    if not ecg_ids and fold is None:
        raise InputError("Expected --ecg-id ID (repeatable) or --fold N, but got neither.")
    single = len(ecg_ids) == 1 and fold is None
    reports = (run.path / "explanations").absolute()
    if out is not None and not (
        Path(out).absolute() == reports or reports in Path(out).absolute().parents
    ):
        check_output_path(out, option="--out")  # never over a run's own files
    if single:
        name = f"ecg_{ecg_ids[0]}.html"
        if out is None:
            target = run.path / "explanations" / name
        elif str(out).endswith(("/", os.sep)) or Path(out).is_dir():  # a folder to write into
            target = Path(out) / name
        else:
            target = Path(out)
        _check_writable_file(target, "--out")
    else:
        target = Path(out) if out is not None else run.path / "explanations"
        _check_writable_folder(target, "--out")
    cfg = _data_of(run, None if data_dir is None else str(data_dir))
    data = load_data(cfg.data, progress=progress)
    _check_labels(run, data)
    sources: ECGArrays | None = data
    note = ""
    if not _same_data(run, data):
        sources, where = None, run.config.data.data_dir
        try:
            own = load_data(run.config.data, progress=progress)
        except InputError:
            own = None
        if own is not None and _same_data(run, own):
            sources = own
        if sources is not None:
            what = f"read from the run's training data in {where}"
        else:
            what = f"not shown: the run's training data ({where}) is gone or has changed"
        trained_on = run.folder.data if run.folder is not None else "?"
        note = (
            f"The ECG comes from {cfg.data.data_dir}, which is not the data this run was "
            f"trained on (fingerprint {data.fingerprint}, the run's {trained_on}). "
            f"Prototype source segments are {what}."
        )
        logger.warning("%s", note)
    ids = [int(i) for i in ecg_ids]
    for i in ids:
        data.row_of(i)  # unknown ecg_id -> InputError naming it
    if fold is not None:
        rows = data.rows([fold])
        if len(rows) == 0:
            raise InputError(
                f"--fold {fold}: expected ECGs in strat_fold {fold} of {cfg.data.data_dir}, "
                "but there are none."
            )
        ids += [int(data.ecg_ids[r]) for r in rows if int(data.ecg_ids[r]) not in ids]
    opts = options or ExplainOptions()

    def page(i: int) -> str:
        return render_report(run, data, i, opts, sources=sources, data_note=note)

    if single:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, page(ids[0]))
        logger.info("wrote %s", target)
        return [target]
    target.mkdir(parents=True, exist_ok=True)
    written, items = [], []
    for i in ids:
        path = target / f"ecg_{i}.html"
        atomic_write_text(path, page(i))
        written.append(path)
        items.append((i, path.name, top_predictions(run, data, i, opts.top_predictions)))
    index = target / "index.html"
    atomic_write_text(index, index_html(run, items))
    logger.info("wrote %d reports and %s", len(written), index)
    return [*written, index]


def explain_command(args: argparse.Namespace) -> int:
    """``contrasuite ecg explain``: the clinical prototype explanation report(s)."""
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


# ----------------------------------------------------------------------------- demo

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


def demo_step(ctx: DemoContext) -> DemoResult:
    """The demo's ECG step: synthetic PTB-XL, a small ProtoECGNet, one explanation report.

    Writes ``DIR/data-<n>`` (``data-<n>-seed<S>`` for a seed other than the default; synthetic
    PTB-XL, its cache in ``DIR/cache``), the run folder
    ``ctx.run_dir`` (one per mode) and one report in it.
    Running it again reuses the data and the finished run (or resumes an interrupted one).
    """
    out = Path(ctx.out_dir)
    n_records = 120 if ctx.smoke else 300 if ctx.quick else 400
    name = ctx.run_name
    # the data depend on the seed too: a non-default seed gets its own set, as its run does
    seed = "" if ctx.seed == DEFAULT_SEED else f"-seed{ctx.seed}"
    data_dir = out / f"data-{n_records}{seed}"
    if not (data_dir / "ptbxl_database.csv").exists():
        write_synthetic_ptbxl(data_dir, n_records=n_records, seed=ctx.seed, progress=ctx.progress)
    layers: list[dict[str, Any]] = [DEMO_QUICK if (ctx.quick or ctx.smoke) else DEMO_FULL]
    if ctx.smoke:
        layers.append({"trainer": {"epochs": 2}})
    layers.append({
        "data": {"data_dir": str(data_dir.resolve()), "cache_dir": str((out / "cache").resolve())},
        "trainer": {"seed": ctx.seed, "device": ctx.device, "progress": ctx.progress,
                    "threads": 1},  # one intra-op thread: no oversubscription on small CPUs
    })  # fmt: skip
    cfg = build(*layers, source="demo settings")
    run_dir = ctx.run_dir
    metrics = train_run(cfg, run_dir, progress=ctx.progress)
    # Explain the test ECG the model is most confident about among its reference statements.
    data = load_data(cfg.data, progress=False)
    with open(run_dir / "test_predictions.csv", encoding="utf-8") as handle:
        preds = list(csv.DictReader(handle))
    best_id, best_p = int(preds[0]["ecg_id"]), -1.0
    for row in preds:
        i = int(row["ecg_id"])
        for code, y in zip(data.label_names, data.labels[data.row_of(i)]):
            if y > 0 and float(row[code]) > best_p:
                best_id, best_p = i, float(row[code])
    report = explain(run_dir, ecg_ids=[best_id], progress=False)[0]
    rel = report.relative_to(out).as_posix()
    branch_rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{_num(b['macro_auc'], 3)}</td></tr>"
        for n, b in (metrics.get("branches") or {}).items()
        if b.get("macro_auc") is not None
    )
    summary = (
        f"<p>Test fold 10: macro AUROC <b>{_num(metrics['macro_auc'], 3)}</b>, weighted AUROC "
        f"{_num(metrics['weighted_auc'], 3)} over {metrics['n_labels_evaluated']} statements "
        f"present in {metrics['n_test']} synthetic ECGs.</p>"
        f"<table><tr><th>branch classifier</th><th>macro AUROC</th></tr>{branch_rows}</table>"
        f"<p><a href='{html.escape(f'{out.name}/{rel}')}'>Explanation report for ECG "
        f"{best_id}</a>: its 12-lead trace, predicted statements, and the prototypes (real "
        "training ECG segments) behind the top predictions.</p>"
    )
    return DemoResult(
        title="ProtoECGNet on synthetic PTB-XL",
        metrics={
            "macro_auc": float(_num(metrics["macro_auc"], 6)),
            "weighted_auc": float(_num(metrics["weighted_auc"], 6)),
            "n_test": int(metrics["n_test"]),
        },
        summary_html=summary,
        links={
            "report": rel,
            "run": f"{name}/",
            "metrics": f"{name}/metrics.json",
            "prototypes": f"{name}/prototypes.json",
        },
        notes=(
            f"{n_records} synthetic 12-lead ECGs in the PTB-XL layout (`ecg synth`), a small "
            "ProtoECGNet (three prototype branches + fusion, all stages, projection onto real "
            "training windows), evaluated on fold 10."
        ),
    )
