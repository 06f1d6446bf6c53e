import keras
import numpy as np
import pytest

from keras_nlm.models import FixedWindowLM


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("direct_connections", [False, True])
def test_computes_the_slides_equations(direct_connections):
    model = FixedWindowLM(
        vocabulary_size=30,
        window_size=4,
        embedding_dim=5,
        hidden_dim=7,
        direct_connections=direct_connections,
    )
    X = np.array([[1, 2, 3, 4], [29, 0, 0, 7]])
    Z = _numpy(model(X))
    E = _numpy(model.E.embeddings)
    W, W_bias = (_numpy(w) for w in model.W.weights)
    U, U_bias = (_numpy(w) for w in model.U.weights)
    A = E[X].reshape(2, 20)  # A = E(X), 4d long
    B = np.tanh(A @ W + W_bias)  # B = f(WA)
    expected = B @ U + U_bias  # Z = UB (logits; softmax in the loss)
    if direct_connections:
        expected += A @ _numpy(model.D.kernel)
    assert W.shape == (20, 7) and U.shape == (7, 30)
    np.testing.assert_allclose(Z, expected, rtol=1e-5, atol=1e-5)


def test_learns_a_deterministic_next_word():
    # x5 = x2: the model must tell the window's positions apart.
    rng = np.random.default_rng(0)
    X = rng.integers(0, 8, (512, 4))
    y = X[:, 1]
    model = FixedWindowLM(8, embedding_dim=8, hidden_dim=64)
    model.compile(optimizer=keras.optimizers.Adam(0.01), metrics=["accuracy"])
    history = model.fit(X, y, epochs=40, batch_size=64, verbose=0)
    assert history.history["accuracy"][-1] > 0.9


def test_bad_input_names_the_argument():
    model = FixedWindowLM(10, window_size=4, embedding_dim=2, hidden_dim=3)
    with pytest.raises(
        ValueError, match=r"`inputs` must have shape \(batch, window_size=4\)"
    ):
        model(np.array([1, 2, 3, 4]))
    with pytest.raises(ValueError, match="must not be empty"):
        model(np.zeros((0, 4), "int32"))
    with pytest.raises(ValueError, match="window_size=4"):
        model(np.array([[1, 2, 3]]))
    with pytest.raises(ValueError, match="`activation`"):
        FixedWindowLM(10, activation="tanhh")
    with pytest.raises(ValueError, match="`window_size`"):
        FixedWindowLM(10, window_size=0)
    with pytest.raises(ValueError, match="`vocabulary_size`"):
        FixedWindowLM(10.5)


@pytest.mark.parametrize("data", ["arrays", "dataset"])
def test_fit_weighs_classes(data):
    # `class_weight` reaches Keras for in-memory arrays as for datasets:
    # every class weighted 0 leaves nothing to learn.
    x = np.random.default_rng(0).integers(0, 10, (16, 3))
    y = np.random.default_rng(1).integers(0, 10, (16,))
    for class_weight, changes in ((None, True), (dict.fromkeys(range(10), 0.0), False)):
        keras.utils.set_random_seed(0)
        model = FixedWindowLM(10, 3, embedding_dim=4, hidden_dim=5)
        model.compile(keras.optimizers.SGD(0.5))
        model(x[:1])  # its weights, to compare
        before = [w.copy() for w in model.get_weights()]
        inputs = (
            {"x": x, "y": y, "batch_size": 8}
            if data == "arrays"
            else {"x": _Batches(x, y)}
        )
        model.fit(**inputs, epochs=1, verbose=0, class_weight=class_weight)
        moved = any(
            not np.array_equal(a, b) for a, b in zip(before, model.get_weights())
        )
        assert moved == changes


class _Batches(keras.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return self.x[i * 8 : (i + 1) * 8], self.y[i * 8 : (i + 1) * 8]
