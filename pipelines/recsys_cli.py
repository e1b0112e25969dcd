"""Command line of the recommendation domain: ``contrasuite recsys evaluate``, and its demo step.

Light on purpose (argparse only): :mod:`recsys` (RecBole, torch) is imported when a command runs.
:func:`register` adds the ``recsys`` subcommands to a subparsers object; the ``recsys`` command
group itself is registered with :func:`pipelines.common.register_command` when
:mod:`pipelines.cli` imports this module. :func:`demo_step` is the demo's recommendation step.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines.common import CliParser, add_common_options, add_subcommand, register_command
from shared.runtime import LOG_FORMAT

logger = logging.getLogger(__name__)

__all__ = ["DEMO_FULL", "DEMO_QUICK", "QUICK", "demo_step", "register"]

#: ``--quick``: a few short epochs (minutes on a laptop CPU; numbers far from converged).
QUICK: dict[str, Any] = {"trainer": {"epochs": 3, "max_batches": 40}}

#: The demo's budgets (SASRec and MCLRec on ml-100k). One torch thread: on a 2-core machine
#: shared with other jobs, two threads per process made a training step 3-5x slower here.
DEMO_FULL: dict[str, Any] = {"trainer": {"epochs": 2, "max_batches": 50, "threads": 1}}
DEMO_QUICK: dict[str, Any] = {"trainer": {"epochs": 1, "max_batches": 10, "threads": 1}}
DEMO_SMOKE: dict[str, Any] = {"trainer": {"epochs": 1, "max_batches": 2, "threads": 1}}

#: Where the command line options land in :class:`recsys.evaluation.RecsysConfig`.
OPTION_KEYS = {
    "dataset": "dataset",
    "models": "models",
    "seeds": "seeds",
    "seed": "trainer.seed",
    "device": "trainer.device",
    "epochs": "trainer.epochs",
}

_EPILOG = """\
examples:
  contrasuite recsys evaluate --dataset ml-100k --models SASRec,MCLRec --out runs/ml100k
  contrasuite recsys evaluate --dataset ../shared/data/seqrec/Beauty.txt \\
      --models SASRec,GRU4Rec,CL4SRec,MCLRec --out runs/beauty --device cuda
  contrasuite recsys evaluate --dataset data/mydata --models MCLRec --out runs/m \\
      contrast.mclrec_beta=0.1 trainer.valid_metric=mrr@10 --mask-history
"""

_EVALUATE_EPILOG = """\
examples:
  contrasuite recsys evaluate --dataset ml-100k --models SASRec,MCLRec --out runs/ml100k
  contrasuite recsys evaluate --dataset ml-100k --models SASRec,MCLRec --out runs/q --quick
  contrasuite recsys evaluate --dataset Beauty.txt --models SASRec,CL4SRec,MCLRec,MCLRec-J \\
      --out runs/beauty --epochs 100 trainer.batch_size=256 encoder.dropout=0.5

