"""HTML helpers: escaping, number formatting, self-contained pages and embedded figures."""

from __future__ import annotations

import base64

from shared.report import (
    figure_to_data_uri,
    format_value,
    html_img,
    html_link,
    html_page,
    html_table,
)


def test_table_escapes_and_formats():
    table = html_table(
        ["a<b", "x"], [["<script>", 0.123456], ["ok", None]], digits=3, row_classes=["best", ""]
    )
    assert "&lt;script&gt;" in table
    assert "<script>" not in table
    assert "a&lt;b" in table
    assert '<td class="num">0.123</td>' in table
    assert '<tr class="best">' in table
    assert "–" in table


def test_raw_html_columns_are_kept():
    table = html_table(["link"], [[html_link("run/a b.html", "a & b")]], raw_html_columns=(0,))
    assert '<a href="run/a b.html">a &amp; b</a>' in table


def test_format_value():
    assert format_value(float("nan")) == "–"
    assert format_value(True) == "yes"
    assert format_value(3) == "3"
    assert format_value(0.5, 2) == "0.50"


def test_page_is_self_contained():
    page = html_page("T & T", "<p>body</p>", subtitle="sub")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>T &amp; T</title>" in page
    assert "<p>body</p>" in page
    assert "http://" not in page
    assert "https://" not in page


def test_figure_is_embedded_as_png():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    uri = figure_to_data_uri(fig, dpi=30)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.get_fignums()  # the figure was closed
    assert html_img(uri, "plot").startswith('<img src="data:image/png;base64,')
