"""The 71 SCP statements of PTB-XL v1.0.3, as its ``scp_statements.csv`` holds them.

The synthetic data set (:mod:`medical.ecg.synth`) writes this table, so that a synthetic folder
has the exact published label space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = ["STATEMENT_COLUMNS", "STATEMENT_TABLE", "statements_frame"]

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


def statements_frame() -> pd.DataFrame:
    """``scp_statements.csv`` as a DataFrame (index: the 71 codes in file order)."""
    frame = pd.DataFrame.from_dict(STATEMENT_TABLE, orient="index", columns=STATEMENT_COLUMNS)
    frame.index.name = None
    return frame