datasets:
  ml-100k (RecBole's bundled copy; nothing is downloaded), a RecBole atomic-file folder DIR
  holding DIR/<DIR name>.inter (user_id, item_id, timestamp), or a text file with one user per
  line 'user item item ...' in time order (converted into OUT/data/<name>/).

models:
  SASRec, GRU4Rec, BERT4Rec (RecBole's), FastSASRec (SASRec, our faster forward pass),
  CL4SRec, MCLRec (alternating update), MCLRec-J (joint update).

protocol:
  time-ordered leave-one-out, full ranking over all items, the last 50 items as input,
  hit/ndcg/mrr at 5, 10, 20, model selection on validation ndcg@10 with early stopping
  (patience 10), one seed for all models; --mask-history removes each user's earlier items from
  the ranking (off by default, as the papers).

writes:
  OUT/results.json ({model: {test, valid, train_seconds, epochs, params}}), OUT/results.md,
  OUT/valid_ndcg.png, OUT/config.yaml, OUT/metrics.json, OUT/history.csv, OUT/log.txt and
  OUT/<model>/ (metrics.json, history.csv, settings.json, weights.pt, state.pt). Running the same
  command again keeps finished models and resumes an interrupted one after its last epoch.

config keys (KEY=VALUE, dotted): dataset, models, max_seq_length, mask_history, topk,
  encoder.{hidden_size,n_layers,n_heads,inner_size,dropout,fast},
  augment.{crop_keep,mask_ratio,reorder_ratio},
  contrast.{tau,sim,cl4srec_weight,mclrec_lambda,mclrec_beta,regularizer,augmenter_lr},
  trainer.{epochs,batch_size,eval_batch_size,lr,weight_decay,stopping_step,valid_metric,seed,
  device,progress,max_batches,threads}
"""


@register_command(
    "recsys",
    help="sequential recommendation: MCLRec, CL4SRec and RecBole baselines, offline evaluation",
    description=(
        "Sequential recommenders on RecBole under one offline protocol: MCLRec (Qin et al.,\n"
        "SIGIR 2023) and CL4SRec beside RecBole's SASRec, GRU4Rec and BERT4Rec."
    ),
    epilog=_EPILOG,
)
def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="recsys_command", metavar="COMMAND", title="commands", parser_class=CliParser
    )
    sub.required = True
    register(sub)


def register(subparsers: Any) -> None:
    """Add the ``recsys`` subcommands (``evaluate``) to ``subparsers``.

    Args:
        subparsers: The ``recsys`` group's subparsers object (from ``add_subparsers()``).
    """
    parser = add_subcommand(
        subparsers,
        "evaluate",
        help="train each model, then test it: full-ranking leave-one-out",
        description=(
            "Train each model with RecBole's loop on the same split and seed, select its best\n"
            "epoch on validation, test it once, and write OUT/results.json and OUT/results.md."
        ),
        epilog=_EVALUATE_EPILOG,
    )
    parser.add_argument(
        "--dataset",
        metavar="D",
        required=True,
        help="ml-100k, a RecBole atomic-file folder, or a one-user-per-line text file",
    )
    parser.add_argument(
        "--models",
        metavar="M1,M2",
        default=None,
        help="comma-separated model names (default: SASRec,MCLRec)",
    )
    parser.add_argument(
        "--seeds",
        metavar="S1,S2",
        default=None,
        help="run every model once per seed (e.g. 2020,2021,2022): mean +- std and paired tests",
    )
    add_common_options(parser)
    parser.add_argument(
        "--mask-history",
        action="store_true",
        help="remove each user's earlier items from the ranking at evaluation",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 epochs of at most 40 batches: a smoke run, far from converged",
    )
    parser.set_defaults(handler=_evaluate_command)


@contextlib.contextmanager
def log_to(path: Path, verbose: int = 0) -> Iterator[None]:
    """Copy the ``recsys`` and ``pipelines.recsys_cli`` loggers into ``path`` for a ``with`` block.

    The file always gets INFO records (per-epoch lines, results), appended. When the console is
    quieter than INFO (``-q``), those loggers stop propagating for the block and print only
    records at the console's level themselves, so ``-q`` stays quiet. RecBole's own messages
    (the ``recsys.recbole`` logger) are kept at WARNING unless ``-vv``.

    Args:
        path: The log file (its folder is created).
        verbose: The number of ``-v`` options.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger("recsys"), logging.getLogger("pipelines.recsys_cli")]
    recbole = logging.getLogger("recsys.recbole")
    saved = [(lg, lg.level, lg.propagate) for lg in (*loggers, recbole)]
    console_level = logging.getLogger().getEffectiveLevel()
    console = None
    if console_level > logging.INFO:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(console_level)
        console.setFormatter(logging.Formatter("%(message)s"))
    for lg in loggers:
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
        if console is not None:
            lg.propagate = False
            lg.addHandler(console)
    recbole.setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
            if console is not None:
                lg.removeHandler(console)
        for lg, level, propagate in saved:
            lg.setLevel(level)
            lg.propagate = propagate
        handler.close()


def _evaluate_command(args: argparse.Namespace) -> int:
    from pipelines.common import resolve_config
    from recsys.config import RecsysConfig
    from recsys.evaluation import evaluate_models

    defaults: dict[str, Any] = {}
    if args.quick:
        defaults = QUICK
    if args.mask_history:
        defaults = {**defaults, "mask_history": True}
    cfg = resolve_config(RecsysConfig, args, option_keys=OPTION_KEYS, defaults=defaults)
    out = Path(args.out)
    with log_to(out / "log.txt", getattr(args, "verbose", 0)):
        results = evaluate_models(cfg, out, command=reproduce_command(cfg, out))
    width = max(len(name) for name in results)
    print(f"{'model':{width}s}  hit@10  ndcg@10  mrr@10  hit@20  ndcg@20  epochs  s/epoch")
    for name, r in results.items():
        s = r.summary()
        print(
            f"{name:{width}s}  {r.test['hit@10']:.4f}  {r.test['ndcg@10']:.4f}   "
            f"{r.test['mrr@10']:.4f}  {r.test['hit@20']:.4f}  {r.test['ndcg@20']:.4f}  "
            f"{r.epochs:6d}  {s['epoch_seconds']:7.1f}"
        )
    print(f"results: {out / 'results.json'}, {out / 'results.md'}")
    return 0


def reproduce_command(cfg: Any, out: Path) -> str:
    """The ``contrasuite recsys evaluate`` command that reproduces ``cfg`` (non-default keys)."""
    import shlex

    from recsys.config import RecsysConfig
    from shared.config import to_dict

    def flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        items: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, dict):
                items.update(flat(value, f"{prefix}{key}."))
            else:
                items[prefix + key] = value
        return items

    current, default = flat(to_dict(cfg)), flat(to_dict(RecsysConfig()))
    skip = {"dataset", "models", "seeds", "trainer.progress", "trainer.device", "trainer.threads"}
    words = ["contrasuite", "recsys", "evaluate", "--dataset", cfg.dataset, "--models",
             ",".join(cfg.models)]  # fmt: skip
    if cfg.seeds:
        words += ["--seeds", ",".join(map(str, cfg.seeds))]
    words += ["--out", str(out)]
    for key, value in current.items():
        if key in skip or value == default.get(key):
            continue
        if isinstance(value, list):
            value = ",".join(map(str, value))
        if value is None:
            value = "null"
        elif isinstance(value, bool):
            value = str(value).lower()
        words.append(f"{key}={value}")
    return shlex.join(words)


