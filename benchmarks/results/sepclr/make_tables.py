"""Print the SepCLR probe tables of benchmarks/README.md from the committed metrics.json files.

Usage (from the repository root)::

    python benchmarks/results/sepclr/make_tables.py

Each folder ``<set>_s<seed>/<method>/metrics.json`` is one run (``exp.py`` beside this file
wrote them; ``config.yaml`` beside each metrics file holds its settings). A cell is the mean
over the seeds found, followed by the per-seed values in seed order.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
ORDER = ("sepclr", "sepclr_nojem", "simclr", "cvae", "cpca")
LABELS = {
    "sepclr": "SepCLR",
    "sepclr_nojem": "SepCLR, lambda = 0",
    "simclr": "SimCLR",
    "cvae": "cVAE",
    "cpca": "cPCA",
}
SETS = {
    "gen": ("generated set (textures + digits)", ("group_linear", "texture_linear",
            "texture_knn", "digit_linear", "digit_knn")),
    "pneu": ("PneumoniaMNIST, balanced split", ("group_linear", "group_knn")),
    "pneuoff": ("PneumoniaMNIST, official split", ("group_linear", "group_knn")),
}  # fmt: skip


def cell(values: list[float]) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.3f}"
    return f"{mean:.3f} ({' / '.join(f'{v:.3f}' for v in values)})"


def main() -> None:
    runs: dict[tuple[str, str, str], dict[int, dict[str, float]]] = defaultdict(dict)
    for path in sorted(HERE.glob("*_s*/*/metrics.json")):
        group, method = path.parent.parent.name, path.parent.name
        name, seed = group.rsplit("_s", 1)
        for space, probes in json.loads(path.read_text())["probes"].items():
            runs[(name, method, space)][int(seed)] = probes
    for name, (title, columns) in SETS.items():
        keys = sorted(
            (k for k in runs if k[0] == name), key=lambda k: (ORDER.index(k[1]), k[2])
        )
        if not keys:
            continue
        print(f"\n{title}: mean (per seed)\n")
        print("| method | space | seeds | " + " | ".join(c.replace("_", " ") for c in columns) + " |")
        print("|---|---|---|" + "---|" * len(columns))
        for key in keys:
            seeds = runs[key]
            cells = [cell([seeds[s][c] for s in sorted(seeds)]) for c in columns]
            seed_list = ", ".join(str(s) for s in sorted(seeds))
            print(f"| {LABELS[key[1]]} | {key[2]} | {seed_list} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
