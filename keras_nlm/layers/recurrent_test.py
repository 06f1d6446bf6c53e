import keras
import numpy as np
import pytest
from keras import ops

from keras_nlm.layers import RecurrentStack, cells
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


def _outputs_and_gradients(layer, x, states, mask=None, kept=None, training=False):
    """The layer's outputs and final states, and the gradients of a fixed
    random weighting of them with respect to its weights, inputs and states;
    outputs where `kept` (batch, time) is False (padding) weigh nothing and
    come back as 0: what a layer outputs there is its own convention."""
    backend = keras.backend.backend()
    rng = np.random.default_rng(1)
    weightings = None

    def loss_of(outputs):
        nonlocal weightings
        if weightings is None:
            weightings = [rng.normal(size=o.shape).astype("float32") for o in outputs]
            if kept is not None:
                weightings[0] *= kept[..., None]
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
                training=training,
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
            outputs = layer(x, initial_state=states, mask=mask, training=training)
            loss = loss_of(outputs)
        grads = tape.gradient(loss, [*layer.trainable_variables, x, *states])
    else:
        import torch

        x = torch.tensor(x, requires_grad=True)
        states = [torch.tensor(s, requires_grad=True) for s in states]
        outputs = layer(x, initial_state=states, mask=mask, training=training)
        grads = torch.autograd.grad(
            loss_of(outputs),
            [v.value for v in layer.trainable_variables] + [x, *states],
        )
    outputs = [keras.ops.convert_to_numpy(t) for t in outputs]
    if kept is not None:
        outputs[0] = outputs[0] * kept[..., None]
    return [*outputs, *(keras.ops.convert_to_numpy(g) for g in grads)]


class _Slides(keras.layers.Layer):
    """The slides' equations (`cells.lstm_step` / `gru_step`) looped over
    time as Keras's recurrent layers are called: a masked step keeps the
    state (and repeats the last output), `go_backwards` reads the sequence
    from its end and returns the outputs in that order. `recurrent_kernel`
    replaces the layer's (weight drop's dropped matrix)."""

    def __init__(self, layer, recurrent_kernel=None):
        super().__init__()
        self.layer = layer  # whose weights the equations read
        self.recurrent_kernel = recurrent_kernel
        self.supports_masking = True
        self.built = True  # no weights of its own

    def call(self, x, initial_state, mask=None, training=None):
        W, R, b = (w.value for w in self.layer.cell.weights)
        if self.recurrent_kernel is not None:
            R = self.recurrent_kernel
        lstm = len(initial_state) == 2
        states, outputs = list(initial_state), []
        output = ops.zeros_like(states[0])
        steps = range(x.shape[1])
        for t in reversed(steps) if self.layer.go_backwards else steps:
            if lstm:
                new = list(cells.lstm_step(x[:, t], *states, W, R, b))
            else:
                new = [cells.gru_step(x[:, t], states[0], W, R, b)]
            if mask is not None:
                keep = ops.expand_dims(ops.convert_to_tensor(mask[:, t]), -1)
                new = [ops.where(keep, n, s) for n, s in zip(new, states)]
                output = ops.where(keep, new[0], output)
            else:
                output = new[0]
            states = new
            outputs.append(output)
        return [ops.stack(outputs, axis=1), *states]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [None, "all_true", "padded"])
