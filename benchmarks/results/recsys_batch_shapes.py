"""What the training batches of a data set hold: the counts behind the step-time notes.

Reads every training batch of ``--dataset`` as the recsys pipeline builds them (RecBole's
prefix rows, the model's batch size and maximum length; no model runs) and prints JSON:

* ``fill``: the share of the (B, L) positions that hold an item;
* ``tokens``: positions holding an item per batch (mean, median, max) and the packed size the
  encoder allocates for them (rounded up to ``recsys.encoder.PACK_BUCKET``);
* ``attention_work``: the modelled attention work ``sum rows * L_g * (L_g + H)`` of
  :func:`recsys.encoder.plan_length_groups`'s groups against four groups of equal size and one
  padded (B, L, L) layout, with and without ``GROUP_COST`` per group.

From the repository root (a few seconds for ml-100k, about a minute for Beauty)::

    .venv/bin/python benchmarks/results/recsys_batch_shapes.py --dataset ml-100k \\
        > benchmarks/results/recsys_batch_shapes_ml100k.json
    .venv/bin/python benchmarks/results/recsys_batch_shapes.py \\
        --dataset ../shared/data/seqrec/Beauty.txt \\
        > benchmarks/results/recsys_batch_shapes_beauty.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

import recsys  # noqa: F401  (first: RecBole's models without anomaly detection)
from recsys.config import RecsysConfig, dataset_profile
from recsys.data import resolve_dataset
from recsys.encoder import GROUP_COST, PACK_BUCKET, plan_length_groups
from recsys.evaluation import MODELS, recbole_settings
from recsys.loading import build_config, load_data


def group_work(lengths: Sequence[int], ends: Sequence[int], hidden: int) -> int:
    """Modelled attention work of rows sorted by length, cut into groups ending at ``ends``."""
    work, start = 0, 0
    for end in ends:
        if end > start:
            span = lengths[end - 1]
            work += (end - start) * span * (span + hidden)
        start = end
    return work


def equal_ends(n: int, groups: int) -> list[int]:
    """Ends of ``groups`` groups of (nearly) equal size over ``n`` rows."""
    return [round(n * (k + 1) / groups) for k in range(groups)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", help="a built-in name or a .txt file")
    parser.add_argument("--model", default="MCLRec", help="whose settings build the batches")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = resolve_dataset(args.dataset, work)
        settings = recbole_settings(
            RecsysConfig(dataset=args.dataset), args.model, dataset_profile(source.name)
        )
        config = build_config(
            MODELS[args.model].model, source, settings, checkpoint_dir=work, device="cpu"
        )
        _, train, _, _ = load_data(config)
        hidden, max_len = int(config["hidden_size"]), int(config["MAX_ITEM_LIST_LENGTH"])
        tokens, packed, positions = [], [], 0
        work_plan = work_plan_fixed = work_four = work_four_fixed = work_padded = 0
        n_groups = []
        for batch in train:
            lengths = sorted(batch["item_length"].clamp(max=max_len).tolist())
            rows = len(lengths)
            tokens.append(sum(lengths))
            packed.append(min(rows * max_len, -(-sum(lengths) // PACK_BUCKET) * PACK_BUCKET))
            positions += rows * max_len
            plan = plan_length_groups(lengths, hidden)
            four = equal_ends(rows, 4)
            n_groups.append(len(plan))
            work_plan += group_work(lengths, plan, hidden)
            work_plan_fixed += group_work(lengths, plan, hidden) + GROUP_COST * len(plan)
            work_four += group_work(lengths, four, hidden)
            work_four_fixed += group_work(lengths, four, hidden) + GROUP_COST * 4
            work_padded += rows * max_len * (max_len + hidden)
    report = {
        "dataset": args.dataset,
        "settings_of": args.model,
        "batches": len(tokens),
        "batch_size": int(config["train_batch_size"]),
        "max_len": max_len,
        "hidden": hidden,
        "fill": round(sum(tokens) / positions, 4),
        "tokens": {
            "mean": round(statistics.mean(tokens), 1),
            "median": statistics.median(tokens),
            "max": max(tokens),
            "packed_mean": round(statistics.mean(packed), 1),
            "pack_bucket": PACK_BUCKET,
        },
        "attention_work": {
            "groups_per_batch_mean": round(statistics.mean(n_groups), 2),
            "plan_over_four_equal": round(work_plan / work_four, 4),
            "plan_over_four_equal_with_group_cost": round(work_plan_fixed / work_four_fixed, 4),
            "plan_over_padded": round(work_plan / work_padded, 4),
            "four_equal_over_padded": round(work_four / work_padded, 4),
            "group_cost": GROUP_COST,
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
