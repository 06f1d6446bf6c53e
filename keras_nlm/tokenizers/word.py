import re

import keras

from keras_nlm.tokenizers.tokenizer import Tokenizer
from keras_nlm.validation import check_choice

# Words and single punctuation marks, for raw text such as Multi30k's.
_WORDS_AND_PUNCTUATION = re.compile(r"\w+|[^\w\s]")


@keras.saving.register_keras_serializable(package="keras_nlm")
class WordTokenizer(Tokenizer):
    """Word-level tokenizer: a text is a sequence of words, each with an id.

    The vocabulary comes from the training split (`from_corpus`); a word not
    in it becomes `unknown_token` (PTB and WikiText already use `<unk>`).
    Special tokens take the first ids, padding first (id 0).

    Args:
        vocabulary: the tokens, specials first; or build with `from_corpus`.
        split_on: `"whitespace"` for tokenized corpora (PTB, WikiText-2) or
            `"punctuation"` to also split punctuation off words (raw text).
        lowercase: lowercase text before splitting.
        padding_token, unknown_token, start_token, end_token, eos_token: the
            special tokens; `None` leaves one out.

    Example:
    >>> tokenizer = WordTokenizer.from_corpus(datasets.get("ptb").lines("train"))
    >>> tokenizer.tokenize("the cat sat")             # [ids]
    >>> tokenizer.detokenize(tokenizer.tokenize("the cat sat"))
    'the cat sat'
    """

    def __init__(
        self,
        vocabulary=None,
        split_on="whitespace",
        lowercase=False,
        padding_token="<pad>",
        unknown_token="<unk>",
        start_token="<s>",
        end_token="</s>",
        eos_token="<eos>",
    ):
        self.split_on = check_choice(
            split_on, "split_on", ("whitespace", "punctuation")
        )
        self.lowercase = lowercase
        super().__init__(
            vocabulary, padding_token, unknown_token, start_token, end_token, eos_token
        )

    def split(self, text):
        if self.lowercase:
            text = text.lower()
        if self.split_on == "punctuation":
            return _WORDS_AND_PUNCTUATION.findall(text)
        return text.split()

    def join(self, tokens):
        return " ".join(tokens)

    def get_config(self):
        return {
            **super().get_config(),
            "split_on": self.split_on,
            "lowercase": self.lowercase,
        }
