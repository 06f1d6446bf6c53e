"""Merity et al.'s (2017) penalties on a recurrent layer's outputs `(batch, time, h)`,
terms a model adds to its loss in training (`RNNLM`'s
`activation_regularization` and `temporal_activation_regularization`)."""

from keras import ops

from keras_nlm.precision import to_float32


def activation_regularization(dropped_outputs, alpha):
    """AR, an L2 penalty on the activations, which keeps them small:

        AR = α · mean((m ⊙ hₜ)²)

    over the last recurrent layer's outputs *after* their dropout mask `m`
    (as in Merity et al.'s code), the mean over batch, time and features.
    """
    return alpha * ops.mean(ops.square(to_float32(dropped_outputs)))


def temporal_activation_regularization(outputs, beta):
    """TAR, a slowness penalty: the hidden state should change little from one
    step to the next,

        TAR = β · mean((hₜ − hₜ₊₁)²)

    over the last recurrent layer's outputs *without* dropout, the mean over
    batch, the `time − 1` pairs of neighbours and features.
    """
    outputs = to_float32(outputs)
    return beta * ops.mean(ops.square(outputs[:, 1:] - outputs[:, :-1]))
