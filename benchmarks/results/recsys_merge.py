"""One table from several ``contrasuite recsys evaluate`` folders of the same data and split.

Models of one comparison may be trained in parallel, one folder per process (e.g. the baselines
in one and MCLRec in another). This prints their test metrics (mean ± sample std over the
seeds, from each folder's ``results.json``) and paired tests of every model against each
reference model, on per-user test NDCG@10 averaged over the seeds (the folders'
``per_user_ndcg@10.csv``, joined on the user), with ``recsys.stats.paired_test`` as
``results.md`` does. From the repository root::

    .venv/bin/python benchmarks/results/recsys_merge.py RUN [RUN ...] \\
        [--against FastSASRec,SASRec2Step]

With one folder and ``--against`` its first model this repeats its ``results.md`` tests.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from recsys.stats import paired_test

METRICS = ("hit@10", "ndcg@10", "hit@20", "ndcg@20", "mrr@10")


def load(runs: list[Path]) -> tuple[dict[str, dict], dict[str, dict[str, float]]]:
    """``results.json`` entries by model, and per-user NDCG@10 by model and user."""
    results: dict[str, dict] = {}
    per_user: dict[str, dict[str, float]] = {}
    for run in runs:
        for model, value in json.loads((run / "results.json").read_text()).items():
            if isinstance(value, dict) and "test" in value:
                results[model] = value
        table = run / "per_user_ndcg@10.csv"
        if table.exists():
            with open(table, newline="") as f:
                for row in csv.DictReader(f):
                    for model, v in row.items():
                        if model != "user":
                            per_user.setdefault(model, {})[row["user"]] = float(v)
    return results, per_user


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--against", default=None, help="reference models (default: the first)")
    args = parser.parse_args(argv)
    for run in args.runs:
        if not (run / "results.json").is_file():
            parser.error(f"{run}: expected a recsys evaluate folder with results.json")
    results, per_user = load(args.runs)
    if not results:
        parser.error("no finished model in " + ", ".join(map(str, args.runs)))
    references = args.against.split(",") if args.against else [next(iter(results))]
    print("| model | seeds | " + " | ".join(f"test {m}" for m in METRICS) + " | epochs |")
    print("|---|---|" + "---|" * (len(METRICS) + 1))
    for model, value in results.items():
        std = value.get("test_std", {})
        cells = " | ".join(
            f"{value['test'][m]:.4f}" + (f" ± {std[m]:.4f}" if m in std else "") for m in METRICS
        )
        seeds = len(value.get("seeds", {})) or 1
        print(f"| {model} | {seeds} | {cells} | {value.get('epochs', '?')} |")
    for reference in references:
        if reference not in per_user:
            parser.error(f"--against: no per-user NDCG@10 of {reference!r} in the folders")
        print(f"\nPaired tests against {reference} (per-user test NDCG@10, mean over seeds):\n")
        print("| model | users | difference | 95% interval | p |")
        print("|---|---|---|---|---|")
        for model, values in per_user.items():
            if model == reference:
                continue
            users = sorted(set(values) & set(per_user[reference]))
            a = np.array([per_user[reference][u] for u in users])
            t = paired_test(a, np.array([values[u] for u in users]))
            print(
                f"| {model} | {len(users)} | {t.diff:+.4f} | "
                f"[{t.ci_low:+.4f}, {t.ci_high:+.4f}] | {t.p_value:.4f} |"
            )


if __name__ == "__main__":
    main()
