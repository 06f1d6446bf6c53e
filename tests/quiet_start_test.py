"""Starts are quiet: a zoo model generates, greedily and by top-p sampling,
without a line of TensorFlow's C++ logging (oneDNN, CUDA, absl's notice) on
any backend, and on JAX and PyTorch without loading TensorFlow at all."""

import os
import re
import subprocess
import sys

import keras
import pytest

import keras_nlm

# absl's `I0000 00:00:1796626789.601721   15258 port.cc:153] ...` and the like.
NOISE = re.compile(
    r"cuInit|oneDNN|absl::InitializeLog|cuda drivers|^[IWEF]\d{4} ", re.MULTILINE
)

# keras-nlm before Keras on TensorFlow, where Keras loads TensorFlow (as
# `python -m keras_nlm` and `keras-nlm` do: keras-nlm cannot quiet a start
# that came before it); Keras first elsewhere, as a user may.
SCRIPT = """
import sys

from keras_nlm import presets
from keras_nlm.generation import import_keras_hub

import keras

model = presets.load_preset("char_lstm_shakespeare")
sampler = import_keras_hub().samplers.TopPSampler(p=0.9, seed=0)
print(repr(model.generate("ROMEO:", max_length=12)))
print(repr(model.generate("ROMEO:", max_length=12, sampler=sampler)))
print("tensorflow loaded:", "tensorflow" in sys.modules)
# KerasHub's TensorFlow features still work, loading TensorFlow when used.
tokenizer = import_keras_hub().tokenizers.WordPieceTokenizer(
    vocabulary=["[UNK]", "a", "b"]
)
print(keras.ops.convert_to_numpy(tokenizer("a b")).tolist())
"""


def test_generating_prints_no_tensorflow_log_lines():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["KERAS_BACKEND"] = backend = keras.backend.backend()
    script = SCRIPT if backend == "tensorflow" else "import keras\n" + SCRIPT
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    noise = [line for line in output.splitlines() if NOISE.search(line)]
    assert noise == [], output
    greedy, sampled, loaded, tokens = result.stdout.splitlines()[-4:]
    assert greedy[1:].startswith("ROMEO:") and sampled[1:].startswith("ROMEO:")
    # Only TensorFlow's own backend loads it to generate.
    assert loaded == f"tensorflow loaded: {backend == 'tensorflow'}"
    assert tokens == "[1, 2]"


ABSL_INFO = b"I0000 00:00:1796626789.601721   15258 port.cc:153] oneDNN custom ops\n"
ABSL_ERROR = b"E0000 00:00:1796626793.865412   15258 cuda_platform.cc:52] cuInit\n"
TSL_WARNING = b"2025-09-17 14:44:05.157831: W external/x/y.cc:32] Could not find\n"
ABSL_NOTICE = b"WARNING: All log messages before absl::InitializeLog() is called\n"
CPU_GUARD = b"To enable the following instructions: AVX2 FMA, in other operations\n"
PYTHON_WARNING = b"/x/y.py:3: UserWarning: something\n"


@pytest.mark.parametrize(
    "level, shown",
    [
        (0, [ABSL_INFO, ABSL_ERROR, TSL_WARNING, ABSL_NOTICE, CPU_GUARD]),
        (1, [ABSL_ERROR, TSL_WARNING, ABSL_NOTICE]),
        (2, [ABSL_ERROR]),
        (3, []),
    ],
)
def test_the_lines_tensorflow_prints_as_it_loads_follow_its_log_level(level, shown):
    # What TensorFlow 2.21 prints while it loads ignores TF_CPP_MIN_LOG_LEVEL:
    # keras-nlm holds it back and applies it; 0 brings everything back.
    lines = [ABSL_INFO, ABSL_ERROR, TSL_WARNING, ABSL_NOTICE, CPU_GUARD]
    kept = [line for line in lines if keras_nlm._shown(line, level)]
    assert kept == shown
    assert keras_nlm._shown(PYTHON_WARNING, level)
