import keras
import numpy as np
import pytest

from keras_nlm.models import RNNLM, CarriedState


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
def test_state_carried_across_calls_equals_one_pass(cell):
    model = RNNLM(40, cell=cell, num_layers=2, hidden_dim=8, embedding_dim=6)
    ids = np.random.randint(0, 40, (3, 12))
    whole = _numpy(model(ids))
    first, states = model(ids[:, :5], return_state=True)
    second, _ = model(ids[:, 5:], initial_state=states, return_state=True)
    np.testing.assert_allclose(
        np.concatenate([_numpy(first), _numpy(second)], axis=1), whole, atol=1e-5
    )


def test_one_token_at_a_time_equals_one_pass():
    model = RNNLM(40, cell="lstm", hidden_dim=8, embedding_dim=6)
    ids = np.random.randint(0, 40, (2, 6))
    whole = _numpy(model(ids))
    states, steps = None, []
    for t in range(ids.shape[1]):
        logits, states = model(
            ids[:, t : t + 1], initial_state=states, return_state=True
        )
        steps.append(_numpy(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), whole, atol=1e-5)


AWD_LSTM = {
    "embedding_dropout": 0.1,
    "input_dropout": 0.4,
    "hidden_dropout": 0.25,
    "output_dropout": 0.3,
    "weight_dropout": 0.5,
    "activation_regularization": 2.0,
    "temporal_activation_regularization": 1.0,
}


@pytest.mark.parametrize(
    "cell, tie_weights, options",
    [("lstm", False, {}), ("gru", True, {}), ("simple", False, {})]
    + [("lstm", True, AWD_LSTM), ("gru", False, AWD_LSTM)],
)
def test_step_equals_one_pass(cell, tie_weights, options):
    # Inference: no dropout of any kind, in `call` as in `step`.
    model = RNNLM(
        40,
        cell=cell,
        num_layers=2,
        hidden_dim=8,
        embedding_dim=8,
        dropout=0.3,
        tie_weights=tie_weights,
        **options,
    )
    ids = np.random.randint(0, 40, (3, 5))
    whole = _numpy(model(ids))
    states, steps = model.rnn.initial_state(3), []
    for t in range(ids.shape[1]):
        logits, states = model.step(keras.ops.convert_to_tensor(ids[:, t]), states)
        steps.append(_numpy(logits))
    np.testing.assert_allclose(np.stack(steps, axis=1), whole, atol=1e-5)


def test_tied_weights_share_E_as_the_output_matrix():
    model = RNNLM(30, hidden_dim=8, embedding_dim=8, tie_weights=True)
    ids = np.random.randint(0, 30, (2, 5))
    model(ids)
    untied = RNNLM(30, hidden_dim=8, embedding_dim=8)
    untied(ids)
    vocabulary_sized = 30 * 8
    assert untied.count_params() - model.count_params() == vocabulary_sized
    E = _numpy(model.E.embeddings)
    h = _numpy(model.rnn(model.E(ids)))
    expected = h @ E.T + _numpy(model.E.reverse_bias)
    np.testing.assert_allclose(_numpy(model(ids)), expected, rtol=1e-5, atol=1e-5)


def test_tie_weights_needs_equal_sizes():
    with pytest.raises(
        ValueError, match=r"`embedding_dim` \(d=100\) must equal `hidden_dim` \(h=200\)"
    ):
        RNNLM(1000, embedding_dim=100, hidden_dim=200, tie_weights=True)


def test_learns_to_count():
    # Next token = current + 1 (mod v): perplexity must fall far below v.
    v = 12
    starts = np.random.randint(0, v, (256, 1))
    ids = (starts + np.arange(9)) % v
    model = RNNLM(v, cell="gru", num_layers=1, hidden_dim=32, embedding_dim=16)
    model.compile(optimizer=keras.optimizers.Adam(0.02))
    history = model.fit(ids[:, :-1], ids[:, 1:], epochs=20, batch_size=32, verbose=0)
    assert np.exp(history.history["loss"][-1]) < 1.5  # uniform would be 12


