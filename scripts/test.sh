#!/usr/bin/env bash
# Runs the whole test suite once under each backend; fails if any run fails
# (including pytest's exit code 5, "no tests collected").
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k rnn_lm`.
# Test files are shared among KERAS_NLM_TEST_WORKERS pytest-xdist workers (one per
# core up to 4 by default; 0 runs them in this process).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
failed=()
backends=${KERAS_NLM_BACKENDS:-tensorflow jax torch}
cores=$(nproc)
workers=${KERAS_NLM_TEST_WORKERS:-$((cores < 4 ? cores : 4))}
for backend in $backends; do
    echo "=== KERAS_BACKEND=$backend"
    KERAS_BACKEND=$backend "$PYTHON" -m pytest -q -n "$workers" --dist loadfile --no-loadscope-reorder "$@" || failed+=("$backend")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED under: ${failed[*]}"
    exit 1
fi
echo "All tests passed under: $backends"
