import collections
import math

import numpy as np
import pytest

from keras_nlm import datasets
from keras_nlm.baselines import KneserNeyLM
from keras_nlm.metrics import perplexity

CORPUS = (
    "the cat sat on the mat <eos> the dog sat on the rug <eos> "
    "a cat saw the dog <eos> the dog saw a cat on the mat <eos> "
    "the cat ate <eos> a dog ate the cat food <eos>"
).split()


def _probabilities(lm, history, vocabulary):
    return np.array(
        [math.exp(-lm.token_nll([w], history=history)[0]) for w in vocabulary]
    )


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize(
    "history",
    [
        ("on", "the"),  # seen
        ("the", "cat", "sat", "on", "the"),  # seen, longer than any order needs
        ("mat", "the", "food"),  # unseen at every order above 1
        ("cat", "on", "the"),  # "on the" seen, "cat on the" not
        ("dog", "ate"),  # "ate" seen, "dog ate" only at the next order
        ("zebra",),  # a word outside the vocabulary: an unseen history
        (),  # the start of the stream: the unigram model
    ],
)
def test_probabilities_sum_to_one_over_the_vocabulary(order, history):
    lm = KneserNeyLM(order).fit(CORPUS)
    vocabulary = sorted(set(CORPUS))
    p = _probabilities(lm, history, vocabulary)
    assert lm.vocabulary_size == len(vocabulary)
    assert np.all(p > 0)
    np.testing.assert_allclose(p.sum(), 1.0, atol=1e-12)


def test_bigram_probability_checked_by_hand():
    #   position  0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16
    corpus = list("adbabbbbdcbbddcbd")
    lm = KneserNeyLM(order=2).fit(corpus)

    # Order 2, raw counts: ad 1, db 1, ba 1, ab 1, bb 4, bd 3, dc 2, cb 2, dd 1.
    # n1 = 5 (ad db ba ab dd), n2 = 2 (dc cb), n3 = 1 (bd), n4 = 1 (bb).
    y2 = 5 / (5 + 2 * 2)  # 5/9
    d2 = (1 - 2 * y2 * 2 / 5, 2 - 3 * y2 * 1 / 2, 3 - 4 * y2 * 1 / 1)  # 5/9 7/6 7/9
    # Order 1, continuation counts N1+(• w): a 1 (b_) + 1 (starts the stream),
    # b 4 (d_ a_ b_ c_), c 1 (d_), d 3 (a_ b_ d_); total 10.
    # n1 = 1 (c), n2 = 1 (a), n3 = 1 (d), n4 = 1 (b).
    y1 = 1 / (1 + 2 * 1)  # 1/3
    d1 = (1 - 2 * y1 * 1 / 1, 2 - 3 * y1 * 1 / 1, 3 - 4 * y1 * 1 / 1)  # 1/3 1 5/3
    np.testing.assert_allclose(lm.discounts, [d1, d2], rtol=1e-12)
    np.testing.assert_allclose(d2, [5 / 9, 7 / 6, 7 / 9], rtol=1e-12)
    np.testing.assert_allclose(d1, [1 / 3, 1, 5 / 3], rtol=1e-12)

    # The unigram level, with the uniform 1/4 over {a, b, c, d}:
    # γ(ε) = (D1·1 + D2·1 + D3+·2) / 10 = (1/3 + 1 + 10/3) / 10 = 7/15.
    # P(d) = (3 − 5/3)/10 + 7/15 · 1/4 = 8/60 + 7/60 = 1/4
    # P(a) = (2 − 1)/10 + 7/60 = 13/60
    gamma_empty = (d1[0] * 1 + d1[1] * 1 + d1[2] * 2) / 10
    p_d = (3 - d1[2]) / 10 + gamma_empty / 4
    p_a = (2 - d1[1]) / 10 + gamma_empty / 4
    assert math.isclose(gamma_empty, 7 / 15)
    assert math.isclose(p_d, 1 / 4) and math.isclose(p_a, 13 / 60)

    # P(d | b): c(b•) = ba 1 + bb 4 + bd 3 = 8; N1(b•) = 1, N2 = 0, N3+ = 2.
    # γ(b) = (5/9 · 1 + 7/9 · 2) / 8 = 19/72
    # P(d | b) = (3 − 7/9)/8 + 19/72 · 1/4 = 80/288 + 19/288 = 11/32
    gamma_b = (d2[0] * 1 + d2[2] * 2) / 8
    p_d_after_b = (3 - d2[2]) / 8 + gamma_b * p_d
    assert math.isclose(p_d_after_b, 11 / 32)
    # P(a | d), "d a" never seen: c(d•) = db 1 + dc 2 + dd 1 = 4;
    # γ(d) = (5/9 · 2 + 7/6 · 1) / 4 = 41/72, P(a | d) = 41/72 · 13/60.
    p_a_after_d = (d2[0] * 2 + d2[1] * 1) / 4 * p_a
    assert math.isclose(p_a_after_d, 41 / 72 * 13 / 60)

    nll = lm.token_nll(["d", "a"], history=["b"])
    np.testing.assert_allclose(np.exp(-nll), [11 / 32, 41 / 72 * 13 / 60], rtol=1e-12)


