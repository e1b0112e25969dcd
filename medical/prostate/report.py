"""The per-case HTML report: apex, mid-gland and base axial slices with zone overlays, metrics.

One self-contained file per case (the figure is a PNG data URI), rendered from a Jinja2
template with autoescaping. Zone colours are fixed across all reports (:data:`COLOURS`).
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
from jinja2 import Environment, select_autoescape
from matplotlib.patches import Patch

from medical.prostate import ZONES
from medical.prostate.metrics import MISSING_RULE
from shared.io import atomic_write_text

__all__ = ["COLOURS", "case_report", "slice_positions"]

#: RGB colour of each zone (PZ, TZ, DPU, AFS).
COLOURS: dict[str, tuple[float, float, float]] = {
    "PZ": (0.12, 0.47, 0.71),
    "TZ": (1.00, 0.50, 0.05),
    "DPU": (0.17, 0.75, 0.17),
    "AFS": (0.89, 0.12, 0.55),
}

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Prostate zones: {{ name }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.3em .7em;
text-align:right}th{background:#eee}td:first-child{text-align:left}
.sw{display:inline-block;width:1em;height:1em;vertical-align:middle;margin-right:.3em}
img{max-width:100%}.note{color:#555;font-size:.9em}
</style></head><body>
<h1>Prostate zones: {{ name }}</h1>
<p>Model: {{ model }}. Image: {{ image }}{% if reference %}; reference: {{ reference }}{% endif %}.
Voxel spacing {{ spacing }} mm.</p>
<img alt="apex, mid-gland and base slices with zone overlays" src="{{ figure }}">
<table><tr><th>zone</th><th>predicted volume (mL)</th>
{% if reference %}<th>reference volume (mL)</th><th>Dice</th><th>HD95 (mm)</th>
<th>MASD (mm)</th><th>MASD (voxels)</th>{% endif %}</tr>
{% for row in rows %}<tr><td><span class="sw" style="background:{{ row.colour }}"></span>
{{ row.zone }}</td><td>{{ row.pred_ml }}</td>{% if reference %}<td>{{ row.ref_ml }}</td>
<td>{{ row.dice }}</td><td>{{ row.hd95_mm }}</td><td>{{ row.masd_mm }}</td>
<td>{{ row.masd_vox }}</td>{% endif %}</tr>
{% endfor %}</table>
{% if reference %}<p class="note">{{ rule }}</p>{% endif %}
</body></html>
"""


def slice_positions(labels: np.ndarray) -> tuple[int, int, int]:
    """Axial slice indices (apex, mid-gland, base) of a RAS label volume.

    Apex is the lowest slice (smallest z) holding any zone, base the highest, mid-gland half
    way; an empty volume gives a quarter, half and three quarters of the slices. Reports take
    them from the reference labels when there are some, else from the prediction.

    Examples:
        >>> x = np.zeros((4, 4, 10), np.uint8); x[..., 2:7] = 1
        >>> slice_positions(x)
        (2, 4, 6)
    """
    zs = np.nonzero((labels > 0).any(axis=(0, 1)))[0]
    n = labels.shape[2]
    if zs.size == 0:
        return n // 4, n // 2, min(n - 1, (3 * n) // 4)
    lo, hi = int(zs.min()), int(zs.max())
    return lo, (lo + hi) // 2, hi


def _canonical(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return np.asarray(nib.as_closest_canonical(nib.Nifti1Image(data, affine)).dataobj)


def _figure(image: np.ndarray, labels: np.ndarray, guide: np.ndarray) -> str:
    lo, hi = np.percentile(image, [1, 99])
    picks = slice_positions(guide)
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.2))
    for ax, z, title in zip(axes, picks, ("apex", "mid-gland", "base")):
        ax.imshow(image[:, :, z].T, cmap="gray", origin="lower", vmin=lo, vmax=hi)
        overlay = np.zeros((*labels.shape[:2], 4))
        for k, zone in enumerate(ZONES, start=1):
            overlay[labels[:, :, z] == k] = (*COLOURS[zone], 0.45)
        ax.imshow(overlay.transpose(1, 0, 2), origin="lower", interpolation="nearest")
        ax.set_title(f"{title} (slice {z})")
        ax.set_axis_off()
    handles = [Patch(color=COLOURS[z], label=z) for z in ZONES]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "missing"
    return f"{value:.{digits}f}"


