"""Small helpers for self-contained HTML reports (no external files, opens offline).

Figures are embedded as base64 PNG data URIs; the style sheet is inline.

Examples:
    >>> print(html_table(["method", "acc"], [["raw <pixels>", 0.97123]]))
    <table>
    <thead><tr><th>method</th><th>acc</th></tr></thead>
    <tbody>
    <tr><td>raw &lt;pixels&gt;</td><td class="num">0.9712</td></tr>
    </tbody>
    </table>
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "esc",
    "figure_to_data_uri",
    "format_value",
    "html_img",
    "html_link",
    "html_page",
    "html_table",
]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1d232a; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
     border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
h3 { font-size: 1.05rem; }
.subtitle { color: #57606a; margin-top: 0; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .92rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .65rem; text-align: left; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { font-weight: 600; }
.ok { color: #1a7f37; } .failed { color: #cf222e; } .skipped { color: #9a6700; }
img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
code, pre { background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; font-size: .88rem; }
pre { padding: .6rem; overflow-x: auto; }
.note { color: #57606a; font-size: .9rem; }
"""


def esc(text: object) -> str:
    """HTML-escape ``str(text)`` (quotes included)."""
    return html.escape(str(text), quote=True)


def format_value(value: Any, digits: int = 4) -> str:
    """Format a table cell: floats with ``digits`` decimals, ``None``/NaN as an en dash.

    Args:
        value: The cell value.
        digits: Decimals for floats.

    Returns:
        The text to show (not yet escaped).
    """
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}f}"
    return str(value)


def html_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    digits: int = 4,
    raw_html_columns: Sequence[int] = (),
    row_classes: Sequence[str] | None = None,
) -> str:
    """Render a table; numbers are right-aligned and formatted with ``digits`` decimals.

    Args:
        headers: Column titles.
        rows: Cell values, one sequence per row.
        digits: Decimals for float cells.
        raw_html_columns: Indices of columns whose cells are already HTML (links); the others
            are escaped.
        row_classes: Optional CSS class per row (e.g. ``"best"``).

    Returns:
        The ``<table>`` element.
    """
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, value in enumerate(row):
            if j in raw_html_columns:
                cells.append(f"<td>{value}</td>")
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                cells.append(f'<td class="num">{esc(format_value(value, digits))}</td>')
            else:
                cells.append(f"<td>{esc(format_value(value, digits))}</td>")
        cls = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (
        "<table>\n<thead><tr>"
        + head
        + "</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table>"
    )


def html_link(href: str, text: str) -> str:
    """Return ``<a href="...">text</a>`` with both parts escaped."""
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def figure_to_data_uri(fig: Any, *, dpi: float = 110, tight: bool = True) -> str:
    """Render a matplotlib figure to a ``data:image/png;base64,...`` URI and close it.

    Args:
        fig: A ``matplotlib.figure.Figure``.
        dpi: Resolution of the PNG.
        tight: Crop to the drawn content (``False`` keeps the figure's exact size, e.g. for a
            drawing at a physical scale such as an ECG paper grid).

    Returns:
        The data URI, for an ``<img src=...>``.
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def html_img(data_uri: str, alt: str) -> str:
    """Return an ``<img>`` element for a data URI."""
    return f'<img src="{esc(data_uri)}" alt="{esc(alt)}">'


def html_page(
    title: str,
    body: str,
    *,
    subtitle: str = "",
    meta: Mapping[str, str] | None = None,
) -> str:
    """Wrap ``body`` in a complete, self-contained HTML5 page.

    Args:
        title: Page title and top heading (escaped).
        body: The page content (HTML).
        subtitle: A line under the heading (escaped).
        meta: Extra ``<meta name=... content=...>`` pairs (e.g. the generator).

    Returns:
        The page.
    """
    metas = "".join(f'<meta name="{esc(k)}" content="{esc(v)}">\n' for k, v in (meta or {}).items())
    sub = f'<p class="subtitle">{esc(subtitle)}</p>\n' if subtitle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{metas}<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n{sub}{body}\n</body>\n</html>\n"
    )
