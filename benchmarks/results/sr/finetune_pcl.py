"""Re-run only the PCL fine-tuning of an `sr train` run with another pcl.weight.

Same start (RUN/pretrain weights), seed, schedule and patches as the run's own stages, so the
run's L1-only control (RUN/l1) is the control of this one too. Writes OUT (a Trainer run) and
OUT/eval.json: Set5/Set14 metrics of bicubic, the run's l1 and pcl, and this pcl.

usage: finetune_pcl.py RUN WEIGHT OUT
"""

import dataclasses
import json
import sys
from pathlib import Path

import torch

from shared.config import to_dict
from shared.training import Trainer
from shared.training.checkpoint import safe_load
from vision.sr.data import load_pairs
from vision.sr.evaluate import discover_sets, evaluate_pairs
from vision.sr.model import EDSR
from vision.sr.tasks import DiscriminatorState, SRTask
from vision.sr.train import _datasets, _loaders, load_models

run_path, weight, out = Path(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
torch.set_num_threads(1)
import time

from shared.config import from_dict
from shared.training.run import RunFolder
from vision.sr.config import SRConfig

run = RunFolder.open_existing(run_path, domain="sr")
cfg = from_dict(SRConfig, run.config)
cfg = dataclasses.replace(cfg, pcl=dataclasses.replace(cfg.pcl, weight=weight))
train_pairs, val_pairs, _ = _datasets(cfg)
loader, val = _loaders(cfg, train_pairs, val_pairs)
start = safe_load(run_path / "pretrain" / "weights.pt")
model = EDSR.from_size(cfg.data.scale, cfg.model.size, cfg.model.res_scale)
model.load_state_dict({k[len("model.") :]: v for k, v in start.items() if k.startswith("model.")})
task = SRTask(model, cfg.pcl, cfg.pcl.d_lr or cfg.trainer.lr)
fit = Trainer(
    cfg.trainer,
    run_dir=out,
    callbacks=[DiscriminatorState(task)],
    config_dict={**to_dict(cfg), "stage": "pcl"},
).fit(task, loader, val)
model.eval()
while True:  # the run's own stages (its l1 control) finish in another process
    try:
        _, _, models = load_models(run_path)
        break
    except Exception:
        time.sleep(30)
sets = {
    n: load_pairs(p, cfg.data.scale, 15) for n, p in discover_sets("../shared/data/sr").items()
}
result = {"weight": weight, "fit": fit, "sets": {}}
for name, pairs in sets.items():
    per_set, _ = evaluate_pairs(
        {"l1": models["l1"], "pcl": models["pcl"], "pcl_w": model}, pairs, cfg.data.scale
    )
    result["sets"][name] = per_set
(out / "eval.json").write_text(json.dumps(result, indent=2))
print(json.dumps(result["sets"], indent=1))
