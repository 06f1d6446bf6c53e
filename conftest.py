import atexit
import json
import os
import pathlib
import shutil
import tempfile


def _own_cores():
    """Gives this pytest-xdist worker its share of the cores, before a backend
    starts its thread pools (they size themselves by the cores a process may
    use, and so do the processes a test starts). Two workers' pools on the same
    cores made PyTorch's small operators up to 10x slower: an LSTM LM's
    evaluation took 10 s with 2 threads, 2.4 s with 1, beside another process."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cores = sorted(getattr(os, "sched_getaffinity", lambda _: ())(0))
    share = len(cores) // workers
    if workers > 1 and share:
        worker = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
        os.sched_setaffinity(0, cores[worker * share : (worker + 1) * share])


_own_cores()
# The suite compiles hundreds of small XLA programs, and LLVM's full
# optimization of their code is much of JAX's compile time. Its level 1 kept
# the run time of the tests that evaluate zoo models (level 0 made them 35%
# slower) and cut tests/model_contract_test.py under JAX from 201-216 s to
# 138 s (TensorFlow unchanged). XLA's older CPU loop emitters instead of its
# fusion emitters, and LLVM without its costliest passes, cut it again, on one
# core: 77.6 -> 57.9 s; tests/zoo_test.py, mixed_precision_test.py and
# keras_nlm/evaluation_test.py together 218 -> 144 s. The whole JAX suite of
# a clean-clone `.ci/run` on 2 cores: 634 -> 517 s (TensorFlow's XLA, which
# knows both flags, compiled tests/compiled_test.py in 99 s against 103 s).
# The processes tests start inherit them.
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false"
    " --xla_llvm_disable_expensive_passes=true",
)
# Tests and the processes they start compile the same programs again (the
# same tiny models, a training killed and resumed): JAX's persistent cache,
# one per test run, shared by the workers (set before they start), removed
# at the end. The kill-and-resume test: 61 -> 42 s.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jax-cache-")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)

import keras  # noqa: E402
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Property-based tests: few, reproducible examples (CI runs every test under
# three backends), no example database; HYPOTHESIS_PROFILE=thorough for more.
settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", settings.get_profile("ci"), max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Tests read the corpora from the shared mirror unless told otherwise.
os.environ.setdefault(
    "KERAS_NLM_DATA", str(pathlib.Path(__file__).parent.parent / "shared" / "data")
)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    np.random.seed(1234)


def pytest_sessionfinish(session):
    # A pytest-xdist worker hands its counts to the controller, which prints them.
    if hasattr(session.config, "workeroutput"):
        from keras_nlm.testing import RELIABILITY_CASES

        session.config.workeroutput["reliability_cases"] = dict(RELIABILITY_CASES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    from keras_nlm.testing import RELIABILITY_CASES

    RELIABILITY_CASES.update(node.workeroutput.get("reliability_cases", {}))


def pytest_terminal_summary(terminalreporter):
    from keras_nlm.testing import RELIABILITY_CASES

    if not RELIABILITY_CASES:
        return
    counts = dict(sorted(RELIABILITY_CASES.items()))
    terminalreporter.write_line(
        f"keras-nlm reliability cases tried under {keras.backend.backend()}: "
        + ", ".join(f"{n} {kind}" for kind, n in counts.items())
    )
    path = os.environ.get("KERAS_NLM_RELIABILITY_COUNTS")
    if path:
        totals = (
            json.loads(pathlib.Path(path).read_text()) if os.path.exists(path) else {}
        )
        totals[keras.backend.backend()] = counts
        pathlib.Path(path).write_text(json.dumps(totals, indent=2) + "\n")


# The test files that take longest (measured with --durations), run first:
# pytest-xdist hands each worker a whole file at a time, and one of these dealt
# out last kept its worker busy while the other idled (scripts/test.sh turns
# off xdist's own order, by test count, which dealt them out last).
SLOW_FILES_FIRST = (  # worker seconds, the slowest backend's
    "tests/compiled_test.py",  # ~220 s (PyTorch)
    "tests/distribution_test.py",  # ~155 s (PyTorch)
    "tests/notebooks_test.py",  # ~130 s (JAX)
    "tests/mixed_precision_test.py",  # ~120 s (JAX)
    "keras_nlm/training/training_test.py",  # ~115 s (TensorFlow)
    "tests/model_contract_test.py",  # ~80 s (TensorFlow)
    "tests/bad_input_test.py",  # ~75 s (TensorFlow)
    "tests/readme_test.py",  # ~70 s (JAX)
    "keras_nlm/models/seq2seq/seq2seq_test.py",  # ~70 s (JAX)
    "tests/export_test.py",  # ~65 s (JAX)
    "tests/cross_backend_test.py",  # ~50 s (TensorFlow)
    "tests/zoo_test.py",  # ~50 s (JAX)
)


def pytest_collection_modifyitems(items):
    def rank(item):
        path = item.nodeid.split("::")[0]
        return (
            SLOW_FILES_FIRST.index(path)
            if path in SLOW_FILES_FIRST
            else len(SLOW_FILES_FIRST)
        )

    items.sort(key=rank)  # stable: the other files keep their order
