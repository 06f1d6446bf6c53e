"""The loss the models train with by default."""

import keras
from keras import ops

from keras_nlm import distribution


@keras.saving.register_keras_serializable(package="keras_nlm")
class SparseCategoricalCrossentropy(keras.losses.SparseCategoricalCrossentropy):
    """Keras's loss, computed without copies of the logits.

    PyTorch's cross-entropy wants the classes on axis 1, so for 3-D logits
    Keras's PyTorch backend moves them there, and the log-softmax then runs
    over a strided view of a language model's largest tensor, copied forward
    and backward: here time is folded into the batch instead. On JAX, see
    `_picked_log_probabilities`; with `ignore_class`, see `call`. The same
    per-token losses come back, in the same shape, with the same mask.
    """

    def __init__(self, from_logits=False, ignore_class=None, **kwargs):
        super().__init__(from_logits=from_logits, ignore_class=ignore_class, **kwargs)
        self.ignore_class = ignore_class

    def call(self, y_true, y_pred):
        if len(y_true.shape) != len(y_pred.shape) - 1:
            return super().call(y_true, y_pred)
        kept = None
        if self.ignore_class is not None:
            # Keras also zeroes the ignored tokens' logits, a `where` over the
            # largest tensor, forward and backward (a fifth of a Seq2Seq
            # training step on PyTorch); zeroing their losses is enough.
            kept = ops.not_equal(y_true, self.ignore_class)
            y_true = ops.where(kept, y_true, 0)
        losses = self._per_token_losses(y_true, y_pred)
        if kept is not None:
            losses = ops.where(kept, losses, 0.0)
            losses = _weigh_replica(losses, kept)
            # As Keras's own loss does: the mean then counts the kept tokens only.
            keras.src.backend.set_keras_mask(losses, kept)
        return losses

    def _per_token_losses(self, y_true, y_pred):
        backend = keras.backend.backend()
        if backend == "jax" and self.from_logits:
            return self._picked_log_probabilities(y_true, y_pred)
        kwargs = {**self._fn_kwargs, "ignore_class": None}
        if backend == "torch" and len(y_pred.shape) == 3:
            losses = self.fn(
                ops.reshape(y_true, (-1,)),
                ops.reshape(y_pred, (-1, y_pred.shape[-1])),
                **kwargs,
            )
            return ops.reshape(losses, ops.shape(y_true))
        # TensorFlow has a fused kernel.
        return self.fn(y_true, y_pred, **kwargs)

    def _picked_log_probabilities(self, y_true, y_pred):
        """`logsumexp(z) - z[label]`, each label's logit picked.

        Keras's JAX backend multiplies the log-probabilities by one-hot
        labels, another tensor of the logits' size forward and backward
        (small LSTM LM training: 0.72-0.77 of native PyTorch -> 0.84); picking
        the label's log-probability from `log_softmax` still makes JAX's
        backward pass run several more passes over the logits than the
        `logsumexp` form, whose gradient is just `softmax(z) - onehot`
        (fused loss and gradient for (400, 10,000) logits: 57.6 -> 34.5 ms).
        """
        labels = ops.expand_dims(ops.cast(y_true, "int32"), -1)
        picked = ops.squeeze(ops.take_along_axis(y_pred, labels, axis=-1), -1)
        return ops.logsumexp(y_pred, axis=-1) - picked


def _weigh_replica(losses, kept):
    """On one replica of a data-parallel step, its per-token losses scaled
    so that its mean over its kept tokens, averaged over the replicas (as
    TensorFlow and PyTorch average their gradients), is the mean over the
    global batch's kept tokens, as on one device: replicas holding more
    padding than others would otherwise weigh their tokens more."""
    count = distribution.replica()[1]
    if count == 1:
        return losses
    kept = ops.sum(ops.cast(kept, losses.dtype))
    total = distribution.global_sum(kept)
    return losses * ops.divide_no_nan(kept * count, total)
