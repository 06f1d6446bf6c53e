import keras
from keras import ops

from keras_nlm.validation import check_positive_int


@keras.saving.register_keras_serializable(package="keras_nlm")
class Neuron(keras.layers.Layer):
    """The course's neuron: `y = σ(Σⱼ wⱼxⱼ + b)`.

    A weighted sum of the inputs plus a bias, passed through an activation σ.
    On an embedding it is a linear classifier: `w·x + b = 0` is a hyperplane
    cutting the vector space in two. `units > 1` puts neurons side by side,
    `Y = σ(WXᵀ)`, the course's layer.

    `activation="step"` is the perceptron's hard threshold,
    `y = 1 if Σⱼ wⱼxⱼ + b >= 0 else 0`. Its gradient is zero almost everywhere,
    so it is for forward use only: train with a differentiable activation
    (e.g. `"sigmoid"`), then set `layer.activation_name = "step"`.

    Args:
        units: number of neurons, each with its own weights (default 1).
        activation: any Keras activation name (`"sigmoid"`, `"tanh"`,
            `"relu"`, `"linear"`, ...) or `"step"`.
        use_bias: whether to add the bias `b`.
        kernel_initializer: initializer of the weights `w`.
        bias_initializer: initializer of the bias `b`.

    Example:
    >>> neuron = Neuron(activation="sigmoid")
    >>> y = neuron(np.array([[0.5, -1.0, 2.0]]))  # shape (1, 1), in (0, 1)
    >>> neuron.activation_name = "step"           # perceptron view
    """

    def __init__(
        self,
        units=1,
        activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int(units, "units")
        self.activation_name = activation
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @property
    def activation_name(self):
        return self._activation_name

    @activation_name.setter
    def activation_name(self, activation):
        if activation != "step":
            try:
                self.activation = keras.activations.get(activation)
            except ValueError:
                raise ValueError(
                    "`activation` must be a Keras activation name (e.g. "
                    f"'sigmoid', 'tanh', 'relu') or 'step'; got {activation!r}."
                ) from None
        self._activation_name = activation

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.bias = (
            self.add_weight(
                shape=(self.units,), initializer=self.bias_initializer, name="bias"
            )
            if self.use_bias
            else None
        )

    def call(self, inputs, training=None):
        z = ops.matmul(inputs, self.kernel)  # Σⱼ wⱼxⱼ
        if self.bias is not None:
            z = z + self.bias  # + b
        if self.activation_name == "step":
            if training:
                raise ValueError(
                    "`activation='step'` cannot be trained: its gradient is zero "
                    "almost everywhere. Train with a differentiable activation "
                    "such as 'sigmoid' or 'tanh', then set "
                    "`activation_name = 'step'` for the perceptron view."
                )
            return ops.cast(z >= 0, self.compute_dtype)
        return self.activation(z)  # σ(·)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": self.activation_name,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
