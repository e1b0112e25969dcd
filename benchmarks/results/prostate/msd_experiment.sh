#!/bin/bash
# Baseline vs dual-path (stage 1, stage 2) on phantoms built around the 32 real MSD masks.
set -e
cd .
export OMP_NUM_THREADS=1
D=../runs/prostate/msd
[ -f $D/dataset.json ] || .venv/bin/python -m pipelines prostate phantom --out $D \
  --from-masks ../shared/data/prostate-msd-labels --n-cases 28 --n-unlabelled 4
COMMON="--data-dir $D data.spacing=1.5,1.5,4 data.roi=32,32,16 model.base_filters=4 trainer.epochs=30 stage2.epochs=8 trainer.progress=false trainer.threads=1 data.split_seed=0"
for seed in 1 2; do
  .venv/bin/python -m pipelines prostate train --out ../runs/prostate/base_s$seed --model baseline --seed $seed $COMMON
  .venv/bin/python -m pipelines prostate train --out ../runs/prostate/dual_s$seed --model dual-path --seed $seed $COMMON
  .venv/bin/python -m pipelines prostate evaluate --run ../runs/prostate/dual_s$seed --data-dir $D --baseline ../runs/prostate/base_s$seed --device cpu
done
echo DONE
