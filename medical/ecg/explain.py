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
file. :func:`medical.ecg.commands.explain` writes the files (one report per ECG, and an
``index.html`` linking a batch of them).
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from medical.ecg.arrays import ECGArrays
from medical.ecg.evaluate import sigmoid
from medical.ecg.infer import LoadedRun
from medical.ecg.model import ProtoECGNet
from medical.ecg.plots import LEADS, lead_index, strip_png, twelve_lead_png

__all__ = [
    "ExplainOptions",
    "index_html",
    "render_report",
    "top_predictions",
    "twelve_lead_png",
]

logger = logging.getLogger(__name__)


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


def _names(data: ECGArrays) -> Sequence[str]:
    return data.dataset.lead_names if data.dataset is not None else LEADS


@dataclass
class _Evidence:
    """One prototype's part in one statement's logit."""

    branch: str
    prototype: int
    column: int
    similarity: float  # raw, on the branch's scale
    train_mean: float  # mean raw similarity over the training ECGs
    z: float  # (similarity - train_mean) / training std
    percentile: float | None  # standing among the training ECGs, 0-100
    weight: float  # fusion weight of this prototype for the statement
    contribution: float  # its term in the logit, relative to an average training ECG
    window: int
    patient: tuple[float, float]
    record: dict[str, Any]

    @property
    def resembles(self) -> bool:
        """Whether the similarity is at or above the training average."""
        return self.similarity >= self.train_mean


@torch.no_grad()
def _analyse(run: LoadedRun, x: torch.Tensor) -> dict[str, Any]:
    """Logits, probabilities and each prototype's contribution for one ECG.

    ``contrib[c, j] = W[c, j] * (s_j - m_j) / d_j`` with ``m``, ``d`` the fusion layer's
    standardization (training mean and std). With the official raw fusion input ``d = 1`` and
    ``m`` is the training mean of ``s_j``; ``baseline[c] = b_c + sum_j W[c, j] * m_j / d_j`` is
    then the logit of an ECG whose every similarity sits at its training mean, and
    ``logit = baseline + contrib.sum(-1)`` exactly in both settings.
    """
    model = run.model
    assert isinstance(model, ProtoECGNet)
    out = model(x[None])
    logits = out.logits[0].double().numpy()
    sims = out.similarities[0].double().numpy()
    weight = model.fusion.weight.detach().double().numpy()
    mean = model.fusion_mean.double().numpy()
    scale = model.fusion_std.double().numpy()
    stats = run.similarity_stats
    if stats is not None:
        train_mean = stats["mean"].double().numpy()
        train_std = stats["std"].double().numpy()
        quantiles: np.ndarray | None = stats["quantiles"].double().numpy()
    else:  # a run without recorded statistics: the fusion layer's own
        train_mean, train_std, quantiles = mean, scale, None
    standardized = bool(np.any(mean != 0) or np.any(scale != 1))
    centre = mean if standardized else train_mean
    contrib = weight * ((sims - centre) / scale)[None, :]  # (C, P)
    baseline = model.fusion.bias.detach().double().numpy() + weight @ ((centre - mean) / scale)
    percentile = None
    if quantiles is not None:
        grid = np.linspace(0.0, 100.0, quantiles.shape[0])
        percentile = np.array(
            [np.interp(s, quantiles[:, j], grid) for j, s in enumerate(sims)], dtype=np.float64
        )
    return {
        "logits": logits,
        "probs": sigmoid(logits),
        "contrib": contrib,
        "baseline": baseline,
        "sims": sims,
        "weight": weight,
        "train_mean": train_mean,
        "z": (sims - train_mean) / np.maximum(train_std, 1e-12),
        "percentile": percentile,
        "best_window": {
            n: o.window_similarities[0].argmax(dim=-1).numpy() for n, o in out.branches.items()
        },
    }


def _evidence_of(run: LoadedRun, res: dict[str, Any], c: int, col: int, fs: float) -> _Evidence:
    model = run.model
    assert isinstance(model, ProtoECGNet)
    offsets = model.prototype_offsets()
    name = max((n for n in offsets if offsets[n] <= col), key=lambda n: offsets[n])
    j = int(col - offsets[name])
    w = int(res["best_window"][name][j])
    a, b = model.branch(name).window_samples(w)
    record: dict[str, Any] = next(
        (r for r in run.prototypes if (r["branch"], r["prototype"]) == (name, j)), {}
    )
    pct = res["percentile"]
    return _Evidence(
        name,
        j,
        int(col),
        float(res["sims"][col]),
        float(res["train_mean"][col]),
        float(res["z"][col]),
        None if pct is None else float(pct[col]),
        float(res["weight"][c, col]),
        float(res["contrib"][c, col]),
        w,
        (a / fs, b / fs),
        record,
    )