def _reference_nll(corpus, order, tokens, history):
    """Interpolated modified KN written straight from the equations, with dicts."""
    vocabulary = set(corpus)
    counts = {}
    for k in range(1, order + 1):
        grams = [tuple(corpus[i : i + k]) for i in range(len(corpus) - k + 1)]
        if k == order:
            counts[k] = collections.Counter(grams)
        else:
            longer = {tuple(corpus[i : i + k + 1]) for i in range(len(corpus) - k)}
            counts[k] = collections.Counter(g[1:] for g in longer)
            counts[k][tuple(corpus[:k])] += 1  # the stream start
    discounts = {}
    for k, c in counts.items():
        n = [sum(v == i for v in c.values()) for i in (1, 2, 3, 4)]
        y = n[0] / (n[0] + 2 * n[1]) if n[0] + 2 * n[1] else 0.5
        discounts[k] = [
            min(max(i - (i + 1) * y * n[i] / n[i - 1], 0), i) if n[i - 1] else y
            for i in (1, 2, 3)
        ]

    def probability(k, h, w):
        if k == 0:
            return 1 / len(vocabulary)
        following = {g: v for g, v in counts[k].items() if g[:-1] == h}
        total = sum(following.values())
        if total == 0:
            return probability(k - 1, h[1:], w)

        def d(v):
            return discounts[k][min(v, 3) - 1]

        gamma = sum(d(v) for v in following.values()) / total
        c = counts[k].get(h + (w,), 0)
        alpha = max(c - d(c), 0) / total if c else 0.0
        return alpha + gamma * probability(k - 1, h[1:], w)

    stream = list(history) + list(tokens)
    nll = []
    for i in range(len(history), len(stream)):
        h = tuple(stream[max(0, i - order + 1) : i])
        nll.append(-math.log(probability(len(h) + 1, h, stream[i])))
    return np.array(nll)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_matches_a_reference_written_from_the_equations(order):
    rng = np.random.default_rng(0)
    words = list("abcdef") + ["<eos>"]
    transitions = rng.dirichlet(np.full(len(words), 0.3), size=len(words))
    ids = [0]
    for _ in range(400):
        ids.append(rng.choice(len(words), p=transitions[ids[-1]]))
    stream = [words[i] for i in ids]
    train, test = stream[:300], stream[300:]
    lm = KneserNeyLM(order).fit(train)
    for history in [("<eos>",), (), ("a", "b", "c"), ("zebra", "a")]:
        np.testing.assert_allclose(
            lm.token_nll(test, history=history),
            _reference_nll(train, order, test, history),
            rtol=1e-10,
        )


