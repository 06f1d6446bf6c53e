"""keras-nlm: the classic neural language models of the course, for Keras 3.

Runs unchanged on TensorFlow, JAX and PyTorch: pick one with `KERAS_BACKEND`.
"""

from keras_nlm import layers, models
from keras_nlm.version import __version__

__all__ = ["__version__", "layers", "models"]