def case_report(
    out: str | os.PathLike[str],
    *,
    name: str,
    model: str,
    source: nib.Nifti1Image,
    labels: np.ndarray,
    metrics: Mapping[str, Mapping[str, Any]] | None = None,
    reference: np.ndarray | None = None,
    reference_name: str = "",
) -> Path:
    """Write the HTML report of one case.

    Args:
        out: The ``.html`` file.
        name: Case name.
        model: Model description.
        source: The source image (its channel 0 is shown).
        labels: Predicted labels on the source grid. Shape: (X, Y, Z).
        metrics: :func:`~medical.prostate.metrics.case_metrics` of the case, if labelled.
        reference: Reference labels on the source grid, if any.
        reference_name: The reference file name.

    Returns:
        The path.
    """
    data = np.asarray(source.dataobj, dtype=np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    image = _canonical(data, source.affine)
    canon_labels = _canonical(labels.astype(np.uint8), source.affine)
    # apex / mid / base from the reference gland when there is one, else from the prediction
    guide = (
        canon_labels if reference is None else _canonical(reference.astype(np.uint8), source.affine)
    )
    spacing = [float(s) for s in source.header.get_zooms()[:3]]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    rows: list[dict[str, str]] = []
    for k, zone in enumerate(ZONES, start=1):
        colour = "#{:02x}{:02x}{:02x}".format(*tuple(int(255 * c) for c in COLOURS[zone]))
        row = {"zone": zone, "colour": colour, "pred_ml": f"{(labels == k).sum() * voxel_ml:.2f}"}
        if reference is not None:
            m = (metrics or {}).get(zone, {})
            absent = m.get("absent", True)
            row.update(
                ref_ml=f"{(reference == k).sum() * voxel_ml:.2f}",
                dice="not scored" if absent else _fmt(m.get("dice")),
                hd95_mm="not scored" if absent else _fmt(m.get("hd95_mm"), 2),
                masd_mm="not scored" if absent else _fmt(m.get("masd_mm"), 2),
                masd_vox="not scored" if absent else _fmt(m.get("masd_vox"), 2),
            )
        rows.append(row)
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    html = env.from_string(_TEMPLATE).render(
        name=name,
        model=model,
        image=getattr(source, "get_filename", lambda: "")() or name,
        reference=reference_name if reference is not None else "",
        spacing=" x ".join(f"{s:.3g}" for s in spacing),
        figure=_figure(image, canon_labels, guide),
        rows=rows,
        rule=MISSING_RULE,
    )
    out = Path(out)
    atomic_write_text(out, html)
    return out


def zone_table(summary: Mapping[str, Mapping[str, Any]], zones: Sequence[str]) -> str:
    """A Markdown table of per-zone means (for ``results.md``)."""
    lines = [
        "| zone | Dice | HD95 (mm) | MASD (mm) | MASD (vox) | cases | missing |",
        "|---|---|---|---|---|---|---|",
    ]
    for zone in zones:
        s = summary.get(zone, {})
        lines.append(
            f"| {zone} | {_fmt(s.get('dice'))} | {_fmt(s.get('hd95_mm'), 2)} | "
            f"{_fmt(s.get('masd_mm'), 2)} | {_fmt(s.get('masd_vox'), 2)} | "
            f"{s.get('n_cases', 0)} | {s.get('n_missing', 0)} |"
        )
    return "\n".join(lines)
