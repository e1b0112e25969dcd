"""Clinical prototype explanation reports: one self-contained HTML file per ECG.

A report shows, for one ECG:

* the record's metadata (every value HTML-escaped);
* the 12-lead trace drawn like a paper ECG: 25 mm/s, 10 mm/mV, 1 mm / 5 mm grid, a 1 mV
  calibration pulse, the standard 3 x 4 layout plus a 10 s lead II rhythm strip;
* the predicted statements with their probabilities, next to the reference statements when
  the record has them;
* for each of the top predictions, the prototypes that drove it: the matching window of the
  patient's trace (highlighted) beside the prototype's source segment from its training ECG,
  with the similarity and the contribution to the logit.

Contributions are exact: the fused logit of statement ``c`` is
``sum_j W[c, j] * (s_j - mean_j) / std_j + b_c`` (see :class:`~medical.ecg.model.ProtoECGNet`),
and the report lists the terms ``W[c, j] * (s_j - mean_j) / std_j`` of the largest prototypes.
With max pooling (the default) the highlighted window is exactly the one whose similarity
entered the sum; with the official mean pooling it is the best window and the similarity shown
is the mean over windows.

Images are PNGs embedded as ``data:`` URIs, so a report opens offline and can be mailed as one
file. The batch mode writes one report per ECG and an ``index.html`` linking them.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medical.ecg.evaluate import sigmoid
from medical.ecg.model import ProtoECGNet
from medical.ecg.train import ECGArrays, LoadedRun, load_data, load_run
from shared.errors import InputError
from shared.io import atomic_write_text

__all__ = ["ExplainOptions", "explain", "render_report", "twelve_lead_png"]

logger = logging.getLogger(__name__)

MM_PER_S = 25.0
MM_PER_MV = 10.0
_DPI = 101.6  # 4 px per mm at 100 % zoom
_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
_LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
_GRID_MINOR = "#f6c6c6"
_GRID_MAJOR = "#e58a8a"
_HIGHLIGHT = "#3b82f6"


@dataclass(frozen=True)
class ExplainOptions:
    """What a report shows.

    Attributes:
        top_predictions: Statements explained with prototypes (the most probable ones).
        prototypes_per_prediction: Prototypes shown per explained statement.
        context_s: Seconds of trace shown on each side of a partial prototype's window.
        min_probability: Statements listed in the prediction table at least this probable
            (the top ``top_predictions`` are always listed).
        max_listed: At most this many predicted statements listed (reference statements are
            always added).
    """

    top_predictions: int = 3
    prototypes_per_prediction: int = 3
    context_s: float = 0.6
    min_probability: float = 0.1
    max_listed: int = 12


# ----------------------------------------------------------------------------- drawing


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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _lead_index(lead_names: Sequence[str]) -> dict[str, int]:
    return {str(n).upper(): i for i, n in enumerate(lead_names)}


def twelve_lead_png(signal: np.ndarray, fs: float, lead_names: Sequence[str] = _LEADS) -> str:
    """The 12-lead ECG as on paper: 3 x 4 leads of 2.5 s, and a 10 s lead II rhythm strip.

    25 mm/s, 10 mm/mV, 1 mm and 5 mm grid lines, a 1 mV calibration pulse per row.

    Args:
        signal: Shape: (12, T), float, in mV.
        fs: Sampling rate in Hz.
        lead_names: Names of the 12 rows of ``signal``.

    Returns:
        A ``data:image/png;base64,...`` URI.
    """
    idx = _lead_index(lead_names)
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
    lead_names: Sequence[str] = _LEADS,
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


# ----------------------------------------------------------------------------- content


def _esc(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "&ndash;"
    return html.escape(str(value), quote=True)


def _descriptions(data: ECGArrays) -> dict[str, str]:
    ds = data.dataset
    if ds is None or getattr(ds, "statements", None) is None:
        return {}
    text = ds.statements["description"]
    out = {str(k): str(v) for k, v in text.items() if isinstance(v, str)}
    if hasattr(ds, "descriptions"):  # aggregated label sets: MI, STTC, ... get a name too
        out.update({str(n): str(d) for n, d in zip(ds.label_names, ds.descriptions())})
    return out


def _meta(data: ECGArrays, row: int) -> dict[str, Any]:
    ds = data.dataset
    meta = getattr(ds, "meta", None)
    if meta is None:
        return {}
    record: dict[str, Any] = meta.iloc[row].to_dict()
    return record


def _signal_mv(data: ECGArrays, row: int) -> np.ndarray:
    ds = data.dataset
    if ds is not None and hasattr(ds, "signal_mv"):
        return np.asarray(ds.signal_mv(row), dtype=np.float32)
    return np.array(data.signals[row], dtype=np.float32)


@dataclass
class _Evidence:
    branch: str
    prototype: int
    column: int
    similarity: float
    contribution: float
    window: int
    patient: tuple[float, float]
    record: dict[str, Any]


@torch.no_grad()
def _analyse(model: ProtoECGNet, x: torch.Tensor) -> dict[str, Any]:
    out = model(x[None])
    logits = out.logits[0].double().numpy()
    probs = sigmoid(logits)
    contrib = model.contributions(out.similarities)[0].numpy()  # (C, P)
    best_window = {
        n: o.window_similarities[0].argmax(dim=-1).numpy() for n, o in out.branches.items()
    }
    return {
        "probs": probs,
        "logits": logits,
        "contrib": contrib,
        "sims": out.similarities[0].numpy(),
        "best_window": best_window,
    }


def _evidence(run: LoadedRun, res: dict[str, Any], c: int, k: int, fs: float) -> list[_Evidence]:
    model = run.model
    assert isinstance(model, ProtoECGNet)
    offsets = model.prototype_offsets()
    by_key = {(r["branch"], r["prototype"]): r for r in run.prototypes}
    order = np.argsort(-res["contrib"][c])[:k]
    out = []
    for col in order:
        name = max((n for n in offsets if offsets[n] <= col), key=lambda n: offsets[n])
        j = int(col - offsets[name])
        branch = model.branch(name)
        w = int(res["best_window"][name][j])
        a, b = branch.window_samples(w)
        out.append(
            _Evidence(
                name,
                j,
                int(col),
                float(res["sims"][col]),
                float(res["contrib"][c, col]),
                w,
                (a / fs, b / fs),
                by_key.get((name, j), {}),
            )
        )
    return out


_BRANCH_TEXT = {
    "rhythm": "rhythm branch (1D, whole 10 s recording)",
    "morphology": "local morphology branch (2D, time-localized window over all 12 leads)",
    "global": "global branch (2D, whole 10 s recording over all 12 leads)",
}


def _evidence_html(
    ev: _Evidence,
    patient: np.ndarray,
    fs: float,
    data: ECGArrays,
    desc: dict[str, str],
    opts: ExplainOptions,
    run: LoadedRun,
) -> str:
    rec = ev.record
    seconds = patient.shape[1] / fs
    partial = ev.branch == "morphology" and (ev.patient[1] - ev.patient[0]) < seconds - 1e-6
    all_leads = list(range(patient.shape[0]))
    names = data.dataset.lead_names if data.dataset is not None else _LEADS
    idx = _lead_index(names)
    rhythm_leads = [idx[n] for n in ("II", "V1") if n in idx] or [0]
    if partial:
        t0, t1 = (
            max(0.0, ev.patient[0] - opts.context_s),
            min(seconds, ev.patient[1] + opts.context_s),
        )
        p_img = strip_png(patient, fs, t0, t1, ev.patient, all_leads, names)
    else:
        p_img = strip_png(patient, fs, 0, seconds, None, rhythm_leads, names)
    src_html = "<p class='muted'>The source ECG of this prototype is not in this data folder.</p>"
    src_id = rec.get("ecg_id")
    if src_id is not None and np.any(data.ecg_ids == int(src_id)):
        srow = data.row_of(int(src_id))
        src = _signal_mv(data, srow)
        s0, s1 = float(rec["start_s"]), float(rec["end_s"])
        if partial:
            t0, t1 = max(0.0, s0 - opts.context_s), min(src.shape[1] / fs, s1 + opts.context_s)
            s_img = strip_png(src, fs, t0, t1, (s0, s1), all_leads, names)
        else:
            s_img = strip_png(src, fs, 0, src.shape[1] / fs, None, rhythm_leads, names)
        src_codes = [n for n, v in zip(data.label_names, data.labels[srow]) if v > 0]
        src_html = (
            f"<img alt='prototype source: ECG {_esc(src_id)}' src='{s_img}'>"
            f"<p class='muted'>Source ECG {_esc(src_id)} (fold {_esc(rec.get('fold'))}), "
            f"statements: {_esc(', '.join(src_codes) or 'none')}</p>"
        )
    where = f"{ev.patient[0]:.2f}&ndash;{ev.patient[1]:.2f} s" if partial else "whole recording"
    proto_cls = str(rec.get("class", "?"))
    src_where = (
        f"{float(rec['start_s']):.2f}&ndash;{float(rec['end_s']):.2f} s "
        f"(samples {int(rec['start_sample'])}&ndash;{int(rec['end_sample'])})"
        if rec and partial
        else "whole recording"
    )
    facts = (
        f"<tr><th>Prototype</th><td>{_esc(ev.branch)} #{ev.prototype}: a prototype of "
        f"<b>{_esc(proto_cls)}</b> ({_esc(desc.get(proto_cls, ''))})</td></tr>"
        f"<tr><th>Branch</th><td>{_esc(_BRANCH_TEXT.get(ev.branch, ev.branch))}</td></tr>"
        f"<tr><th>Patient window</th><td>{where}</td></tr>"
        f"<tr><th>Source window</th><td>{src_where}</td></tr>"
        f"<tr><th>Similarity</th><td>{ev.similarity:.3f}</td></tr>"
        f"<tr><th>Contribution to the logit</th><td>{ev.contribution:+.3f}</td></tr>"
    )
    if rec and not rec.get("class_positive", True):
        facts += (
            "<tr><th>Note</th><td>No training ECG has this prototype's class; it was projected "
            "onto the closest window of any training ECG.</td></tr>"
        )
    return (
        "<div class='evidence'><div class='pair'>"
        "<figure><figcaption>This ECG</figcaption>"
        f"<img alt='patient window' src='{p_img}'></figure>"
        "<figure><figcaption>looks like this part of a training ECG</figcaption>"
        f"{src_html}</figure>"
        f"<table class='facts'>{facts}</table></div></div>"
    )


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1f2937;
max-width:1250px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;font-size:13px} td,th{padding:3px 8px;text-align:left;
vertical-align:top} th{color:#4b5563;font-weight:600}
.meta td,.meta th{border-bottom:1px solid #eee}
.preds td,.preds th{border-bottom:1px solid #eee}
.bar{display:inline-block;height:10px;background:#3b82f6;vertical-align:middle}
.muted{color:#6b7280;font-size:12px;margin:4px 0}
.pair{display:flex;gap:18px;flex-wrap:wrap;align-items:flex-start}
figure{margin:0} figcaption{font-size:12px;color:#374151;margin-bottom:3px}
.evidence{border:1px solid #e5e7eb;border-radius:6px;padding:10px;margin:10px 0}
.facts{max-width:380px} .ref{color:#047857;font-weight:600}
.note{background:#f9fafb;border-left:3px solid #9ca3af;padding:6px 10px;font-size:12px}
img{display:block}
"""


