#!/bin/bash
# Set5/Set14 x2: bicubic vs L1-only vs L1+PCL, EDSR-tiny, three seeds (CPU, 1 thread).
cd .
export OMP_NUM_THREADS=1
for seed in 2020 1 2; do
  out=../runs/sr/x2-s$seed
  .venv/bin/python -m pipelines sr train --out $out --seed $seed --size tiny --epochs 8 --device cpu \
    pretrain.epochs=24 pretrain.lr=5e-4 trainer.lr=1e-4 data.patch_size=64 data.batch_size=16 \
    data.batches_per_epoch=50 pcl.d_width=32 trainer.threads=1 trainer.progress=false
  .venv/bin/python -m pipelines sr evaluate --run $out --data-dir ../shared/data/sr --device cpu
  date
done
