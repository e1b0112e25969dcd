"""The Beauty table of benchmarks/README.md: our test metrics next to MCLRec's Table 3 row.

Usage (from the repository root)::

    .venv/bin/python benchmarks/results/recsys_beauty/make_table.py [RUN ...]

Each RUN is a ``contrasuite recsys evaluate`` folder on ``../shared/data/seqrec/Beauty.txt``
(default: the copies of their small files beside this script, ``run_*/``). Several folders may
hold different models of the same split (they were trained in parallel); the paired test of
each model against the first one (FastSASRec), DuoRec and MCLRec (when they ran) uses the per-user positions in
``<model>/per_user_test.csv`` and ``recsys.stats.paired_test``, as ``results.md`` does.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from recsys.stats import paired_test, per_user_metric

HERE = Path(__file__).parent
METRICS = ("hit@5", "hit@10", "hit@20", "ndcg@5", "ndcg@10", "ndcg@20")
#: MCLRec paper (Qin et al., SIGIR 2023), Table 3, Beauty (methods.md 2.8): HR@5/10/20, NDCG@5/10/20.
PAPER = {
    "SASRec": (0.0377, 0.0624, 0.0894, 0.0241, 0.0342, 0.0386),
    "CL4SRec": (0.0401, 0.0642, 0.0974, 0.0268, 0.0345, 0.0428),
    "DuoRec": (0.0559, 0.0825, 0.1193, 0.0340, 0.0425, 0.0518),
    "MCLRec": (0.0581, 0.0871, 0.1243, 0.0352, 0.0446, 0.0539),
}
PAPER_NAME = {"FastSASRec": "SASRec"}


def positions(run: Path, model: str) -> dict[str, int]:
    with open(run / model / "per_user_test.csv", newline="") as f:
        return {row["user"]: int(row["position"]) for row in csv.DictReader(f)}


def main(runs: list[Path]) -> None:
    results: dict[str, tuple[Path, dict]] = {}
    for run in runs:
        for model, value in json.loads((run / "results.json").read_text()).items():
            if isinstance(value, dict) and "test" in value:
                results[model] = (run, value)
    if not results:
        raise SystemExit("no finished model in " + ", ".join(map(str, runs)))
    print("| model | " + " | ".join(f"test {m}" for m in METRICS) + " | best epoch / epochs |")
    print("|---|" + "---|" * (len(METRICS) + 1))
    for model, (run, value) in results.items():
        value = {**value, **json.loads((run / model / "metrics.json").read_text())}
        ours = " | ".join(f"{value['test'][m]:.4f}" for m in METRICS)
        print(f"| {model} (ours) | {ours} | {value.get('best_epoch', '?')} / {value['epochs']} |")
        paper = PAPER.get(PAPER_NAME.get(model, model))
        if paper:
            cells = " | ".join(f"{v:.4f}" for v in paper)
            print(f"| {PAPER_NAME.get(model, model)} (paper, Table 3) | {cells} | |")
    # against the first model (FastSASRec), DuoRec (the paper's runner-up) and MCLRec
    others = [m for m in ("DuoRec", "MCLRec") if m in results]
    for reference in dict.fromkeys([next(iter(results)), *others]):
        paired_table(results, reference)


def paired_table(results: dict[str, tuple[Path, dict]], reference: str) -> None:
    ref = positions(results[reference][0], reference)
    print(f"\nPaired tests on per-user test NDCG@10 against {reference}:\n")
    print("| model | users | difference | 95% interval | p |")
    print("|---|---|---|---|---|")
    for model, (run, _) in results.items():
        if model == reference:
            continue
        other = positions(run, model)
        users = sorted(ref.keys() & other.keys())
        a = per_user_metric(np.array([ref[u] for u in users]), "ndcg@10")
        b = per_user_metric(np.array([other[u] for u in users]), "ndcg@10")
        t = paired_test(a, b)
        print(
            f"| {model} | {len(users)} | {t.diff:+.4f} | [{t.ci_low:+.4f}, {t.ci_high:+.4f}] "
            f"| {t.p_value:.4f} |"
        )


if __name__ == "__main__":
    main([Path(p) for p in sys.argv[1:]] or sorted(HERE.glob("run_*")))
