"""One table from several ``contrasuite recsys evaluate`` folders of the same data and split.

Runs of one comparison may be trained in parallel, one folder per process (the baselines in
one, MCLRec in another, one model's last seed in a third). This reads every finished run of the
folders (``<model>/<run>/metrics.json`` with its ``per_user_test.csv`` and ``history.csv``; a
run still training has no ``metrics.json`` and is left out), selects each model's dropout on
the mean validation NDCG@10 over its seeds as ``recsys evaluate`` does
(:func:`recsys.results.select_dropout`), and prints the test metrics (mean ± sample std over the
seeds) and paired tests of every model against each reference model on per-user test NDCG@10
averaged over the seeds (:func:`recsys.stats.paired_test`), as ``results.md`` does. From the
repository root::

    .venv/bin/python benchmarks/results/recsys_merge.py RUN [RUN ...] \\
        [--against FastSASRec,SASRec2Step]

With one folder and ``--against`` its first model this repeats its ``results.md`` tests.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from recsys.results import ModelResult, ModelSummary, select_dropout
from recsys.stats import paired_test
from shared.errors import InputError
from shared.io import read_json

METRICS = ("hit@10", "ndcg@10", "hit@20", "ndcg@20", "mrr@10")


def load(runs: list[Path]) -> dict[str, ModelSummary]:
    """Every finished run of the folders, by model, at the dropout selected on validation.

    A seed of a model counts once every dropout of its grid has finished for that seed.

    Raises:
        ValueError: If two folders hold the same model, seed and dropout.
    """
    found: dict[str, dict[tuple[int, float | None], ModelResult]] = {}
    for run in runs:
        for metrics in sorted([*run.glob("*/metrics.json"), *run.glob("*/*/metrics.json")]):
            data = read_json(metrics)
            if "best_epoch" not in data or "seed" not in data:
                continue  # a report, not one training run
            model = metrics.relative_to(run).parts[0]
            key = (int(data["seed"]), data.get("dropout"))
            if key in found.setdefault(model, {}):
                raise ValueError(f"{metrics.parent}: {model} seed {key[0]} is in two folders")
            found[model][key] = ModelResult.load(metrics.parent, model, seed=key[0], dropout=key[1])
    order: list[str] = []  # each folder's own model order (its results.json), then the rest
    for run in runs:
        listed = read_json(run / "results.json") if (run / "results.json").is_file() else {}
        order += [m for m in listed if m in found and m not in order]
    order += [m for m in found if m not in order]
    out = {}
    for model in order:
        # a seed counts once every dropout of the grid has finished for it
        dropouts = {d for _, d in found[model]}
        seeds = {s for s, _ in found[model] if all((s, d) in found[model] for d in dropouts)}
        results = [r for (s, _), r in found[model].items() if s in seeds]
        out[model] = select_dropout(model, sorted(results, key=lambda r: r.seed))
    return out


def _cell(summary: ModelSummary, metric: str) -> str:
    mean = f"{summary.test[metric]:.4f}"
    return mean + (f" ± {summary.test_std[metric]:.4f}" if len(summary.runs) > 1 else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument(
        "--against",
        default=None,
        help="reference models, comma-separated; they head the table (default: the first model)",
    )
    args = parser.parse_args(argv)
    for run in args.runs:
        if not (run / "config.yaml").is_file():
            parser.error(f"{run}: expected a recsys evaluate folder (with config.yaml)")
    try:
        summaries = load(args.runs)
    except (ValueError, InputError) as error:  # a duplicate run, an unreadable file
        parser.error(str(error))
    if not summaries:
        parser.error("no finished run in " + ", ".join(map(str, args.runs)))
    references = args.against.split(",") if args.against else [next(iter(summaries))]
    unknown = [m for m in references if m not in summaries]
    if unknown:  # before anything is printed
        parser.error(
            f"--against: {', '.join(map(repr, unknown))} not among the finished models of the "
            f"folders ({', '.join(summaries)})"
        )
    # the reference models head the table, in --against order; then the folders' order
    summaries = {
        m: summaries[m] for m in [*references, *(m for m in summaries if m not in references)]
    }
    seed_sets = {tuple(s.runs) for s in summaries.values()}
    print(
        "| model | seeds | dropout | "
        + " | ".join(f"test {m}" for m in METRICS)
        + " | best epoch | epochs |"
    )
    print("|---|---|---|" + "---|" * (len(METRICS) + 2))
    for model, s in summaries.items():
        cells = " | ".join(_cell(s, m) for m in METRICS)
        dropout = "" if s.dropout is None else f"{s.dropout:g}"
        best = "/".join(str(r.best_epoch) for r in s.runs.values())
        epochs = "/".join(str(r.epochs) for r in s.runs.values())
        seeds = ",".join(map(str, s.runs))
        print(f"| {model} | {seeds} | {dropout} | {cells} | {best} | {epochs} |")
    selected = [
        f"{m} ({', '.join(f'{d:g}: {v:.4f}' for d, v in s.selection.items())})"
        for m, s in summaries.items()
        if s.selection
    ]
    print("\nTest metrics: mean ± sample std over the seeds; best epoch and epochs per seed.")
    if selected:
        print("Dropout selected on mean validation NDCG@10 over the seeds: " + "; ".join(selected))
    if len(seed_sets) > 1:
        print("\nNote: the models have different seeds; the tests are not paired by seed.")
    per_user = {model: s.per_user("ndcg@10") for model, s in summaries.items()}
    for reference in references:
        if not per_user.get(reference):
            parser.error(f"--against: no per-user NDCG@10 of {reference!r} in the folders")
        print(f"\nPaired tests against {reference} (per-user test NDCG@10, mean over seeds):\n")
        print("| model | users | difference | 95% interval | p |")
        print("|---|---|---|---|---|")
        for model, values in per_user.items():
            if model == reference or not values:
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
