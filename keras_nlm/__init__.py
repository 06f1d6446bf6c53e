"""keras-nlm: the classic neural language models of the course, for Keras 3.

Runs unchanged on TensorFlow, JAX and PyTorch: pick one with `KERAS_BACKEND`.

TensorFlow's C++ start-up lines (the oneDNN and CUDA notices, "failed call to
cuInit" on a machine without a GPU, absl's "All log messages before
absl::InitializeLog()") are silenced from the moment keras-nlm is imported
(import it before Keras, which loads TensorFlow on its backend):
`TF_CPP_MIN_LOG_LEVEL` is set to 3 when TensorFlow first loads, unless already
set (JAX's default of 1 aside), and the lines TensorFlow prints while it loads,
which ignore that setting, are held back by the same rule. Set
`TF_CPP_MIN_LOG_LEVEL=0` (or 2) before starting Python to see them again. On JAX and PyTorch, TensorFlow is loaded
only by the features that use `tf.data` or TensorFlow Datasets.
"""

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile

# TensorFlow's C++ log lines: absl's `I0000 00:00:1796626789.60 123 file.cc:45]`
# and TSL's older `2025-01-01 00:00:00.000: I file.cc:45] ...`.
_LOG_LINE = re.compile(
    rb"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]\s]+:\d+\] "
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) [^\]\s]+:\d+\] "
)
# Lines that go with an INFO or WARNING one: absl's notice that logging was
# not set up yet, the second line of cpu_feature_guard's.
_COMPANION_LINES = (
    (b"WARNING: All log messages before absl::InitializeLog()", 1),
    (b"To enable the following instructions:", 0),
)
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
_TENSORFLOW_MODULES = ("tensorflow", "tensorflow_text")
# JAX, which Keras imports on every backend, sets TF_CPP_MIN_LOG_LEVEL=1 if
# unset: that value, set before keras-nlm was imported, is taken for JAX's.
_USER_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
if _USER_LOG_LEVEL == "1" and "jax" in sys.modules:
    _USER_LOG_LEVEL = None


def _set_log_level():
    """TF_CPP_MIN_LOG_LEVEL=3 unless the user chose a level."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    if level is None or (level == "1" and _USER_LOG_LEVEL is None):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"


def _min_log_level():
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def _shown(line, level):
    """Whether a line TensorFlow printed while loading passes
    `TF_CPP_MIN_LOG_LEVEL=level`, as its later log lines do."""
    match = _LOG_LINE.match(line)
    if match:
        return _SEVERITY[match.group(1) or match.group(2)] >= level
    for start, severity in _COMPANION_LINES:
        if line.startswith(start):
            return severity >= level
    return True


@contextlib.contextmanager
def _filtered_stderr():
    """Holds back what is written to file descriptor 2 (where TensorFlow's C++
    code logs) and writes it out at the end, less the log lines that
    `TF_CPP_MIN_LOG_LEVEL` filters out."""
    level = _min_log_level()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no stderr (pythonw)
        yield
        return
    with tempfile.TemporaryFile() as held, contextlib.ExitStack() as stack:
        os.dup2(held.fileno(), 2)

        @stack.callback
        def release():
            with contextlib.suppress(AttributeError, OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().splitlines(keepends=True)
            kept = b"".join(line for line in lines if _shown(line, level))
            with contextlib.suppress(OSError):
                os.write(2, kept)

        yield


class _QuietLoader(importlib.abc.Loader):
    """Runs a TensorFlow module's loader with its start-up lines filtered."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        _set_log_level()
        with _filtered_stderr():
            self._loader.exec_module(module)

    def __getattr__(self, name):  # get_source, get_resource_reader, ...
        return getattr(self._loader, name)


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` and `tensorflow_text` as the other finders do, and
    loads them with `_QuietLoader`."""

    def find_spec(self, name, path=None, target=None):
        if name not in _TENSORFLOW_MODULES:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


if not any(isinstance(finder, _QuietTensorFlow) for finder in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlow())

# After the finder: on TensorFlow, Keras loads it.
from keras_nlm import layers, models
from keras_nlm.version import __version__

__all__ = ["__version__", "layers", "models"]
