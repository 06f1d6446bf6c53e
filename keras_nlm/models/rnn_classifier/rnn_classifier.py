import keras
from keras import ops

from keras_nlm.layers import RecurrentStack, TokenEmbedding
from keras_nlm.layers.dropout import seeded_dropout
from keras_nlm.models.base import Model
from keras_nlm.precision import to_float32
from keras_nlm.validation import check_positive_int, check_rate, check_token_tensor


@keras.saving.register_keras_serializable(package="keras_nlm")
class RNNClassifier(Model):
    """One label per sequence from a (bidirectional, multi-layer) recurrent stack.

        aₜ = E(xₜ)                      E: v × d, id 0 is padding
        hₜ = RNN(aₜ, hₜ₋₁)               `num_layers` layers, padding skipped
        y  = softmax(U h_T)             U: h × num_classes, on the last state

    With `bidirectional=True` every layer is the course's BRNN: a forward and a
    backward hidden layer, both feeding the output (`h_T = [h→_T; h←_1]`).

    Args:
        vocabulary_size: `v`, including the padding id 0.
        num_classes: number of labels.
        cell: `"simple"`, `"lstm"` or `"gru"`.
        num_layers: number of stacked recurrent layers.
        hidden_dim: `h`, per direction.
        embedding_dim: `d`.
        bidirectional: use BRNN layers.
        dropout: dropout on the embeddings, between layers and before `U`.

    Example:
    >>> model = RNNClassifier(vocabulary_size=5000, num_classes=2, bidirectional=True)
    >>> model.compile()
    >>> model.fit(padded_ids, labels)   # (batch, time) -> (batch,)
    """

    EQUATION = ("aₜ = E(xₜ)", "hₜ = RNN(aₜ, hₜ₋₁)", "y = softmax(U h_T)")
    PAPERS = "Elman 1990; bidirectional: Schuster & Paliwal 1997"
    # Whether the head reads every time step (tagger) or only the last one.
    per_token = False
    # Labels are class ids in [0, num_classes).
    label_size_argument = "num_classes"

    def __init__(
        self,
        vocabulary_size,
        num_classes,
        cell="lstm",
        num_layers=1,
        hidden_dim=128,
        embedding_dim=128,
        bidirectional=False,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cell, self.num_layers, self.hidden_dim, self.bidirectional = (
            cell,
            num_layers,
            hidden_dim,
            bidirectional,
        )
        self.vocabulary_size = check_positive_int(vocabulary_size, "vocabulary_size")
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.dropout = check_rate(dropout, "dropout")
        self.E = TokenEmbedding(
            vocabulary_size, embedding_dim, mask_zero=True, check_ids=False, name="E"
        )
        self.rnn = RecurrentStack(
            cell,
            hidden_dim,
            num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            return_sequences=self.per_token,
            name="rnn",
        )
        self.dropout_layer = seeded_dropout(self.dropout)
        self.U = keras.layers.Dense(num_classes, name="U")

    def check_inputs(self, inputs):
        return check_token_tensor(
            inputs, self.vocabulary_size, "inputs", ("batch", "time")
        )

    def label_shape(self, inputs):
        return tuple(inputs.shape if self.per_token else inputs.shape[:1])

    def call(self, inputs, training=None):
        inputs = self.check_inputs(inputs)
        mask = ops.not_equal(inputs, 0)
        a = self.dropout_layer(self.E(inputs), training=training)
        h = self.rnn(a, mask=mask, training=training)
        # Under a mixed policy, float32 logits for the loss.
        return to_float32(self.U(self.dropout_layer(h, training=training)))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_classes": self.num_classes,
                "cell": self.cell,
                "num_layers": self.num_layers,
                "hidden_dim": self.hidden_dim,
                "embedding_dim": self.embedding_dim,
                "bidirectional": self.bidirectional,
                "dropout": self.dropout,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_nlm")
class RNNTagger(RNNClassifier):
    """One label per token (e.g. part of speech) from a recurrent stack.

    As `RNNClassifier`, but the output layer reads every time step:
    `yₜ = softmax(U hₜ)`, logits of shape `(batch, time, num_classes)`. With
    `bidirectional=True`, `hₜ = [h→ₜ; h←ₜ]` sees the whole sentence around
    word `t`. Label 0 is padding, like input id 0, and the default loss
    ignores it.

    Args: as `RNNClassifier`; `num_classes` counts the padding label 0.

    Example:
    >>> model = RNNTagger(vocabulary_size=5000, num_classes=18, bidirectional=True)
    >>> model.compile()
    >>> model.fit(padded_ids, padded_tags)   # (batch, time) -> (batch, time)
    """

    EQUATION = ("aₜ = E(xₜ)", "hₜ = RNN(aₜ, hₜ₋₁)", "yₜ = softmax(U hₜ)")

    per_token = True
    ignored_label = 0
