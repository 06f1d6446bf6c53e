"""keras-nlm: the classic neural language models of the course, for Keras 3.

Runs unchanged on TensorFlow, JAX and PyTorch: pick one with `KERAS_BACKEND`.
"""

from keras_nlm import layers, models

__version__ = "0.1.0"
__all__ = ["layers", "models"]
