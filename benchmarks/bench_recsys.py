"""Training speed and quality of RecBole's SASRec, our fast encoder path, CL4SRec and MCLRec.

Two parts, one JSON document on stdout (progress on stderr):

* ``steps``: per-batch training time on the same ml-100k batches (batch 256, length 50, d 64),
  the models interleaved round by round so that a busy machine slows them alike (median over
  rounds). ``epoch_seconds_est`` = median step x batches per epoch. Models:

  - ``SASRec``: RecBole's SASRec and Trainer step, with autograd anomaly detection off;
  - ``SASRec+anomaly``: the same with anomaly detection on, which is what importing
    ``recbole.model.sequential_recommender`` does to a process (its ``sine.py``);
  - ``FastSASRec``: the same model with :mod:`recsys.encoder`'s forward pass;
  - ``SASRec2Step`` (the control: two Adam steps per batch), ``CL4SRec``, ``DuoRec``,
    ``MCLRec`` (alternating update, :meth:`MCLRecTrainer.train_step`: the augmenter step reuses
    the updated encoder's forward), ``MCLRec/reference-step`` (the same update as the official
    Trainer runs it: three encoder passes, :meth:`MCLRecTrainer.train_step_reference`),
    ``MCLRec-J`` (joint), on the fast encoder path; ``MCLRec/recbole-encoder`` on RecBole's
    forward pass.

  ``eval_seconds``: one full-ranking validation pass (all users) per model.
  ``cross_entropy``: forward + backward of the cross-entropy over all of the data set's items,
  ``shared.losses.embedding_cross_entropy`` against RecBole's ``F.cross_entropy`` of the logits.
  ``--before REV`` adds FastSASRec and MCLRec at an earlier commit (see :class:`Revision`).

* ``training``: :func:`recsys.evaluation.evaluate_models` for SASRec, FastSASRec, CL4SRec and
  MCLRec with the same number of epochs (``--epochs``, optionally ``--max-batches`` per epoch):
  measured train seconds per epoch, validation seconds, and test metrics after those epochs.

Targets: MCLRec's step <= 3.5x SASRec's (issue 4) and <= 3.5x FastSASRec's (issue 11, on
Beauty); the fast path >= 1.5x faster than RecBole's SASRec with equal metrics. Run::

    .venv/bin/python benchmarks/bench_recsys.py > bench_recsys.json
    .venv/bin/python benchmarks/bench_recsys.py --skip-training --rounds 5
    .venv/bin/python benchmarks/bench_recsys.py --dataset ../shared/data/seqrec/Beauty.txt \
        --skip-training --rounds 5 --threads 1
    .venv/bin/python benchmarks/bench_recsys.py --epochs 3 --max-batches 100 --out runs/bench
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

import recsys  # noqa: F401  (first: RecBole's models without anomaly detection)
from recsys.config import RecsysConfig, dataset_profile, replace
from recsys.data import resolve_dataset
from recsys.evaluation import MODELS, evaluate_models, recbole_settings
from recsys.loading import build_config, load_data
from recsys.trainer import MCLRecTrainer, RecTrainer
from shared.losses import embedding_cross_entropy

STEP_MODELS = (
    "SASRec",
    "SASRec+anomaly",
    "FastSASRec",
    "SASRec2Step",
    "CL4SRec",
    "DuoRec",
    "MCLRec",
    "MCLRec/reference-step",
    "MCLRec-J",
    "MCLRec/recbole-encoder",
)
TRAIN_MODELS = ("SASRec", "FastSASRec", "CL4SRec", "MCLRec")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _model_and_trainer(
    name: str,
    cfg: RecsysConfig,
    source: Any,
    data: Any,
    run_dir: Path,
    revision: Revision | None = None,
) -> tuple[Any, RecTrainer]:
    base = name.split("+")[0].split("/")[0].split("@")[0]
    spec = MODELS[base]
    settings = recbole_settings(cfg, base, dataset_profile(source.name))
    if name.endswith("/recbole-encoder"):
        settings["fast_encoder"] = False
    config = build_config(spec.model, source, settings, checkpoint_dir=run_dir, device="cpu")
    torch.manual_seed(0)
    model_class = spec.model
    if revision is not None and "@" in name and base == "FastSASRec":
        model_class = revision.encoder.FastSASRec
    model = model_class(config, data.dataset)
    folder = name.replace("/", "_").replace("@", "_at_")
    trainer = spec.trainer(config, model, run_dir=run_dir / folder, progress=False)
    return model, trainer


class Revision:
    """The hot paths of an earlier commit, swapped in around a step (``--before REV``).

    ``recsys/encoder.py`` and ``recsys/losses.py`` are loaded from ``git show REV:...`` as
    modules of their own; an ``@REV`` FastSASRec is that encoder's class, and an ``@REV``
    MCLRec runs today's model with REV's forward pass, InfoNCE and R, RecBole's
    ``F.cross_entropy`` when REV predates ``embedding_cross_entropy``, and the three-pass
    schedule (:meth:`MCLRecTrainer.train_step_reference`) when REV's trainer had no other.
    Other changes since REV are not reverted.
    """

    def __init__(self, rev: str) -> None:
        self.rev = rev
        root = Path(__file__).resolve().parents[1]
        self.encoder = self._load(root, "recsys/encoder.py")
        self.losses = self._load(root, "recsys/losses.py")
        models_text = self._show(root, "recsys/models.py")
        old_ce = "embedding_cross_entropy" not in models_text
        #: REV's MCLRec trainer ran three encoder passes per batch (no reuse of the forward).
        self.three_pass = "train_step_reference" not in self._show(root, "recsys/trainer.py")
        self.patches: dict[str, Any] = {
            "sasrec_encode": self.encoder.sasrec_encode,
            "contrastive_regularizer": self.losses.contrastive_regularizer,
            "pair_info_nce": self.losses.pair_info_nce,
        }
        if old_ce:
            self.patches["embedding_cross_entropy"] = _recbole_cross_entropy

    def _show(self, root: Path, path: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), "show", f"{self.rev}:{path}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    def _load(self, root: Path, path: str) -> types.ModuleType:
        name = f"_rev_{self.rev}_{Path(path).stem}"
        module = types.ModuleType(name)
        exec(compile(self._show(root, path), f"{self.rev}:{path}", "exec"), module.__dict__)
        return module

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Swap REV's functions into :mod:`recsys.models` for the duration."""
        import recsys.models as current

        saved = {k: getattr(current, k) for k in self.patches}
        for k, v in self.patches.items():
            setattr(current, k, v)
        try:
            yield
        finally:
            for k, v in saved.items():
                setattr(current, k, v)