def test_bad_input_names_the_argument():
    model = RNNLM(10, hidden_dim=4, embedding_dim=4)
    with pytest.raises(ValueError, match=r"`inputs` must have shape \(batch, time\)"):
        model(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="must not be empty"):
        model(np.zeros((2, 0), "int32"))
    with pytest.raises(
        ValueError, match=r"token id 10, outside the allowed range \[0, 10\)"
    ):
        model(np.array([[1, 10]]))
    with pytest.raises(ValueError, match="`cell`"):
        RNNLM(10, cell="transformer")
    with pytest.raises(ValueError, match="`dropout`"):
        RNNLM(10, dropout=-0.1)
    for argument in (
        "embedding_dropout",
        "input_dropout",
        "hidden_dropout",
        "output_dropout",
        "weight_dropout",
    ):
        with pytest.raises(ValueError, match=f"`{argument}` must be in"):
            RNNLM(10, **{argument: 1.0})
    for argument in ("activation_regularization", "temporal_activation_regularization"):
        with pytest.raises(ValueError, match=f"`{argument}` must be a number >= 0"):
            RNNLM(10, **{argument: -1.0})
        with pytest.raises(ValueError, match=f"`{argument}`"):
            RNNLM(10, **{argument: "2"})
    with pytest.raises(ValueError, match="`weight_dropout`.*cell='simple'"):
        RNNLM(10, cell="simple", weight_dropout=0.5)


def test_carried_state_fits_arrays_of_many_batches():
    # `fit` checks the whole arrays up front; only each batch must have
    # `batch_size` rows.
    ids = np.random.randint(0, 10, (12, 5))
    model = CarriedState(RNNLM(10, hidden_dim=4, embedding_dim=4), batch_size=4)
    model.compile()
    model.fit(ids, ids, batch_size=4, verbose=0)
    model.evaluate(ids, ids, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="batch_size=4 rows"):
        model(ids[:3])
    with pytest.raises(ValueError, match=r"token id 10, outside"):
        model.fit(ids, np.full_like(ids, 10), batch_size=4, verbose=0)


@pytest.mark.skipif(
    keras.backend.backend() == "torch", reason="Keras's PyTorch trainer runs one step"
)
def test_steps_per_execution_refuses_a_bad_batch_and_trains_on():
    # On JAX the refused batch's group is checked before its first step, so
    # the weights put back are the ones the group started from.
    class Batches(keras.utils.PyDataset):
        def __init__(self, bad):
            super().__init__()
            self.bad = bad

        def __len__(self):
            return 8

        def __getitem__(self, i):
            x = np.random.randint(0, 10, (4, 5))
            y = x.copy()
            y[1, 2] = 10 if self.bad and i == 5 else y[1, 2]
            return x, y

    model = CarriedState(RNNLM(10, hidden_dim=4, embedding_dim=4), batch_size=4)
    model.compile(steps_per_execution=4)
    with pytest.raises(ValueError, match=r"`y` holds token id 10, outside"):
        model.fit(Batches(bad=True), verbose=0)
    model.fit(Batches(bad=False), verbose=0)


def _seed_states(model):
    """The seed generators' states, to replay a call's dropout masks."""
    return [(v, _numpy(v.value)) for v in model.variables if "seed_generator" in v.path]


def _replay(states):
    for variable, value in states:
        variable.assign(value)


def _ar_and_tar(model, ids, dropped_outputs=None, alpha=2.0, beta=1.0):
    """AR and TAR in numpy, from the model's undropped top-layer outputs `h`
    and the dropped ones (`h` itself without output dropout)."""
    h = _numpy(model.rnn(model.E(ids)))
    dropped = h if dropped_outputs is None else _numpy(dropped_outputs)
    return alpha * np.mean(dropped**2), beta * np.mean((h[:, 1:] - h[:, :-1]) ** 2)


