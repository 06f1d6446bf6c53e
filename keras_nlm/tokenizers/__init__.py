"""Word- and character-level tokenizers, saved as assets beside a model."""

from keras_nlm.tokenizers.character import CharacterTokenizer
from keras_nlm.tokenizers.tokenizer import Tokenizer
from keras_nlm.tokenizers.word import WordTokenizer

__all__ = ["CharacterTokenizer", "Tokenizer", "WordTokenizer"]
