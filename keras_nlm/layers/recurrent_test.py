import keras
import numpy as np
import pytest

from keras_nlm.layers import RecurrentStack
from keras_nlm.layers.recurrent import GRU, LSTM, _fusable


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
    assert RecurrentStack(dropout=np.float32(0.25)).get_config()["dropout"] == 0.25
    stack = RecurrentStack(num_layers=2, hidden_dim=3)
    with pytest.raises(ValueError, match="one list of states per layer"):
        stack(np.zeros((1, 2, 3), "float32"), initial_state=[[np.zeros((1, 3))] * 2])
    with pytest.raises(ValueError, match="`states` must hold one list of states"):
        stack.step(np.zeros((1, 3), "float32"), stack.initial_state(1)[:1])
    bidirectional = RecurrentStack(hidden_dim=3, bidirectional=True)
    bidirectional(np.zeros((1, 2, 3), "float32"))
    with pytest.raises(ValueError, match="bidirectional"):
        bidirectional.step(np.zeros((1, 3), "float32"), bidirectional.initial_state(1))


def test_serializes():
    stack = RecurrentStack(cell="gru", hidden_dim=3, num_layers=2, bidirectional=True)
    assert (
        RecurrentStack.from_config(stack.get_config()).get_config()
        == stack.get_config()
    )


def _outputs_and_gradients(layer, x, states, mask=None):
    """The layer's outputs and final states, and the gradients of a fixed
    random weighting of them with respect to its weights, inputs and states."""
    backend = keras.backend.backend()
    rng = np.random.default_rng(1)
    weightings = None

    def loss_of(outputs):
        nonlocal weightings
        if weightings is None:
            weightings = [rng.normal(size=o.shape).astype("float32") for o in outputs]
        return sum(
            keras.ops.sum(keras.ops.multiply(o, w)) for o, w in zip(outputs, weightings)
        )

    if backend == "jax":
        import jax

        def loss(weights, x, states):
            outputs, _ = layer.stateless_call(
                weights,
                [v.value for v in layer.non_trainable_variables],
                x,
                initial_state=states,
                mask=mask,
            )
            return loss_of(outputs), outputs

        weights = [v.value for v in layer.trainable_variables]
        (_, outputs), grads = jax.value_and_grad(loss, (0, 1, 2), has_aux=True)(
            weights, x, states
        )
        grads = [*grads[0], grads[1], *grads[2]]
    elif backend == "tensorflow":
        import tensorflow as tf

        x, states = tf.constant(x), [tf.constant(s) for s in states]
        with tf.GradientTape() as tape:
            tape.watch([x, *states])
            outputs = layer(x, initial_state=states, mask=mask)
            loss = loss_of(outputs)
        grads = tape.gradient(loss, [*layer.trainable_variables, x, *states])
    else:
        import torch

        x = torch.tensor(x, requires_grad=True)
        states = [torch.tensor(s, requires_grad=True) for s in states]
        outputs = layer(x, initial_state=states, mask=mask)
        grads = torch.autograd.grad(
            loss_of(outputs),
            [v.value for v in layer.trainable_variables] + [x, *states],
        )
    return [keras.ops.convert_to_numpy(t) for t in [*outputs, *grads]]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [None, "all_true", "padded"])
def test_fused_kernels_equal_keras_loop_of_cells(cell, go_backwards, masked):
    """Our LSTM / GRU (PyTorch's fused kernels on the torch backend) give the
    outputs, final states and gradients of Keras's loop of cells."""
    x = np.random.default_rng(0).normal(size=(3, 6, 4)).astype("float32")
    states = [np.random.default_rng(2).normal(size=(3, 5)).astype("float32")] * (
        2 if cell == "lstm" else 1
    )
    mask = None if masked is None else np.ones((3, 6), bool)
    if masked == "padded":
        mask[0, 4:] = False
    kwargs = {
        "return_sequences": True,
        "return_state": True,
        "go_backwards": go_backwards,
    }
    ours = {"lstm": LSTM, "gru": GRU}[cell](5, **kwargs)
    stock = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell](
        5, use_cudnn=False, **kwargs
    )
    for layer in (ours, stock):
        layer.build(x.shape)
    # Non-zero biases, so that misplaced biases show.
    stock.set_weights(
        [
            w + 0.1 * np.arange(w.size).reshape(w.shape) / w.size
            for w in stock.get_weights()
        ]
    )
    ours.set_weights(stock.get_weights())
    fused = keras.backend.backend() == "torch" and masked != "padded"
    assert _fusable(ours, mask) == fused
    expected = _outputs_and_gradients(stock, x, states, mask)
    for got, want in zip(_outputs_and_gradients(ours, x, states, mask), expected):
        np.testing.assert_allclose(got, want, atol=1e-5)