def test_ar_and_tar_add_exactly_their_terms_in_training():
    model = RNNLM(
        20,
        cell="lstm",
        hidden_dim=6,
        embedding_dim=6,
        output_dropout=0.5,
        activation_regularization=2.0,
        temporal_activation_regularization=1.0,
    )
    ids = np.random.randint(0, 20, (3, 7))
    model(ids)
    assert model.losses == []  # not at inference
    seeds = _seed_states(model)
    model(ids, training=True)
    ar, tar = _numpy(model.losses)
    # AR on the outputs after their (locked) dropout, TAR on them before it.
    _replay(seeds)
    h = model.rnn(model.E(ids))
    dropped = model.output_dropout_layer(h, training=True)
    expected = _ar_and_tar(model, ids, dropped)
    np.testing.assert_allclose([ar, tar], expected, rtol=1e-5)
    assert expected[0] != pytest.approx(_ar_and_tar(model, ids)[0])
    # One time step has no TAR.
    model(ids[:, :1], training=True)
    assert len(model.losses) == 1


@pytest.mark.parametrize("carried", [False, True])
def test_fit_minimises_the_loss_plus_ar_and_tar(carried):
    """Keras's compiled train step (of every backend) adds the model's
    `add_loss` terms to the loss it differentiates, through `CarriedState`
    too."""
    ids = np.random.randint(1, 20, (4, 9))
    x, y = ids[:, :-1], ids[:, 1:]
    model = RNNLM(
        20,
        cell="gru",
        num_layers=1,
        hidden_dim=8,
        embedding_dim=8,
        activation_regularization=2.0,
        temporal_activation_regularization=1.0,
    )
    trained = CarriedState(model, batch_size=4) if carried else model
    cross_entropy = keras.ops.mean(
        keras.losses.sparse_categorical_crossentropy(y, model(x), from_logits=True)
    )
    expected = _numpy(cross_entropy) + sum(_ar_and_tar(model, x))
    trained.compile(optimizer=keras.optimizers.SGD(0.5))
    np.testing.assert_allclose(trained.train_on_batch(x, y), expected, rtol=1e-5)
    # With no other loss, training shrinks AR + TAR.
    before = sum(_ar_and_tar(model, x))
    trained.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=lambda labels, logits: 0.0 * keras.ops.mean(logits, axis=-1),
    )
    for _ in range(5):
        if carried:
            trained.reset_state()
        trained.train_on_batch(x, y)
    assert sum(_ar_and_tar(model, x)) < 0.5 * before


def test_embedding_dropout_leaves_the_tied_output_layer_whole():
    model = RNNLM(
        30, hidden_dim=8, embedding_dim=8, tie_weights=True, embedding_dropout=0.5
    )
    ids = np.random.randint(0, 30, (4, 6))
    model(ids)
    seeds = _seed_states(model)
    logits = _numpy(model(ids, training=True))
    _replay(seeds)
    a = model.E(ids, training=True)
    assert (_numpy(a) == 0).all(-1).any()  # some words dropped
    E, b = _numpy(model.E.embeddings), _numpy(model.E.reverse_bias)
    expected = _numpy(model.rnn(a)) @ E.T + b
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_every_option_saves_and_loads(tmp_path):
    model = RNNLM(
        30,
        cell="lstm",
        num_layers=2,
        hidden_dim=8,
        embedding_dim=8,
        dropout=0.2,
        tie_weights=True,
        **AWD_LSTM,
    )
    ids = np.random.randint(0, 30, (2, 5))
    model(ids)
    model.save(tmp_path / "awd.keras")
    loaded = keras.saving.load_model(tmp_path / "awd.keras")
    assert loaded.get_config() == model.get_config()
    assert {k: loaded.get_config()[k] for k in AWD_LSTM} == AWD_LSTM
    assert [layer.weight_dropout for layer in loaded.rnn.recurrent_layers] == [0.5] * 2
    np.testing.assert_allclose(_numpy(loaded(ids)), _numpy(model(ids)), atol=1e-6)
    # And it trains: every option on, in the compiled step.
    loaded.compile()
    loaded.fit(ids[:, :-1], ids[:, 1:], verbose=0)
