"""ECG drawings for the explanation reports, as on paper: 25 mm/s, 10 mm/mV, 1 mm / 5 mm grid.

Every figure is a PNG embedded as a ``data:`` URI (:func:`twelve_lead_png`, :func:`strip_png`),
so a report opens offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shared.report import figure_to_data_uri

__all__ = ["LEADS", "MM_PER_MV", "MM_PER_S", "lead_index", "strip_png", "twelve_lead_png"]

MM_PER_S = 25.0
MM_PER_MV = 10.0
_DPI = 101.6  # 4 px per mm at 100 % zoom
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
_LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
_GRID_MINOR = "#f6c6c6"
_GRID_MAJOR = "#e58a8a"
_HIGHLIGHT = "#3b82f6"


def _figure(width_mm: float, height_mm: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_mm / 25.4, height_mm / 25.4), dpi=_DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width_mm)
    ax.set_ylim(0, height_mm)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _grid(ax: Any, x0: float, x1: float, y0: float, y1: float) -> None:
    from matplotlib.collections import LineCollection

    for step, color, lw in ((1.0, _GRID_MINOR, 0.35), (5.0, _GRID_MAJOR, 0.7)):
        xs = np.arange(x0, x1 + 1e-6, step)
        ys = np.arange(y0, y1 + 1e-6, step)
        segs = [((x, y0), (x, y1)) for x in xs] + [((x0, y), (x1, y)) for y in ys]
        ax.add_collection(LineCollection(segs, colors=color, linewidths=lw, zorder=0))


def _calibration(ax: Any, x: float, baseline: float) -> float:
    """Draw a 1 mV, 0.2 s calibration pulse; return where the trace may start (mm)."""
    w = 0.2 * MM_PER_S
    ax.plot(
        [x, x + 1, x + 1, x + 1 + w, x + 1 + w, x + 2 + w],
        [baseline, baseline, baseline + MM_PER_MV, baseline + MM_PER_MV, baseline, baseline],
        color="black",
        lw=0.8,
        zorder=3,
    )
    return x + 2 + w + 1


def _trace(ax: Any, sig: np.ndarray, fs: float, x0: float, baseline: float) -> None:
    t_mm = np.arange(len(sig)) / fs * MM_PER_S
    ax.plot(x0 + t_mm, baseline + sig * MM_PER_MV, color="black", lw=0.7, zorder=3)


def _png(fig: Any) -> str:
    return figure_to_data_uri(fig, dpi=_DPI, tight=False)


def lead_index(lead_names: Sequence[str]) -> dict[str, int]:
    """Row of each lead name (upper case) in ``lead_names``."""
    return {str(n).upper(): i for i, n in enumerate(lead_names)}


def twelve_lead_png(signal: np.ndarray, fs: float, lead_names: Sequence[str] = LEADS) -> str:
    """The 12-lead ECG as on paper: 3 x 4 leads of 2.5 s, and a 10 s lead II rhythm strip.

    25 mm/s, 10 mm/mV, 1 mm and 5 mm grid lines, a 1 mV calibration pulse per row.

    Args:
        signal: Shape: (12, T), float, in mV.
        fs: Sampling rate in Hz.
        lead_names: Names of the 12 rows of ``signal``.

    Returns:
        A ``data:image/png;base64,...`` URI.
    """
    idx = lead_index(lead_names)
    seconds = signal.shape[1] / fs
    row_h = 30.0
    left = 12.0
    width = left + seconds * MM_PER_S + 4
    height = row_h * 4 + 6
    fig, ax = _figure(width, height)
    _grid(ax, 0, width, 0, height)
    col_s = seconds / 4
    for r, row in enumerate([*_LAYOUT, ("II",)]):
        baseline = height - row_h * (r + 0.6)
        x = _calibration(ax, 1.0, baseline)
        x = max(x, left)
        for c, lead in enumerate(row):
            i = idx.get(lead.upper())
            if i is None:
                continue
            if len(row) == 1:
                seg, start = signal[i], 0.0
            else:
                a, b = round(c * col_s * fs), round((c + 1) * col_s * fs)
                seg, start = signal[i, a:b], c * col_s
            _trace(ax, seg, fs, x + start * MM_PER_S, baseline)
            ax.text(x + start * MM_PER_S + 1, baseline + 9, lead, fontsize=7, zorder=4)
            if c > 0:
                sx = x + start * MM_PER_S
                ax.plot([sx, sx], [baseline - 3, baseline + 3], color="black", lw=0.8, zorder=4)
    return _png(fig)


def strip_png(
    signal: np.ndarray,
    fs: float,
    start_s: float,
    end_s: float,
    highlight: tuple[float, float] | None,
    leads: Sequence[int],
    lead_names: Sequence[str] = LEADS,
    spacing_mv: float = 1.4,
) -> str:
    """Stacked leads over ``[start_s, end_s]`` on the paper grid, a window highlighted.

    Args:
        signal: Shape: (12, T), float, in mV.
        fs: Sampling rate in Hz.
        start_s: First second shown.
        end_s: Last second shown.
        highlight: ``(from_s, to_s)`` shaded and outlined, or ``None``.
        leads: Rows of ``signal`` to draw, top to bottom.
        lead_names: Names of the rows.
        spacing_mv: Vertical distance between leads (mV).

    Returns:
        A ``data:image/png;base64,...`` URI.
    """
    from matplotlib.patches import Rectangle

    a, b = max(0, round(start_s * fs)), min(signal.shape[1], round(end_s * fs))
    row_h = spacing_mv * MM_PER_MV
    left = 10.0
    width = left + (b - a) / fs * MM_PER_S + 2
    height = row_h * len(leads) + 4
    fig, ax = _figure(width, height)
    _grid(ax, 0, width, 0, height)
    if highlight is not None:
        h0 = left + (max(highlight[0], a / fs) - a / fs) * MM_PER_S
        h1 = left + (min(highlight[1], b / fs) - a / fs) * MM_PER_S
        ax.add_patch(
            Rectangle(
                (h0, 0.5),
                h1 - h0,
                height - 1,
                facecolor=_HIGHLIGHT,
                alpha=0.13,
                edgecolor=_HIGHLIGHT,
                lw=1.2,
                zorder=1,
            )
        )
    for k, i in enumerate(leads):
        baseline = height - 2 - row_h * (k + 0.55)
        _trace(ax, signal[i, a:b], fs, left, baseline)
        ax.text(1, baseline - 1, str(lead_names[i]), fontsize=6.5, zorder=4)
    return _png(fig)