def test_recurrent_layers_compute_the_slides_equations(cell, go_backwards, masked):
    """Our LSTM / GRU (PyTorch's fused kernels on the torch backend, the
    projected loop elsewhere and for padded batches) give the outputs, final states and gradients of
    the slides' equations, `keras_nlm.layers.cells`."""
    x = np.random.default_rng(0).normal(size=(3, 6, 4)).astype("float32")
    states = [np.random.default_rng(2).normal(size=(3, 5)).astype("float32")] * (
        2 if cell == "lstm" else 1
    )
    mask = None if masked is None else np.ones((3, 6), bool)
    if masked == "padded":
        mask[0, 4:] = False
    ours = {"lstm": LSTM, "gru": GRU}[cell](
        5, return_sequences=True, return_state=True, go_backwards=go_backwards
    )
    ours.build(x.shape)
    # Non-zero biases, so that misplaced biases show.
    ours.set_weights(
        [
            w + 0.1 * np.arange(w.size).reshape(w.shape) / w.size
            for w in ours.get_weights()
        ]
    )
    fused = keras.backend.backend() == "torch" and masked != "padded"
    assert _fusable(ours, mask) == fused
    # The outputs come in the order read: backwards, the padding comes first.
    kept = None if mask is None else mask[:, ::-1] if go_backwards else mask
    expected = _outputs_and_gradients(_Slides(ours), x, states, mask, kept)
    got = _outputs_and_gradients(ours, x, states, mask, kept)
    assert len(got) == len(expected)
    for got, want in zip(got, expected):
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_loop_projects_every_steps_input_at_once(cell):
    """Off PyTorch's fused kernel, the loop takes `x W + b` for all steps
    before it and never calls Keras's cell, whose `call` multiplies each
    step's input; with the cell's own dropout in training (a mask of the
    cell's per step) Keras's loop of cells runs, as it computes."""
    x, states = _inputs(cell)
    mask = np.ones(x.shape[:2], bool)
    mask[0, -1] = False  # padded: not PyTorch's fused kernel
    layer = {"lstm": LSTM, "gru": GRU}[cell](5, dropout=0.5, return_sequences=True)
    layer.build(x.shape)
    calls = []
    cell_call = layer.cell.call
    layer.cell.call = lambda *args, **kwargs: (
        calls.append(1) or cell_call(*args, **kwargs)
    )
    projected = layer(x, initial_state=states, mask=mask)
    assert calls == []
    np.testing.assert_allclose(
        _numpy([projected])[0],
        _numpy(_Slides(layer)(x, states, mask=mask)[:1])[0],
        atol=1e-5,
    )
    layer(x, initial_state=states, mask=mask, training=True)
    assert calls  # (traced once on JAX)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_stateful_layer_trains_on_padded_batches(cell):
    # The state variables are assigned after each call (in place on PyTorch).
    x = np.random.default_rng(0).integers(1, 50, (4, 6))
    x[0, 4:] = 0
    y = np.random.default_rng(1).integers(0, 50, (4, 6))
    model = keras.Sequential(
        [
            keras.Input((6,), batch_size=4),
            keras.layers.Embedding(50, 8, mask_zero=True),
            {"lstm": LSTM, "gru": GRU}[cell](8, stateful=True, return_sequences=True),
            keras.layers.Dense(50),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = model.fit(x, y, epochs=3, batch_size=4, verbose=0).history["loss"]
    assert losses[-1] < losses[0]


def _inputs(cell):
    x = np.random.default_rng(0).normal(size=(3, 6, 4)).astype("float32")
    states = [np.random.default_rng(2).normal(size=(3, 5)).astype("float32")] * (
        2 if cell == "lstm" else 1
    )
    return x, states


def _numpy(tensors):
    return [keras.ops.convert_to_numpy(t) for t in tensors]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_weight_drop_masks_only_the_recurrent_kernel_in_training(cell):
    x, states = _inputs(cell)
    layer = {"lstm": LSTM, "gru": GRU}[cell](
        5, return_sequences=True, return_state=True, weight_dropout=0.5
    )
    layer.build(x.shape)
    weights = layer.get_weights()
    seed = layer.weight_dropout_seed_generator.state
    start = keras.ops.convert_to_numpy(seed.value)

    def assert_equal(got, want):
        for got, want in zip(_numpy(got), _numpy(want)):
            np.testing.assert_allclose(got, want, atol=1e-5)

    # At inference: the undropped equations.
    assert_equal(layer(x, initial_state=states), _Slides(layer)(x, states))
    # In training: the same equations with R' = M ⊙ R / (1 - p), M the
    # layer's one draw of the call; W and b as they are.
    got = layer(x, initial_state=states, training=True)
    seed.assign(start)
    R = layer.cell.recurrent_kernel.value
    dropped = keras.random.dropout(R, 0.5, seed=layer.weight_dropout_seed_generator)
    kept = keras.ops.convert_to_numpy(dropped) != 0
    assert 0.3 < kept.mean() < 0.7
    assert_equal(got, _Slides(layer, recurrent_kernel=dropped)(x, states))
    # The call computes R'; the variables keep their values.
    for got, want in zip(layer.get_weights(), weights):
        np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="PyTorch's fused kernels"
)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_kernel_and_keras_loop_use_the_same_dropped_matrix(cell):
    x, states = _inputs(cell)
    layer = {"lstm": LSTM, "gru": GRU}[cell](
        5, return_sequences=True, return_state=True, weight_dropout=0.5
    )
    layer.build(x.shape)
    seed = layer.weight_dropout_seed_generator.state
    start = keras.ops.convert_to_numpy(seed.value)
    assert _fusable(layer, None)
    fused = _outputs_and_gradients(layer, x, states, training=True)
    seed.assign(start)
    layer.use_cudnn = False  # Keras's loop of cells
    assert not _fusable(layer, None)
    loop = _outputs_and_gradients(layer, x, states, training=True)
    for got, want in zip(fused, loop):
        np.testing.assert_allclose(got, want, atol=1e-5)
    # Dropped: another draw gives other outputs.
    assert not np.allclose(
        loop[0], _outputs_and_gradients(layer, x, states, training=True)[0]
    )


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="PyTorch's fused kernels"
)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_fused_kernel_computes_in_the_policys_16_bits(cell, policy):
    # As Keras's loop of autocast cells does: 16-bit outputs and states from
    # the float32 weights, equal to the loop's to 16-bit rounding.
    x, states = _inputs(cell)
    layer = {"lstm": LSTM, "gru": GRU}[cell](
        5, return_sequences=True, return_state=True, dtype=policy
    )
    layer.build(x.shape)
    assert _fusable(layer, None)
    fused = layer(x, initial_state=states)
    layer.use_cudnn = False  # Keras's loop of cells
    loop = layer(x, initial_state=states)
    assert layer.cell.kernel.dtype == "float32"
    for got, want in zip(fused, loop):
        assert keras.backend.standardize_dtype(got.dtype) == policy[len("mixed_") :]
        np.testing.assert_allclose(
            ops.convert_to_numpy(ops.cast(got, "float32")),
            ops.convert_to_numpy(ops.cast(want, "float32")),
            atol=2e-2,
        )


