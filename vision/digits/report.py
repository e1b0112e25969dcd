"""The digits report: one comparison table (markdown and HTML) and the embedding plot."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.report import (
    esc,
    figure_to_data_uri,
    format_value,
    html_img,
    html_link,
    html_table,
)

if TYPE_CHECKING:
    from vision.digits.config import DigitsConfig

__all__ = ["TITLES", "plot_embeddings", "results_markdown", "summary_html", "table_rows"]

#: The table's name of each representation.
TITLES = {
    "pixels": "raw pixels",
    "random": "untrained encoder",
    "simclr": "SimCLR (no labels)",
    "supcon": "SupCon (labels)",
    "dcl": "DCL",
    "dclw": "DCLW",
    "swav": "SwAV",
    "cacr": "CACR",
    "amcl": "AMCL (3 heads)",
    "ft": "FT (feature transformation)",
}

_HEADERS = (
    "representation",
    "linear probe acc",
    "probe errors",
    "kNN acc",
    "alignment ↓",
    "uniformity ↓",
    "s / epoch",
    "epochs",
)


def table_rows(rows: Mapping[str, Mapping[str, Any]]) -> list[list[Any]]:
    """The comparison table's cells, one list per representation (see ``_HEADERS``)."""
    out = []
    for name, row in rows.items():
        out.append(
            [
                TITLES.get(name, name),
                row["probe_acc"],
                row["probe_errors"],
                row["knn_acc"],
                row["alignment"],
                row["uniformity"],
                row.get("seconds_per_epoch"),
                row.get("epochs"),
            ]
        )
    return out


def results_markdown(rows: Mapping[str, Mapping[str, Any]], cfg: DigitsConfig, n_test: int) -> str:
    """The comparison table as markdown (``results.md``), solo-learn's method-table style.

    Examples:
        >>> from vision.digits.config import DigitsConfig
        >>> row = {"probe_acc": 0.9, "probe_errors": 54, "knn_acc": 0.8, "alignment": 0.5,
        ...        "uniformity": -2.0, "seconds_per_epoch": 0.4, "epochs": 3}
        >>> print(results_markdown({"simclr": row}, DigitsConfig(), 540).splitlines()[4])
        | SimCLR (no labels) | 0.9000 | 54 | 0.8000 | 0.5000 | -2.0000 | 0.400 | 3 |
    """
    headers = list(_HEADERS)
    headers[2] = f"probe errors (of {n_test})"
    headers[3] = f"kNN acc (k={cfg.probe.knn_k})"
    lines = [
        "# Contrastive methods on 8x8 digits",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
    ]
    for cells in table_rows(rows):
        text = [format_value(c, 3 if i == 6 else 4) for i, c in enumerate(cells)]
        lines.append("| " + " | ".join(text) + " |")
    lines += ["", _notes_text(cfg, n_test)]
    return "\n".join(lines) + "\n"


def _notes_text(cfg: DigitsConfig, n_test: int) -> str:
    probe = (
        f"C chosen from {', '.join(map(str, cfg.probe.cs))} by {cfg.probe.cv_folds}-fold CV "
        "on the training split"
        if len(cfg.probe.cs) > 1
        else f"C = {cfg.probe.cs[0]}"
    )
    return (
        "scikit-learn digits (8×8, 10 classes), fixed stratified split "
        f"({1 - cfg.data.test_fraction:.0%} train / {cfg.data.test_fraction:.0%} test, "
        f"{n_test} test images). Every method trains the same CNN encoder on "
        f"{cfg.data.image_size}×{cfg.data.image_size} inputs for {cfg.trainer.epochs} epochs, "
        f"batch {cfg.batch_size} × 2 views (crop, shift, rotation ±{cfg.augment.rotation:g}°, "
        "intensity, noise, erasing; no flips), seed "
        f"{cfg.trainer.seed}. Linear probe: logistic regression on standardized frozen "
        f"features, {probe}; kNN: cosine, on the same features. The untrained encoder is the "
        "same architecture at its initial weights. Alignment and uniformity (Wang & Isola) of "
        "the L2-normalized test projections under two random views (raw pixels: of the "
        "normalized pixel vectors; AMCL: averaged over its heads): lower is better for each, "
        "but they pull against each other, and a collapsed embedding scores 0 on both. "
        "Seconds per epoch: training only, this machine. Chance accuracy is 0.10."
    )


def summary_html(
    rows: Mapping[str, Mapping[str, Any]],
    png: str,
    runs: Mapping[str, str],
    cfg: DigitsConfig,
    link_prefix: str,
    n_test: int,
) -> str:
    """The table (with links to the methods' stage folders), the notes and the plot.

    Args:
        rows: Metrics by representation.
        png: The embedding plot as a data URI.
        runs: Stage folder (relative to the run) of each trained method.
        cfg: The config.
        link_prefix: Prefix of the links (the run folder's path from the page).
        n_test: Number of test images.

    Returns:
        An HTML fragment.
    """
    best = max(row["probe_acc"] for row in rows.values())
    cells = table_rows(rows)
    for name, row_cells in zip(rows, cells):
        folder = runs.get(name)
        row_cells.append(html_link(f"{link_prefix}{folder}/", folder) if folder else "–")
    headers = list(_HEADERS)
    headers[2] = f"probe errors (of {n_test})"
    headers[3] = f"kNN acc (k={cfg.probe.knn_k})"
    table = html_table(
        [*headers, "stage folder"],
        cells,
        raw_html_columns=(len(headers),),
        row_classes=["best" if row["probe_acc"] == best else "" for row in rows.values()],
    )
    notes = f'<p class="note">{esc(_notes_text(cfg, n_test))}</p>'
    img = html_img(png, "2-D embedding of the test features coloured by digit")
    return f"{table}\n{notes}\n{img}"


def plot_embeddings(
    embeddings: Mapping[str, np.ndarray], labels: np.ndarray, method: str, seed: int
) -> str:
    """2-D embeddings of the test features, one panel per representation, as a data URI.

    Args:
        embeddings: Test features by representation. Shape of each: (N_test, F).
        labels: Test labels. Shape: (N_test,).
        method: ``"tsne"`` or ``"pca"``.
        seed: Seed of t-SNE / PCA.

    Returns:
        ``data:image/png;base64,...``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    names = list(embeddings)
    ncols = min(len(names), 5)
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 4.4 * nrows), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        x = StandardScaler().fit_transform(embeddings[name])
        if method == "tsne":
            xy = TSNE(2, init="pca", perplexity=30, random_state=seed).fit_transform(x)
        else:
            xy = PCA(2, random_state=seed).fit_transform(x)
        for digit in range(10):
            sel = labels == digit
            ax.scatter(
                xy[sel, 0],
                xy[sel, 1],
                s=7,
                color=cmap(digit),
                alpha=0.8,
                label=str(digit),
                linewidths=0,
            )
            if sel.any():
                cx, cy = np.median(xy[sel], axis=0)
                ax.text(
                    cx,
                    cy,
                    str(digit),
                    fontsize=12,
                    weight="bold",
                    ha="center",
                    va="center",
                    color="black",
                    bbox={"boxstyle": "circle,pad=0.15", "fc": "white", "alpha": 0.7, "lw": 0},
                )
        ax.set_title(TITLES.get(name, name), fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    axes.flat[len(names) - 1].legend(
        title="digit", loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2.5, frameon=False
    )
    fig.suptitle(f"test features, {method.upper()} to 2-D, coloured by digit", fontsize=12)
    fig.tight_layout()
    return figure_to_data_uri(fig)
