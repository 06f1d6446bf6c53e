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


@pytest.mark.parametrize(
    "cell, tie_weights",
    [("lstm", False), ("gru", True), ("simple", False)],
)
def test_step_equals_one_pass(cell, tie_weights):
    model = RNNLM(
        40,
        cell=cell,
        num_layers=2,
        hidden_dim=8,
        embedding_dim=8,
        dropout=0.3,
        tie_weights=tie_weights,
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
