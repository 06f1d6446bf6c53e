"""The course's three ways to cut a corpus into batches for `model.fit`.

Each is a `keras.utils.PyDataset` (so `fit`, `evaluate` and `predict` take it
on every backend, and it can be iterated for plain numpy batches) with
`as_tf_dataset()` for `tf.data` users.

- `NGramWindows`: every `(x₁ … x₄) → x₅` example, for `FixedWindowLM`.
- `StreamBatches`: `batch_size` parallel streams cut into `sequence_length`
  chunks, batch `k + 1` continuing batch `k` row by row, for `RNNLM` with
  truncated backpropagation through time (`VariableStreamBatches`: chunks of
  random lengths, Merity et al. 2017).
- `SentencePairs`: padded, length-bucketed `(source, target)` batches with
  start / end delimiters, for `Seq2Seq`.
"""

import keras
import numpy as np

from keras_nlm.validation import check_positive_int


def as_ids(ids, argument):
    """`ids` as a 1-D int32 array, or a `ValueError` naming `argument`."""
    try:
        ids = np.asarray(ids)
    except ValueError:  # ragged nesting
        ids = np.asarray(ids, dtype=object)
    if ids.ndim == 1 and ids.size == 0:
        ids = ids.astype("int32")
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"`{argument}` must be a 1-D sequence of integer token ids; got "
            f"shape {ids.shape} of {ids.dtype}."
        )
    # Ids are stored as int32: a negative or larger id would be wrapped.
    if ids.size and (ids.min() < 0 or ids.max() > np.iinfo("int32").max):
        raise ValueError(
            f"`{argument}` must hold token ids in [0, 2**31); got ids from "
            f"{ids.min()} to {ids.max()}."
        )
    return ids.astype("int32")


def _rank(value):
    try:
        return np.ndim(value)
    except ValueError:  # ragged nesting
        return None


class Batches(keras.utils.PyDataset):
    """A `PyDataset` of numpy batches that can also become a `tf.data.Dataset`."""

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def _batch_index(self, index):
        """`index` as a batch number in `[0, len(self))`, counting from the end
        when negative, as a sequence does; past the end, slicing would return
        short or empty batches instead of failing."""
        count = len(self)
        if not -count <= index < count:
            raise IndexError(
                f"Batch index {index} is out of range for {count} batches."
            )
        return index % count

    def as_tf_dataset(self):
        """The same batches as a `tf.data.Dataset` (built from a generator)."""
        import tensorflow as tf

        return tf.data.Dataset.from_generator(
            lambda: iter(self), output_signature=self.tf_signature()
        )

    def tf_signature(self):
        """`tf.data`'s signature of these batches: every dimension free, as
        their lengths and widths vary. (Keras's `fit` on TensorFlow would
        otherwise fix each dimension on which its first two batches agree, and
        refuse any later batch of another shape; see `CheckedData`.)"""
        import tensorflow as tf

        return keras.tree.map_structure(
            lambda a: tf.TensorSpec((None,) * a.ndim, tf.as_dtype(a.dtype)),
            self[0],
        )

    # Shuffled datasets draw epoch k's order from (seed, k) alone, not from a
    # running generator, so epoch k is the same whether the run was resumed.
    def set_epoch(self, epoch):
        self.epoch = epoch
        count = self._shuffled_count()
        order = (
            np.random.default_rng([self.seed, epoch]).permutation(count)
            if self.shuffle
            else np.arange(count)
        )
        self._order = order  # one assignment: a reader sees one order

    def on_epoch_end(self):
        if hasattr(self, "epoch"):
            self.set_epoch(self.epoch + 1)