def test_token_nll_scores_every_token_after_the_history():
    lm = KneserNeyLM(order=3).fit(CORPUS)
    tokens = "the dog sat on the mat <eos> a cat ate".split()
    nll = lm.token_nll(tokens)
    assert nll.dtype == np.float64 and nll.shape == (len(tokens),)
    # The first token comes after "<eos>", as if a line had just ended...
    assert nll[0] == lm.token_nll(tokens[:1], history=["<eos>"])[0]
    assert nll[0] != lm.token_nll(tokens[:1], history=[])[0]
    # Only the last order - 1 = 2 tokens of the history matter.
    after_ate = lm.token_nll(tokens[:1], history=["ate", "<eos>"])[0]
    assert after_ate != nll[0]
    assert after_ate == lm.token_nll(tokens[:1], history=["a", "ate", "<eos>"])[0]
    # ...and every other after the tokens before it, across "<eos>".
    for i in range(1, len(tokens)):
        history = ["<eos>"] + tokens[:i]
        assert nll[i] == lm.token_nll([tokens[i]], history=history)[0]
    assert lm.perplexity(tokens) == pytest.approx(math.exp(nll.mean()))
    assert lm.token_nll([]).shape == (0,)


def test_unknown_token_is_named_in_the_error():
    lm = KneserNeyLM(order=2).fit(CORPUS)
    with pytest.raises(ValueError, match=r"'zebra'.*training split"):
        lm.token_nll(["the", "zebra", "sat"])


def test_bad_arguments_raise_value_errors():
    for order in [0, -1, 2.0, "5", True]:
        with pytest.raises(ValueError, match="`order` must be a positive integer"):
            KneserNeyLM(order)
    lm = KneserNeyLM(order=2)
    with pytest.raises(ValueError, match="not fitted"):
        lm.token_nll(["the"])
    with pytest.raises(ValueError, match="empty"):
        lm.fit([])
    with pytest.raises(ValueError, match="split it first"):
        lm.fit("the cat sat")
    lm.fit(CORPUS)
    with pytest.raises(ValueError, match="split it first"):
        lm.token_nll(["cat"], history="<eos>")


def test_fits_a_stream_shorter_than_the_order():
    lm = KneserNeyLM(order=5).fit(["a", "b"])
    p = _probabilities(lm, ("a",), ["a", "b"])
    np.testing.assert_allclose(p.sum(), 1.0, atol=1e-12)


def test_higher_order_beats_lower_order_on_held_out_text():
    rng = np.random.default_rng(0)
    sentences = [
        "the cat sat on the mat",
        "the dog sat on the rug",
        "a bird sang in the old tree",
        "the old dog slept on the mat",
        "a cat ate the fish on the rug",
    ]

    def sample(n):
        lines = rng.choice(sentences, n)
        return [t for line in lines for t in line.split() + ["<eos>"]]

    train, held_out = sample(400), sample(50)
    perplexities = [KneserNeyLM(n).fit(train).perplexity(held_out) for n in (1, 2, 3)]
    assert perplexities[0] > perplexities[1] > perplexities[2]
    assert perplexities[2] < 1.5  # near-deterministic given two words


def test_perplexity_is_exp_of_the_mean_nll():
    assert perplexity([math.log(2.0), math.log(8.0)]) == pytest.approx(4.0)
    assert perplexity(np.zeros((2, 3))) == 1.0
    with pytest.raises(ValueError, match="empty"):
        perplexity([])
    # Log-probabilities passed as they are would give a perplexity below 1.
    with pytest.raises(ValueError, match="numbers >= 0; got -5 .*negate them"):
        perplexity([-5.0, -1.0])
    with pytest.raises(ValueError, match="NaN"):
        perplexity([1.0, float("nan")])


def test_ptb_kn5_perplexity_matches_mikolov():
    ptb = datasets.get("ptb")
    train, test = ptb.tokens("train"), ptb.tokens("test")
    lm = KneserNeyLM(order=5).fit(train)
    assert lm.vocabulary_size == 10_000
    # Mikolov et al. (2011), KN5 (SRILM, no count cut-offs): 141.2. What this
    # implementation measured, pinned: 5% around 141.2 would let KN3 (148.38)
    # pass.
    assert lm.perplexity(test) == pytest.approx(141.0624, abs=1e-3)
