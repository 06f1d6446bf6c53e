import keras
from keras import ops

from keras_nlm.models.base import Model
from keras_nlm.models.rnn_lm.rnn_lm import RNNLM
from keras_nlm.validation import check_positive_int


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
        language_model: the `RNNLM` to train.
        batch_size: the number of rows of every batch (the streams).

    Example:
    >>> lm = RNNLM(10_000, cell="lstm", num_layers=2, hidden_dim=200)
    >>> trainer = CarriedState(lm, batch_size=20)
    >>> trainer.compile(keras.optimizers.SGD(1.0, global_clipnorm=5.0))
    >>> trainer.fit(StreamBatches(train_ids, batch_size=20, sequence_length=20))
    """

    def __init__(self, language_model, batch_size, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(language_model, RNNLM):
            raise ValueError(
                "`language_model` must be an RNNLM; got "
                f"{type(language_model).__name__}."
            )
        self.language_model = language_model
        self.batch_size = check_positive_int(batch_size, "batch_size")
        zeros = language_model.rnn.initial_state(batch_size)
        self._states_per_layer = tuple(len(layer) for layer in zeros)
        self.state = [
            self.add_weight(
                shape=tuple(s.shape),
                initializer="zeros",
                trainable=False,
                name=f"state_{i}",
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
        if inputs.shape[0] is not None and inputs.shape[0] != self.batch_size:
            raise ValueError(
                f"`inputs` must have batch_size={self.batch_size} rows (the "
                f"streams whose state is carried); got shape {tuple(inputs.shape)}."
            )
        # A copy: on PyTorch the assignment below is in place, and autograd
        # still needs the values this batch started from.
        values = iter([ops.copy(v) for v in self.state])
        state = [[next(values) for _ in range(n)] for n in self._states_per_layer]
        logits, state = self.language_model(
            inputs, initial_state=state, return_state=True, training=training
        )
        for variable, value in zip(self.state, keras.tree.flatten(state)):
            variable.assign(ops.stop_gradient(value))
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


class _ResetStateEachEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.model.reset_state()
