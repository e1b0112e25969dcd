#!/usr/bin/env bash
# Create the benchmark environment (.venv-bench): the peers that benchmarks/bench_losses.py
# compares against (lightly, pytorch-metric-learning) beside the suite, in one environment so
# that both sides run in the same process on identical inputs.
#
# Why a second environment (benchmarks.md H): lightly imports torchvision, and PyPI's
# torchvision does not load beside the suite's CPU torch 2.13.0. The working pair on this kind
# of machine is torch==2.14.1 + torchvision==0.29.1 (on disk; a CUDA build that also runs on
# CPU, about 5.5 GB). The suite's own .venv stays on torch 2.13.0 CPU.
#
# Usage: bash scripts/setup_bench.sh [VENV]   (default .venv-bench; also `make bench-setup`)
set -euo pipefail
venv=${1:-.venv-bench}
py=${PYTHON:-python3}
cd "$(dirname "$0")/.."
"$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q)
"${pip[@]}" --upgrade pip
# torch/torchvision first and pinned, so that resolving the peers never picks another build.
"${pip[@]}" "torch==2.14.1" "torchvision==0.29.1"
# The peers, with the installed torch/torchvision held fixed.
cat >"$venv/bench-constraints.txt" <<'EOF'
torch==2.14.1
torchvision==0.29.1
numpy<2
EOF
"${pip[@]}" -c "$venv/bench-constraints.txt" lightly pytorch-metric-learning
# The suite itself, without its domain dependencies: `shared` needs only torch and numpy.
"${pip[@]}" -c "$venv/bench-constraints.txt" "numpy<2"
"${pip[@]}" -e . --no-deps
"$venv/bin/python" - <<'EOF'
import lightly.loss
import pytorch_metric_learning
import torch

import shared.losses

print(
    "bench env ready: torch", torch.__version__,
    "| lightly", getattr(__import__("lightly"), "__version__", "?"),
    "| pytorch-metric-learning", pytorch_metric_learning.__version__,
)
EOF
