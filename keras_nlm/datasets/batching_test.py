import collections

import numpy as np
import pytest

from keras_nlm import datasets, models
from keras_nlm.datasets.batching import (
    NGramWindows,
    SentencePairs,
    StreamBatches,
    VariableStreamBatches,
)
from keras_nlm.tokenizers import WordTokenizer


@pytest.fixture(scope="module")
def ptb_ids():
    """The first 3,000 tokens of PTB train as ids of a 10k-word tokenizer."""
    ptb = datasets.get("ptb")
    tokenizer = WordTokenizer.from_corpus(
        ptb.lines("train"), padding_token=None, start_token=None, end_token=None
    )
    ids = np.array([tokenizer.token_to_id(t) for t in ptb.tokens("train")[:3000]])
    return tokenizer, ids


def test_ngram_windows_hold_every_example():
    ids = np.arange(10, 30)
    windows = NGramWindows(ids, window_size=4, batch_size=6, shuffle=False)
    x = np.concatenate([b[0] for b in windows])
    y = np.concatenate([b[1] for b in windows])
    assert len(x) == len(ids) - 4 and len(windows) == 3
    np.testing.assert_array_equal(x[0], [10, 11, 12, 13])
    np.testing.assert_array_equal(y, ids[4:])
    np.testing.assert_array_equal(x, np.stack([ids[k - 4 : k] for k in range(4, 20)]))
    assert np.shares_memory(windows.windows, windows.windows.base)  # a view


def test_ngram_windows_shuffle_and_start_id():
    ids = np.arange(1, 21)
    windows = NGramWindows(ids, window_size=3, batch_size=4, seed=3, start_id=0)
    targets = np.concatenate([b[1] for b in windows])
    assert sorted(targets) == list(ids)  # every id is a target once
    assert list(targets) != list(ids)
    first = next(x for x, y in windows if 1 in y)[
        list(next(y for x, y in windows if 1 in y)).index(1)
    ]
    np.testing.assert_array_equal(first, [0, 0, 0])


def test_streams_continue_row_by_row():
    ids = np.arange(103)
    batches = StreamBatches(ids, batch_size=4, sequence_length=7)
    assert batches.streams.shape == (4, 25)
    inputs = np.concatenate([x for x, _ in batches], axis=1)
    targets = np.concatenate([y for _, y in batches], axis=1)
    assert len(batches) == 3 and all(x.shape == (4, 7) for x, _ in batches)
    np.testing.assert_array_equal(inputs, batches.streams[:, :21])
    np.testing.assert_array_equal(targets, batches.streams[:, 1:22])
    x0, y0 = batches[0]
    x1, _ = batches[1]
    np.testing.assert_array_equal(x1[:, 0], y0[:, -1])  # k+1 continues k
    every = StreamBatches(ids, batch_size=1, sequence_length=26, start_id=999)
    np.testing.assert_array_equal(every[0][1][0], ids[:26])  # the first id too
    with pytest.raises(ValueError, match="more than sequence_length=35"):
        StreamBatches(ids, batch_size=4)


def test_variable_streams_continue_row_by_row_in_lengths_of_few_shapes():
    # PTB's shape in AWD-LSTM's set-up: 20 streams of 11,600 ids, bptt 70.
    ids = np.arange(20 * 11_600)
    batches = VariableStreamBatches(ids, batch_size=20, sequence_length=70, seed=3)
    assert len(batches) == len(StreamBatches(ids, 20, 70))
    lengths, shapes = [], []
    for epoch in range(20):
        batches.set_epoch(epoch)
        (x, y), *rest = list(batches)
        shapes.append({x.shape for x, _ in [(x, y), *rest]})
        lengths += [x.shape[1] for x, _ in [(x, y), *rest]]
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # targets: shifted
        for x_next, y_next in rest:
            # Row i of batch k + 1 continues row i of batch k: here, ids count
            # up along the stream, row i running on into row i + 1.
            np.testing.assert_array_equal(x_next[:, 0], y[:, -1])
            assert (np.diff(np.concatenate([x, x_next], 1)) % len(ids) == 1).all()
            x, y = x_next, y_next
        np.testing.assert_array_equal(
            batches.length_scales, [x.shape[1] / 70 for x, _ in batches]
        )
    lengths = np.array(lengths)
    # Merity et al.'s draws: around 70, 1 in 20 around 35, within [5, 90].
    assert lengths.min() >= 5 and lengths.max() <= 90
    assert np.median(lengths) == 70 and 0.03 < np.mean(lengths < 50) < 0.07
    assert (lengths % 5 == 0).all()
    # Few shapes to compile: at most 12 in an epoch, 15 in all 20.
    assert max(map(len, shapes)) <= 12 and len(set().union(*shapes)) <= 15


