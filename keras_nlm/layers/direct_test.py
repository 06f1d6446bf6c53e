import keras
import numpy as np
import pytest
from keras import ops

from keras_nlm.layers import RecurrentStack
from keras_nlm.layers.direct import dense_call, direct_call


def _numpy(x):
    return ops.convert_to_numpy(ops.cast(x, "float32"))


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("lora", [False, True])
def test_dense_call_equals_the_layers_call(policy, lora):
    x = ops.convert_to_tensor(
        np.random.default_rng(0).normal(size=(2, 3, 5)).astype("float32")
    )
    dense = keras.layers.Dense(7, bias_initializer="uniform", dtype=policy)
    want = dense(x)
    if lora:
        dense.enable_lora(2, b_initializer="uniform")
        want = dense(x)
    got = dense_call(dense, x)
    assert tuple(got.shape) == (2, 3, 7)
    assert keras.backend.standardize_dtype(got.dtype) == dense.compute_dtype
    # One rounding (the bias added inside the product) against Keras's two:
    # within a 16-bit rounding of the result under a mixed policy.
    tolerance = 1e-6 if policy == "float32" else 1e-2
    np.testing.assert_allclose(
        _numpy(got), _numpy(want), rtol=tolerance, atol=tolerance
    )
    # Gradients reach the float32 weights as through `__call__`.
    assert all(w.dtype == "float32" for w in dense.trainable_weights)


def test_direct_call_builds_first_and_passes_training():
    stack = RecurrentStack("lstm", hidden_dim=4, num_layers=2, hidden_dropout=0.5)
    x = np.ones((3, 6, 2), "float32")
    assert not stack.built
    out, states = direct_call(stack, x, return_state=True)  # `__call__` builds
    assert stack.built and tuple(out.shape) == (3, 6, 4)
    x = ops.convert_to_tensor(x)
    inference = direct_call(stack, x, training=False)
    np.testing.assert_allclose(_numpy(inference), _numpy(stack(x)), atol=1e-6)
    # `training=True` reaches the locked dropout between the layers.
    assert not np.allclose(_numpy(direct_call(stack, x, training=True)), _numpy(out))