class NGramWindows(Batches):
    """Every window of `window_size` ids with the id that follows it.

    The windows are a strided view of the id array (nothing is copied until a
    batch is drawn). Target `k` is predicted from ids `k - window_size … k - 1`;
    with `start_id` the stream is preceded by `window_size` copies of it
    (e.g. `<eos>`, as if a line had just ended), so every id is a target.

    Args:
        ids: the corpus as a 1-D array of token ids.
        window_size: the context length (4 in the course).
        batch_size: windows per batch.
        shuffle: draw windows in a new random order each epoch.
        seed: seed of the shuffling.
        start_id: id put before the stream, or `None` (the first
            `window_size` ids are then only context).
        epoch: the epoch to start at. Epoch `k`'s order depends only on
            `seed` and `k`, so a resumed run sees the batches an
            uninterrupted one would.
    """

    def __init__(
        self,
        ids,
        window_size=4,
        batch_size=128,
        shuffle=True,
        seed=0,
        start_id=None,
        epoch=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        ids = as_ids(ids, "ids")
        self.window_size = check_positive_int(window_size, "window_size")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if start_id is not None:
            as_ids([start_id], "start_id")
            ids = np.concatenate([np.full(window_size, start_id, "int32"), ids])
        if len(ids) <= window_size:
            raise ValueError(
                f"`ids` must be longer than window_size={window_size}; got "
                f"{len(ids)} ids."
            )
        self.windows = np.lib.stride_tricks.sliding_window_view(ids, window_size + 1)
        self.shuffle, self.seed = shuffle, seed
        self.set_epoch(epoch)

    def __len__(self):
        return -(-len(self.windows) // self.batch_size)

    def __getitem__(self, index):
        index = self._batch_index(index)
        rows = self.windows[
            self._order[index * self.batch_size : (index + 1) * self.batch_size]
        ]
        return rows[:, :-1], rows[:, -1]

    def _shuffled_count(self):
        return len(self.windows)


class StreamBatches(Batches):
    """The corpus as `batch_size` parallel streams, read `sequence_length` at a time.

    The ids are cut into `batch_size` equal rows (the remainder that does not
    fill a row is dropped, as in Zaremba et al. 2014); batch `k` holds columns
    `k·L … (k+1)·L` of every row, so row `i` of batch `k + 1` continues row `i`
    of batch `k` and a recurrent state can be carried from one to the next.
    Targets are the inputs shifted by one. With `start_id`, the stream is
    preceded by it so that every id can be a target. Columns that do not fill
    a whole last batch are dropped too (every batch has the same shape, as
    `tf.data` needs); scoring every id of a split is done by carrying the
    state over the whole stream instead.

    Pass `shuffle=False` to `fit` (or train through `CarriedState`, which
    does): Keras otherwise feeds a `PyDataset`'s batches in random order.

    Args:
        ids: the corpus as a 1-D array of token ids.
        batch_size: number of parallel streams.
        sequence_length: time steps per batch (the BPTT unroll, 20 or 35).
        start_id: id put before the stream, or `None`.
    """

    def __init__(self, ids, batch_size=20, sequence_length=35, start_id=None, **kwargs):
        super().__init__(**kwargs)
        ids = as_ids(ids, "ids")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.sequence_length = check_positive_int(sequence_length, "sequence_length")
        if start_id is not None:
            ids = np.concatenate([as_ids([start_id], "start_id"), ids])
        row_length = len(ids) // batch_size
        if row_length <= sequence_length:
            raise ValueError(
                f"`ids` must hold more than sequence_length={sequence_length} "
                f"ids per stream for batch_size={batch_size}; got {len(ids)} ids."
            )
        self.streams = ids[: row_length * batch_size].reshape(batch_size, row_length)

    def __len__(self):
        return (self.streams.shape[1] - 1) // self.sequence_length

    def __getitem__(self, index):
        start = self._batch_index(index) * self.sequence_length
        end = start + self.sequence_length
        return self.streams[:, start:end], self.streams[:, start + 1 : end + 1]


class VariableStreamBatches(StreamBatches):
    """`StreamBatches` in chunks of random lengths (Merity et al. 2017).

    A chunk's length is drawn from a normal with standard deviation 5 and
    mean `sequence_length` (with probability 0.95) or half of it, then
    rounded to a multiple of 5 in `[5, sequence_length + 20]`: JAX and
    TensorFlow compile a step per length, and rounding keeps a run to about
    a dozen (without a mask, padding would run the carried state on past the
    chunk's end). Row `i` of batch `k + 1` continues row `i` of batch `k`.
    Keras fixes an epoch's number of batches when `fit` starts, so every
    epoch has `StreamBatches`'s; the rows are read cyclically (row `i` runs
    on into row `i + 1`, the last into the first) from a column drawn for
    the epoch, so every token is read as often as any other. The lengths and
    the column of epoch `k` depend on `seed` and `k` alone.

    Args:
        ids, batch_size, sequence_length, start_id: as `StreamBatches`'s,
            `sequence_length` being the mean length (Merity et al.'s bptt).
        seed: seed of the lengths.
        epoch: the epoch to start at (`set_epoch` changes it).
    """

    # Merity et al.'s lengths: at least 5, standard deviation 5; at most 20
    # over the mean (DARTS's `max_seq_len_delta`; Merity et al.'s code left a
    # bound of 10 commented out); rounded to multiples of 5.
    MINIMUM, DEVIATION, LONGER, ROUNDING = 5, 5, 20, 5

    def __init__(
        self,
        ids,
        batch_size=20,
        sequence_length=70,
        start_id=None,
        seed=0,
        epoch=0,
        **kwargs,
    ):
        super().__init__(ids, batch_size, sequence_length, start_id, **kwargs)
        self.seed = seed
        self.ids = self.streams.reshape(-1)
        self.set_epoch(epoch)

    def set_epoch(self, epoch):
        self.epoch = epoch
        rng = np.random.default_rng([self.seed, epoch, 1])
        halved = rng.random(len(self)) >= 0.95
        mean = np.where(halved, self.sequence_length / 2, self.sequence_length)
        lengths = rng.normal(mean, self.DEVIATION)
        lengths = np.round(lengths / self.ROUNDING) * self.ROUNDING
        lengths = np.clip(
            lengths, self.MINIMUM, self.sequence_length + self.LONGER
        ).astype(int)
        starts = rng.integers(self.streams.shape[1]) + np.cumsum(lengths) - lengths
        # One attribute, so that a batch read while it changes (tf.data reads
        # ahead) sees one epoch's plan.
        self._plan = starts, lengths

    @property
    def length_scales(self):
        """Each batch's length over `sequence_length`: its learning-rate factor."""
        return self._plan[1] / self.sequence_length

    def __getitem__(self, index):
        starts, lengths = self._plan
        index = self._batch_index(index)
        row_starts = np.arange(self.batch_size)[:, None] * self.streams.shape[1]
        columns = starts[index] + np.arange(lengths[index] + 1)
        chunk = self.ids[(row_starts + columns) % len(self.ids)]
        return chunk[:, :-1], chunk[:, 1:]


class SentencePairs(Batches):
    """Padded batches of `(source, target)` sentence pairs for `Seq2Seq`.

    Each example becomes `{"source": x, "target": [start] + y}` → `y + [end]`:
    the decoder is fed the target shifted right, starting with the start
    delimiter, and learns to predict it up to the end delimiter. Pairs longer
    than `max_length` (delimiter included) are left out. Pairs of similar
    length are batched together (sorted, then cut into batches whose order is
    shuffled each epoch), so little padding is needed; padding uses
    `padding_id`, which the models mask and the default loss ignores.

    JAX and TensorFlow compile the training step once per batch shape. With
    `bucket_widths`, each pair goes to the narrowest bucket that holds both
    its source and its decoder row (`len(target) + 1`), batches are cut
    within a bucket, and a batch's source and targets are all padded to its
    bucket's width: an epoch has at most `2 * len(bucket_widths)` shapes (each
    bucket's full batches and its last, partial one).

    Args:
        sources, targets: aligned lists of token-id lists; or, with
            `source_tokenizer` / `target_tokenizer`, lists of texts, which
            the tokenizer's `tokenize` turns into ids.
        start_id, end_id: the delimiters' ids; by default the
            `target_tokenizer`'s (`start_id` / `end_id`), which must then be
            given.
        batch_size: pairs per batch.
        max_length: longest source or target kept, or `None`.
        padding_id: the padding id; by default the `target_tokenizer`'s, or
            0 (keras-nlm's tokenizers and models) without one.
        pad_to_multiple_of: pad each batch's width up to a multiple of this,
            or `None` for the longest row. 8 turns one shape per batch into
            a handful (up to one per pair of source and target widths), for
            a little more padding.
        shuffle: shuffle the order of the batches each epoch.
        seed: seed of the shuffling.
        epoch: the epoch to start at (as in `NGramWindows`).
        source_tokenizer, target_tokenizer: tokenizers (`WordTokenizer`,
            `CharacterTokenizer`) of texts given as `sources` / `targets`.
        bucket_widths: ascending batch widths, e.g. `(8, 16, 32, 64)`, or
            `"auto"` for the powers of two from 8 up to the first that holds
            the longest pair kept; `None` (the default) pads each batch to
            its longest row (or `pad_to_multiple_of`, which cannot be
            combined with buckets). The widest bucket must hold every pair
            kept: at least `max_length` when it is given, else the longest
            pair (pass `max_length` to leave longer pairs out).

    Example:
    >>> pairs = datasets.get("multi30k").pairs("train", source="de", target="en")
    >>> de = WordTokenizer.from_corpus([s for s, _ in pairs], lowercase=True)
    >>> en = WordTokenizer.from_corpus([t for _, t in pairs], lowercase=True)
    >>> batches = SentencePairs(
    ...     [s for s, _ in pairs],
    ...     [t for _, t in pairs],
    ...     source_tokenizer=de,
    ...     target_tokenizer=en,  # its <s>, </s> and <pad> delimit and pad
    ...     max_length=64,
    ...     bucket_widths=(8, 16, 32, 64),
    ... )
    >>> model.fit(batches, epochs=10)
    """

    def __init__(
        self,
        sources,
        targets,
        start_id=None,
        end_id=None,
        batch_size=64,
        max_length=None,
        padding_id=None,
        pad_to_multiple_of=None,
        shuffle=True,
        seed=0,
        epoch=0,
        source_tokenizer=None,
        target_tokenizer=None,
        bucket_widths=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(sources) != len(targets):
            raise ValueError(
                f"`sources` and `targets` must be aligned; got {len(sources)} "
                f"and {len(targets)} sentences."
            )
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if max_length is not None:
            max_length = check_positive_int(max_length, "max_length")
        self.pad_to_multiple_of = pad_to_multiple_of
        if pad_to_multiple_of is not None:
            check_positive_int(pad_to_multiple_of, "pad_to_multiple_of")
        if bucket_widths is not None and pad_to_multiple_of is not None:
            raise ValueError(
                "Pass `bucket_widths` or `pad_to_multiple_of`, not both: a "
                "bucket's batches are padded to its width."
            )
        bucket_widths = self._check_bucket_widths(bucket_widths, max_length)
        sources = self._tokenize(sources, source_tokenizer, "sources")
        targets = self._tokenize(targets, target_tokenizer, "targets")
        for argument, sentences in (("sources", sources), ("targets", targets)):
            for sentence in sentences:
                if _rank(sentence) != 1:
                    text = isinstance(sentence, str)
                    raise ValueError(
                        f"`{argument}` must be lists of token ids, one per "
                        f"sentence; got {sentence!r}."
                        + (
                            f" Pass `{argument[:-1]}_tokenizer` to tokenize texts."
                            if text
                            else ""
                        )
                    )
            # All at once: one array of every id, checked like `ids`.
            as_ids([i for sentence in sentences for i in sentence], argument)
        start_id, end_id, padding_id = self._default_ids(
            start_id, end_id, padding_id, target_tokenizer
        )
        ids = as_ids([start_id, end_id, padding_id], "start_id, end_id, padding_id")
        self.start_id, self.end_id, self.padding_id = (int(i) for i in ids)
        if len({self.start_id, self.end_id, self.padding_id}) < 3:
            # A padding delimiter would be masked; equal delimiters would end
            # every decoded sentence at its start.
            raise ValueError(
                "`start_id`, `end_id` and `padding_id` must be three different "
                f"ids; got {self.start_id}, {self.end_id} and {self.padding_id}."
            )
        self.pairs = [
            (list(s), list(t))
            for s, t in zip(sources, targets)
            if len(s)
            and len(t)
            and (max_length is None or max(len(s), len(t) + 1) <= max_length)
        ]
        if not self.pairs:
            raise ValueError(
                "No sentence pair is left: all are empty or longer than "
                f"max_length={max_length}."
            )
        by_length = sorted(
            range(len(self.pairs)),
            key=lambda i: (len(self.pairs[i][0]), len(self.pairs[i][1])),
        )
        # `buckets` are the batches (lists of pairs' indices), `widths` each
        # one's width: `None` pads a batch to its longest row.
        longest = max(max(len(s), len(t) + 1) for s, t in self.pairs)
        if bucket_widths == "auto":
            bucket_widths = [8]
            while bucket_widths[-1] < longest:
                bucket_widths.append(2 * bucket_widths[-1])
        elif bucket_widths is not None and bucket_widths[-1] < longest:
            raise ValueError(
                f"`bucket_widths` must hold every pair kept: the longest source "
                f"or target (end delimiter included) has {longest} ids, over "
                f"the widest bucket, {bucket_widths[-1]}. Pass "
                f"`max_length={bucket_widths[-1]}` to leave longer pairs out."
            )
        self.bucket_widths = None if bucket_widths is None else tuple(bucket_widths)
        if bucket_widths is None:
            groups = {None: by_length}
        else:
            groups = {width: [] for width in bucket_widths}
            for i in by_length:  # each group stays sorted by length
                s, t = self.pairs[i]
                row = max(len(s), len(t) + 1)
                groups[bucket_widths[np.searchsorted(bucket_widths, row)]].append(i)
        self.buckets, self.widths = [], []
        for width, group in groups.items():
            for i in range(0, len(group), batch_size):
                self.buckets.append(group[i : i + batch_size])
                self.widths.append(width)
        self.shuffle, self.seed = shuffle, seed
        self.set_epoch(epoch)

    @staticmethod
    def _check_bucket_widths(bucket_widths, max_length):
        """`bucket_widths` as a list of ints, `"auto"` or `None`."""
        if bucket_widths is None or (
            isinstance(bucket_widths, str) and bucket_widths == "auto"
        ):
            return bucket_widths
        if isinstance(bucket_widths, (str, bytes)) or np.ndim(bucket_widths) != 1:
            raise ValueError(
                "`bucket_widths` must be an ascending tuple of positive "
                f'integers, "auto" or None; got {bucket_widths!r}.'
            )
        widths = list(bucket_widths)
        if not widths:
            raise ValueError("`bucket_widths` must hold at least one width.")
        for width in widths:
            check_positive_int(width, "bucket_widths")
        widths = [int(width) for width in widths]
        if any(a >= b for a, b in zip(widths, widths[1:])):
            raise ValueError(
                f"`bucket_widths` must be strictly ascending; got {bucket_widths!r}."
            )
        if max_length is not None and widths[-1] < max_length:
            raise ValueError(
                f"`bucket_widths` must hold every pair kept: the widest bucket, "
                f"{widths[-1]}, is narrower than max_length={max_length}."
            )
        return widths

    @staticmethod
    def _tokenize(sentences, tokenizer, argument):
        """Texts through the tokenizer; token ids as they are."""
        if tokenizer is None:
            return sentences
        name = f"{argument[:-1]}_tokenizer"
        if not callable(getattr(tokenizer, "tokenize", None)):
            raise ValueError(
                f"`{name}` must be a tokenizer (e.g. `WordTokenizer`); got "
                f"{type(tokenizer).__name__}."
            )
        if any(isinstance(sentence, str) for sentence in sentences):
            return tokenizer.tokenize(list(sentences))
        return sentences

    @staticmethod
    def _default_ids(start_id, end_id, padding_id, tokenizer):
        """The ids given, else the target tokenizer's (padding: else 0)."""
        defaults = {"start_id": start_id, "end_id": end_id, "padding_id": padding_id}
        for argument, id in defaults.items():
            if id is not None:
                continue
            if tokenizer is None:
                if argument == "padding_id":
                    defaults[argument] = 0
                    continue
                raise ValueError(
                    f"`{argument}` is needed: pass it, or the `target_tokenizer` "
                    "whose delimiters to use."
                )
            token = argument.replace("_id", "_token")
            id = getattr(tokenizer, argument, None)
            if id is None:
                raise ValueError(
                    f"`target_tokenizer` has no `{token}` to give `{argument}`: "
                    f"build it with one (e.g. {token}=...) or pass `{argument}`."
                )
            defaults[argument] = id
        return tuple(defaults.values())

    def __len__(self):
        return len(self.buckets)

    def _pad(self, rows, width=None):
        if width is None:
            width = max(map(len, rows))
            if self.pad_to_multiple_of:
                multiple = self.pad_to_multiple_of
                width = -(-width // multiple) * multiple
        batch = np.full((len(rows), width), self.padding_id, "int32")
        for i, row in enumerate(rows):
            batch[i, : len(row)] = row
        return batch

    def __getitem__(self, index):
        index = self._batch_index(index)
        batch = self._order[index]
        pairs = [self.pairs[i] for i in self.buckets[batch]]
        width = self.widths[batch]
        source = self._pad([s for s, _ in pairs], width)
        target_in = self._pad([[self.start_id] + t for _, t in pairs], width)
        target_out = self._pad([t + [self.end_id] for _, t in pairs], width)
        return {"source": source, "target": target_in}, target_out

    def _shuffled_count(self):
        return len(self.buckets)
