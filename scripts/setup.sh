#!/usr/bin/env bash
# Sets up a fresh machine: a virtual environment in .venv with keras-nlm and
# CPU builds of TensorFlow, JAX and PyTorch, the test tools and Jupyter for the
# course notebooks, then runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# pip would byte-compile all it installs, one file at a time (100 s here, 70 s
# on 2 cores with compileall); left to Python, the first import compiles
# only what is imported, about a third of the files (12 s of CPU).
# torch first and pinned: 2.13.0 is the local CPU wheel; an unpinned torch
# would pull several GB of CUDA packages. On a GPU machine set TORCH_SPEC.
.venv/bin/python -m pip install -q --no-compile "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q --no-compile -e ".[test,notebooks]"
.venv/bin/python -m keras_nlm
