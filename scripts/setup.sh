#!/usr/bin/env bash
# Create the suite's virtual environment and install it with its dev extras.
# torch is installed first, pinned to the CPU build (2.13.0), so that resolving the suite's
# dependencies never pulls a multi-GB CUDA build of torch.
set -euo pipefail
venv=${1:-.venv}
py=${PYTHON:-python3}
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "torch==2.13.0"
"$venv/bin/python" -m pip install -q -e ".[dev]"
"$venv/bin/python" -c "import torch, shared, pipelines; print('contrasuite ready: torch', torch.__version__)"
