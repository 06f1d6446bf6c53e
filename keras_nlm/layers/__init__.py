"""The course's building blocks as Keras layers."""

from keras_nlm.layers.attention import EncoderDecoderAttention
from keras_nlm.layers.dropout import LockedDropout
from keras_nlm.layers.neuron import Neuron
from keras_nlm.layers.one_hot import OneHot
from keras_nlm.layers.recurrent import RecurrentStack
from keras_nlm.layers.token_embedding import TokenEmbedding, WindowEmbedding

__all__ = [
    "EncoderDecoderAttention",
    "LockedDropout",
    "Neuron",
    "OneHot",
    "RecurrentStack",
    "TokenEmbedding",
    "WindowEmbedding",
]