def _evidence(run: LoadedRun, res: dict[str, Any], c: int, k: int, fs: float) -> list[_Evidence]:
    """The ``k`` prototypes that raise statement ``c``'s logit the most (positive terms)."""
    order = np.argsort(-res["contrib"][c], kind="stable")[:k]
    return [_evidence_of(run, res, c, int(col), fs) for col in order if res["contrib"][c, col] > 0]


def _against(run: LoadedRun, res: dict[str, Any], c: int, k: int, fs: float) -> list[_Evidence]:
    """The ``k`` prototypes that lower statement ``c``'s logit the most (negative terms)."""
    order = np.argsort(res["contrib"][c], kind="stable")[:k]
    return [_evidence_of(run, res, c, int(col), fs) for col in order if res["contrib"][c, col] < 0]


_BRANCH_TEXT = {
    "rhythm": "rhythm branch (1D, whole 10 s recording)",
    "morphology": "local morphology branch (2D, time-localized window over all 12 leads)",
    "global": "global branch (2D, whole 10 s recording over all 12 leads)",
}


def _scale_text(run: LoadedRun) -> str:
    """Each branch's similarity scale, explained once."""
    model = run.model
    assert isinstance(model, ProtoECGNet)
    items = []
    for name in model.branches:
        b = model.branch(name)
        factor = f"{b.scale:.3g} &times; " if b.scale != 1 else ""
        span = f"from &minus;{b.scale:.3g} to {b.scale:.3g}"
        if b.kind == "1d":
            how = "the cosine between the whole recording's latent vector and the prototype"
        elif b.num_windows == 1:
            how = f"{factor}the cosine between the whole recording's latent map and the prototype"
        else:
            pool = "the best" if b.pooling == "max" else "the mean over all"
            how = (
                f"{factor}the cosine between a {b.proto_time_len}-step latent window "
                f"({b.window_samples(0)[1] / run_sampling_rate(run):.2f} s) and the prototype, "
                f"{pool} of the {b.num_windows} windows"
            )
        items.append(f"<li><b>{_esc(name)}</b>: {how}; {span}.</li>")
    return (
        "<ul>" + "".join(items) + "</ul><p class='muted'>The latent features are sigmoid "
        "outputs, so the cosines of all ECGs lie close together (often within a few "
        "hundredths): a raw similarity means little on its own. Read it against the training "
        "ECGs: their mean, and where this ECG stands among them (percentile, and the "
        "standardized value z = (similarity &minus; training mean) / training std).</p>"
    )


def run_sampling_rate(run: LoadedRun) -> float:
    """Sampling rate of the run's data (Hz)."""
    return float(run.config.data.sampling_rate)


def _standing(ev: _Evidence) -> str:
    where = "above" if ev.resembles else "below"
    pct = "" if ev.percentile is None else f"percentile {ev.percentile:.0f}, "
    return (
        f"{ev.similarity:.3f} (training mean {ev.train_mean:.3f}; this ECG: {pct}"
        f"z = {ev.z:+.2f}, {where} average)"
    )


