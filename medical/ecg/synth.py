"""Synthetic 12-lead ECGs written in the exact PTB-XL layout (``contrasuite ecg synth``).

The real loader (:func:`medical.ecg.load_ptbxl`) is the only loader: this module writes WFDB
records (``records100/00000/00001_lr.{hea,dat}``, ``records500/...``, format 16, 1 µV per unit,
leads I, II, III, AVR, AVL, AVF, V1-V6 as PTB-XL's headers spell them), ``ptbxl_database.csv``
with the published columns (``scp_codes`` as a dict string with likelihoods, ``strat_fold``
1-10, ``filename_lr``/``filename_hr``) and ``scp_statements.csv`` with the 71 statements.

The signal model
----------------
A beat is a sum of Gaussian waves (P, septal q, R, S, T) plus an ST-segment plateau, placed
relative to the R peak (a McSharry-style sum-of-Gaussians model). Each wave has a *frontal-plane
vector* (amplitude, angle) and six *precordial amplitudes*:

* the limb leads follow from the frontal vector exactly as a real heart's do: I = A cos θ,
  II = A cos(θ - 60°), then III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2
  (Einthoven and Goldberger, so every synthetic ECG satisfies III = II - I);
* V1-V6 take the wave's precordial amplitudes (R-wave progression from a small r and deep S
  in V1 to a tall R in V5).

Noise (white noise, baseline wander of 0.05-0.5 Hz, 50 Hz mains at 500 Hz) is added to the
eight independent leads before the four derived ones are computed, as electrode noise is.
Signals are generated at 500 Hz; the 100 Hz records are the 500 Hz ones decimated with an
anti-aliasing filter, as PTB-XL's are.

Classes (each learnable from the signal), by ProtoECGNet branch:

=========  ==========================================================================
rhythm     ``SR`` 60-95 bpm; ``STACH`` 102-145 bpm; ``SBRAD`` 40-57 bpm; ``AFIB``:
           irregular RR (coefficient of variation 0.15-0.3), no P waves, 4.5-7 Hz
           fibrillatory waves (largest in V1 and the inferior leads)
morphology ``IMI``: pathological Q waves (40 ms, 0.3-0.6 mV) in II, III, aVF; ``ASMI``:
           QS complexes in V1-V3; ``CLBBB``: QRS 140-170 ms, broad notched R in I, aVL,
           V5-V6, deep broad S in V1-V3, discordant ST-T; ``CRBBB``: QRS 120-140 ms, rsR'
           in V1-V2, broad S in I, aVL, V5-V6; ``ISCLA`` (+ ``STD_``): ST depression
           0.1-0.25 mV in I, aVL, V4-V6 with flat T; ``STE_``: ST elevation 0.15-0.35 mV
           in V1-V4; ``LVH``: R in V5 ~3 mV, S in V2 ~2.5 mV
global     ``NORM``: no abnormality in sinus rhythm; ``DIG``: sagging ST depression
           in every lead with an upright T, low T, short QT
=========  ==========================================================================

The superdiagnostic classes are all covered (NORM; MI: IMI, ASMI; CD: CLBBB, CRBBB; STTC:
ISCLA, DIG; HYP: LVH). Folds are stratified by label combination and keep a patient's ECGs
together.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.signal
from tqdm.auto import tqdm

from medical.ecg.data import LEAD_NAMES, RECORD_SECONDS, SAMPLING_RATES
from medical.ecg.evaluate import sigmoid
from shared.errors import InputError
from shared.io import atomic_open, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "RHYTHM_CLASSES",
    "STATEMENT_TABLE",
    "SYNTH_CODES",
    "EcgParams",
    "sample_codes",
    "simulate_ecg",
    "statements_frame",
    "write_synthetic_ptbxl",
]

# --------------------------------------------------------------------------------------------
# scp_statements.csv: the 71 statements of PTB-XL v1.0.3 (code | description | diagnostic |
# form | rhythm | diagnostic_class | diagnostic_subclass | Statement Category), in file order.
_STATEMENTS = """\
NDT|non-diagnostic T abnormalities|1|1||STTC|STTC|other ST-T descriptive statements
NST_|non-specific ST changes|1|1||STTC|NST_|Basic roots for coding ST-T changes and abnormalities
DIG|digitalis-effect|1|1||STTC|STTC|other ST-T descriptive statements
LNGQT|long QT-interval|1|1||STTC|STTC|other ST-T descriptive statements
NORM|normal ECG|1|||NORM|NORM|Normal/abnormal
IMI|inferior myocardial infarction|1|||MI|IMI|Myocardial Infarction
ASMI|anteroseptal myocardial infarction|1|||MI|AMI|Myocardial Infarction
LVH|left ventricular hypertrophy|1|||HYP|LVH|Ventricular Hypertrophy
LAFB|left anterior fascicular block|1|||CD|LAFB/LPFB|Intraventricular and intra-atrial Conduction disturbances
ISC_|non-specific ischemic|1|||STTC|ISC_|Basic roots for coding ST-T changes and abnormalities
IRBBB|incomplete right bundle branch block|1|||CD|IRBBB|Intraventricular and intra-atrial Conduction disturbances
1AVB|first degree AV block|1|||CD|_AVB|Sinus node dysfunction, atrial and AV-conduction defects
IVCD|non-specific intraventricular conduction disturbance (block)|1|||CD|IVCD|Intraventricular and intra-atrial Conduction disturbances
ISCAL|ischemic in anterolateral leads|1|||STTC|ISCA|ischemic ST-T changes
CRBBB|complete right bundle branch block|1|||CD|CRBBB|Intraventricular and intra-atrial Conduction disturbances
CLBBB|complete left bundle branch block|1|||CD|CLBBB|Intraventricular and intra-atrial Conduction disturbances
ILMI|inferolateral myocardial infarction|1|||MI|IMI|Myocardial Infarction
LAO/LAE|left atrial overload/enlargement|1|||HYP|LAO/LAE|Atrial statements
AMI|anterior myocardial infarction|1|||MI|AMI|Myocardial Infarction
ALMI|anterolateral myocardial infarction|1|||MI|AMI|Myocardial Infarction
ISCIN|ischemic in inferior leads|1|||STTC|ISCI|ischemic ST-T changes
INJAS|subendocardial injury in anteroseptal leads|1|||MI|AMI|ischemic ST-T changes compatible with subendocardial injury
LMI|lateral myocardial infarction|1|||MI|LMI|Myocardial Infarction
ISCIL|ischemic in inferolateral leads|1|||STTC|ISCI|ischemic ST-T changes
LPFB|left posterior fascicular block|1|||CD|LAFB/LPFB|Intraventricular and intra-atrial Conduction disturbances
ISCAS|ischemic in anteroseptal leads|1|||STTC|ISCA|ischemic ST-T changes
INJAL|subendocardial injury in anterolateral leads|1|||MI|AMI|ischemic ST-T changes compatible with subendocardial injury
ISCLA|ischemic in lateral leads|1|||STTC|ISCA|ischemic ST-T changes
RVH|right ventricular hypertrophy|1|||HYP|RVH|Ventricular Hypertrophy
ANEUR|ST-T changes compatible with ventricular aneurysm|1|||STTC|STTC|other ST-T descriptive statements
RAO/RAE|right atrial overload/enlargement|1|||HYP|RAO/RAE|Atrial statements
EL|electrolytic disturbance or drug (former EDIS)|1|||STTC|STTC|physiopathological nature of ST-T changes
WPW|Wolf-Parkinson-White syndrome|1|||CD|WPW|Intraventricular and intra-atrial Conduction disturbances
ILBBB|incomplete left bundle branch block|1|||CD|ILBBB|Intraventricular and intra-atrial Conduction disturbances
IPLMI|inferoposterolateral myocardial infarction|1|||MI|IMI|Myocardial Infarction
ISCAN|ischemic in anterior leads|1|||STTC|ISCA|ischemic ST-T changes
IPMI|inferoposterior myocardial infarction|1|||MI|IMI|Myocardial Infarction
SEHYP|septal hypertrophy|1|||HYP|SEHYP|Ventricular Hypertrophy
INJIN|subendocardial injury in inferior leads|1|||MI|IMI|ischemic ST-T changes compatible with subendocardial injury
INJLA|subendocardial injury in lateral leads|1|||MI|AMI|ischemic ST-T changes compatible with subendocardial injury
PMI|posterior myocardial infarction|1|||MI|PMI|Myocardial Infarction
3AVB|third degree AV block|1|||CD|_AVB|Sinus node dysfunction, atrial and AV-conduction defects
INJIL|subendocardial injury in inferolateral leads|1|||MI|IMI|ischemic ST-T changes compatible with subendocardial injury
2AVB|second degree AV block|1|||CD|_AVB|Sinus node dysfunction, atrial and AV-conduction defects
ABQRS|abnormal QRS||1||||Normal/abnormal
PVC|ventricular premature complex||1||||Statements related to ectopic rhythm abnormalities
STD_|non-specific ST depression||1||||Basic roots for coding ST-T changes and abnormalities
VCLVH|voltage criteria (QRS) for left ventricular hypertrophy||1||||Ventricular Hypertrophy
QWAVE|Q waves present||1||||Other QRS morphology descriptive statements
LOWT|low amplitude T-waves||1||||other ST-T descriptive statements
NT_|non-specific T-wave changes||1||||Basic roots for coding ST-T changes and abnormalities
PAC|atrial premature complex||1||||Statements related to ectopic rhythm abnormalities
LPR|prolonged PR interval||1||||Statements related to impulse formation (abnormalities)
INVT|inverted T-waves||1||||other ST-T descriptive statements
LVOLT|low QRS voltages in the frontal and horizontal leads||1||||Other QRS morphology descriptive statements
HVOLT|high QRS voltage||1||||Other QRS morphology descriptive statements
TAB_|T-wave abnormality||1||||Basic roots for coding ST-T changes and abnormalities
STE_|non-specific ST elevation||1||||Basic roots for coding ST-T changes and abnormalities
PRC(S)|premature complex(es)||1||||Statements related to ectopic rhythm abnormalities
SR|sinus rhythm|||1|||Statements related to impulse formation (abnormalities)
AFIB|atrial fibrillation|||1|||Statements related to impulse formation (abnormalities)
STACH|sinus tachycardia|||1|||Statements related to impulse formation (abnormalities)
SARRH|sinus arrhythmia|||1|||Statements related to impulse formation (abnormalities)
SBRAD|sinus bradycardia|||1|||Statements related to impulse formation (abnormalities)
PACE|normal functioning artificial pacemaker|||1|||Pacemaker types and pacemaker function
SVARR|supraventricular arrhythmia|||1|||Statements related to impulse formation (abnormalities)
BIGU|bigeminal pattern (unknown origin, SV or Ventricular)|||1|||Statements related to ectopic rhythm abnormalities
AFLT|atrial flutter|||1|||Statements related to impulse formation (abnormalities)
SVTAC|supraventricular tachycardia|||1|||Statements related to impulse formation (abnormalities)
PSVT|paroxysmal supraventricular tachycardia|||1|||Statements related to impulse formation (abnormalities)
TRIGU|trigeminal pattern (unknown origin, SV or Ventricular)|||1|||Statements related to ectopic rhythm abnormalities
"""  # noqa: E501
#: The columns of the published ``scp_statements.csv`` after its unnamed index column.
STATEMENT_COLUMNS: tuple[str, ...] = (
    "description", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass",
    "Statement Category", "SCP-ECG Statement Description", "AHA code", "aECG REFID",
    "CDISC Code", "DICOM Code",
)  # fmt: skip
#: The 71 statements as ``{code: {column: value}}`` (flags 1.0 or NaN, as in the file).
STATEMENT_TABLE: Mapping[str, Mapping[str, Any]] = {
    code: {
        "description": desc,
        "diagnostic": 1.0 if diag else math.nan,
        "form": 1.0 if form else math.nan,
        "rhythm": 1.0 if rhythm else math.nan,
        "diagnostic_class": cls or math.nan,
        "diagnostic_subclass": sub or math.nan,
        "Statement Category": category,
        "SCP-ECG Statement Description": desc,
        "AHA code": math.nan,
        "aECG REFID": math.nan,
        "CDISC Code": math.nan,
        "DICOM Code": math.nan,
    }
    for code, desc, diag, form, rhythm, cls, sub, category in (
        line.split("|") for line in _STATEMENTS.splitlines()
    )
}

#: The ptbxl_database.csv columns, in the published order.
DATABASE_COLUMNS: tuple[str, ...] = (
    "ecg_id", "patient_id", "age", "sex", "height", "weight", "nurse", "site", "device",
    "recording_date", "report", "scp_codes", "heart_axis", "infarction_stadium1",
    "infarction_stadium2", "validated_by", "second_opinion", "initial_autogenerated_report",
    "validated_by_human", "baseline_drift", "static_noise", "burst_noise", "electrodes_problems",
    "extra_beats", "pacemaker", "strat_fold", "filename_lr", "filename_hr",
)  # fmt: skip

#: Rhythm classes (exactly one per ECG) and their probabilities.
RHYTHM_CLASSES: Mapping[str, float] = {"SR": 0.55, "STACH": 0.15, "SBRAD": 0.15, "AFIB": 0.15}
# Abnormalities (zero, one or two per ECG) and their relative weights; CLBBB and DIG come alone.
_ABNORMALITIES: Mapping[str, float] = {
    "IMI": 1.0, "ASMI": 1.0, "CLBBB": 0.8, "CRBBB": 0.8, "ISCLA": 1.0, "STE_": 0.9,
    "LVH": 0.9, "DIG": 0.7,
}  # fmt: skip
_ALONE = {"CLBBB", "DIG"}
#: Every code the generator can emit.
SYNTH_CODES: tuple[str, ...] = ("NORM", *RHYTHM_CLASSES, *_ABNORMALITIES, "STD_")

# Lead geometry: the frontal-plane angle (degrees) of leads I and II.
_PRECORDIAL = ("V1", "V2", "V3", "V4", "V5", "V6")
_GEN_RATE = 500


def statements_frame() -> pd.DataFrame:
    """``scp_statements.csv`` as a DataFrame (index: the 71 codes in file order)."""
    frame = pd.DataFrame.from_dict(STATEMENT_TABLE, orient="index", columns=STATEMENT_COLUMNS)
    frame.index.name = None
    return frame


# --------------------------------------------------------------------------------------------
# One ECG


@dataclasses.dataclass
class _Wave:
    """One Gaussian wave of a beat: time of its peak relative to R, width, and amplitudes."""

    center: float  # s, relative to the R peak
    width: float  # s (Gaussian sigma)
    frontal: float  # mV, amplitude of the frontal-plane vector
    angle: float  # degrees, direction of the frontal-plane vector
    chest: np.ndarray  # (6,) mV in V1..V6

    def leads(self) -> np.ndarray:
        """Amplitudes in the 8 independent leads I, II, V1..V6. Shape: (8,)."""
        theta = math.radians(self.angle)
        lead_i = self.frontal * math.cos(theta)
        lead_ii = self.frontal * math.cos(theta - math.radians(60))
        return np.concatenate([[lead_i, lead_ii], self.chest])


@dataclasses.dataclass
class EcgParams:
    """What :func:`simulate_ecg` draws for one ECG (kept for the csv's metadata columns).

    Attributes:
        codes: The SCP codes of the ECG.
        heart_rate: Mean rate in beats per minute.
        axis: Frontal QRS axis in degrees.
        qrs_ms: QRS duration in ms (approximate).
        noise: Noise levels: ``white`` (mV), ``wander`` (mV), ``mains`` (mV).
    """

    codes: tuple[str, ...]
    heart_rate: float
    axis: float
    qrs_ms: float
    noise: dict[str, float]


def _gauss(t: np.ndarray, center: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * np.square((t - center) / width))


def _beat_template(
    codes: set[str], rng: np.random.Generator, rr: float, t: np.ndarray
) -> tuple[np.ndarray, float, float]:
    """One beat in the 8 independent leads. Returns (template (8, len(t)), axis, qrs_ms)."""
    u = rng.uniform
    axis = u(0, 75)
    if "LVH" in codes or "CLBBB" in codes:
        axis -= u(15, 40)
    if "IMI" in codes:
        axis -= u(20, 40)
    scale = u(0.75, 1.25)
    chest_gain = u(0.85, 1.15, size=6)
    pr = u(0.13, 0.19)
    qt_scale = u(0.93, 1.07)

    p = _Wave(
        -pr + 0.01, 0.022, u(0.1, 0.2), u(40, 70), np.array([0.05, 0.08, 0.08, 0.07, 0.07, 0.06])
    )
    q = _Wave(-0.026, 0.008, 0.12, 200.0, np.array([0.18, 0.12, 0.0, -0.04, -0.08, -0.08]))
    r = _Wave(
        0.0, 0.011, scale * u(0.9, 1.4), axis, scale * np.array([0.15, 0.45, 0.8, 1.3, 1.5, 1.2])
    )
    s = _Wave(
        0.032,
        0.012,
        scale * u(0.2, 0.4),
        -120.0,
        scale * np.array([-0.9, -1.4, -0.9, -0.5, -0.25, -0.1]),
    )
    t_peak = 0.28 * math.sqrt(rr) * qt_scale
    t_width = 0.045 * (0.8 + 0.2 * math.sqrt(rr))
    tw = _Wave(
        t_peak,
        t_width,
        u(0.2, 0.4),
        axis - u(0, 20),
        np.array([u(-0.05, 0.12), 0.35, 0.5, 0.45, 0.35, 0.25]) * u(0.8, 1.2),
    )
    # The ST segment: a plateau from the J point to the T wave (0 in a normal ECG).
    st = _Wave(0.0, 0.0, 0.0, 0.0, np.zeros(6))
    extra: list[_Wave] = []
    qrs_ms = 90.0

    if "AFIB" in codes:
        p.frontal, p.chest = 0.0, np.zeros(6)
    if "LVH" in codes:
        r.frontal *= u(1.4, 1.8)
        r.chest = r.chest * np.array([1.0, 1.0, 1.3, 1.9, 2.2, 2.3]) * u(0.9, 1.2)
        s.chest = s.chest * np.array([2.1, 1.9, 1.6, 1.0, 1.0, 1.0]) * u(0.9, 1.2)
        r.width *= 1.15
        qrs_ms = 105.0
    if "CLBBB" in codes:
        q.frontal, q.chest = 0.0, np.zeros(6)
        r.width, r.center = 0.024, 0.005
        r.chest = scale * np.array([0.05, 0.1, 0.2, 0.7, 1.2, 1.3])
        extra.append(
            _Wave(
                0.05, 0.02, r.frontal * 0.7, axis, scale * np.array([0.0, 0.0, 0.0, 0.5, 0.9, 1.0])
            )
        )
        s.center, s.width, s.frontal = 0.04, 0.03, 0.1
        s.chest = scale * np.array([-1.8, -2.2, -1.6, -0.5, 0.0, 0.0])
        tw.angle, tw.frontal = axis + 180.0, u(0.25, 0.4)
        tw.chest = np.array([0.4, 0.5, 0.4, 0.05, -0.25, -0.3]) * u(0.8, 1.2)
        st.angle, st.frontal = axis + 180.0, 0.08
        st.chest = np.array([0.15, 0.2, 0.15, 0.0, -0.1, -0.1]) * u(0.8, 1.2)
        qrs_ms = 155.0
    if "CRBBB" in codes:
        extra.append(
            _Wave(0.075, 0.02, 0.0, 0.0, u(0.8, 1.2) * np.array([0.75, 0.5, 0.1, 0.0, 0.0, 0.0]))
        )
        extra.append(
            _Wave(
                0.07,
                0.022,
                u(0.3, 0.45),
                180.0,
                u(0.8, 1.2) * np.array([0.0, 0.0, -0.2, -0.35, -0.45, -0.4]),
            )
        )
        s.chest = s.chest * np.array([0.3, 0.5, 0.8, 1.0, 1.0, 1.0])
        tw.chest = tw.chest.copy()
        tw.chest[:2] = [-0.25, -0.15]
        qrs_ms = 130.0
    if "IMI" in codes:
        extra.append(_Wave(-0.018, 0.016, u(0.35, 0.6), -90.0, np.zeros(6)))
        if rng.random() < 0.5:
            tw.angle = -40.0
    if "ASMI" in codes:
        q.chest = q.chest * np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
        r.chest = r.chest * np.array([0.0, 0.05, 0.15, 1.0, 1.0, 1.0])
        extra.append(
            _Wave(
                -0.012, 0.018, 0.0, 0.0, u(0.8, 1.2) * np.array([-0.35, -0.6, -0.5, -0.1, 0.0, 0.0])
            )
        )
        s.chest = s.chest * np.array([0.3, 0.3, 0.4, 1.0, 1.0, 1.0])
        if rng.random() < 0.5:
            tw.chest = tw.chest.copy()
            tw.chest[:3] = [-0.15, -0.25, -0.2]
    if "STE_" in codes:
        st.chest = st.chest + u(0.7, 1.3) * np.array([0.15, 0.3, 0.3, 0.2, 0.05, 0.0])
        tw.chest = tw.chest * np.array([1.0, 1.4, 1.4, 1.2, 1.0, 1.0])
    if "ISCLA" in codes:
        depth = u(0.1, 0.25)
        st.frontal, st.angle = depth, 150.0
        st.chest = st.chest + depth * np.array([0.0, 0.0, 0.2, 0.6, 1.0, 1.0]) * -1.0
        tw.frontal *= 0.3
        tw.chest = tw.chest * np.array([1.0, 1.0, 0.8, 0.5, 0.2, 0.2])
    if "DIG" in codes:
        sag = u(0.5, 0.8)
        st.frontal, st.angle = tw.frontal * sag, tw.angle + 180.0
        st.chest = -sag * np.clip(tw.chest, 0, None)
        tw.frontal *= 0.45
        tw.chest = tw.chest * 0.45
        tw.center *= 0.85

    waves = [p, q, r, s, tw, *extra]
    template = np.zeros((8, len(t)))
    for wave in waves:
        template += wave.leads()[:, None] * _gauss(t, wave.center, wave.width)[None, :]
    qrs_end = 0.045 if qrs_ms < 120 else qrs_ms / 2000.0 + 0.02
    plateau = sigmoid((t - qrs_end) / 0.006) * sigmoid((tw.center + tw.width - t) / 0.015)
    template += st.leads()[:, None] * plateau[None, :]
    template[2:] *= chest_gain[:, None]
    return template, axis, qrs_ms


def _beat_times(rhythm: str, duration: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """R-peak times covering [-1, duration + 1] s, and the mean heart rate (bpm)."""
    u = rng.uniform
    rate = {"SR": u(60, 95), "STACH": u(102, 145), "SBRAD": u(40, 57), "AFIB": u(70, 140)}[rhythm]
    mean_rr = 60.0 / rate
    times = [-u(0, mean_rr) - 0.5]
    resp_f, resp_phase = u(0.15, 0.35), u(0, 2 * math.pi)
    while times[-1] < duration + 1.0:
        if rhythm == "AFIB":
            cv = u(0.15, 0.3)
            rr = max(0.3, rng.gamma(1.0 / cv**2, mean_rr * cv**2))
        else:
            rr = mean_rr * (1 + 0.03 * math.sin(2 * math.pi * resp_f * times[-1] + resp_phase))
            rr *= 1 + 0.01 * rng.standard_normal()
        times.append(times[-1] + rr)
    return np.asarray(times), rate


def simulate_ecg(
    codes: Sequence[str], rng: np.random.Generator, *, noise: bool = True
) -> tuple[np.ndarray, EcgParams]:
    """One synthetic 10 s, 12-lead ECG at 500 Hz with the given SCP codes.

    Args:
        codes: One rhythm code of :data:`RHYTHM_CLASSES` and any abnormalities (see the module
            docstring); ``NORM`` and ``STD_`` are labels only.
        rng: The random generator (everything else is drawn from it).
        noise: Add white noise, baseline wander and mains interference.

    Returns:
        ``(signals, params)``: signals in mV, shape (12, 5000), float64, leads in
        :data:`~medical.ecg.data.LEAD_NAMES` order; and what was drawn.

    Raises:
        ValueError: If ``codes`` holds no rhythm code or several.
    """
    wanted = set(codes)
    rhythms = [c for c in RHYTHM_CLASSES if c in wanted]
    if len(rhythms) != 1:
        raise ValueError(
            f"Expected exactly one rhythm code of {list(RHYTHM_CLASSES)}, but got {sorted(wanted)}."
        )
    fs, n = _GEN_RATE, RECORD_SECONDS * _GEN_RATE
    beats, rate = _beat_times(rhythms[0], RECORD_SECONDS, rng)
    t_beat = np.arange(-0.35 * fs, 0.6 * fs) / fs
    template, axis, qrs_ms = _beat_template(wanted, rng, 60.0 / rate, t_beat)
    width = len(t_beat)
    offset = int(0.35 * fs)
    padded = np.zeros((8, n + 4 * fs))
    pad = 2 * fs
    resp_f, resp_phase = rng.uniform(0.15, 0.35), rng.uniform(0, 2 * math.pi)
    for time in beats:
        start = round(time * fs) - offset + pad
        if start < 0 or start + width > padded.shape[1]:
            continue
        gain = 1.0 + 0.05 * math.sin(2 * math.pi * resp_f * time + resp_phase)
        padded[:, start : start + width] += gain * template
    signal = padded[:, pad : pad + n]
    t = np.arange(n) / fs
    levels = {"white": 0.0, "wander": 0.0, "mains": 0.0}
    if "AFIB" in wanted:
        f0, amp = rng.uniform(4.5, 7.0), rng.uniform(0.03, 0.08)
        phase = 2 * math.pi * np.cumsum(f0 + 0.6 * np.sin(2 * math.pi * 0.2 * t)) / fs
        envelope = amp * (1 + 0.3 * np.sin(2 * math.pi * rng.uniform(0.1, 0.4) * t))
        f_wave = _Wave(0, 1, 1.0, rng.uniform(60, 120), np.array([1.0, 0.6, 0.3, 0.2, 0.1, 0.1]))
        signal = signal + f_wave.leads()[:, None] * (envelope * np.sin(phase))[None, :]
    if noise:
        levels["white"] = rng.uniform(0.005, 0.03)
        levels["wander"] = rng.uniform(0.0, 0.1) if rng.random() < 0.8 else rng.uniform(0.2, 0.4)
        levels["mains"] = rng.uniform(0.0, 0.02)
        wander = np.zeros_like(signal)
        for _ in range(2):
            freq = rng.uniform(0.05, 0.5, size=(8, 1))
            phase0 = rng.uniform(0, 2 * math.pi, size=(8, 1))
            wander += rng.uniform(0.3, 1.0, size=(8, 1)) * np.sin(2 * math.pi * freq * t + phase0)
        signal = signal + levels["wander"] * wander
        signal = signal + levels["white"] * rng.standard_normal(signal.shape)
        signal = signal + levels["mains"] * np.sin(2 * math.pi * 50 * t + rng.uniform(0, 6.3))
    lead_i, lead_ii, chest = signal[0], signal[1], signal[2:]
    limb = np.stack([
        lead_i, lead_ii, lead_ii - lead_i,
        -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2, lead_ii - lead_i / 2,
    ])  # fmt: skip
    params = EcgParams(tuple(codes), rate, axis, qrs_ms, levels)
    return np.concatenate([limb, chest]), params


def sample_codes(rng: np.random.Generator) -> tuple[str, ...]:
    """Draw the SCP codes of one ECG: one rhythm, 0-2 abnormalities, ``NORM`` when none.

    ``NORM`` is given to a sinus rhythm (SR, STACH, SBRAD) without abnormality; ``ISCLA``
    comes with ``STD_`` (its ST depression). ``CLBBB`` and ``DIG`` come alone.

    Args:
        rng: The random generator.

    Returns:
        The codes, rhythm first.
    """
    rhythm = str(rng.choice(list(RHYTHM_CLASSES), p=list(RHYTHM_CLASSES.values())))
    n_abnormal = int(rng.choice([0, 1, 2], p=[0.4, 0.45, 0.15]))
    names = list(_ABNORMALITIES)
    weights = np.asarray(list(_ABNORMALITIES.values()))
    chosen: list[str] = []
    for _ in range(n_abnormal):
        allowed = [
            i
            for i, name in enumerate(names)
            if name not in chosen
            and not (chosen and (name in _ALONE or chosen[0] in _ALONE))
            and not (name == "CRBBB" and "CLBBB" in chosen)
        ]
        if not allowed:
            break
        p = weights[allowed] / weights[allowed].sum()
        chosen.append(names[int(rng.choice(allowed, p=p))])
    codes = [rhythm, *chosen]
    if "ISCLA" in chosen:
        codes.append("STD_")
    if not chosen and rhythm != "AFIB":
        codes.append("NORM")
    return tuple(codes)


# --------------------------------------------------------------------------------------------
# The data set

_REPORT = {
    "SR": "sinus rhythm", "STACH": "sinus tachycardia", "SBRAD": "sinus bradycardia",
    "AFIB": "atrial fibrillation", "NORM": "normal ecg", "IMI": "inferior infarction, old",
    "ASMI": "anteroseptal infarction, old", "CLBBB": "left bundle branch block",
    "CRBBB": "right bundle branch block", "ISCLA": "ischemic st depression in lateral leads",
    "STE_": "st elevation in anterior leads", "LVH": "left ventricular hypertrophy",
    "DIG": "digitalis effect",
}  # fmt: skip
_DEVICES = ("CS-12   E", "AT-6 C 5.5", "AT-60    3", "CS100    3", "AT-6     6")


def _likelihood(code: str, rng: np.random.Generator) -> float:
    if code in RHYTHM_CLASSES or code in ("STD_", "STE_"):
        return 0.0
    if code == "NORM":
        return 100.0
    return float(rng.choice([100.0, 80.0, 50.0], p=[0.7, 0.2, 0.1]))


def _heart_axis(axis: float) -> str:
    if axis < -30:
        return "LAD" if axis >= -45 else "ALAD"
    if axis > 90:
        return "RAD"
    return "MID"


def _assign_folds(codes: Sequence[tuple[str, ...]], rng: np.random.Generator) -> np.ndarray:
    """Stratified folds 1-10: each label combination is dealt round-robin over the folds."""
    folds = np.zeros(len(codes), dtype=np.int64)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, combo in enumerate(codes):
        groups.setdefault(tuple(sorted(combo)), []).append(i)
    next_fold = int(rng.integers(10))
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        for i in members:
            folds[i] = next_fold + 1
            next_fold = (next_fold + 1) % 10
    return folds


def _record_name(ecg_id: int, rate: int) -> str:
    suffix = "lr" if rate == 100 else "hr"
    return f"records{rate}/{(ecg_id // 1000) * 1000:05d}/{ecg_id:05d}_{suffix}"


def _write_record(
    folder: Path, name: str, signals: np.ndarray, fs: int, sig_names: Sequence[str]
) -> None:
    """Write one WFDB record as ``wfdb.wrsamp`` does for PTB-XL's settings, only faster.

    Format 16 (little-endian int16, samples interleaved lead by lead), gain 1000 per mV
    (1 µV resolution), baseline 0; the header lists each signal with its first sample and
    checksum. ``wfdb.wrsamp`` produces the same bytes (a test checks this) but spends about
    0.1 s per record validating its arguments, which would dominate the generator's time.

    Args:
        folder: Where the ``.hea`` and ``.dat`` files go.
        name: The record name (e.g. ``00001_lr``).
        signals: Shape (12, T), in mV.
        fs: Sampling rate in Hz.
        sig_names: The 12 lead names for the header.
    """
    physical = np.clip(np.asarray(signals, dtype=np.float64).T, -32.0, 32.0) * 1000.0
    digital = np.round(physical).astype("<i2")  # (T, 12): frame by frame, as WFDB stores it
    # Plain writes (no fsync per file): the csv files, written atomically at the end, are what
    # make the records part of a data set.
    (folder / f"{name}.dat").write_bytes(digital.tobytes())
    checksums = digital.astype(np.int64).sum(axis=0) % 65536
    lines = [f"{name} {digital.shape[1]} {fs} {digital.shape[0]}"]
    for lead, sig_name in enumerate(sig_names):
        lines.append(
            f"{name}.dat 16 1000.0(0)/mV 16 0 {int(digital[0, lead])} "
            f"{int(checksums[lead])} 0 {sig_name}"
        )
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n", encoding="utf-8")


_MARKER = "SYNTHETIC_README.txt"


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"Expected --out {out} to be a folder, but it is a file.")
    if out.is_dir() and any(out.iterdir()):
        if not (out / _MARKER).is_file():
            raise InputError(
                f"Expected --out {out} to be a new or empty folder (or an earlier synthetic "
                f"data set, which has {_MARKER}), but it holds other files."
            )
        for sub in ("records100", "records500"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    # The marker first: an interrupted run leaves a folder that the same command may replace.
    atomic_write_text(out / _MARKER, "Synthetic PTB-XL data set being written (incomplete).\n")


def write_synthetic_ptbxl(
    out_dir: str | os.PathLike[str],
    *,
    n_records: int = 1000,
    sampling_rates: Sequence[int] = (100,),
    seed: int = 2020,
    progress: bool = True,
) -> Path:
    """Write a synthetic data set in the exact PTB-XL layout.

    Args:
        out_dir: The folder to create (or an earlier synthetic set to replace; any other
            non-empty folder is refused).
        n_records: Number of ECGs (at least 10, one per fold).
        sampling_rates: Which record folders to write: ``(100,)`` (``records100/``),
            ``(500,)`` or ``(100, 500)``. Both csv columns ``filename_lr`` and ``filename_hr``
            are always filled, as in PTB-XL.
        seed: Seed of every random draw (the same seed gives the same data set).
        progress: Show a progress bar.

    Returns:
        The folder.

    Raises:
        InputError: If ``n_records`` < 10, a sampling rate is not 100 or 500, or the folder
            holds other files.
    """
    if not isinstance(n_records, int) or n_records < 10:
        raise InputError(
            f"Expected --n-records to be at least 10 (one ECG per fold), but got {n_records!r}."
        )
    rates = sorted({int(r) for r in sampling_rates})
    if not rates or any(r not in SAMPLING_RATES for r in rates):
        raise InputError(
            f"Expected sampling rates of 100 and/or 500 Hz, but got {list(sampling_rates)!r}."
        )
    out = Path(out_dir).expanduser()
    _prepare_out(out)
    rng = np.random.default_rng(seed)
    all_codes = [sample_codes(rng) for _ in range(n_records)]
    folds = _assign_folds(all_codes, rng)
    rows = []
    header_names = [name.upper() for name in LEAD_NAMES]
    start_date = datetime(1984, 11, 9, 9, 0, 0)
    patients_in_fold: dict[int, list[float]] = {}
    new_patients = rng.permutation(max(22000, 2 * n_records))[:n_records] + 1
    for i in tqdm(
        range(n_records),
        desc="Writing synthetic PTB-XL",
        unit="rec",
        disable=not progress,
        leave=False,
    ):
        ecg_id = i + 1
        codes = all_codes[i]
        signal, params = simulate_ecg(codes, rng)
        for rate in rates:
            if rate == _GEN_RATE:
                data = signal
            else:  # PTB-XL's 100 Hz records are its 500 Hz ones, decimated
                data = scipy.signal.resample_poly(signal, rate, _GEN_RATE, axis=1)
            name = _record_name(ecg_id, rate)
            folder = out / Path(name).parent
            folder.mkdir(parents=True, exist_ok=True)
            _write_record(folder, Path(name).name, data, rate, header_names)
        # A tenth of the ECGs belong to a patient who already has one in the same fold.
        same_fold = patients_in_fold.setdefault(int(folds[i]), [])
        if same_fold and rng.random() < 0.1:
            patient = same_fold[int(rng.integers(len(same_fold)))]
        else:
            patient = float(new_patients[i])
        same_fold.append(patient)
        abnormal = [c for c in codes if c not in RHYTHM_CLASSES and c != "NORM"]
        age = rng.normal(66, 12) if abnormal else rng.normal(48, 17)
        wander = params.noise["wander"]
        rows.append(
            {
                "ecg_id": ecg_id,
                "patient_id": patient,
                "age": float(np.clip(round(age), 18, 95)),
                "sex": int(rng.integers(0, 2)),
                "height": float(round(rng.normal(170, 9))) if rng.random() < 0.3 else math.nan,
                "weight": float(round(rng.normal(76, 14))) if rng.random() < 0.6 else math.nan,
                "nurse": float(rng.integers(0, 12)) if rng.random() < 0.7 else math.nan,
                "site": float(rng.integers(0, 50)),
                "device": str(rng.choice(_DEVICES)),
                "recording_date": (
                    start_date + timedelta(days=float(rng.uniform(0, 6000)))
                ).strftime("%Y-%m-%d %H:%M:%S"),
                "report": "; ".join(_REPORT[c] for c in codes if c in _REPORT) + " (synthetic)",
                "scp_codes": str({c: _likelihood(c, rng) for c in codes}),
                "heart_axis": _heart_axis(params.axis),
                "infarction_stadium1": "Stadium III" if {"IMI", "ASMI"} & set(codes) else math.nan,
                "infarction_stadium2": math.nan,
                "validated_by": float(rng.integers(0, 12)) if rng.random() < 0.5 else math.nan,
                "second_opinion": False,
                "initial_autogenerated_report": False,
                "validated_by_human": True,
                "baseline_drift": ", alles," if wander > 0.15 else math.nan,
                "static_noise": ", alles," if params.noise["white"] > 0.025 else math.nan,
                "burst_noise": math.nan,
                "electrodes_problems": math.nan,
                "extra_beats": math.nan,
                "pacemaker": math.nan,
                "strat_fold": int(folds[i]),
                "filename_lr": _record_name(ecg_id, 100),
                "filename_hr": _record_name(ecg_id, 500),
            }
        )
    database = pd.DataFrame(rows, columns=list(DATABASE_COLUMNS)).set_index("ecg_id")
    with atomic_open(out / "scp_statements.csv") as handle:
        statements_frame().to_csv(handle)
    with atomic_open(out / "ptbxl_database.csv") as handle:
        database.to_csv(handle)
    counts = pd.Series([c for codes in all_codes for c in codes]).value_counts()
    atomic_write_text(
        out / _MARKER,
        "Synthetic ECGs in the PTB-XL layout, written by `contrasuite ecg synth` "
        "(medical/ecg/synth.py). Not real patients.\n"
        f"n_records={n_records} sampling_rates={rates} seed={seed}\n"
        "label counts: " + ", ".join(f"{k}={v}" for k, v in counts.items()) + "\n",
    )
    logger.info("wrote %d synthetic ECGs (%s Hz) to %s", n_records, "+".join(map(str, rates)), out)
    return out
