"""Data-parallel training on two devices of this CPU (JAX: two XLA host
devices; TensorFlow: two logical CPU devices; PyTorch: two gloo processes
started by torchrun) ends where one device ends, and its runs and presets
are interchangeable with one device's."""

import json
import os
import pathlib
import subprocess
import sys

import distribution_worker
import keras
import numpy as np
import pytest

from keras_nlm import presets, training
from keras_nlm.distribution import DataParallel, _Rows
from keras_nlm.testing import readme_commands, run_cli
from keras_nlm.training.training_test import QUICK

HERE = pathlib.Path(__file__).parent
BACKENDS = ("tensorflow", "jax", "torch")


def _run(command, backend=None, devices=1, cwd=HERE):
    """`command` (a script or `-m` module, and its arguments) in a new
    process; the worker script on `devices` devices (PyTorch's as torchrun's
    processes)."""
    backend = backend or keras.backend.backend()
    env = {**os.environ, "KERAS_BACKEND": backend}
    launcher = [sys.executable]
    if devices > 1:  # the worker (the CLI adds the flag itself for `--devices`)
        flag = f"--xla_force_host_platform_device_count={devices}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
        if backend == "torch":
            launcher += ["-m", "torch.distributed.run", "--standalone"]
            launcher += ["--nproc-per-node", str(devices)]
    result = subprocess.run(
        [*launcher, *command], env=env, capture_output=True, text=True, cwd=cwd
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_three_steps_on_two_devices_end_with_one_devices_weights(tmp_path):
    # The worker's cases: a stateful LSTM LM over three consecutive batches
    # (each replica carries its rows' state) and an attention Seq2Seq whose
    # replicas hold different numbers of padded tokens; the gradient's clip
    # binds. Each backend splits the batch its own way.
    _run(["distribution_worker.py", "2", str(tmp_path)], devices=2)
    for case in distribution_worker.CASES:
        loss, moved, weights = distribution_worker.train(case, devices=1)
        assert moved > 1e-3, case  # trained: not the initial weights compared
        saved = np.load(tmp_path / f"{case}.npz")
        arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        assert float(arrays[0]) == pytest.approx(loss, rel=1e-6), case
        for one, two in zip(weights, arrays[2:], strict=True):
            np.testing.assert_allclose(two, one, atol=2e-7, err_msg=case)


def test_each_device_takes_its_share_of_rows_cut_to_a_multiple_of_devices():
    batches = [(np.arange(10).reshape(5, 2), np.arange(5))]  # 5 rows, 2 devices
    first, second = (_Rows(batches, i, 2, 2)[0] for i in (0, 1))  # PyTorch's
    np.testing.assert_array_equal(first[1], [0, 1])
    np.testing.assert_array_equal(second[0], [[4, 5], [6, 7]])
    whole = _Rows(batches, 0, 1, 2)[0]  # JAX's and TensorFlow's global batch
    np.testing.assert_array_equal(whole[1], [0, 1, 2, 3])


# QUICK without dropout (each replica of TensorFlow and PyTorch draws its own
# masks) for three epochs: the learning rate halves after the first.
PLAIN = QUICK.replace(
    model={**QUICK.model, "dropout": 0.0}, epochs=3, name="plain_timemachine"
)


def _final_weights(run):
    return [np.asarray(w) for w in presets.load_preset(run).get_weights()]


def test_checkpoints_resume_across_device_counts(tmp_path):
    # One device, then two, then one again: each checkpoint read by the other
    # number of devices. Two devices' steps are one device's (the test above):
    # the reference is the uninterrupted run on one.
    recipe_file = tmp_path / "plain.json"
    recipe_file.write_text(json.dumps(PLAIN.to_dict()))
    run = tmp_path / "one_two_one"
    training.train(PLAIN.replace(epochs=1), run, verbose=0)
    command = ["-m", "keras_nlm.cli", "train", str(recipe_file), "--output"]
    _run(command + [str(run), "--epochs", "2", "--devices", "2", "--resume"])
    training.train(PLAIN, run, resume=True, verbose=0)
    history = presets.load_metadata(run)["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    training.train(PLAIN, tmp_path / "one", verbose=0)
    uninterrupted = _final_weights(tmp_path / "one")
    for a, b in zip(uninterrupted, _final_weights(run), strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5)


def test_a_tensorflow_strategy_of_ones_own_trains_as_one_device(tmp_path):
    if keras.backend.backend() != "tensorflow":
        with pytest.raises(ValueError, match="`strategy` is a TensorFlow"):
            DataParallel(strategy=object())
        return
    import tensorflow as tf

    # The code path a TPU's strategy takes, with a strategy this CPU has.
    parallel = DataParallel(strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    recipe = PLAIN.replace(epochs=1)
    training.train(recipe, tmp_path / "strategy", verbose=0, devices=parallel)
    training.train(recipe, tmp_path / "plain", verbose=0)
    for a, b in zip(
        _final_weights(tmp_path / "plain"),
        _final_weights(tmp_path / "strategy"),
        strict=True,
    ):
        np.testing.assert_allclose(b, a, atol=1e-6)


def test_bad_device_counts_are_refused_clearly():
    with pytest.raises(ValueError, match="devices"):
        DataParallel(0)
    parallel = DataParallel(1)
    parallel.devices = 3
    with pytest.raises(ValueError, match="devices=3 must divide the batch size 8"):
        parallel.check_batch_size(8)
    if keras.backend.backend() != "tensorflow":  # it would split this CPU
        # This process has one device (JAX), or is not one of torchrun's.
        with pytest.raises(ValueError, match="devices=2"):
            DataParallel(2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_readme_two_device_training_loads_and_evaluates_on_another_backend(
    tmp_path, monkeypatch, backend
):
    """The README's section runs as written under `backend`; its preset
    loads and evaluates on one device under it and under the next backend,
    alike (over the three runs of the suite, each backend's preset is read
    by another, and each backend reads another's)."""
    if backend != keras.backend.backend():
        pytest.skip("each backend's suite runs its own training")
    monkeypatch.chdir(tmp_path)
    outputs = []
    for arguments in readme_commands("--devices 2"):
        if "--devices" in arguments:  # set before the backend starts
            outputs.append(_run(["-m", "keras_nlm.cli", *arguments], cwd=tmp_path))
        else:  # on one device: this process
            result = run_cli(*arguments)
            assert result.returncode == 0, result.stderr
            outputs.append(result.stdout)
    run = tmp_path / "runs/timemachine-2"
    assert presets.load_metadata(run)["history"][-1]["backend"] == backend
    here = json.loads(outputs[-1])["perplexity"]
    assert here < 20  # learned: the uniform model's is about 70
    other = BACKENDS[(BACKENDS.index(backend) + 1) % len(BACKENDS)]
    evaluate = ["-m", "keras_nlm.cli", "evaluate", str(run), "--json"]
    evaluate += ["--dataset", "timemachine", "--split", "test"]
    result = json.loads(_run(evaluate, backend=other))
    assert result["perplexity"] == pytest.approx(here, rel=1e-4), other
