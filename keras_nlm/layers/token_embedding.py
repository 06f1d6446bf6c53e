import keras
from keras import ops

from keras_nlm.layers.dropout import draw_seed
from keras_nlm.validation import (
    check_positive_int,
    check_rank,
    check_rate,
    check_token_ids,
)


@keras.saving.register_keras_serializable(package="keras_nlm")
class TokenEmbedding(keras.layers.Embedding):
    """The embedding lookup `A = E(X)`: row `x` of the matrix `E (v × d)`.

    `keras.layers.Embedding` with the course's argument names and one addition:
    an id outside `[0, vocabulary_size)` raises a `ValueError` on every backend
    (JAX would clamp it silently, PyTorch raise an `IndexError`). It checks
    values it can see, in eager calls; a compiled step holds no check (no host
    callback), so keras-nlm's models check each batch before it enters one.

    With `reversible=True` the same matrix is also the language model's output
    layer, `U = Eᵀ` (weight tying, Press & Wolf 2017): `call(B, reverse=True)`
    gives the logits `Z = B Eᵀ + b` with a bias `b` of its own.

    With `embedding_dropout=p` training drops whole words (Gal & Ghahramani
    2016; Merity et al. 2017's `embedded_dropout`): each call draws one mask
    over the vocabulary, `m ~ Bernoulli(1 − p)ᵛ`, and looks the ids up in

        E' = diag(m) E / (1 − p)

    so a dropped word's vector is 0 at every one of its occurrences in the
    batch. The output layer (`reverse=True`) reads the undropped `E`.

    Args:
        vocabulary_size: `v`, the number of rows of `E`.
        embedding_dim: `d`, the length of each word vector.
        mask_zero: treat id 0 as padding and emit a mask for it.
        reversible: also create the output bias `b` for `call(..., reverse=True)`.
        check_ids: check the ids' range (a model that checks its own inputs,
            naming them, turns it off to check only once).
        embedding_dropout: `p`, the fraction of the vocabulary dropped in
            each training call, in [0, 1).
        **kwargs: other `keras.layers.Embedding` arguments.

    Example:
    >>> embedding = TokenEmbedding(vocabulary_size=10_000, embedding_dim=100)
    >>> embedding(np.array([[4, 7, 1]])).shape
    (1, 3, 100)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim,
        mask_zero=False,
        reversible=False,
        check_ids=True,
        embedding_dropout=0.0,
        **kwargs,
    ):
        super().__init__(
            input_dim=check_positive_int(vocabulary_size, "vocabulary_size"),
            output_dim=check_positive_int(embedding_dim, "embedding_dim"),
            mask_zero=mask_zero,
            **kwargs,
        )
        self.reversible = reversible
        self.check_ids = check_ids
        self.embedding_dropout = check_rate(embedding_dropout, "embedding_dropout")
        if self.embedding_dropout:
            self.seed_generator = keras.random.SeedGenerator(draw_seed())

    def build(self, input_shape=None):
        super().build(input_shape)
        if self.reversible:
            self.reverse_bias = self.add_weight(
                shape=(self.vocabulary_size,), initializer="zeros", name="reverse_bias"
            )

    @property
    def variable_serialization_spec(self):
        # Keras's Embedding saves the variables named here, in this order.
        spec = super().variable_serialization_spec
        if self.reversible:
            spec = {mode: names + ["reverse_bias"] for mode, names in spec.items()}
        return spec

    @property
    def vocabulary_size(self):
        return self.input_dim

    @property
    def embedding_dim(self):
        return self.output_dim

    def call(self, inputs, reverse=False, training=False):
        if reverse:
            if not self.reversible:
                raise ValueError(
                    f"Layer '{self.name}' was made with `reversible=False`; "
                    "`reverse=True` needs `reversible=True`."
                )
            # Z = B Eᵀ + b: the embedding matrix read backwards as U (h × v).
            # Keras's Embedding does not autocast its weights: under a mixed
            # policy the float32 `E` would turn this, the largest matmul,
            # float32, unlike an untied `U` (a Dense). Computed in the compute
            # dtype, as `compute_output_spec` says; models cast the logits.
            embeddings = ops.cast(self.embeddings, self.compute_dtype)
            logits = ops.matmul(inputs, ops.transpose(embeddings))
            return logits + ops.cast(self.reverse_bias, self.compute_dtype)
        if self.check_ids:
            inputs = check_token_ids(inputs, self.vocabulary_size, "inputs")
        vectors = super().call(inputs)
        if not (training and self.embedding_dropout):
            return vectors
        # E'[x] = m[x] E[x] / (1 − p): scaling the looked-up rows is masking
        # E's rows, without a masked copy of the whole (v × d) matrix.
        keep = keras.random.dropout(
            ops.ones((self.vocabulary_size,), self.compute_dtype),
            self.embedding_dropout,
            seed=self.seed_generator,
        )
        return vectors * ops.expand_dims(ops.take(keep, inputs), -1)

    def compute_output_spec(self, inputs, reverse=False, training=False):
        if reverse:
            shape = tuple(inputs.shape[:-1]) + (self.vocabulary_size,)
            return keras.KerasTensor(shape, dtype=self.compute_dtype)
        return super().compute_output_spec(inputs)

    def get_config(self):
        config = super().get_config()
        config["vocabulary_size"] = config.pop("input_dim")
        config["embedding_dim"] = config.pop("output_dim")
        config["reversible"] = self.reversible
        config["check_ids"] = self.check_ids
        config["embedding_dropout"] = self.embedding_dropout
        return config


@keras.saving.register_keras_serializable(package="keras_nlm")
class WindowEmbedding(TokenEmbedding):
    """The fixed-window LM's input layer: `A = E(X)` for a window of ids, concatenated.

    The `window_size` ids `x₁ … x₄` are looked up in the same `E (v × d)` and
    their vectors joined end to end, `A = [E(x₁); E(x₂); E(x₃); E(x₄)]`, the
    `4d` vector that the hidden layer `W (4d × h)` reads.

    Args:
        vocabulary_size: `v`, the number of rows of `E`.
        embedding_dim: `d`, the length of each word vector.
        window_size: the number of context words (4 in the course).
        **kwargs: other `keras.layers.Embedding` arguments.

    Example:
    >>> window = WindowEmbedding(vocabulary_size=100, embedding_dim=8, window_size=4)
    >>> window(np.array([[1, 2, 3, 4]])).shape
    (1, 32)
    """

    def __init__(self, vocabulary_size, embedding_dim, window_size=4, **kwargs):
        super().__init__(vocabulary_size, embedding_dim, **kwargs)
        self.window_size = check_positive_int(window_size, "window_size")

    def call(self, inputs, training=False):
        check_rank(inputs, "inputs", ("batch", f"window_size={self.window_size}"))
        if inputs.shape[1] is not None and inputs.shape[1] != self.window_size:
            raise ValueError(
                f"`inputs` must hold window_size={self.window_size} ids per row; "
                f"got shape {tuple(inputs.shape)}."
            )
        vectors = super().call(inputs, training=training)  # (batch, window_size, d)
        return ops.reshape(vectors, (-1, self.window_size * self.embedding_dim))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.window_size * self.embedding_dim)

    def get_config(self):
        config = super().get_config()
        config["window_size"] = self.window_size
        return config