def _recbole_cross_entropy(queries: Any, weight: Any, targets: Any) -> Any:
    return torch.nn.functional.cross_entropy(queries @ weight.T, targets)


def _step_fn(
    name: str, model: Any, trainer: RecTrainer, revision: Revision | None = None
) -> Callable[[Any], None]:
    if revision is not None and "@" in name:
        base = name.split("@")[0]
        if base == "MCLRec" and revision.three_pass:
            base = "MCLRec/reference-step"
        inner = _step_fn(base, model, trainer)

        def at_revision(batch: Any) -> None:
            with revision.active():
                inner(batch)

        return at_revision
    if isinstance(trainer, MCLRecTrainer) and not trainer.joint:
        mcl = trainer
        reference = name.endswith("/reference-step")

        def alternating(batch: Any) -> None:
            if reference:
                mcl.train_step_reference(batch)
            else:
                mcl.train_step(batch)

        return alternating

    def step(batch: Any) -> None:
        trainer.optimizer.zero_grad()
        loss = trainer._loss_and_record(batch)
        loss.backward()
        trainer.optimizer.step()

    return step


def _quartiles(values: list[float]) -> list[float]:
    """Quartiles; the one value three times when there is only one."""
    return statistics.quantiles(values, n=4) if len(values) > 1 else values * 3


