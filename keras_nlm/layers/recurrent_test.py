import keras
import numpy as np
import pytest

from keras_nlm.layers import RecurrentStack


@pytest.mark.parametrize(
    "cell, states_per_layer", [("simple", 1), ("lstm", 2), ("gru", 1)]
)
def test_shapes_and_states(cell, states_per_layer):
    stack = RecurrentStack(cell=cell, hidden_dim=5, num_layers=3)
    outputs, states = stack(
        np.random.randn(2, 7, 4).astype("float32"), return_state=True
    )
    assert tuple(outputs.shape) == (2, 7, 5)
    assert len(states) == 3 and all(len(s) == states_per_layer for s in states)
    # The top layer's last output is its final hidden state.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outputs[:, -1]),
        keras.ops.convert_to_numpy(states[-1][0]),
        atol=1e-6,
    )


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
def test_carrying_the_state_equals_one_long_pass(cell):
    """Truncated BPTT's forward pass: two halves with the state carried = the whole."""
    stack = RecurrentStack(cell=cell, hidden_dim=6, num_layers=2)
    x = np.random.randn(3, 10, 4).astype("float32")
    whole = keras.ops.convert_to_numpy(stack(x))
    first, states = stack(x[:, :6], return_state=True)
    second = stack(x[:, 6:], initial_state=states)
    halves = np.concatenate(
        [keras.ops.convert_to_numpy(first), keras.ops.convert_to_numpy(second)], axis=1
    )
    np.testing.assert_allclose(halves, whole, atol=1e-5)


def test_bidirectional_joins_both_directions():
    stack = RecurrentStack(cell="gru", hidden_dim=5, num_layers=2, bidirectional=True)
    outputs, states = stack(
        np.random.randn(2, 7, 4).astype("float32"), return_state=True
    )
    assert tuple(outputs.shape) == (2, 7, 10)
    assert len(states[0]) == 2  # forward h, backward h
    # The backward half at t=0 is the backward direction's final state.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outputs[:, 0, 5:]),
        keras.ops.convert_to_numpy(states[-1][1]),
        atol=1e-6,
    )


def test_mask_skips_padding():
    stack = RecurrentStack(cell="lstm", hidden_dim=4, return_sequences=False)
    x = np.random.randn(2, 5, 3).astype("float32")
    mask = np.array([[True] * 3 + [False] * 2] * 2)
    padded = keras.ops.convert_to_numpy(stack(x, mask=mask))
    short = keras.ops.convert_to_numpy(stack(x[:, :3]))
    np.testing.assert_allclose(padded, short, atol=1e-6)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="`cell`"):
        RecurrentStack(cell="transformer")
    with pytest.raises(ValueError, match="`num_layers`"):
        RecurrentStack(num_layers=0)
    with pytest.raises(ValueError, match="`dropout`"):
        RecurrentStack(dropout=1.5)
    stack = RecurrentStack(num_layers=2, hidden_dim=3)
    with pytest.raises(ValueError, match="one list of states per layer"):
        stack(np.zeros((1, 2, 3), "float32"), initial_state=[[np.zeros((1, 3))] * 2])


def test_serializes():
    stack = RecurrentStack(cell="gru", hidden_dim=3, num_layers=2, bidirectional=True)
    assert (
        RecurrentStack.from_config(stack.get_config()).get_config()
        == stack.get_config()
    )
