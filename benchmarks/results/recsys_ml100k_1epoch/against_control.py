"""Paired tests of MCLRec and MCLRec-J against the SASRec2Step control (not only FastSASRec).

``results.md`` tests every model against the first one (FastSASRec); this re-runs the same test
(``recsys.stats.paired_test`` on the per-user test NDCG@10 averaged over the seeds, from
``per_user_ndcg@10.csv``) with SASRec2Step as the reference. From the repository root::

    .venv/bin/python benchmarks/results/recsys_ml100k_1epoch/against_control.py
"""

import csv
from pathlib import Path

import numpy as np

from recsys.stats import paired_test

rows = list(csv.DictReader(open(Path(__file__).parent / "per_user_ndcg@10.csv", newline="")))
reference = np.array([float(r["SASRec2Step"]) for r in rows])
print("| model | users | difference to SASRec2Step | 95% interval | p |")
print("|---|---|---|---|---|")
for model in ("MCLRec", "MCLRec-J"):
    t = paired_test(reference, np.array([float(r[model]) for r in rows]))
    print(f"| {model} | {len(rows)} | {t.diff:+.4f} | [{t.ci_low:+.4f}, {t.ci_high:+.4f}] | {t.p_value:.4f} |")
