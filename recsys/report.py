"""The evaluation's reports: ``results.json``, ``results.md``, paired tests, per-user files."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys.config import TABLE_METRICS, RecsysConfig
from recsys.data import DatasetSource
from recsys.stats import PairedTest, paired_test
from shared.io import atomic_write_bytes, atomic_write_text, write_csv, write_json

if TYPE_CHECKING:
    from recsys.config import Profile
    from recsys.results import ModelSummary

__all__ = ["PAIRED_METRIC", "paired_tests", "results_markdown", "validation_plot", "write_reports"]

#: The per-user metric of the paired tests.
PAIRED_METRIC = "ndcg@10"


def paired_tests(summaries: Mapping[str, ModelSummary]) -> dict[str, PairedTest]:
    """Each model against the first one on per-user NDCG@10 (mean over seeds), same users.

    Returns:
        ``{model: test}`` for every model after the first that has per-user metrics.
    """
    names = list(summaries)
    if len(names) < 2:
        return {}
    reference = summaries[names[0]].per_user(PAIRED_METRIC)
    out: dict[str, PairedTest] = {}
    for name in names[1:]:
        other = summaries[name].per_user(PAIRED_METRIC)
        users = sorted(set(reference) & set(other))
        if not users:
            continue
        a = np.array([reference[u] for u in users])
        b = np.array([other[u] for u in users])
        out[name] = paired_test(a, b)
    return out


def write_reports(
    out: Path,
    cfg: RecsysConfig,
    summaries: Mapping[str, ModelSummary],
    source: DatasetSource,
    profile: Profile,
    *,
    command: str | None = None,
    plot: bool = True,
) -> None:
    """Write every report of the run folder from the models done so far (``plot``: the PNG)."""
    payload = {name: s.contract() for name, s in summaries.items()}
    write_json(out / "results.json", payload)
    write_json(out / "metrics.json", payload)
    rows = [
        {"model": name, "seed": seed, "dropout": r.dropout, **row}
        for name, s in summaries.items()
        for seed, r in s.runs.items()
        for row in r.history
    ]
    write_csv(out / "history.csv", rows)
    tests = paired_tests(summaries)
    write_json(
        out / "paired_tests.json",
        {
            "metric": PAIRED_METRIC,
            "reference": next(iter(summaries)),
            "method": "paired bootstrap 95% interval (users resampled) and sign-flip permutation "
            "p-value of the mean per-user difference (model - reference), per-user values "
            "averaged over the seeds",
            "tests": {name: t.as_dict() for name, t in tests.items()},
        },
    )
    per_user = {name: s.per_user(PAIRED_METRIC) for name, s in summaries.items()}
    users = sorted(set().union(*[set(v) for v in per_user.values()]))
    if users:
        write_csv(
            out / f"per_user_{PAIRED_METRIC}.csv",
            [{"user": u, **{n: per_user[n].get(u) for n in summaries}} for u in users],
        )
    text = results_markdown(cfg, summaries, source, profile, tests=tests, command=command)
    atomic_write_text(out / "results.md", text)
    png = validation_plot(summaries) if plot else None
    if png is not None:
        atomic_write_bytes(out / "valid_ndcg.png", png)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _pm(mean: float | None, std: float | None, several: bool) -> str:
    if mean is None:
        return ""
    return f"{mean:.4f} ± {std:.4f}" if several and std is not None else f"{mean:.4f}"


def results_markdown(
    cfg: RecsysConfig,
    summaries: Mapping[str, ModelSummary],
    source: DatasetSource,
    profile: Profile,
    *,
    tests: Mapping[str, PairedTest] | None = None,
    command: str | None = None,
) -> str:
    """The ``results.md`` tables: test mean +- std, selection, timing, paired tests."""
    seeds = cfg.run_seeds
    # the reports are rewritten after each seed: say how many seeds the numbers are over
    done = [seed for seed in seeds if all(seed in s.runs for s in summaries.values())]
    several = len(done) > 1
    grid = cfg.encoder.dropout_grid
    head = [
        "model",
        *[f"test {m}" for m in TABLE_METRICS],
        "valid ndcg@10",
        *(["dropout"] if grid else []),
        *(["best epoch (per seed)", "epochs (per seed)"] if several else ["best epoch", "epochs"]),
        "s/epoch",
        "params",
    ]
    lines = [
        f"# Offline evaluation on {source.name}",
        "",
        "Protocol: time-ordered leave-one-out (last item = test, second-to-last = validation), "
        f"full ranking over all items, input = last {cfg.max_seq_length} items, "
        f"model selection on validation {cfg.trainer.metric} with early stopping "
        f"(patience {cfg.trainer.patience} epochs, RecBole stopping_step "
        f"{cfg.trainer.stopping_step}; at most {cfg.trainer.epochs} epochs), "
        f"seed(s) {', '.join(map(str, seeds))}, "
        f"history masking {'on' if cfg.mask_history else 'off'}. "
        f"Data set: {source.origin} ({source.kind}). MCLRec defaults: {profile.source}.",
        "",
    ]
    if len(done) < len(seeds):
        waiting = [seed for seed in seeds if seed not in done]
        lines += [
            f"So far: seed(s) {', '.join(map(str, done)) or 'none'} done for every model; "
            f"{', '.join(map(str, waiting))} not yet (the same command resumes).",
            "",
        ]
    if several:
        lines += [f"Test metrics: mean ± sample std over {len(done)} seeds.", ""]
    if grid:
        lines += [
            f"Dropout selected per model among {', '.join(f'{d:g}' for d in grid)} on the "
            f"validation {cfg.trainer.metric} averaged over the seeds.",
            "",
        ]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summaries.items():
        mean, std = s.test, s.test_std
        cells = [
            name,
            *[_pm(mean.get(m), std.get(m), several) for m in TABLE_METRICS],
            _fmt(s.valid.get("ndcg@10")),
            *([("" if s.dropout is None else f"{s.dropout:g}")] if grid else []),
            "/".join(str(r.best_epoch) for r in s.runs.values()),
            "/".join(str(r.epochs) for r in s.runs.values()),
            f"{s.summary()['epoch_seconds']:.1f}",
            f"{s.params:,}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "What ran:", ""]
    lines += [f"- {name}: {s.ran_as}" for name, s in summaries.items()]
    if tests:
        reference = next(iter(summaries))
        lines += [
            "",
            f"Paired tests against {reference} on per-user test NDCG@10 (each user's value "
            "averaged over the seeds; paired bootstrap 95% interval of the mean difference, "
            "two-sided sign-flip permutation p-value; 10,000 resamples):",
            "",
            "| model | users | mean NDCG@10 | reference | difference | 95% interval | p |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, t in tests.items():
            lines.append(
                f"| {name} | {t.n_users} | {t.mean_b:.4f} | {t.mean_a:.4f} | {t.diff:+.4f} | "
                f"[{t.ci_low:+.4f}, {t.ci_high:+.4f}] | {t.p_value:.4f} |"
            )
    if cfg.trainer.max_train_batches is not None:
        lines += ["", f"Quick run: at most {cfg.trainer.max_train_batches} batches per epoch."]
    if command:
        lines += ["", "Reproduce:", "", "```", command, "```"]
    return "\n".join(lines) + "\n"


def validation_plot(summaries: Mapping[str, Any]) -> bytes | None:
    """A PNG of the validation ``ndcg@10`` per epoch (first seed), one line per model."""
    if not any(s.history for s in summaries.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.subplots()
    for name, s in summaries.items():
        epochs = [row["epoch"] for row in s.history]
        values = [float(row.get("val/ndcg@10", float("nan"))) for row in s.history]
        ax.plot(epochs, values, marker="o", markersize=3, label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation NDCG@10")
    ax.set_title("Validation NDCG@10 per epoch (full ranking)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
