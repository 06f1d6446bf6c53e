#!/usr/bin/env bash
# The GPU benchmarks in one script, meant to finish within 8 minutes on a
# machine with one NVIDIA GPU:
#   1. sets up what scripts/setup.sh installs, with CUDA builds of PyTorch, JAX
#      and TensorFlow, in $GPU_VENV (default .venv-gpu; --system-site-packages,
#      so that a machine's own CUDA builds are kept and nothing is downloaded
#      for a framework that already sees the GPU);
#   2. under each backend: whether RecurrentStack's LSTM and GRU took the
#      backend's cuDNN path (benchmarks/cudnn_check.py), training against native
#      PyTorch with cuDNN in the same process, with and without jit_compile
#      (benchmarks/training.py --jit, small and medium LSTM LMs), and generation
#      against native PyTorch (benchmarks/generation.py).
# Each result is one JSON line in $GPU_RESULTS (default gpu-results/), and
# everything printed goes to $GPU_RESULTS/log.txt too.
# Offline machines: pip reads PIP_NO_INDEX=1 and PIP_FIND_LINKS=<wheel folder>.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${GPU_VENV:-.venv-gpu}
RESULTS=${GPU_RESULTS:-gpu-results}
mkdir -p "$RESULTS"
exec > >(tee "$RESULTS/log.txt") 2>&1
start=$SECONDS

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
PY="$VENV/bin/python"
sees_gpu() { "$PY" -c "$1" > /dev/null 2>&1; }
sees_gpu "import torch; assert torch.cuda.is_available()" \
    || "$PY" -m pip install -q torch  # PyPI's Linux x86-64 torch is a CUDA build
sees_gpu "import jax; assert jax.default_backend() == 'gpu'" \
    || "$PY" -m pip install -q "jax[cuda12]"
sees_gpu "import tensorflow as tf; assert tf.config.list_physical_devices('GPU')" \
    || "$PY" -m pip install -q "tensorflow[and-cuda]"
"$PY" -m pip install -q --no-deps -e .
"$PY" -m pip install -q -e .  # keras, keras-hub, ...: what the CUDA builds left out
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "set-up: $((SECONDS - start)) s"

run() {  # run NAME BACKEND COMMAND...: one JSON line into $RESULTS/NAME-BACKEND.json
    local name=$1 backend=$2
    shift 2
    echo "=== $name under $backend"
    KERAS_BACKEND=$backend timeout 150 "$PY" "$@" --json > "$RESULTS/$name-$backend.json" \
        && tail -c 2000 "$RESULTS/$name-$backend.json" \
        || echo "$name under $backend failed or timed out (exit $?)"
}

for backend in tensorflow jax torch; do
    echo "=== cudnn under $backend"
    KERAS_BACKEND=$backend timeout 90 "$PY" benchmarks/cudnn_check.py \
        | tee "$RESULTS/cudnn-$backend.json"
    run training "$backend" benchmarks/training.py --workloads train \
        --configs small,medium --steps 20 --repeats 3 --jit
    run generation "$backend" benchmarks/generation.py --repeats 3
done
echo "all: $((SECONDS - start)) s"