def bench_steps(
    dataset: str,
    n_batches: int,
    rounds: int,
    work: Path,
    step_models: tuple[str, ...] = STEP_MODELS,
    revision: Revision | None = None,
) -> dict[str, Any]:
    """Interleaved per-batch training times and one validation pass per model.

    With ``revision``, ``FastSASRec@REV`` and ``MCLRec@REV`` (see :class:`Revision`) run in the
    same rounds, so that the speed-ups since REV are measured like the ratios.
    """
    if revision is not None:
        step_models += tuple(f"{m}@{revision.rev}" for m in ("FastSASRec", "MCLRec"))
    cfg = RecsysConfig(dataset=dataset)
    source = resolve_dataset(dataset, work)
    settings = recbole_settings(cfg, "SASRec", dataset_profile(source.name))
    from recbole.model.sequential_recommender import SASRec

    config = build_config(SASRec, source, settings, checkpoint_dir=work, device="cpu")
    _, train, valid, _ = load_data(config)
    batches = []
    for i, batch in enumerate(train):
        if i >= n_batches:
            break
        batches.append(batch)
    steps: dict[str, Callable[[Any], None]] = {}
    trainers: dict[str, RecTrainer] = {}
    for name in step_models:
        model, trainer = _model_and_trainer(name, cfg, source, train, work, revision)
        model.train()
        steps[name] = _step_fn(name, model, trainer, revision)
        trainers[name] = trainer
    # Interleaved per batch (every model takes the same batch in turn), so that a machine busy
    # with other jobs slows the models alike; the median over rounds x batches is reported.
    times: dict[str, list[float]] = {name: [] for name in step_models}
    for r in range(rounds + 1):  # round 0 warms up
        for batch in batches:
            for name in step_models:
                torch.autograd.set_detect_anomaly(name.endswith("+anomaly"))
                try:
                    start = time.perf_counter()
                    steps[name](batch)
                    elapsed = time.perf_counter() - start
                finally:
                    torch.autograd.set_detect_anomaly(False)
                if r:
                    times[name].append(elapsed)
        if r:
            n = len(batches)
            log(
                f"round {r}: "
                + ", ".join(f"{m} {statistics.median(times[m][-n:]):.3f}s" for m in step_models)
            )
    per_epoch = len(train)
    out: dict[str, Any] = {"batches_per_epoch": per_epoch, "batch_size": batches[0].length}
    out["cross_entropy"] = bench_cross_entropy(train.dataset.item_num, batches[0].length)
    models: dict[str, Any] = {}
    for name in step_models:
        median = statistics.median(times[name])
        trainer = trainers[name]
        start = time.perf_counter()
        at_revision = revision is not None and "@" in name
        with revision.active() if revision and at_revision else contextlib.nullcontext():
            trainer.evaluate(valid, load_best_model=False, phase="valid")
        models[name] = {
            "step_seconds_median": round(median, 4),
            "step_seconds_quartiles": [round(float(q), 4) for q in _quartiles(times[name])],
            "epoch_seconds_est": round(median * per_epoch, 1),
            "eval_seconds": round(time.perf_counter() - start, 3),
        }
    out["models"] = models

    def ratio(a: str, b: str) -> float | None:
        if a not in models or b not in models:
            return None
        return round(models[a]["step_seconds_median"] / models[b]["step_seconds_median"], 2)

    out["ratios"] = {
        "MCLRec_over_SASRec": ratio("MCLRec", "SASRec"),
        "MCLRec_over_FastSASRec": ratio("MCLRec", "FastSASRec"),
        "MCLRec_reference_step_over_MCLRec": ratio("MCLRec/reference-step", "MCLRec"),
        "MCLRec_recbole_encoder_over_SASRec": ratio("MCLRec/recbole-encoder", "SASRec"),
        "CL4SRec_over_SASRec": ratio("CL4SRec", "SASRec"),
        "DuoRec_over_FastSASRec": ratio("DuoRec", "FastSASRec"),
        "SASRec2Step_over_FastSASRec": ratio("SASRec2Step", "FastSASRec"),
        "SASRec_over_FastSASRec": ratio("SASRec", "FastSASRec"),
        "anomaly_over_SASRec": ratio("SASRec+anomaly", "SASRec"),
    }
    if revision is not None:
        rev = revision.rev
        out["ratios"].update(
            {
                f"MCLRec_speedup_since_{rev}": ratio(f"MCLRec@{rev}", "MCLRec"),
                f"FastSASRec_speedup_since_{rev}": ratio(f"FastSASRec@{rev}", "FastSASRec"),
                f"MCLRec@{rev}_over_FastSASRec@{rev}": ratio(f"MCLRec@{rev}", f"FastSASRec@{rev}"),
                f"MCLRec_over_FastSASRec@{rev}": ratio("MCLRec", f"FastSASRec@{rev}"),
            }
        )
    return out


def bench_cross_entropy(
    n_items: int, batch: int = 256, dim: int = 64, repeats: int = 30
) -> dict[str, Any]:
    """Forward + backward of the full cross-entropy: ours against RecBole's, interleaved.

    Ours is :func:`shared.losses.embedding_cross_entropy`; RecBole's SASRec computes
    ``F.cross_entropy(seq_output @ item_embedding.T, targets)``. Same inputs, values checked.
    """
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(n_items, dim, generator=gen).requires_grad_()
    queries = torch.randn(batch, dim, generator=gen).requires_grad_()
    targets = torch.randint(0, n_items, (batch,), generator=gen)
    cases = {
        "ours": lambda: embedding_cross_entropy(queries, weight, targets),
        "recbole": lambda: torch.nn.functional.cross_entropy(queries @ weight.T, targets),
    }
    with torch.no_grad():
        values = {k: float(f()) for k, f in cases.items()}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(repeats + 3):
        for name, f in cases.items():
            weight.grad = queries.grad = None
            start = time.perf_counter()
            f().backward()
            if r >= 3:
                times[name].append(time.perf_counter() - start)
    ms = {k: round(statistics.median(v) * 1e3, 2) for k, v in times.items()}
    return {
        "shape": {"batch": batch, "dim": dim, "items": n_items},
        "forward_backward_ms": ms,
        "forward_backward_ms_quartiles": {
            k: [round(q * 1e3, 2) for q in _quartiles(v)] for k, v in times.items()
        },
        "recbole_over_ours": round(ms["recbole"] / ms["ours"], 2),
        "values_agree": math.isclose(values["ours"], values["recbole"], rel_tol=1e-5),
    }


