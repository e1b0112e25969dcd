#!/bin/bash
# One seed of the Set5/Set14 x2 experiment (EDSR-tiny, HR patch 48, batch 8; CPU, 1 thread).
seed=$1
cd .
export OMP_NUM_THREADS=1
out=../runs/sr/p48-s$seed
.venv/bin/python -m pipelines sr train --out $out --seed $seed --size tiny --epochs 4 --device cpu \
  pretrain.epochs=16 pretrain.lr=5e-4 trainer.lr=1e-4 data.patch_size=48 data.batch_size=8 \
  data.batches_per_epoch=50 data.val_crop=128 pcl.d_width=32 trainer.threads=1 trainer.progress=false
.venv/bin/python -m pipelines sr evaluate --run $out --data-dir ../shared/data/sr --device cpu
date