def _evidence_html(
    ev: _Evidence,
    code: str,
    patient: np.ndarray,
    fs: float,
    sources: ECGArrays | None,
    desc: dict[str, str],
    opts: ExplainOptions,
    run: LoadedRun,
) -> str:
    rec = ev.record
    seconds = patient.shape[1] / fs
    partial = (ev.patient[1] - ev.patient[0]) < seconds - 1e-6
    all_leads = list(range(patient.shape[0]))
    names = _names(sources) if sources is not None else LEADS
    idx = lead_index(names)
    if ev.branch == "rhythm":  # the rhythm prototype covers all leads; II and V1 are drawn
        shown = [idx[n] for n in ("II", "V1") if n in idx] or [0]
        leads_note = " (rhythm strips II and V1; the prototype covers all 12 leads)"
    else:
        shown, leads_note = all_leads, ""
    if partial:
        t0, t1 = (
            max(0.0, ev.patient[0] - opts.context_s),
            min(seconds, ev.patient[1] + opts.context_s),
        )
        p_img = strip_png(patient, fs, t0, t1, ev.patient, all_leads, names)
    else:
        p_img = strip_png(patient, fs, 0, seconds, None, shown, names)
    projected = bool(rec) and run.config.stages.project
    if not projected:
        src_html = (
            "<p class='muted'>This prototype is a learned latent vector, not a segment of a "
            "training ECG (prototype projection was off for this run): there is no ECG segment "
            "to show.</p>"
        )
    else:
        src_html = (
            "<p class='muted'>The training ECG this prototype was taken from is not available "
            "(see the data note at the top).</p>"
        )
        src_id = rec.get("ecg_id")
        if sources is not None and src_id is not None and np.any(sources.ecg_ids == int(src_id)):
            srow = sources.row_of(int(src_id))
            src = _signal_mv(sources, srow)
            s0, s1 = float(rec["start_s"]), float(rec["end_s"])
            if partial:
                t0, t1 = max(0.0, s0 - opts.context_s), min(src.shape[1] / fs, s1 + opts.context_s)
                s_img = strip_png(src, fs, t0, t1, (s0, s1), all_leads, names)
            else:
                s_img = strip_png(src, fs, 0, src.shape[1] / fs, None, shown, names)
            src_codes = [n for n, v in zip(sources.label_names, sources.labels[srow]) if v > 0]
            src_html = (
                f"<img alt='prototype source: ECG {_esc(src_id)}' src='{s_img}'>"
                f"<p class='muted'>The prototype: training ECG {_esc(src_id)} (fold "
                f"{_esc(rec.get('fold'))}), statements: {_esc(', '.join(src_codes) or 'none')}"
                f"{leads_note}</p>"
            )
    if ev.resembles:
        caption = "resembles this prototype (similarity above its training average)"
    else:
        caption = "differs from this prototype (similarity below its training average)"
    where = f"{ev.patient[0]:.2f}&ndash;{ev.patient[1]:.2f} s" if partial else "whole recording"
    proto_cls = str(rec.get("class", "?")) if rec else _class_of(run, ev)
    src_where = "&ndash;"
    if projected:
        src_where = (
            f"{float(rec['start_s']):.2f}&ndash;{float(rec['end_s']):.2f} s "
            f"(samples {int(rec['start_sample'])}&ndash;{int(rec['end_sample'])})"
            if partial
            else "whole recording"
        )
    sign = "positive" if ev.weight > 0 else "negative"
    role = "resemblance supports" if ev.weight > 0 else "resemblance argues against"
    facts = (
        f"<tr><th>Prototype</th><td>{_esc(ev.branch)} #{ev.prototype}: a prototype of "
        f"<b>{_esc(proto_cls)}</b> ({_esc(desc.get(proto_cls, ''))})</td></tr>"
        f"<tr><th>Branch</th><td>{_esc(_BRANCH_TEXT.get(ev.branch, ev.branch))}</td></tr>"
        f"<tr><th>Window in this ECG</th><td>{where}</td></tr>"
        f"<tr><th>Source window</th><td>{src_where}</td></tr>"
        f"<tr><th>Similarity</th><td>{_standing(ev)}</td></tr>"
        f"<tr><th>Fusion weight for {_esc(code)}</th><td>{ev.weight:+.3f} ({sign}: "
        f"{role} {_esc(code)})</td></tr>"
        f"<tr><th>Contribution to the logit</th><td>{ev.contribution:+.3f}</td></tr>"
    )
    if rec and not rec.get("class_positive", True):
        facts += (
            "<tr><th>Note</th><td>No training ECG has this prototype's class; it was projected "
            "onto the closest window of any training ECG.</td></tr>"
        )
    kind = "resembles" if ev.resembles else "differs"
    return (
        f"<div class='evidence {kind}'><div class='pair'>"
        "<figure><figcaption>This ECG</figcaption>"
        f"<img alt='patient window' src='{p_img}'></figure>"
        f"<figure><figcaption>{caption}</figcaption>"
        f"{src_html}</figure>"
        f"<table class='facts'>{facts}</table></div></div>"
    )


def _class_of(run: LoadedRun, ev: _Evidence) -> str:
    model = run.model
    assert isinstance(model, ProtoECGNet)
    cls = int(model.branch(ev.branch).prototype_classes()[ev.prototype])
    return run.label_names[run.label_index[ev.branch][cls]]


