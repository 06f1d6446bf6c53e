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
    # TensorFlow's `fit` reads the shape off the first two batches.
    assert batches[0][0].shape != batches[1][0].shape


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