def test_variable_streams_depend_on_the_seed_and_epoch_alone():
    ids = np.arange(4 * 500)

    def epoch(k, seed=1):
        batches = VariableStreamBatches(ids, 4, 20, seed=seed, epoch=k)
        return [x for x, _ in batches]

    resumed = VariableStreamBatches(ids, 4, 20, seed=1, epoch=0)
    resumed.on_epoch_end()  # as `fit` ends each epoch
    for a, (b, _) in zip(epoch(1), resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    for other in (epoch(2), epoch(1, seed=2)):
        assert [x.shape for x in other] != [x.shape for x in epoch(1)]
    with pytest.raises(ValueError, match="more than sequence_length=20"):
        VariableStreamBatches(np.arange(40), 4, 20)


def test_sentence_pairs_delimiters_padding_buckets():
    sources = [[5, 6], [7], [5, 6, 7, 8, 9], [8, 8, 8]]
    targets = [[9], [4, 4], [9, 9, 9], [6]]
    pairs = SentencePairs(
        sources,
        targets,
        start_id=1,
        end_id=2,
        batch_size=2,
        max_length=4,
        shuffle=False,
    )
    assert len(pairs.pairs) == 3  # the 5-word source is left out
    (inputs, target_out), (inputs2, _) = pairs[0], pairs[1]
    np.testing.assert_array_equal(inputs["source"], [[7, 0], [5, 6]])
    np.testing.assert_array_equal(inputs["target"], [[1, 4, 4], [1, 9, 0]])
    np.testing.assert_array_equal(target_out, [[4, 4, 2], [9, 2, 0]])
    np.testing.assert_array_equal(inputs2["source"], [[8, 8, 8]])
    with pytest.raises(ValueError, match="aligned"):
        SentencePairs([[1]], [], 1, 2)
    with pytest.raises(ValueError, match="No sentence pair"):
        SentencePairs([[1, 2, 3]], [[1, 2, 3]], 1, 2, max_length=2)
    for start_id, end_id in ((0, 2), (1, 0), (1, 1)):  # padding, or equal
        with pytest.raises(ValueError, match="must be three different ids"):
            SentencePairs(sources, targets, start_id, end_id)


def test_sentence_pairs_pad_to_a_multiple_of_a_width():
    sources = [[5] * n for n in range(1, 12)]
    targets = [[6] * n for n in range(1, 12)]
    pairs = SentencePairs(sources, targets, 1, 2, batch_size=3, pad_to_multiple_of=4)
    widths = set()
    for i in range(len(pairs)):
        inputs, target_out = pairs[i]
        widths.add((inputs["source"].shape[1], target_out.shape[1]))
        # Extra columns are padding only: the rows still end where they did.
        assert (inputs["source"] != 0).sum() == sum(
            len(sources[j]) for j in pairs.buckets[pairs._order[i]]
        )
    assert widths == {(4, 4), (8, 8), (12, 12)}
    with pytest.raises(ValueError, match="`pad_to_multiple_of`"):
        SentencePairs(sources, targets, 1, 2, pad_to_multiple_of=0)


def _as_lists(batches):
    return [
        (inputs["source"].tolist(), inputs["target"].tolist(), target_out.tolist())
        for inputs, target_out in batches
    ]


def test_sentence_pairs_take_tokenizers_instead_of_ids():
    de_texts = ["ein hund", "zwei katzen laufen", "ein", "hund und katze", "zwei"]
    en_texts = ["a dog", "two cats run", "one", "dog and cat", "two two"]
    de = WordTokenizer.from_corpus(de_texts)
    # Delimiters other than keras-nlm's usual 2 and 3: the ids come from it.
    en = WordTokenizer.from_corpus(en_texts, unknown_token=None, eos_token=None)
    assert (en.padding_id, en.start_id, en.end_id) == (0, 1, 2)
    options = {"batch_size": 2, "seed": 4}
    from_texts = SentencePairs(
        de_texts, en_texts, source_tokenizer=de, target_tokenizer=en, **options
    )
    from_ids = SentencePairs(
        de.tokenize(de_texts), en.tokenize(en_texts), 1, 2, **options
    )
    assert (from_texts.start_id, from_texts.end_id, from_texts.padding_id) == (1, 2, 0)
    assert _as_lists(from_texts) == _as_lists(from_ids)
    inputs, target_out = from_texts[0]
    assert (inputs["target"][:, 0] == en.start_id).all()
    assert en.detokenize(target_out[0]) in en_texts
    # Ids given win over the tokenizer's; ids go through as they are.
    mixed = SentencePairs(
        de_texts, en.tokenize(en_texts), 1, 2, source_tokenizer=de, **options
    )
    assert _as_lists(mixed) == _as_lists(from_ids)
    other = SentencePairs(
        de_texts, en_texts, 5, 6, source_tokenizer=de, target_tokenizer=en, **options
    )
    assert other.start_id == 5 and other[0][0]["target"][0, 0] == 5


def test_sentence_pairs_refuse_missing_ids_and_tokenizers():
    de_texts, en_texts = ["ein hund", "zwei"], ["a dog", "two"]
    de, en = WordTokenizer.from_corpus(de_texts), WordTokenizer.from_corpus(en_texts)
    ids = de.tokenize(de_texts), en.tokenize(en_texts)
    with pytest.raises(ValueError, match="`start_id` is needed.*`target_tokenizer`"):
        SentencePairs(*ids)
    with pytest.raises(ValueError, match="`end_id` is needed.*`target_tokenizer`"):
        SentencePairs(*ids, start_id=2)
    with pytest.raises(ValueError, match="Pass `source_tokenizer` to tokenize"):
        SentencePairs(de_texts, ids[1], 2, 3)
    with pytest.raises(ValueError, match="Pass `target_tokenizer` to tokenize"):
        SentencePairs(ids[0], en_texts, 2, 3)
    for missing in ("start_token", "end_token", "padding_token"):
        bare = WordTokenizer.from_corpus(en_texts, **{missing: None})
        argument = missing.replace("_token", "_id")
        with pytest.raises(
            ValueError, match=f"`target_tokenizer` has no `{missing}`.*`{argument}`"
        ):
            SentencePairs(ids[0], en_texts, target_tokenizer=bare)
    with pytest.raises(ValueError, match="`source_tokenizer` must be a tokenizer"):
        SentencePairs(de_texts, en_texts, source_tokenizer="de", target_tokenizer=en)


def _random_pairs(count=500, seed=0, longest=40):
    rng = np.random.default_rng(seed)
    sides = [
        [
            rng.integers(3, 30, rng.integers(1, longest + 1)).tolist()
            for _ in range(count)
        ]
        for _ in range(2)
    ]
    return tuple(sides)


def _shapes(batches):
    return {
        (inputs["source"].shape, target_out.shape) for inputs, target_out in batches
    }


def test_bucketed_pairs_have_few_shapes_and_every_pair_once():
    sources, targets = _random_pairs()
    buckets = (8, 16, 32, 48)
    pairs = SentencePairs(
        sources, targets, 1, 2, batch_size=16, bucket_widths=buckets, seed=5
    )
    assert pairs.bucket_widths == buckets
    shapes = _shapes(pairs)
    assert len(shapes) <= 2 * len(buckets)
    unbucketed = SentencePairs(
        sources, targets, 1, 2, batch_size=16, pad_to_multiple_of=8, seed=5
    )
    assert len(_shapes(unbucketed)) > 2 * len(buckets)
    kept = collections.Counter()
    for inputs, target_out in pairs:
        width = inputs["source"].shape[1]
        assert width in buckets
        assert inputs["target"].shape[1] == target_out.shape[1] == width
        smaller = max([0] + [w for w in buckets if w < width])
        for source, target_in, out in zip(
            inputs["source"], inputs["target"], target_out
        ):
            source, target = source[source != 0].tolist(), out[out != 0].tolist()
            assert (
                target[-1] == 2
                and target_in[: len(target)].tolist() == [1] + (target[:-1])
            )
            # The narrowest bucket that holds the pair: not the one below.
            assert smaller < max(len(source), len(target)) <= width
            kept[(tuple(source), tuple(target[:-1]))] += 1
    assert kept == collections.Counter(zip(map(tuple, sources), map(tuple, targets)))


def test_bucketed_pairs_depend_on_the_seed_and_epoch_alone():
    sources, targets = _random_pairs(300, seed=1)

    def epoch(k, seed=1):
        return _as_lists(
            SentencePairs(
                sources, targets, 1, 2, 16, seed=seed, epoch=k, bucket_widths="auto"
            )
        )

    resumed = SentencePairs(sources, targets, 1, 2, 16, seed=1, bucket_widths="auto")
    assert resumed.bucket_widths == (8, 16, 32, 64)  # the longest row is 41
    resumed.on_epoch_end()  # as `fit` ends each epoch
    assert _as_lists(resumed) == epoch(1)
    assert epoch(1) != epoch(2) and epoch(1) != epoch(1, seed=2)


def test_bad_bucket_widths_are_refused():
    sources, targets = _random_pairs(50)  # rows of up to 41 ids
    for widths in ((0, 8), (16, 8), (8, 8), (8.5, 64), [], "big", 64, ((8, 16),)):
        with pytest.raises(ValueError, match="`bucket_widths`"):
            SentencePairs(sources, targets, 1, 2, bucket_widths=widths)
    with pytest.raises(ValueError, match="`bucket_widths` or `pad_to_multiple_of`"):
        SentencePairs(sources, targets, 1, 2, bucket_widths=(64,), pad_to_multiple_of=8)
    with pytest.raises(ValueError, match="`bucket_widths`.*max_length=40"):
        SentencePairs(sources, targets, 1, 2, max_length=40, bucket_widths=(8, 32))
    with pytest.raises(ValueError, match="`bucket_widths`.*`max_length=32`"):
        SentencePairs(sources, targets, 1, 2, bucket_widths=(8, 32))
    # With `max_length` the longer pairs are left out, as without buckets.
    short = SentencePairs(sources, targets, 1, 2, max_length=32, bucket_widths=(32,))
    assert len(short.pairs) == len(
        SentencePairs(sources, targets, 1, 2, max_length=32).pairs
    )
    assert _shapes(short) <= {((64, 32), (64, 32)), ((len(short.pairs) % 64, 32),) * 2}


def test_fit_on_bucketed_pairs_compiles_a_step_per_shape():
    """On JAX, `train_step`'s Python runs once per compilation (trace)."""
    import keras

    sources, targets = _random_pairs(160, seed=2, longest=15)
    buckets = (8, 16)
    batches = SentencePairs(
        sources, targets, 1, 2, 16, shuffle=False, bucket_widths=buckets
    )
    assert len(batches) >= 3 * len(buckets)  # more batches than shapes
    traces = []

    class Counted(models.Seq2Seq):
        def train_step(self, *args):
            traces.append(1)
            return super().train_step(*args)

    # A simple RNN compiles fastest (about 2 s a shape on 2 busy cores).
    model = Counted(30, 30, cell="simple", num_layers=1, hidden_dim=4, embedding_dim=4)
    model.compile()
    model.fit(batches, epochs=1, verbose=0)
    if keras.backend.backend() == "jax":
        # Without buckets these pairs make 10 shapes, so 10 compilations.
        assert 0 < len(traces) <= 2 * len(buckets)
    elif keras.backend.backend() == "torch":
        assert len(traces) == len(batches)  # eager: once per batch


def test_fit_takes_a_later_batch_wider_than_the_first_two():
    # Keras's `fit` on TensorFlow fixed each dimension on which the first two
    # batches agreed (its `tf.data` signature): the third was refused.
    sources = [[5, 6, 7]] * 8 + [[5, 6, 7, 8, 9, 10]] * 4
    batches = SentencePairs(sources, sources, 1, 2, batch_size=4, shuffle=False)
    assert [x["source"].shape[1] for x, _ in batches] == [3, 3, 6]
    model = models.Seq2Seq(
        12, 12, cell="simple", num_layers=1, hidden_dim=4, embedding_dim=4
    )
    model.compile()
    model.fit(batches, epochs=1, verbose=0)
    assert np.isfinite(model.evaluate(batches, verbose=0))


@pytest.mark.parametrize(
    "batches",
    [
        NGramWindows(np.arange(20), window_size=4, batch_size=6, shuffle=False),
        StreamBatches(np.arange(103), batch_size=4, sequence_length=7),
        SentencePairs([[5], [6, 7], [8]], [[9], [4], [6]], 1, 2, batch_size=2),
    ],
    ids=["windows", "streams", "pairs"],
)
def test_batch_indices_count_from_the_end_and_stop_at_it(batches):
    # Past the end, slicing gave short or empty batches instead of failing.
    last = batches[len(batches) - 1]
    for got, expected in zip(batches[-1], last):
        if isinstance(expected, dict):
            got, expected = list(got.values()), list(expected.values())
        np.testing.assert_array_equal(got, expected)
    for index in (len(batches), -len(batches) - 1):
        with pytest.raises(IndexError, match=f"Batch index {index} is out of range"):
            batches[index]


def test_bad_ids_argument():
    with pytest.raises(ValueError, match="`ids` must be a 1-D sequence of integer"):
        NGramWindows(np.zeros((3, 3), int))
    with pytest.raises(ValueError, match="longer than window_size=4"):
        NGramWindows([1, 2, 3])
    with pytest.raises(ValueError, match="`batch_size`"):
        StreamBatches(np.arange(10), batch_size=0)


def test_fit_on_ptb_windows_and_streams(ptb_ids):
    tokenizer, ids = ptb_ids
    v = tokenizer.vocabulary_size()
    window_lm = models.FixedWindowLM(v, embedding_dim=8, hidden_dim=8)
    window_lm.compile()
    history = window_lm.fit(NGramWindows(ids, batch_size=256), epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    rnn_lm = models.RNNLM(v, num_layers=1, hidden_dim=8, embedding_dim=8)
    rnn_lm.compile()
    history = rnn_lm.fit(
        StreamBatches(ids, batch_size=10, sequence_length=20), epochs=2, verbose=0
    )
    assert history.history["loss"][1] < history.history["loss"][0]


def test_fit_on_multi30k_pairs_and_tf_data():
    pairs = datasets.get("multi30k").pairs("validation", source="de", target="en")[:200]
    de = WordTokenizer.from_corpus(
        [s for s, _ in pairs], split_on="punctuation", lowercase=True
    )
    en = WordTokenizer.from_corpus(
        [t for _, t in pairs], split_on="punctuation", lowercase=True
    )
    batches = SentencePairs(
        de.tokenize([s for s, _ in pairs]),
        en.tokenize([t for _, t in pairs]),
        start_id=en.token_to_id("<s>"),
        end_id=en.token_to_id("</s>"),
        batch_size=50,
        # Every batch 50 x 40 (no sentence is longer): one training step to
        # compile, here and through tf.data.
        pad_to_multiple_of=40,
    )
    model = models.Seq2Seq(
        de.vocabulary_size(),
        en.vocabulary_size(),
        num_layers=1,
        hidden_dim=8,
        embedding_dim=8,
    )
    model.compile()
    history = model.fit(batches, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    # The same batches through tf.data, on any backend.
    dataset = batches.as_tf_dataset()
    first = next(iter(dataset))
    assert set(first[0]) == {"source", "target"}
    model.fit(dataset, epochs=1, shuffle=False, verbose=0)


@pytest.mark.parametrize("name", sorted(datasets.CORPORA))
def test_fit_runs_on_every_corpus(name):
    """A slice of each corpus, through its tokenizer and batcher, into `fit`."""
    from keras_nlm.tokenizers import CharacterTokenizer

    corpus = datasets.get(name)
    if hasattr(corpus, "pairs"):
        pairs = corpus.pairs("train")[:300]
        tokenizers = [
            WordTokenizer.from_corpus(side, split_on="punctuation", lowercase=True)
            for side in zip(*pairs)
        ]
        source, target = (
            t.tokenize(list(side)) for t, side in zip(tokenizers, zip(*pairs))
        )
        # One batch: one shape, so JAX and TensorFlow compile one training step.
        data = SentencePairs(source, target, start_id=2, end_id=3, batch_size=300)
        model = models.Seq2Seq(
            *(t.vocabulary_size() for t in tokenizers),
            num_layers=1,
            hidden_dim=8,
            embedding_dim=8,
        )
    elif hasattr(corpus, "text"):
        text = corpus.text("train")[:6000]
        tokenizer = CharacterTokenizer.from_corpus([text])
        data = StreamBatches(tokenizer.tokenize(text), batch_size=8, sequence_length=50)
        model = models.RNNLM(
            tokenizer.vocabulary_size(), num_layers=1, hidden_dim=8, embedding_dim=8
        )
    else:
        tokens = corpus.tokens("train")[:3000]
        tokenizer = WordTokenizer.from_corpus([" ".join(tokens)])
        data = NGramWindows(tokenizer.tokenize(" ".join(tokens)), batch_size=300)
        model = models.FixedWindowLM(
            tokenizer.vocabulary_size(), embedding_dim=8, hidden_dim=8
        )
    model.compile()
    history = model.fit(data, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
