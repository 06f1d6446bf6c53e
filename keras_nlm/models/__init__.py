"""The course's models, as Keras `Model`s."""

from keras_nlm.models.fixed_window_lm.fixed_window_lm import FixedWindowLM
from keras_nlm.models.rnn_classifier.rnn_classifier import RNNClassifier, RNNTagger
from keras_nlm.models.rnn_lm.rnn_lm import RNNLM, CarriedState
from keras_nlm.models.seq2seq.seq2seq import Seq2Seq

__all__ = [
    "CarriedState",
    "FixedWindowLM",
    "RNNClassifier",
    "RNNLM",
    "RNNTagger",
    "Seq2Seq",
]
