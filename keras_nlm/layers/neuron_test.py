import keras
import numpy as np
import pytest

from keras_nlm.layers import Neuron


def test_computes_sigma_of_weighted_sum_plus_bias():
    neuron = Neuron(activation="sigmoid")
    x = np.array([[0.5, -1.0, 2.0], [1.0, 1.0, 1.0]], dtype="float32")
    neuron.build(x.shape)
    w = np.array([[0.3], [0.2], [-0.1]], dtype="float32")
    neuron.set_weights([w, np.array([0.05], dtype="float32")])
    expected = 1 / (1 + np.exp(-(x @ w + 0.05)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(neuron(x)), expected, 1e-6)


@pytest.mark.parametrize("activation", ["tanh", "relu", "linear", "softplus"])
def test_any_keras_activation_by_name(activation):
    neuron = Neuron(units=2, activation=activation)
    x = np.random.randn(4, 3).astype("float32")
    z = keras.ops.convert_to_numpy(neuron(x, training=False))
    w, b = neuron.get_weights()
    expected = keras.ops.convert_to_numpy(keras.activations.get(activation)(x @ w + b))
    np.testing.assert_allclose(z, expected, atol=1e-6)


def test_step_is_the_perceptron_threshold():
    neuron = Neuron(activation="step")
    neuron.build((None, 2))
    neuron.set_weights([np.array([[1.0], [1.0]]), np.array([-1.5])])  # AND
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(neuron(x))[:, 0], [0, 0, 0, 1]
    )


def test_training_through_the_step_is_refused():
    model = keras.Sequential([keras.Input((2,)), Neuron(activation="step")])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="differentiable activation"):
        model.fit(np.zeros((4, 2)), np.zeros((4, 1)), verbose=0)


def test_train_with_sigmoid_then_switch_to_step():
    # A linearly separable problem: the hyperplane x0 + x1 = 1.
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (256, 2)).astype("float32")
    y = (x.sum(axis=1) > 1).astype("float32")[:, None]
    neuron = Neuron(activation="sigmoid")
    model = keras.Sequential([keras.Input((2,)), neuron])
    model.compile(keras.optimizers.Adam(0.1), "binary_crossentropy")
    model.fit(x, y, epochs=60, batch_size=64, verbose=0)
    neuron.activation_name = "step"
    predictions = keras.ops.convert_to_numpy(neuron(x))
    assert (predictions == y).mean() > 0.95


def test_unknown_activation_names_the_argument():
    with pytest.raises(ValueError, match="`activation`"):
        Neuron(activation="sigmoidd")
    with pytest.raises(ValueError, match="`units`"):
        Neuron(units=0)


def test_serializes():
    neuron = Neuron(units=3, activation="step", use_bias=False)
    clone = Neuron.from_config(neuron.get_config())
    assert clone.get_config() == neuron.get_config()
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(neuron)
    )
    assert isinstance(restored, Neuron) and restored.activation_name == "step"