def render_report(
    run: LoadedRun, data: ECGArrays, ecg_id: int, opts: ExplainOptions | None = None
) -> str:
    """The HTML report of one ECG.

    Args:
        run: The trained run.
        data: The data set holding the ECG (and, ideally, the prototypes' source ECGs).
        ecg_id: The ECG.
        opts: What to show.

    Returns:
        A self-contained HTML page.

    Raises:
        InputError: If ``ecg_id`` is not in ``data``.
    """
    opts = opts or ExplainOptions()
    model = run.model
    assert isinstance(model, ProtoECGNet)
    row = data.row_of(ecg_id)
    fs = float(data.sampling_rate)
    x = torch.from_numpy(np.array(data.signals[row], dtype=np.float32))
    res = _analyse(model, x)
    patient = _signal_mv(data, row)
    desc = _descriptions(data)
    meta = _meta(data, row)
    reference = {n for n, v in zip(data.label_names, data.labels[row]) if v > 0}
    probs = res["probs"]
    order = np.argsort(-res["logits"], kind="stable")  # logits: no ties from rounding
    top = [int(c) for c in order[: opts.top_predictions]]
    listed = [int(c) for c in order if probs[c] >= opts.min_probability or int(c) in top]
    listed = listed[: max(opts.max_listed, len(top))]
    listed += [
        data.label_names.index(n)
        for n in sorted(reference)
        if data.label_names.index(n) not in listed
    ]
    sex_code = meta.get("sex")
    if isinstance(sex_code, (int, np.integer)):
        sex_code = {0: "male", 1: "female"}.get(int(sex_code), sex_code)
    meta_rows = [
        ("ECG id", ecg_id),
        ("Patient id", meta.get("patient_id")),
        ("Age", meta.get("age")),
        ("Sex", sex_code),
        ("Recorded", meta.get("recording_date")),
        ("Device", meta.get("device")),
        ("Site", meta.get("site")),
        ("Heart axis", meta.get("heart_axis")),
        ("Fold", int(data.folds[row])),
        ("Report", meta.get("report")),
        ("SCP codes (likelihood)", meta.get("scp_codes")),
    ]
    meta_html = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in meta_rows)
    pred_rows = []
    for c in listed:
        code = data.label_names[c]
        p = float(probs[c])
        ref = "<span class='ref'>&#10003; reference</span>" if code in reference else ""
        pred_rows.append(
            f"<tr><td><b>{_esc(code)}</b></td><td>{_esc(desc.get(code, ''))}</td>"
            f"<td>{p:.3f}</td><td><span class='bar' style='width:{round(120 * p)}px'></span>"
            f"</td><td>{ref}</td></tr>"
        )
    sections = []
    for c in top:
        code = data.label_names[c]
        evidence = _evidence(run, res, c, opts.prototypes_per_prediction, fs)
        body = "".join(_evidence_html(ev, patient, fs, data, desc, opts, run) for ev in evidence)
        shown = sum(ev.contribution for ev in evidence)
        sections.append(
            f"<h3>{_esc(code)}: {_esc(desc.get(code, ''))} &mdash; "
            f"probability {float(probs[c]):.3f}"
            f"{' (reference)' if code in reference else ''}</h3>"
            f"<p class='muted'>Logit {float(res['logits'][c]):+.3f} = bias "
            f"{float(model.fusion.bias[c].detach()):+.3f} + the contributions of all "
            f"{len(res['sims'])} prototypes; the {len(evidence)} largest shown here add "
            f"{shown:+.3f}.</p>{body}"
        )
    pooling = run.config.model.pooling
    note = (
        "Similarities are max-pooled over windows: the highlighted window is the one that "
        "produced the similarity."
        if pooling == "max"
        else "Similarities are mean-pooled over windows (official setting): the highlighted window "
        "is the best-matching one; the similarity shown is the mean over all windows."
    )
    title = f"ECG {ecg_id}: prototype explanation"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_esc(title)}</h1>