def demo_step(
    out_dir: Any,
    quick: bool,
    *,
    seed: int = 2020,
    device: str = "auto",
    progress: bool = True,
    smoke: bool = False,
) -> dict[str, Any]:
    """The demo's recommendation step: SASRec and MCLRec on ml-100k under a small budget.

    Both are trained a few short epochs (``trainer.max_batches`` batches each) under the full
    protocol and tested by full ranking; the table lands in the demo's ``index.html``.
    Re-running it keeps finished models and resumes an interrupted one.

    Args:
        out_dir: The step's folder (the run folder).
        quick: Smaller budget.
        seed: Random seed.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: Show progress bars.
        smoke: Test-only: two batches.

    Returns:
        The fields of :class:`pipelines.demo.DemoResult`: ``title``, ``metrics``,
        ``summary_html``, ``links`` (relative to ``out_dir``) and ``notes``.
    """
    from pipelines.common import build_config
    from recsys.config import RecsysConfig
    from recsys.evaluation import evaluate_models

    out = Path(out_dir)
    budget = DEMO_SMOKE if smoke else DEMO_QUICK if quick else DEMO_FULL
    cfg = build_config(
        RecsysConfig,
        {"dataset": "ml-100k", "models": ["SASRec", "MCLRec"]},
        budget,
        {"trainer": {"seed": seed, "device": device, "progress": progress}},
        source="demo settings",
    )
    with log_to(out / "log.txt"):
        results = evaluate_models(cfg, out)
    cells = ("hit@10", "ndcg@10", "mrr@10", "hit@20", "ndcg@20")
    rows = "".join(
        "<tr><td>"
        + html.escape(name)
        + "</td>"
        + "".join(f"<td>{r.test[m]:.4f}</td>" for m in cells)
        + f"<td>{r.epochs}</td><td>{r.summary()['epoch_seconds']:.1f}</td>"
        f"<td>{r.params:,}</td></tr>"
        for name, r in results.items()
    )
    header = "".join(f"<th>test {m}</th>" for m in cells)
    prefix = html.escape(out.name + "/")
    t = cfg.trainer
    summary = (
        f"<table><tr><th>model</th>{header}<th>epochs</th><th>s/epoch</th><th>params</th></tr>"
        f"{rows}</table>"
        f"<p><img src='{prefix}valid_ndcg.png' alt='validation NDCG@10 per epoch' "
        "style='max-width:480px'></p>"
        f"<p>Budget: {t.epochs} epoch(s) of at most {t.max_batches} batches of {t.batch_size} "
        "sequences per model, far from convergence: the numbers show the pipeline, not the "
        "models' quality. Trained to convergence under the same protocol (on a 2-core CPU), "
        "SASRec reached test NDCG@10 0.0554 and MCLRec 0.0700 (benchmarks/README.md; "
        "<code>contrasuite recsys evaluate --dataset ml-100k --out RUN</code>).</p>"
    )
    metrics: dict[str, float | int] = {}
    for name, r in results.items():
        metrics[f"ndcg@10/{name}"] = float(r.test["ndcg@10"])
        metrics[f"hit@10/{name}"] = float(r.test["hit@10"])
    return {
        "title": "Sequential recommendation: SASRec vs MCLRec on ml-100k",
        "metrics": metrics,
        "summary_html": summary,
        "links": {
            "results": "results.md",
            "results.json": "results.json",
            "plot": "valid_ndcg.png",
            "log": "log.txt",
        },
        "notes": (
            "RecBole's SASRec and our MCLRec (RecBole model + alternating-update Trainer) on "
            "RecBole's bundled ml-100k: time-ordered leave-one-out, full ranking over 1,682 "
            "items, model selection on validation NDCG@10."
        ),
    }