def test_weight_drop_in_a_stack():
    stack = RecurrentStack("gru", hidden_dim=5, num_layers=2, weight_dropout=0.3)
    assert all(layer.weight_dropout == 0.3 for layer in stack.recurrent_layers)
    assert RecurrentStack.from_config(stack.get_config()).weight_dropout == 0.3
    # Off, a layer holds the variables of Keras's (the weight files' layout);
    # on, also its seed generator's state.
    layers = LSTM(5), keras.layers.LSTM(5), LSTM(5, weight_dropout=0.5)
    for layer in layers:
        layer.build((None, None, 4))
    names = [[v.name for v in layer.variables] for layer in layers]
    assert names[0] == names[1]
    assert sorted(names[2]) == sorted([*names[0], "seed_generator_state"])
    with pytest.raises(ValueError, match="`weight_dropout`.*cell='simple'"):
        RecurrentStack("simple", weight_dropout=0.5)
    with pytest.raises(ValueError, match="`weight_dropout`"):
        LSTM(4, weight_dropout=1.0)
    with pytest.raises(ValueError, match="`hidden_dropout`"):
        RecurrentStack(hidden_dropout=-0.1)


def test_hidden_dropout_is_locked_between_layers():
    stack = RecurrentStack("lstm", hidden_dim=5, num_layers=2, hidden_dropout=0.5)
    x = np.random.randn(2, 7, 4).astype("float32")
    below = stack.recurrent_layers[0](x)[0]
    # At inference the layers are stacked as they are,
    undropped = stack.recurrent_layers[1](below)[0]
    np.testing.assert_allclose(*_numpy([stack(x), undropped]), atol=1e-6)
    # in training through one mask per sequence, the same at all 7 steps.
    seed = stack.hidden_dropout_layer.seed_generator.state
    start = keras.ops.convert_to_numpy(seed.value)
    got = stack(x, training=True)
    seed.assign(start)
    dropped = stack.hidden_dropout_layer(below, training=True)
    assert ((keras.ops.convert_to_numpy(dropped) == 0).sum(1) % 7 == 0).all()
    want = stack.recurrent_layers[1](dropped)[0]
    np.testing.assert_allclose(*_numpy([got, want]), atol=1e-6)


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="PyTorch's fused kernels"
)
def test_torch_compile_takes_the_masked_loop_without_reading_the_mask(monkeypatch):
    # Whether a mask keeps every step is a read of its values on the host,
    # which breaks `torch.compile`'s graph: compiled, a masked batch takes
    # Keras's loop, right for any mask.
    import torch

    layer = LSTM(5)
    layer.build((3, 6, 4))
    mask = np.ones((3, 6), bool)
    assert _fusable(layer, mask)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not _fusable(layer, mask)
    assert _fusable(layer, None)
