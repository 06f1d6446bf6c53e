import keras
import numpy as np
from keras import ops

from keras_nlm.datasets.batching import NGramWindows
from keras_nlm.layers import WindowEmbedding
from keras_nlm.layers.dropout import seeded_dropout
from keras_nlm.models.base import LanguageModel, token_ids_spec
from keras_nlm.precision import to_float32
from keras_nlm.validation import (
    check_positive_int,
    check_rate,
    check_token_ids,
    check_token_tensor,
)


@keras.saving.register_keras_serializable(package="keras_nlm")
class FixedWindowLM(LanguageModel):
    """The fixed-window neural language model of Bengio et al. (2003).

    It predicts `P(x₅ | x₁, x₂, x₃, x₄)` from the `window_size` words before:

        A = E(X)          E: v × d     the window's embeddings, concatenated (4d)
        B = f(W A)        W: 4d × h    hidden layer, activation f
        Z = softmax(U B)  U: h × v     next-word distribution

    With `direct_connections=True` the window also reaches the output directly,
    `Z = softmax(U B + D A)` with `D: 4d × v` (Bengio's optional `W x` term).
    The model returns the logits `U B (+ D A)`; the softmax is in the loss
    (`compile()` defaults to it) or in `keras.ops.softmax`.

    Args:
        vocabulary_size: `v`.
        window_size: how many words of context (4 in the course).
        embedding_dim: `d`.
        hidden_dim: `h`.
        activation: `f`, any Keras activation name.
        direct_connections: add Bengio's direct window-to-output connections.
        dropout: dropout rate on `A` and `B` while training.

    Example:
    >>> model = FixedWindowLM(vocabulary_size=10_000, window_size=4)
    >>> model.compile()
    >>> model.fit(windows, next_words)  # (batch, 4) ids -> (batch,) ids
    """

    EQUATION = ("A = E(X)", "B = f(W A)", "Z = softmax(U B)")
    PAPERS = "Bengio et al. 2003"

    def __init__(
        self,
        vocabulary_size,
        window_size=4,
        embedding_dim=100,
        hidden_dim=200,
        activation="tanh",
        direct_connections=False,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = check_positive_int(vocabulary_size, "vocabulary_size")
        self.window_size = check_positive_int(window_size, "window_size")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.hidden_dim = check_positive_int(hidden_dim, "hidden_dim")
        self.activation = activation
        self.direct_connections = direct_connections
        self.dropout = check_rate(dropout, "dropout")
        try:
            keras.activations.get(activation)
        except ValueError:
            raise ValueError(
                "`activation` must be a Keras activation name such as 'tanh', "
                f"'relu' or 'sigmoid'; got {activation!r}."
            ) from None

        self.E = WindowEmbedding(
            vocabulary_size, embedding_dim, window_size, check_ids=False, name="E"
        )
        self.W = keras.layers.Dense(hidden_dim, activation=activation, name="W")
        self.U = keras.layers.Dense(vocabulary_size, name="U")
        self.D = (
            keras.layers.Dense(vocabulary_size, use_bias=False, name="D")
            if direct_connections
            else None
        )
        self.dropout_layer = seeded_dropout(self.dropout)

    def check_inputs(self, inputs):
        return check_token_tensor(
            inputs,
            self.vocabulary_size,
            "inputs",
            ("batch", f"window_size={self.window_size}"),
        )

    def serving_signature(self):
        return [token_ids_spec(self.window_size)]

    def prepare_prompts(self, buffer, mask, index, start_id):
        # `start_id` fills the window before the prompt's first token.
        check_token_ids(np.array([start_id]), self.vocabulary_size, "start_id")
        window, batch = self.window_size, buffer.shape[0]
        buffer = np.concatenate(
            [np.full((batch, window), start_id, buffer.dtype), buffer], 1
        )
        mask = np.concatenate([np.ones((batch, window), bool), mask], 1)
        if not self.built:  # weights must exist before the loop is traced
            self(buffer[:, :window])
        return buffer, mask, index + window, window

    def generation_cache(self, buffer, index):
        return index, None, None  # the window is all a step reads

    def next_token_logits(self, buffer, cache, index):
        window = self.window_size
        context = ops.slice(buffer, [0, index - window], [ops.shape(buffer)[0], window])
        return self(context), cache

    def stream_logits(self, stream, sequence_length, batch_size):
        windows = NGramWindows(
            stream[1:], self.window_size, batch_size, shuffle=False, start_id=stream[0]
        )
        for x, y in windows:
            yield self.predict_on_batch(x), y

    def stream_batches(
        self,
        ids,
        batch_size,
        sequence_length,
        start_id,
        shuffle,
        seed,
        epoch,
        variable_length=False,
    ):
        # Each window of `window_size` ids and the id after it.
        if variable_length:
            raise ValueError(
                "`variable_length` draws BPTT lengths for a recurrent model; a "
                f"FixedWindowLM reads windows of window_size={self.window_size}."
            )
        return NGramWindows(
            ids,
            self.window_size,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            start_id=start_id,
            epoch=epoch,
        )

    def label_shape(self, inputs):
        return tuple(inputs.shape[:1])  # the word after each window

    def call(self, inputs, training=None):
        inputs = self.check_inputs(inputs)
        A = self.dropout_layer(self.E(inputs), training=training)
        B = self.dropout_layer(self.W(A), training=training)
        Z = self.U(B)
        if self.D is not None:
            Z = Z + self.D(A)
        return to_float32(Z)  # under a mixed policy, for the loss

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "window_size": self.window_size,
                "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim,
                "activation": self.activation,
                "direct_connections": self.direct_connections,
                "dropout": self.dropout,
            }
        )
        return config
