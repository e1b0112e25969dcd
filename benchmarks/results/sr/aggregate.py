"""Mean and spread over seeds of Set5/Set14 x2 Y-PSNR/SSIM: bicubic, L1-only, PCL (w=5), PCL (w=5/255).

Reads ``p48-s<seed>/metrics.json`` and ``p48-s<seed>-w5on255/eval.json`` under ROOT (default:
the committed copies beside this script; ``../runs/sr`` for the run folders themselves)::

    python benchmarks/results/sr/aggregate.py [ROOT]
"""

import json
import statistics as st
import sys
from pathlib import Path

root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
rows: dict[tuple[str, str], dict[str, list[float]]] = {}
seeds = []
for s in (2020, 1, 2):
    m = root / f"p48-s{s}" / "metrics.json"
    e = root / f"p48-s{s}-w5on255" / "eval.json"
    if not m.is_file() or "sets" not in json.loads(m.read_text()):
        continue
    seeds.append(s)
    sets = json.loads(m.read_text())["sets"]
    extra = json.loads(e.read_text())["sets"] if e.is_file() else {}
    for set_name, by_model in sets.items():
        models = {"bicubic": by_model["bicubic"], "l1": by_model["l1"], "pcl_w5": by_model["pcl"]}
        if set_name in extra:
            models["pcl_w5/255"] = extra[set_name]["pcl_w"]
        for model, vals in models.items():
            for k, v in vals.items():
                rows.setdefault((set_name, model), {}).setdefault(k, []).append(v)
print("seeds:", seeds)
for (set_name, model), vals in sorted(rows.items()):
    cells = []
    for k in ("psnr_y", "ssim_y", "psnr_rgb"):
        v = vals[k]
        sd = st.stdev(v) if len(v) > 1 else float("nan")
        cells.append(f"{k} {st.mean(v):.3f}±{sd:.3f} (n={len(v)}) {[round(x, 3) for x in v]}")
    print(f"{set_name:6s} {model:11s} " + " | ".join(cells))
# paired differences PCL - L1 per seed (Y-PSNR)
for set_name in sorted({s for s, _ in rows}):
    for model in ("pcl_w5", "pcl_w5/255"):
        if (set_name, model) in rows:
            a, b = (
                rows[(set_name, model)]["psnr_y"],
                rows[(set_name, "l1")]["psnr_y"][: len(rows[(set_name, model)]["psnr_y"])],
            )
            d = [x - y for x, y in zip(a, b)]
            print(
                f"{set_name} {model} - l1 (Y-PSNR dB, per seed): {[round(x, 3) for x in d]} mean {st.mean(d):+.3f}"
            )
