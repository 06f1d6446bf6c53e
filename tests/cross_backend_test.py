"""A model saved under this backend loads under the other two with the same outputs."""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_nlm.testing import example_models

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from cross_backend_worker import generated  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")
WORKER = pathlib.Path(__file__).with_name("cross_backend_worker.py")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cross_backend")
    expected, expected_tokens = {}, {}
    for name, model, x, _ in example_models(seed=7):
        inputs = x if isinstance(x, dict) else {"inputs": x}
        np.savez(directory / f"{name}.inputs.npz", **inputs)
        expected[name] = keras.ops.convert_to_numpy(model(x, training=False))
        tokens = generated(model)
        if tokens is not None:
            expected_tokens[name] = tokens
        model.save(directory / f"{name}.keras")
    return directory, expected, expected_tokens


@pytest.mark.parametrize("other", [b for b in BACKENDS if b != keras.backend.backend()])
def test_outputs_agree_on_other_backend(saved, other):
    directory, expected, expected_tokens = saved
    env = dict(os.environ, KERAS_BACKEND=other)
    subprocess.run([sys.executable, str(WORKER), str(directory)], env=env, check=True)
    for name, outputs in expected.items():
        loaded = np.load(directory / f"{name}.{other}.npy")
        np.testing.assert_allclose(
            loaded, outputs, atol=1e-5, rtol=1e-5, err_msg=f"{name} on {other}"
        )
    assert expected_tokens  # every language-model variant generated
    for name, tokens in expected_tokens.items():
        loaded = np.load(directory / f"{name}.generated.{other}.npy")
        np.testing.assert_array_equal(loaded, tokens, err_msg=f"{name} on {other}")
