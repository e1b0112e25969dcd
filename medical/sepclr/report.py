"""``results.md`` and the HTML page of a run: probe tables and 2-D maps of each space.

The maps are the first two principal components (scikit-learn PCA) of each space's test
representations, coloured by group and by each factor; the page is built with
:mod:`shared.report` (self-contained: figures are embedded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medical.sepclr.data import ContrastiveSet
from medical.sepclr.evaluate import Features, chance_levels
from shared.report import figure_to_data_uri, html_img, html_page, html_table

__all__ = [
    "EXPECTED",
    "comparison_rows",
    "map_figure",
    "markdown_table",
    "results_markdown",
    "results_page",
]

#: What a perfect separation gives, per (space, factor role): "high" or "low".
EXPECTED = {("salient", "salient"): "high", ("common", "salient"): "low",
            ("common", "common"): "high", ("salient", "common"): "low"}  # fmt: skip


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats to 3 decimals."""

    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _columns(probes: Mapping[str, Mapping[str, float]]) -> list[str]:
    cols = sorted({p for s in probes.values() for p in s})
    return sorted(cols, key=lambda c: (not c.startswith("group"), c))


def _expectation(ds: ContrastiveSet) -> str:
    if not ds.roles:
        return ""
    lines = ["Expected if the spaces separate the factors:"]
    for name, role in ds.roles.items():
        other = "salient" if role == "common" else "common"
        lines.append(
            f"- `{name}` is a {role} factor: high from `{role}`, low (chance) from `{other}`."
        )
    return "\n".join(lines)


def results_markdown(
    method: str, dataset: str, probes: Mapping[str, Mapping[str, float]], ds: ContrastiveSet,
    extra: str = "",
) -> str:  # fmt: skip
    """The ``results.md`` of one run: a space x probe table with chance levels."""
    cols = _columns(probes)
    rows = [[space] + [probes[space].get(c, float("nan")) for c in cols] for space in probes]
    chance = chance_levels(ds)
    rows.append(["chance"] + [chance.get(c.rsplit("_", 1)[0], float("nan")) for c in cols])
    parts = [
        f"# SepCLR probes: {method} on {dataset}",
        "",
        "Balanced accuracy on the test split (linear: LogisticRegression; knn: k-NN); factor "
        "probes on target images only.",
        "",
        markdown_table(["space", *cols], rows),
        "",
        _expectation(ds),
        extra,
    ]
    return "\n".join(p for p in parts if p is not None).rstrip() + "\n"


def map_figure(features: Features, ds: ContrastiveSet, kind: str = "rep") -> Any:
    """A grid of 2-D PCA maps: one row per space, columns group and each factor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    spaces = list(features)
    colourings = [("group", ds.g_test), *list(ds.f_test.items())]
    fig, axes = plt.subplots(
        len(spaces), len(colourings), figsize=(3.1 * len(colourings), 3.0 * len(spaces)),
        squeeze=False,
    )  # fmt: skip
    for r, space in enumerate(spaces):
        x = features[space][kind]
        xy = PCA(n_components=2).fit_transform(x) if x.shape[1] > 2 else x
        for c, (name, values) in enumerate(colourings):
            ax = axes[r][c]
            undefined = values < 0
            if undefined.any():
                ax.scatter(*xy[undefined].T, s=4, c="#cccccc", label="n/a")
            sc = ax.scatter(*xy[~undefined].T, s=4, c=values[~undefined], cmap="tab10",
                            vmin=0, vmax=9)  # fmt: skip
            if name == "group":
                handles, _ = sc.legend_elements()
                ax.legend(handles, ["background", "target"], fontsize=6)
            ax.set_title(f"{space} space, by {name}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def results_page(
    method: str,
    dataset: str,
    probes: Mapping[str, Mapping[str, float]],
    features: Features,
    ds: ContrastiveSet,
) -> str:
    """The run's self-contained HTML page: probe table and maps."""
    cols = _columns(probes)
    rows = [[space] + [probes[space].get(c, float("nan")) for c in cols] for space in probes]
    chance = chance_levels(ds)
    rows.append(["chance"] + [chance.get(c.rsplit("_", 1)[0], float("nan")) for c in cols])
    fig = map_figure(features, ds)
    body = (
        "<h2>Probes (balanced accuracy, test split)</h2>\n"
        + html_table(["space", *cols], rows, digits=3)
        + "<p class='note'>Factor probes use target images only; the group probe uses all.</p>"
        + "<h2>2-D maps (PCA of the test representations)</h2>\n"
        + html_img(figure_to_data_uri(fig), f"PCA maps of {method}")
    )
    return html_page(f"SepCLR: {method} on {dataset}", body, subtitle=_expectation(ds))


def comparison_rows(
    results: Mapping[str, Mapping[str, Any]],
) -> tuple[list[str], list[list[Any]]]:
    """Methods x probes: ``results`` maps a row label to a ``metrics.json``; one row per space."""
    cols: list[str] = []
    for metrics in results.values():
        for probes in metrics["probes"].values():
            cols += [c for c in probes if c not in cols]
    cols = sorted(cols, key=lambda c: (not c.startswith("group"), c))
    rows: list[list[Any]] = []
    for label, metrics in results.items():
        for space, probes in metrics["probes"].items():
            rows.append([label, space] + [probes.get(c, float("nan")) for c in cols])
    return ["method", "space", *cols], rows
