import collections
import json
import numbers
import os

import numpy as np

from keras_nlm.files import write_text
from keras_nlm.validation import (
    check_buffer_fits,
    check_positive_int,
    is_integer_dtype,
)

VOCABULARY_FILE = "vocabulary.json"
# Special tokens come first, in this order, so that padding is id 0 (the id
# the models mask) whenever a tokenizer has padding.
SPECIALS = ("padding_token", "unknown_token", "start_token", "end_token", "eos_token")


class Tokenizer:
    """Text ↔ token ids over a fixed vocabulary; subclasses say what a token is.

    Plain Python, so it is the same on every backend and in `tf.data`-free
    pipelines. It follows KerasHub's tokenizer conventions: `tokenize`,
    `detokenize`, `vocabulary_size()`, `id_to_token`, `token_to_id`, and
    `save_assets(dir)` / `load_assets(dir)` for the vocabulary file that a
    preset keeps beside the model.
    """

    def __init__(
        self,
        vocabulary=None,
        padding_token=None,
        unknown_token=None,
        start_token=None,
        end_token=None,
        eos_token=None,
    ):
        for name, token in zip(
            SPECIALS, (padding_token, unknown_token, start_token, end_token, eos_token)
        ):
            if token is not None and (not isinstance(token, str) or not token):
                raise ValueError(
                    f"`{name}` must be a non-empty string or None; got {token!r}."
                )
        self.padding_token = padding_token
        self.unknown_token = unknown_token
        self.start_token = start_token
        self.end_token = end_token
        self.eos_token = eos_token
        # Padding and delimiters, by spelling: never text (see `tokenize`).
        self._structure = {
            token: name
            for name, token in (
                ("padding_token", padding_token),
                ("start_token", start_token),
                ("end_token", end_token),
            )
            if token is not None
        }
        self._vocabulary = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    # What a token is: subclasses split text into tokens and join them back.
    def split(self, text):
        raise NotImplementedError

    def join(self, tokens):
        raise NotImplementedError

    @property
    def special_tokens(self):
        tokens = (getattr(self, name) for name in SPECIALS)
        return [token for token in tokens if token is not None]

    @classmethod
    def from_corpus(cls, texts, min_frequency=1, max_size=None, **kwargs):
        """Builds the vocabulary from training `texts` (an iterable of strings).

        Special tokens come first; then every token seen at least
        `min_frequency` times, most frequent first (ties in sorted order),
        keeping at most `max_size` entries in all.
        """
        if isinstance(texts, (str, bytes, bytearray)):
            # Iterating it would count its characters as the tokens.
            raise ValueError(
                "`texts` must be an iterable of strings (e.g. the corpus's "
                f"lines), not one {type(texts).__name__}; wrap it in a list."
            )
        min_frequency = check_positive_int(min_frequency, "min_frequency")
        if max_size is not None:
            max_size = check_positive_int(max_size, "max_size")
        tokenizer = cls(**kwargs)
        counts = collections.Counter()
        try:
            texts = iter(texts)
        except TypeError:
            raise ValueError(
                "`texts` must be an iterable of strings (e.g. the corpus's lines); "
                f"got {type(texts).__name__}."
            ) from None
        for text in texts:
            _check_text(text, "texts")
            counts.update(tokenizer.split(text))
        specials = tokenizer.special_tokens
        words = sorted(
            (w for w, c in counts.items() if c >= min_frequency and w not in specials),
            key=lambda w: (-counts[w], w),
        )
        vocabulary = specials + words
        if max_size is not None:
            if max_size < len(specials):
                raise ValueError(
                    f"`max_size` must leave room for the {len(specials)} special "
                    f"tokens {specials}; got {max_size}."
                )
            vocabulary = vocabulary[:max_size]
        tokenizer.set_vocabulary(vocabulary)
        return tokenizer

    def set_vocabulary(self, vocabulary):
        vocabulary = list(vocabulary)
        for token in vocabulary:
            if not isinstance(token, str):
                raise ValueError(
                    f"`vocabulary` must hold strings; got {token!r} "
                    f"({type(token).__name__})."
                )
            try:
                token.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(
                    f"`vocabulary` holds {token!r}, which is not valid Unicode "
                    "text (a lone surrogate, as left by undecodable bytes read "
                    "with errors='surrogateescape'); decode the text with "
                    "errors='replace' first."
                ) from None
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("`vocabulary` must not repeat a token.")
        specials = self.special_tokens
        if vocabulary[: len(specials)] != specials:
            raise ValueError(
                f"`vocabulary` must start with the special tokens {specials}; "
                f"it starts with {vocabulary[: len(specials)]}."
            )
        self._vocabulary = vocabulary
        self._ids = {token: i for i, token in enumerate(vocabulary)}

    def _check_vocabulary(self):
        if self._vocabulary is None:
            raise ValueError(
                "This tokenizer has no vocabulary yet: build one with "
                "`from_corpus(texts)`, pass `vocabulary=`, or `load_assets(dir)`."
            )

    def get_vocabulary(self):
        self._check_vocabulary()
        return list(self._vocabulary)

    def vocabulary_size(self):
        self._check_vocabulary()
        return len(self._vocabulary)

    def id_to_token(self, id):
        self._check_vocabulary()
        if isinstance(id, bool) or not isinstance(id, numbers.Integral):
            raise ValueError(
                f"`id` must be an integer token id; got {id!r} ({type(id).__name__})."
            )
        if not 0 <= id < len(self._vocabulary):
            raise ValueError(f"`id` must be in [0, {len(self._vocabulary)}); got {id}.")
        return self._vocabulary[id]

    def token_to_id(self, token):
        """The token's id; unknown tokens get the unknown token's id, or a
        `ValueError` if the tokenizer has no unknown token."""
        self._check_vocabulary()
        if token in self._ids:
            return self._ids[token]
        if self.unknown_token is None:
            raise ValueError(
                f"{token!r} is not in the vocabulary and this tokenizer has no "
                "`unknown_token` to map it to."
            )
        return self._ids[self.unknown_token]

    def _text_token_id(self, token):
        """`token_to_id` for a token of text, where delimiters and padding
        are unknown words (see `tokenize`)."""
        name = self._structure.get(token)
        if name is None:
            return self.token_to_id(token)
        if self.unknown_token is None:
            raise ValueError(
                f"The text holds {token!r}, this tokenizer's `{name}`, which text "
                "cannot hold (add delimiters with `add_start`/`add_end`, padding "
                "with `sequence_length`), and there is no `unknown_token` to map "
                "it to."
            )
        return self._ids[self.unknown_token]

    @property
    def padding_id(self):
        return None if self.padding_token is None else self._ids[self.padding_token]

    @property
    def start_id(self):
        """The start delimiter's id (`token_to_id(start_token)`), or `None`
        if the tokenizer has no `start_token`."""
        return self._special_id(self.start_token)

    @property
    def end_id(self):
        """The end delimiter's id (`token_to_id(end_token)`), or `None` if
        the tokenizer has no `end_token`."""
        return self._special_id(self.end_token)

    def _special_id(self, token):
        if token is None:
            return None
        self._check_vocabulary()
        return self._ids[token]

    def tokenize(self, inputs, add_start=False, add_end=False, sequence_length=None):
        """Text to ids.

        Any text is accepted: an empty string gives no ids, a token outside
        the vocabulary (undecodable bytes read with errors='surrogateescape'
        included) gives the unknown token's id, or a `ValueError` naming it
        if the tokenizer has no `unknown_token`. Bytes are refused: decode
        them first.

        Padding and the start and end delimiters are structure, never text
        (as KerasHub's `special_tokens_in_strings=False`): text that spells
        one (`"the </s> cat"`) gets the unknown token's id there, which
        `detokenize` writes back (`"the <unk> cat"`), rather than a delimiter
        that would end the text or padding that would vanish. The unknown
        token and `eos_token` (the line breaks of a corpus's stream) are text.

        Args:
            inputs: a string, or a list of strings (a batch).
            add_start, add_end: put the start / end delimiter around each text.
            sequence_length: pad (with the padding id) or cut every row to
                this length and return an int32 array, `(sequence_length,)`
                for a string and `(batch, sequence_length)` for a batch;
                otherwise lists of ids.
        """
        self._check_vocabulary()
        if isinstance(inputs, str):
            ids = self._encode(inputs, add_start, add_end)
            if sequence_length is None:
                return ids
            return self._pad([ids], sequence_length)[0]
        if not isinstance(inputs, (list, tuple, np.ndarray)):
            if isinstance(inputs, (bytes, bytearray)):
                _check_text(inputs)
            raise ValueError(
                "`inputs` must be a string or a list of strings; got "
                f"{type(inputs).__name__}."
            )
        rows = [self._encode(text, add_start, add_end) for text in inputs]
        if sequence_length is None:
            return rows
        return self._pad(rows, sequence_length)

    def _pad(self, rows, sequence_length):
        if self.padding_id is None:
            raise ValueError(
                "`sequence_length` pads, so the tokenizer needs a `padding_token`."
            )
        sequence_length = check_positive_int(sequence_length, "sequence_length")
        check_buffer_fits(len(rows), sequence_length, "sequence_length", copies=1)
        batch = np.full((len(rows), sequence_length), self.padding_id, dtype="int32")
        for i, row in enumerate(rows):
            row = row[:sequence_length]
            batch[i, : len(row)] = row
        return batch

    def _encode(self, text, add_start, add_end):
        _check_text(text)
        for flag, token, name in (
            (add_start, self.start_token, "start_token"),
            (add_end, self.end_token, "end_token"),
        ):
            if flag and token is None:
                raise ValueError(f"This tokenizer has no `{name}` to add.")
        ids = [self._text_token_id(token) for token in self.split(text)]
        if add_start:
            ids.insert(0, self._ids[self.start_token])
        if add_end:
            ids.append(self._ids[self.end_token])
        return ids

    def detokenize(self, ids, skip_special_tokens=True):
        """Ids to text: one list of ids → a string; a batch (an array, or
        lists of different lengths, as `tokenize` gives) → a list of strings.

        Decoding stops at the end delimiter; padding, start and end
        delimiters are dropped when `skip_special_tokens`.
        """
        self._check_vocabulary()
        if isinstance(ids, (list, tuple)) and any(np.ndim(row) for row in ids):
            return [self.detokenize(row, skip_special_tokens) for row in ids]
        ids = np.asarray(ids)
        if ids.ndim == 2:
            return [self.detokenize(row, skip_special_tokens) for row in ids]
        if ids.ndim != 1:
            raise ValueError(f"`ids` must have rank 1 or 2; got shape {ids.shape}.")
        if ids.size and not is_integer_dtype(ids.dtype):
            raise ValueError(f"`ids` must be integer token ids; got {ids.dtype}.")
        dropped = {self.padding_token, self.start_token, self.end_token} - {None}
        tokens = []
        for id in ids.tolist():
            token = self.id_to_token(id)
            if token == self.end_token and skip_special_tokens:
                break
            if not (skip_special_tokens and token in dropped):
                tokens.append(token)
        return self.join(tokens)

    def save_assets(self, dir_path):
        self._check_vocabulary()
        write_text(  # then renamed: a reader never sees half a vocabulary
            os.path.join(dir_path, VOCABULARY_FILE),
            json.dumps(self._vocabulary, ensure_ascii=False, indent=0),
        )

    def load_assets(self, dir_path):
        path = os.path.join(dir_path, VOCABULARY_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(f"Tokenizer asset {path} is missing.")
        try:
            with open(path, encoding="utf-8") as file:
                vocabulary = json.load(file)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(
                f"Tokenizer asset {path} is not a JSON list of tokens ({error})."
            ) from None
        if not isinstance(vocabulary, list):
            raise ValueError(
                f"Tokenizer asset {path} must hold a JSON list of tokens; got "
                f"{type(vocabulary).__name__}."
            )
        self.set_vocabulary(vocabulary)

    def get_config(self):
        return {name: getattr(self, name) for name in SPECIALS}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_text(text, argument="inputs"):
    if isinstance(text, (bytes, bytearray)):
        raise ValueError(
            f"`{argument}` must be text (str), not bytes: decode them first, e.g. "
            "`data.decode('utf-8', errors='replace')`."
        )
    if not isinstance(text, str):
        raise ValueError(
            f"`{argument}` must hold strings; got {text!r:.50} ({type(text).__name__})."
        )
