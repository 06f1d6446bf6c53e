"""Training the course's models the way the papers did.

>>> from keras_nlm import training
>>> model, metadata = training.train(training.get("lstm_ptb_small"), "runs/small")
"""

from keras_nlm.training.checkpoint import EpochCheckpoint
from keras_nlm.training.recipes import OPTIMIZERS, RECIPES, Recipe, get
from keras_nlm.training.trainer import train

__all__ = [
    "OPTIMIZERS",
    "RECIPES",
    "EpochCheckpoint",
    "Recipe",
    "get",
    "train",
]