def bench_training(
    dataset: str, epochs: int, max_batches: int | None, out: Path, models: tuple[str, ...]
) -> dict[str, Any]:
    """Train every model the same number of epochs with the evaluation pipeline."""
    cfg = replace(
        RecsysConfig(dataset=dataset, models=models),
        trainer={"epochs": epochs, "max_train_batches": max_batches, "patience": None,
                 "device": "cpu", "progress": False},
    )  # fmt: skip
    results = evaluate_models(cfg, out)
    table: dict[str, Any] = {}
    for name, r in results.items():
        s = r.summary()
        table[name] = {
            "epochs": r.epochs,
            "epoch_seconds": s["epoch_seconds"],
            "train_seconds_per_epoch": [row["train_seconds"] for row in r.history],
            "eval_seconds": s["eval_seconds"],
            "best_epoch": r.best_epoch,
            "test": {k: r.test[k] for k in ("hit@10", "ndcg@10", "mrr@10", "hit@20", "ndcg@20")},
            "valid_ndcg@10": r.valid.get("ndcg@10"),
            "params": r.params,
        }
    sasrec = table["SASRec"]["epoch_seconds"]
    ratios = {f"{n}_over_SASRec": round(v["epoch_seconds"] / sasrec, 2) for n, v in table.items()}
    return {"models": table, "ratios": ratios, "run_folder": str(out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--batches", type=int, default=6, help="batches per model and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1, help="training part: epochs per model")
    parser.add_argument("--max-batches", type=int, default=None, help="training part: per epoch")
    parser.add_argument("--models", default=",".join(TRAIN_MODELS))
    parser.add_argument(
        "--step-models", default=",".join(STEP_MODELS), help="steps part: models to time"
    )
    parser.add_argument("--out", default=None, help="training part: run folder (default: temp)")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-steps", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--before",
        default=None,
        metavar="REV",
        help="steps part: also time FastSASRec and MCLRec with the encoder, InfoNCE, R and "
        "cross-entropy of git revision REV, interleaved with today's (speed-ups since REV)",
    )
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads: expected a positive number, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict[str, Any] = {
        "benchmark": "recsys",
        "dataset": args.dataset,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average": list(os.getloadavg()),
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_steps:
            log("steps: interleaved per-batch training times")
            step_models = tuple(m.strip() for m in args.step_models.split(",") if m.strip())
            unknown = [m for m in step_models if m not in STEP_MODELS]
            if unknown:
                parser.error(f"--step-models: unknown {unknown}; choose from {list(STEP_MODELS)}")
            revision = None
            if args.before:
                try:
                    revision = Revision(args.before)
                except subprocess.CalledProcessError as err:
                    parser.error(f"--before: git cannot show {args.before!r}: {err.stderr.strip()}")
            report["steps"] = bench_steps(
                args.dataset, args.batches, args.rounds, Path(tmp), step_models, revision
            )
        if not args.skip_training:
            out = Path(args.out) if args.out else Path(tmp) / "train"
            models = tuple(m.strip() for m in args.models.split(",") if m.strip())
            log(f"training: {', '.join(models)}, {args.epochs} epoch(s) each -> {out}")
            report["training"] = bench_training(
                args.dataset, args.epochs, args.max_batches, out, models
            )
    report["machine"]["load_average_end"] = list(os.getloadavg())
    steps = report.get("steps", {}).get("ratios", {})
    if steps:
        limits = {
            "MCLRec_step_le_3.5x_SASRec": ("MCLRec_over_SASRec", 3.5, "le"),
            "MCLRec_step_le_3.5x_FastSASRec": ("MCLRec_over_FastSASRec", 3.5, "le"),
            "fast_path_ge_1.5x_faster": ("SASRec_over_FastSASRec", 1.5, "ge"),
        }
        report["targets"] = {
            name: (value <= limit if how == "le" else value >= limit)
            for name, (key, limit, how) in limits.items()
            if (value := steps.get(key)) is not None
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
