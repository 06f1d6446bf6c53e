import keras
from keras import ops

from keras_nlm import distribution
from keras_nlm.datasets.batching import StreamBatches, VariableStreamBatches
from keras_nlm.layers import RecurrentStack, TokenEmbedding
from keras_nlm.layers.direct import dense_call, direct_call
from keras_nlm.layers.dropout import LockedDropout, seeded_dropout
from keras_nlm.layers.regularization import (
    activation_regularization,
    temporal_activation_regularization,
)
from keras_nlm.models.base import (
    LanguageModel,
    Model,
    token_ids_spec,
)
from keras_nlm.precision import autocast, to_float32
from keras_nlm.validation import (
    check_non_negative,
    check_positive_int,
    check_rate,
    check_token_tensor,
)


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

    Regularization (all off by default; in training only, never in `step`):
    Zaremba et al.'s `dropout`, a new mask for every element, and Merity et
    al.'s (2017) AWD-LSTM set, where a mask is kept for a whole sequence or
    batch: embedding dropout drops words, `E'` = rows of `E` masked (the
    tied output layer reads the undropped `E`); locked dropout keeps one mask
    `m` per sequence at every step, `m ⊙ xₜ / (1 − p)`, on the embeddings,
    between layers and on the top layer's outputs; weight drop masks the
    recurrent kernels once per batch, `R' = M ⊙ R / (1 − p)`; and two
    penalties are added to the loss, `AR = α · mean((m ⊙ hₜ)²)` on the top
    layer's dropped outputs and `TAR = β · mean((hₜ − hₜ₊₁)²)` on its
    undropped ones.

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
        embedding_dropout: the fraction of the vocabulary whose vectors are
            dropped in each batch, every occurrence of those words
            (AWD-LSTM's `dropoute`).
        input_dropout: locked dropout on the embeddings (`dropouti`).
        hidden_dropout: locked dropout between recurrent layers (`dropouth`).
        output_dropout: locked dropout on the top layer's outputs, before
            the output layer (`dropout`).
        weight_dropout: weight drop on the recurrent kernels (`wdrop`); LSTM
            and GRU cells.
        activation_regularization: `α` of AR (`alpha`), ≥ 0.
        temporal_activation_regularization: `β` of TAR (`beta`), ≥ 0.

    Call arguments:
        inputs: `(batch, time)` token ids.
        initial_state: `None` or the `states` returned by an earlier call.
        return_state: return `(logits, states)`, one list of states per layer.

    Example:
    >>> model = RNNLM(vocabulary_size=10_000, cell="lstm", num_layers=2)
    >>> logits, states = model(ids, return_state=True)    # ids: (batch, time)
    >>> logits, states = model(next_ids, initial_state=states, return_state=True)
    >>> awd = RNNLM(10_000, num_layers=3, hidden_dim=400, embedding_dim=400,
    ...     tie_weights=True, embedding_dropout=0.1, input_dropout=0.65,
    ...     hidden_dropout=0.3, output_dropout=0.4, weight_dropout=0.5,
    ...     activation_regularization=2.0, temporal_activation_regularization=1.0)
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
        embedding_dropout=0.0,
        input_dropout=0.0,
        hidden_dropout=0.0,
        output_dropout=0.0,
        weight_dropout=0.0,
        activation_regularization=0.0,
        temporal_activation_regularization=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cell, self.num_layers, self.hidden_dim = cell, num_layers, hidden_dim
        self.vocabulary_size = check_positive_int(vocabulary_size, "vocabulary_size")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.dropout = check_rate(dropout, "dropout")
        self.tie_weights = tie_weights
        self.embedding_dropout = check_rate(embedding_dropout, "embedding_dropout")
        self.input_dropout = check_rate(input_dropout, "input_dropout")
        self.hidden_dropout = check_rate(hidden_dropout, "hidden_dropout")
        self.output_dropout = check_rate(output_dropout, "output_dropout")
        self.weight_dropout = check_rate(weight_dropout, "weight_dropout")
        self.activation_regularization = check_non_negative(
            activation_regularization, "activation_regularization"
        )
        self.temporal_activation_regularization = check_non_negative(
            temporal_activation_regularization, "temporal_activation_regularization"
        )
        if tie_weights and embedding_dim != hidden_dim:
            raise ValueError(
                "`tie_weights=True` uses E (v × d) as the output matrix U = Eᵀ, "
                f"so `embedding_dim` (d={embedding_dim}) must equal `hidden_dim` "
                f"(h={hidden_dim})."
            )
        self.E = TokenEmbedding(
            vocabulary_size,
            embedding_dim,
            reversible=tie_weights,
            check_ids=False,
            embedding_dropout=self.embedding_dropout,
            name="E",
        )
        self.rnn = RecurrentStack(
            cell,
            hidden_dim,
            num_layers,
            dropout=dropout,
            hidden_dropout=self.hidden_dropout,
            weight_dropout=self.weight_dropout,
            name="rnn",
        )
        self.U = None if tie_weights else keras.layers.Dense(vocabulary_size, name="U")
        self.dropout_layer = seeded_dropout(self.dropout)
        self.input_dropout_layer = LockedDropout(self.input_dropout)
        self.output_dropout_layer = LockedDropout(self.output_dropout)

    def check_inputs(self, inputs):
        return check_token_tensor(
            inputs, self.vocabulary_size, "inputs", ("batch", "time")
        )

    def call(self, inputs, initial_state=None, return_state=False, training=None):
        inputs = self.check_inputs(inputs)
        a = direct_call(self.E, inputs, training=training)
        a = direct_call(self.dropout_layer, a, training=training)
        a = direct_call(self.input_dropout_layer, a, training=training)
        h, states = direct_call(
            self.rnn,
            a,
            initial_state=initial_state,
            training=training,
            return_state=True,
        )
        dropped = direct_call(self.dropout_layer, h, training=training)
        dropped = direct_call(self.output_dropout_layer, dropped, training=training)
        if training and self.activation_regularization:
            self.add_loss(
                activation_regularization(dropped, self.activation_regularization)
            )
        # One time step has no neighbour to compare with.
        if training and self.temporal_activation_regularization and h.shape[1] != 1:
            self.add_loss(
                temporal_activation_regularization(
                    h, self.temporal_activation_regularization
                )
            )
        if self.tie_weights:
            z = direct_call(self.E, dropped, reverse=True)
        else:
            z = dense_call(self.U, dropped)
        z = to_float32(z)  # under a mixed policy, for the loss
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
        # The layers' own `call`s run outside Keras's `__call__`, which under
        # a mixed policy reads the float32 weights as 16-bit: as it would.
        with autocast(self):
            a = self.E.call(token_ids)
            h, states = self.rnn.step(a, states)
            z = self.E.call(h, reverse=True) if self.tie_weights else self.U.call(h)
        return to_float32(z), states

    def initial_state(self, batch_size):
        """Zero states for `batch_size` sequences, as `initial_state=` takes."""
        return self.rnn.initial_state(batch_size)

    def generation_cache(self, buffer, index):
        # The recurrence reads the first `read` tokens, which every prompt
        # has, in one pass and without the output layer, whose logits would
        # be thrown away; the loop reads the rest of the prompts token by
        # token (keeping their tokens), then generates. JAX compiles for each
        # `read`: a power of two keeps that to a few lengths.
        if not self.built:  # weights must exist before the loop is traced
            self(buffer[:, :1])
        read = index - 1
        if read and keras.backend.backend() == "jax":
            read = 2 ** (read.bit_length() - 1)
        if not read:
            return 1, self.initial_state(buffer.shape[0]), None

        def start(prefix):
            a = self.E(prefix)
            _, states = self.rnn(a, training=False, return_state=True)
            return states

        return read + 1, buffer[:, :read], start

    def next_token_logits(self, buffer, cache, index):
        return self.step(ops.take(buffer, index - 1, axis=1), cache)

    def stream_logits(self, stream, sequence_length, batch_size):
        # One row, read in chunks with the state carried from one to the
        # next (in the compiled predict step), so that every token sees the
        # whole stream before it.
        reader = CarriedState(self, batch_size=1)
        for start in range(0, len(stream) - 1, sequence_length):
            end = min(start + sequence_length, len(stream) - 1)
            logits = reader.predict_on_batch(stream[None, start:end])
            yield logits[0], stream[start + 1 : end + 1]

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
        # Row i of a batch continues row i of the one before (BPTT chunks),
        # with `variable_length` of Merity et al.'s random lengths.
        if variable_length:
            return VariableStreamBatches(
                ids, batch_size, sequence_length, start_id, seed=seed, epoch=epoch
            )
        return StreamBatches(ids, batch_size, sequence_length, start_id)

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
                "embedding_dropout": self.embedding_dropout,
                "input_dropout": self.input_dropout,
                "hidden_dropout": self.hidden_dropout,
                "output_dropout": self.output_dropout,
                "weight_dropout": self.weight_dropout,
                "activation_regularization": self.activation_regularization,
                "temporal_activation_regularization": (
                    self.temporal_activation_regularization
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_nlm")
class CarriedState(Model):
    """Truncated backpropagation through time, the state carried between batches.

    With `StreamBatches`, row `i` of batch `k + 1` continues row `i` of batch
    `k`. Zaremba et al. (2014) start each batch from the final state of the
    one before, so the model sees the whole stream while gradients flow back
    at most `sequence_length` steps. This wrapper keeps that state in
    non-trainable variables (so it is carried inside the compiled steps of
    every backend) and zeroes it at the start of every epoch and every
    evaluation. Keras's own `stateful=True` RNNs cannot do this inside a
    subclassed model on JAX and PyTorch, hence this class.

    Args:
        language_model: the recurrent language model to train (an `RNNLM`, or
            any model with its `initial_state(batch_size)` hook).
        batch_size: the number of rows of every batch (the streams).

    Example:
    >>> lm = RNNLM(10_000, cell="lstm", num_layers=2, hidden_dim=200)
    >>> trainer = CarriedState(lm, batch_size=20)
    >>> trainer.compile(keras.optimizers.SGD(1.0, global_clipnorm=5.0))
    >>> trainer.fit(StreamBatches(train_ids, batch_size=20, sequence_length=20))
    """

    def __init__(self, language_model, batch_size, **kwargs):
        super().__init__(**kwargs)
        if not callable(getattr(language_model, "initial_state", None)):
            raise ValueError(
                "`language_model` must be a recurrent language model (with "
                "`initial_state(batch_size)` and the call arguments "
                "`initial_state=` and `return_state=`, as an RNNLM); got "
                f"{type(language_model).__name__}."
            )
        self.language_model = language_model
        self.batch_size = check_positive_int(batch_size, "batch_size")
        zeros = language_model.initial_state(batch_size)
        # The nesting the model's states come in, as tuples: a list attribute
        # would become a tracked list, which JAX cannot read as a structure.
        self._structure = keras.tree.lists_to_tuples(
            keras.tree.map_structure(lambda _: None, zeros)
        )
        # Each replica of a data-parallel step (`keras_nlm.distribution`)
        # carries its own rows: on TensorFlow in its own copy ("on_read"; read
        # whole, the copies sum to the full state), elsewhere in its rows.
        # `autocast=False`: under a mixed policy Keras reads float variables
        # as 16-bit copies inside a layer's call, and PyTorch's `assign`
        # copies into what it reads: the state would be written into the
        # copy and lost. They stay float32, read and written as they are.
        self.state = [
            keras.Variable(
                initializer="zeros",
                shape=tuple(s.shape),
                trainable=False,
                autocast=False,
                name=f"state_{i}",
                aggregation="sum",
                synchronization="on_read",
            )
            for i, s in enumerate(keras.tree.flatten(zeros))
        ]

    @property
    def label_size(self):
        return self.language_model.vocabulary_size

    def check_inputs(self, inputs):
        # Not the batch size: `fit`, `evaluate` and `predict` check all the
        # batches of in-memory data at once.
        return self.language_model.check_inputs(inputs)

    def call(self, inputs, training=None):
        inputs = self.check_inputs(inputs)
        rows, replicas = inputs.shape[0], distribution.replicas()
        # The whole batch, or one replica's share of it (Keras's TensorFlow
        # `fit` also traces the model once on a share, outside the replicas).
        if rows is not None and rows not in {
            self.batch_size,
            self.batch_size / replicas,
        }:
            share = (
                f", or {self.batch_size // replicas} per replica"
                if replicas > 1
                else ""
            )
            raise ValueError(
                f"`inputs` must have batch_size={self.batch_size} rows{share}, "
                f"the streams whose state is carried; got shape {tuple(inputs.shape)}."
            )
        index, count = distribution.replica()
        if count > 1:  # a replica's step: its share, of a shape maybe unknown
            rows = self.batch_size // count
        part = rows is not None and rows < self.batch_size
        start = index * rows if part else 0
        # A copy: on PyTorch the assignment below is in place, and autograd
        # still needs the values this batch started from.
        state = [ops.copy(v) for v in self.state]
        if part:
            state = [_rows(v, start, rows) for v in state]
        logits, state = self.language_model(
            inputs,
            initial_state=keras.tree.pack_sequence_as(self._structure, state),
            return_state=True,
            training=training,
        )
        for variable, value in zip(self.state, keras.tree.flatten(state)):
            # The variables are float32 (the policy's variable dtype); under
            # a mixed policy the states come in 16 bits: `slice_update`
            # wants one dtype, and every backend's `assign` then agrees.
            value = ops.cast(ops.stop_gradient(value), variable.dtype)
            if part:
                value = ops.slice_update(
                    variable, (start,) + (0,) * (len(value.shape) - 1), value
                )
            variable.assign(value)
        return logits

    def reset_state(self):
        for variable in self.state:
            variable.assign(ops.zeros(variable.shape, variable.dtype))

    def fit(self, *args, callbacks=None, shuffle=False, **kwargs):
        # `shuffle=False`: Keras would otherwise feed a `PyDataset`'s batches
        # in random order, and batch k + 1 must continue batch k.
        callbacks = [*(callbacks or []), _ResetStateEachEpoch()]
        return super().fit(*args, callbacks=callbacks, shuffle=shuffle, **kwargs)

    def evaluate(self, *args, **kwargs):
        self.reset_state()
        return super().evaluate(*args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "language_model": keras.saving.serialize_keras_object(
                    self.language_model
                ),
                "batch_size": self.batch_size,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config["language_model"] = keras.saving.deserialize_keras_object(
            config["language_model"]
        )
        return cls(**config)


def _rows(state, start, rows):
    return ops.slice(
        state, (start,) + (0,) * (len(state.shape) - 1), (rows, *state.shape[1:])
    )


class _ResetStateEachEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.model.reset_state()
