"""Count-based baselines for the neural language models."""

from keras_nlm.baselines.kneser_ney import KneserNeyLM, baseline

__all__ = ["KneserNeyLM", "baseline"]