<p class="muted">ProtoECGNet run {_esc(run.path.name)} &middot;
label set {_esc(run.config.data.label_set)}
&middot; research prototype, not a medical device.</p>
<h2>Record</h2><table class="meta">{meta_html}</table>
<h2>12-lead ECG</h2>
<p class="muted">25 mm/s, 10 mm/mV, {int(fs)} Hz, after the 0.5 Hz baseline filter. Grid: 1 mm
(0.04 s, 0.1 mV) and 5 mm.</p>
<img alt="12-lead ECG {_esc(ecg_id)}" src="{twelve_lead_png(patient, fs, _names(data))}">
<h2>Predicted statements</h2>
<table class="preds"><tr><th>Code</th><th>Statement</th><th>Probability</th><th></th>
<th>Reference</th></tr>{"".join(pred_rows)}</table>
<h2>Why: the prototypes behind the top predictions</h2>
<p class="note">Each prototype is a segment of a real training ECG. A statement's score adds up
each prototype's similarity to this ECG, weighted by the fusion layer: "contribution" is that
prototype's term in the statement's logit. {note}</p>
{"".join(sections)}
</body></html>
"""


def _names(data: ECGArrays) -> Sequence[str]:
    return data.dataset.lead_names if data.dataset is not None else _LEADS


def _index_html(run: LoadedRun, items: list[tuple[int, str, str]]) -> str:
    rows = "".join(
        f"<tr><td><a href='{html.escape(href)}'>ECG {_esc(i)}</a></td><td>{_esc(top)}</td></tr>"
        for i, href, top in items
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Prototype explanations</title>
<style>{_CSS}</style></head><body>
<h1>Prototype explanations</h1>
<p class="muted">Run {_esc(run.path)} &middot; {len(items)} ECGs.</p>
<table class="preds"><tr><th>ECG</th><th>Top predictions</th></tr>{rows}</table>
</body></html>
"""


