"""Baseline vs dual-path (stage 1, 2) on the MSD phantoms: per-zone means and per-seed values.

Reads ``dual_s<seed>/metrics.json`` (written by ``prostate evaluate --baseline``) under ROOT
(default: the committed copies beside this script; ``../runs/prostate`` for the run folders)::

    python benchmarks/results/prostate/aggregate.py [ROOT]
"""

import json
import statistics as st
import sys
from pathlib import Path

root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
rows = {}
for s in (1, 2):
    try:
        m = json.loads((root / f"dual_s{s}" / "metrics.json").read_text())
    except FileNotFoundError:
        continue
    tabs = {"baseline": m["baseline"]["per_zone"], **m["stages"]}
    for model, pz in tabs.items():
        for zone, v in pz.items():
            for key in ("dice", "masd_mm", "masd_vox", "hd95_mm"):
                rows.setdefault((model, zone, key), []).append(v[key])
    for stage, ch in m["relative_masd_change_pct"].items():
        for zone, v in ch.items():
            rows.setdefault((f"change_{stage}", zone, "pct"), []).append(v)


def fmt(vals):
    vals2 = [v for v in vals if v is not None]
    if not vals2:
        return "missing"
    s = " / ".join("missing" if v is None else f"{v:.3g}" for v in vals)
    return f"{st.mean(vals2):.3g} ({s})"


zones = ["PZ", "TZ", "DPU", "AFS"]
print("| model | metric | " + " | ".join(zones) + " |")
print("|---|---|" + "---|" * len(zones))
for model in ("baseline", "stage1", "stage2"):
    for key in ("dice", "masd_mm", "masd_vox"):
        print(
            f"| {model} | {key} | "
            + " | ".join(fmt(rows.get((model, z, key), [])) for z in zones)
            + " |"
        )
for stage in ("stage1", "stage2"):
    print(
        f"| MASD change {stage} (%) | mm | "
        + " | ".join(fmt(rows.get((f"change_{stage}", z, "pct"), [])) for z in zones)
        + " |"
    )