def _against_html(evidence: list[_Evidence], run: LoadedRun, desc: dict[str, str]) -> str:
    if not evidence:
        return ""
    rows = "".join(
        f"<tr><td>{_esc(ev.branch)} #{ev.prototype}</td>"
        f"<td>{_esc(str(ev.record.get('class')) if ev.record else _class_of(run, ev))}</td>"
        f"<td>{'resembles' if ev.resembles else 'differs from'}: {_standing(ev)}</td>"
        f"<td>{ev.weight:+.3f}</td><td>{ev.contribution:+.3f}</td></tr>"
        for ev in evidence
    )
    return (
        "<p class='muted'>Strongest evidence against:</p><table class='preds'><tr>"
        "<th>Prototype</th><th>Class</th><th>Similarity</th><th>Weight</th>"
        f"<th>Contribution</th></tr>{rows}</table>"
    )


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1f2937;
max-width:1250px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px} h4{font-size:13px;margin:12px 0 4px;color:#374151}
table{border-collapse:collapse;font-size:13px} td,th{padding:3px 8px;text-align:left;
vertical-align:top} th{color:#4b5563;font-weight:600}
.meta td,.meta th{border-bottom:1px solid #eee}
.preds td,.preds th{border-bottom:1px solid #eee}
.bar{display:inline-block;height:10px;background:#3b82f6;vertical-align:middle}
.muted{color:#6b7280;font-size:12px;margin:4px 0}
.pair{display:flex;gap:18px;flex-wrap:wrap;align-items:flex-start}
figure{margin:0} figcaption{font-size:12px;color:#374151;margin-bottom:3px}
.evidence{border:1px solid #e5e7eb;border-radius:6px;padding:10px;margin:10px 0}
.evidence.differs{border-left:4px solid #f59e0b} .evidence.resembles{border-left:4px solid #3b82f6}
.facts{max-width:420px} .ref{color:#047857;font-weight:600}
.note{background:#f9fafb;border-left:3px solid #9ca3af;padding:6px 10px;font-size:12px}
.warn{background:#fffbeb;border-left:3px solid #f59e0b;padding:6px 10px;font-size:12px}
img{display:block}
"""


def _not_learned(run: LoadedRun) -> set[int]:
    """Columns of statements without a single training ECG (never a prediction)."""
    if run.train_positives is None:
        return set()
    return {c for c, n in enumerate(run.train_positives) if n == 0}


def render_report(
    run: LoadedRun,
    data: ECGArrays,
    ecg_id: int,
    opts: ExplainOptions | None = None,
    *,
    sources: ECGArrays | Literal["same"] | None = "same",
    data_note: str = "",
) -> str:
    """The HTML report of one ECG.

    Args:
        run: The trained run.
        data: The data set holding the ECG.
        ecg_id: The ECG.
        opts: What to show.
        sources: The run's training data, where the prototypes' source segments are read
            (``"same"``: ``data``; ``None``: not available, no source segment is drawn).
        data_note: A warning shown at the top (e.g. the ECG comes from other data than the
            run's).

    Returns:
        A self-contained HTML page.

    Raises:
        InputError: If ``ecg_id`` is not in ``data``.
    """
    opts = opts or ExplainOptions()
    model = run.model
    assert isinstance(model, ProtoECGNet)
    src_data = data if isinstance(sources, str) else sources
    row = data.row_of(ecg_id)
    fs = float(data.sampling_rate)
    x = torch.from_numpy(np.array(data.signals[row], dtype=np.float32))
    res = _analyse(run, x)
    patient = _signal_mv(data, row)
    desc = _descriptions(data)
    meta = _meta(data, row)
    reference = {n for n, v in zip(data.label_names, data.labels[row]) if v > 0}
    probs = res["probs"]
    unlearned = _not_learned(run)
    order = [int(c) for c in np.argsort(-res["logits"], kind="stable") if int(c) not in unlearned]
    top = order[: opts.top_predictions]
    listed = [c for c in order if probs[c] >= opts.min_probability or c in top]
    listed = listed[: max(opts.max_listed, len(top))]
    listed += [
        data.label_names.index(n)
        for n in sorted(reference)
        if data.label_names.index(n) not in listed and data.label_names.index(n) not in unlearned
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
    unlearned_html = ""
    if unlearned:
        items = ", ".join(
            f"<b>{_esc(data.label_names[c])}</b>"
            + (
                " <span class='ref'>&#10003; reference</span>"
                if data.label_names[c] in reference
                else ""
            )
            for c in sorted(unlearned)
        )
        unlearned_html = (
            f"<h3>Not learned (no training example)</h3><p class='muted'>The training ECGs of "
            f"this run hold none of these {len(unlearned)} statements, so the model cannot "
            f"predict them and no probability is shown: {items}.</p>"
        )
    sections = []
    for c in top:
        code = data.label_names[c]
        evidence = _evidence(run, res, c, opts.prototypes_per_prediction, fs)
        groups = []
        for resembles, title in (
            (True, f"This ECG resembles these prototypes more than the average training ECG "
                   f"does, and their resemblance supports {code}"),
            (False, f"This ECG differs from these prototypes more than the average training "
                    f"ECG does; their resemblance argues against {code}, so the difference "
                    f"supports it"),
        ):  # fmt: skip
            chosen = [ev for ev in evidence if ev.resembles == resembles]
            if chosen:
                body = "".join(
                    _evidence_html(ev, code, patient, fs, src_data, desc, opts, run)
                    for ev in chosen
                )
                groups.append(f"<h4>{'Resembles' if resembles else 'Differs from'}: "
                              f"{_esc(title)}</h4>{body}")  # fmt: skip
        shown = sum(ev.contribution for ev in evidence)
        against = _against(run, res, c, opts.prototypes_per_prediction, fs)
        sections.append(
            f"<h3>{_esc(code)}: {_esc(desc.get(code, ''))} &mdash; "
            f"probability {float(probs[c]):.3f}"
            f"{' (reference)' if code in reference else ''}</h3>"
            f"<p class='muted'>Logit {float(res['logits'][c]):+.3f} = baseline "
            f"{float(res['baseline'][c]):+.3f} (an ECG whose every similarity sits at its "
            f"training mean) + the contributions of all {len(res['sims'])} prototypes; the "
            f"{len(evidence)} largest shown here add {shown:+.3f}.</p>"
            + "".join(groups)
            + _against_html(against, run, desc)
        )
    pooling = run.config.model.pooling
    note = (
        "Window similarities are max-pooled: the highlighted window is the one that produced "
        "the similarity."
        if pooling == "max"
        else "Window similarities are mean-pooled (official setting): the highlighted window "
        "is the best-matching one; the similarity is the mean over all windows."
    )
    projected = run.config.stages.project and bool(run.prototypes)
    what = (
        "Each prototype was projected onto a window of a real training ECG, shown beside this "
        "ECG's matching window."
        if projected
        else "Prototype projection was off for this run: prototypes are learned latent "
        "vectors, not segments of training ECGs."
    )
    warning = f"<p class='warn'>{_esc(data_note)}</p>" if data_note else ""
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
{warning}
<h2>Record</h2><table class="meta">{meta_html}</table>
<h2>12-lead ECG</h2>
<p class="muted">25 mm/s, 10 mm/mV, {int(fs)} Hz, after the 0.5 Hz baseline filter. Grid: 1 mm
(0.04 s, 0.1 mV) and 5 mm.</p>
<img alt="12-lead ECG {_esc(ecg_id)}" src="{twelve_lead_png(patient, fs, _names(data))}">
<h2>Predicted statements</h2>
<table class="preds"><tr><th>Code</th><th>Statement</th><th>Probability</th><th></th>
<th>Reference</th></tr>{"".join(pred_rows)}</table>
<p class="note">How to read a probability: each statement has its own output (several can be
high at once; they do not add up to 1). The model was trained with class-weighted BCE, which
raises the outputs of rare statements, and it was not calibrated: use a probability to rank
statements and compare ECGs, not as the chance that the statement is true. No decision
threshold was tuned.</p>
{unlearned_html}
<h2>Why: the prototypes behind the top predictions</h2>
<p class="note">{what} A statement's logit is a baseline plus one term per prototype: the
fusion weight of the prototype for that statement times how far this ECG's similarity to it lies
from the training mean (in training standard deviations). A prototype therefore raises a
statement in two ways: this ECG <b>resembles</b> it more than usual and its weight is positive,
or this ECG <b>differs from</b> it more than usual and its weight is negative (its resemblance
would argue against the statement). {note}</p>
<h3>Reading similarities</h3>{_scale_text(run)}
{"".join(sections)}
</body></html>
"""


def top_predictions(run: LoadedRun, data: ECGArrays, ecg_id: int, k: int) -> str:
    """The ``k`` most probable learned statements of one ECG, e.g. ``"SR 0.91, IMI 0.62"``."""
    x = torch.from_numpy(np.array(data.signals[data.row_of(ecg_id)], dtype=np.float32))
    res = _analyse(run, x)
    unlearned = _not_learned(run)
    order = [int(c) for c in np.argsort(-res["logits"], kind="stable") if c not in unlearned]
    return ", ".join(f"{data.label_names[c]} {res['probs'][c]:.2f}" for c in order[:k])


def index_html(run: LoadedRun, items: list[tuple[int, str, str]]) -> str:
    """The index page of a batch of reports: ``(ecg_id, file name, top predictions)`` rows."""
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
