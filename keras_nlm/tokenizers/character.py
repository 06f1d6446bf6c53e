import keras

from keras_nlm.tokenizers.tokenizer import Tokenizer


@keras.saving.register_keras_serializable(package="keras_nlm")
class CharacterTokenizer(Tokenizer):
    """Character-level tokenizer: every character (newline included) is a token.

    The vocabulary is the set of characters of the training text; a character
    not in it becomes `unknown_token`, or raises a `ValueError` if that is
    `None` (the default: Tiny Shakespeare's 65 characters cover its splits).

    Args:
        vocabulary: the characters (special tokens first), or build it with
            `from_corpus([text])`.
        padding_token, unknown_token, start_token, end_token, eos_token: the
            special tokens, `None` (the default) leaves one out.

    Example:
    >>> tokenizer = CharacterTokenizer.from_corpus([text])
    >>> ids = tokenizer.tokenize("To be")
    >>> tokenizer.detokenize(ids)
    'To be'
    """

    def split(self, text):
        return list(text)

    def join(self, tokens):
        return "".join(tokens)