def explain(
    run_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    ecg_ids: Sequence[int] = (),
    fold: int | None = None,
    out: str | Path | None = None,
    options: ExplainOptions | None = None,
    progress: bool = True,
) -> list[Path]:
    """Write explanation reports for ECGs of a trained run.

    One ECG (a single ``ecg_ids`` entry, no ``fold``): ``out`` is the HTML file (default
    ``RUN/explanations/ecg_<id>.html``). Several ECGs or a whole ``fold``: ``out`` is a folder
    (default ``RUN/explanations``) with one report per ECG and ``index.html``.

    Args:
        run_dir: A finished ``ecg train`` run folder.
        data_dir: The PTB-XL folder (default: the run's).
        ecg_ids: ECGs to explain.
        fold: Explain every ECG of this ``strat_fold`` (e.g. 10, the test fold).
        out: Output file or folder (see above).
        options: What each report shows.
        progress: Show the progress bar of a first (uncached) data read.

    Returns:
        The written files (reports, then the index if any).

    Raises:
        InputError: If the run folder is not a finished ECG run (e.g. another pipeline's), is a
            baseline without prototypes, an ``ecg_id`` is unknown, the fold is empty, the data
            holds another label set, or nothing was asked for.
    """
    run = load_run(run_dir)
    if not isinstance(run.model, ProtoECGNet):
        raise InputError(
            f"{run.path} holds the black-box baseline ({run.config.model.architecture}); "
            "it has no prototypes to explain."
        )
    if not ecg_ids and fold is None:
        raise InputError("Expected --ecg-id ID (repeatable) or --fold N, but got neither.")
    cfg = run.config.data
    if data_dir is not None:
        from dataclasses import replace

        cfg = replace(cfg, data_dir=str(Path(data_dir).resolve()))
    data = load_data(cfg, progress=progress)
    if list(data.label_names) != list(run.label_names):
        raise InputError(
            f"The data in {cfg.data_dir} has other labels than the run in {run.path} "
            f"({len(data.label_names)} vs {len(run.label_names)}); use the run's label set."
        )
    ids = [int(i) for i in ecg_ids]
    for i in ids:
        data.row_of(i)  # unknown ecg_id -> InputError naming it
    if fold is not None:
        rows = data.rows([fold])
        if len(rows) == 0:
            raise InputError(
                f"Expected ECGs in strat_fold {fold} of {cfg.data_dir}, but there are none."
            )
        ids += [int(data.ecg_ids[r]) for r in rows if int(data.ecg_ids[r]) not in ids]
    opts = options or ExplainOptions()
    single = len(ids) == 1 and fold is None
    if single:
        path = Path(out) if out is not None else run.path / "explanations" / f"ecg_{ids[0]}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, render_report(run, data, ids[0], opts))
        logger.info("wrote %s", path)
        return [path]
    folder = Path(out) if out is not None else run.path / "explanations"
    folder.mkdir(parents=True, exist_ok=True)
    written, items = [], []
    for i in ids:
        path = folder / f"ecg_{i}.html"
        page = render_report(run, data, i, opts)
        atomic_write_text(path, page)
        written.append(path)
        res = _analyse(
            run.model, torch.from_numpy(np.array(data.signals[data.row_of(i)], dtype=np.float32))
        )
        top = ", ".join(
            f"{data.label_names[c]} {res['probs'][c]:.2f}"
            for c in np.argsort(-res["logits"], kind="stable")[: opts.top_predictions]
        )
        items.append((i, path.name, top))
    index = folder / "index.html"
    atomic_write_text(index, _index_html(run, items))
    logger.info("wrote %d reports and %s", len(written), index)
    return [*written, index]
