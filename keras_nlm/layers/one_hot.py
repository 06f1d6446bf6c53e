import keras
from keras import ops

from keras_nlm.validation import check_positive_int, check_token_ids


@keras.saving.register_keras_serializable(package="keras_nlm")
class OneHot(keras.layers.Layer):
    """Token ids to one-hot vectors: id `i` becomes `[0 … 0 1 0 … 0]`, the 1 at `i`.

    The course's sparse view of a word: one input per vocabulary entry, one of
    them on. Multiplying a one-hot vector by a matrix `E (v × d)` picks row `i`
    of `E`, so `OneHot` followed by a bias-free `Dense(d)` computes exactly what
    `keras.layers.Embedding(v, d)` looks up, only `v` times more slowly.

    Unlike `keras.ops.one_hot`, an id outside `[0, vocabulary_size)` raises a
    `ValueError` instead of giving an all-zero row (in eager calls: compiled
    steps hold no check, as in `TokenEmbedding`).

    Args:
        vocabulary_size: `v`, the length of each one-hot vector.

    Example:
    >>> one_hot = OneHot(vocabulary_size=5)
    >>> one_hot(np.array([[3, 0]]))
    [[[0, 0, 0, 1, 0], [1, 0, 0, 0, 0]]]
    """

    def __init__(self, vocabulary_size, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = check_positive_int(vocabulary_size, "vocabulary_size")

    def call(self, inputs):
        inputs = check_token_ids(inputs, self.vocabulary_size, "inputs")
        return ops.one_hot(
            ops.cast(inputs, "int32"), self.vocabulary_size, dtype=self.compute_dtype
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.vocabulary_size,)

    def get_config(self):
        config = super().get_config()
        config.update({"vocabulary_size": self.vocabulary_size})
        return config
