import keras
from keras import ops

from keras_nlm.layers import RecurrentStack, TokenEmbedding
from keras_nlm.layers.dropout import seeded_dropout
from keras_nlm.models.base import LanguageModel, token_ids_spec
from keras_nlm.validation import check_positive_int, check_rate, check_token_tensor


@keras.saving.register_keras_serializable(package="keras_nlm")
class RNNLM(LanguageModel):
    """A recurrent language model (Mikolov et al. 2010; Zaremba et al. 2014).

    It reads a sequence one word at a time and after each word predicts the
    next one, `P(xₜ₊₁ | x₁ … xₜ)`, with no fixed window:

        aₜ = E(xₜ)                        E: v × d
        hₜ = RNN(aₜ, hₜ₋₁)                 `num_layers` simple / LSTM / GRU layers
        zₜ = softmax(U hₜ)                U: h × v   (U = Eᵀ with `tie_weights`)

    The model returns the logits. Passing `initial_state` and asking for
    `return_state=True` carries the state across calls: consecutive batches in
    truncated backpropagation through time, or one new token at a time when
    generating.

    Args:
        vocabulary_size: `v`.
        cell: `"simple"`, `"lstm"` or `"gru"`.
        num_layers: number of stacked recurrent layers.
        hidden_dim: `h`, the state size of each layer.
        embedding_dim: `d`.
        dropout: dropout on the embeddings, between layers and before the
            output layer (Zaremba et al.'s non-recurrent connections).
        tie_weights: share `E` as the output matrix (`U = Eᵀ`); needs
            `embedding_dim == hidden_dim`.

    Call arguments:
        inputs: `(batch, time)` token ids.
        initial_state: `None` or the `states` returned by an earlier call.
        return_state: return `(logits, states)`, one list of states per layer.

    Example:
    >>> model = RNNLM(vocabulary_size=10_000, cell="lstm", num_layers=2)
    >>> logits, states = model(ids, return_state=True)    # ids: (batch, time)
    >>> logits, states = model(next_ids, initial_state=states, return_state=True)
    """

    EQUATION = ("aₜ = E(xₜ)", "hₜ = RNN(aₜ, hₜ₋₁)", "zₜ = softmax(U hₜ)")
    PAPERS = (
        "Mikolov et al. 2010, Zaremba et al. 2014; LSTM: Hochreiter & "
        "Schmidhuber 1997, GRU: Cho et al. 2014"
    )

    def __init__(
        self,
        vocabulary_size,
        cell="lstm",
        num_layers=2,
        hidden_dim=200,
        embedding_dim=200,
        dropout=0.0,
        tie_weights=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cell, self.num_layers, self.hidden_dim = cell, num_layers, hidden_dim
        self.vocabulary_size = check_positive_int(vocabulary_size, "vocabulary_size")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.dropout = check_rate(dropout, "dropout")
        self.tie_weights = tie_weights
        if tie_weights and embedding_dim != hidden_dim:
            raise ValueError(
                "`tie_weights=True` uses E (v × d) as the output matrix U = Eᵀ, "
                f"so `embedding_dim` (d={embedding_dim}) must equal `hidden_dim` "
                f"(h={hidden_dim})."
            )
        self.embedding = TokenEmbedding(
            vocabulary_size,
            embedding_dim,
            reversible=tie_weights,
            check_ids=False,
            name="E",
        )
        self.rnn = RecurrentStack(
            cell,
            hidden_dim,
            num_layers,
            dropout=dropout,
            name="rnn",
        )
        self.U = None if tie_weights else keras.layers.Dense(vocabulary_size, name="U")
        self.dropout_layer = seeded_dropout(self.dropout)

    def check_inputs(self, inputs):
        return check_token_tensor(
            inputs, self.vocabulary_size, "inputs", ("batch", "time")
        )

    def call(self, inputs, initial_state=None, return_state=False, training=None):
        inputs = self.check_inputs(inputs)
        a = self.dropout_layer(self.embedding(inputs), training=training)
        h, states = self.rnn(
            a, initial_state=initial_state, training=training, return_state=True
        )
        h = self.dropout_layer(h, training=training)
        z = self.embedding(h, reverse=True) if self.tie_weights else self.U(h)
        return (z, states) if return_state else z

    def step(self, token_ids, states):
        """The next-token logits for one token per sequence, at inference:
        `(batch,)` ids and the states of the previous step → `(logits, states)`,
        `(batch, v)` logits. The same as `call` on one time step without
        dropout, calling the layers' own `call`s (see `RecurrentStack.step`)."""
        token_ids = check_token_tensor(
            token_ids, self.vocabulary_size, "token_ids", ("batch",)
        )
        if not self.built:  # the layers' own `call`s need their weights
            self(ops.expand_dims(token_ids, 1))
        a = self.embedding.call(token_ids)
        h, states = self.rnn.step(a, states)
        z = self.embedding.call(h, reverse=True) if self.tie_weights else self.U.call(h)
        return z, states

    def serving_endpoints(self):
        # Generation from an export: `logits, *states = serve_with_state(ids,
        # states)`, the states flat (layer by layer, h then c) and going back
        # in with the next ids. Signatures take and give flat tensors only.
        structure = self.rnn.state_specs()

        def serve_with_state(inputs, states):
            states = keras.tree.pack_sequence_as(structure, states)
            logits, states = self(inputs, initial_state=states, return_state=True)
            return [logits, *keras.tree.flatten(states)]

        signature = [token_ids_spec(), keras.tree.flatten(structure)]
        return {"serve_with_state": (serve_with_state, signature, None)}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "cell": self.cell,
                "num_layers": self.num_layers,
                "hidden_dim": self.hidden_dim,
                "embedding_dim": self.embedding_dim,
                "dropout": self.dropout,
                "tie_weights": self.tie_weights,
            }
        )
        return config
