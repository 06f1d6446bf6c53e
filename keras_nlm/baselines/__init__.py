"""Count-based baselines for the neural language models."""

from keras_nlm.baselines.kneser_ney import KneserNeyLM

__all__ = ["KneserNeyLM"]
