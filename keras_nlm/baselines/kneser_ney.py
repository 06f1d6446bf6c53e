"""The count-based n-gram baseline: interpolated modified Kneser-Ney smoothing.

Written by hand, in numpy: no well-kept library offers interpolated modified
Kneser-Ney behind a fit/score API like this one. `nltk.lm.KneserNeyInterpolated`
is plain (not modified) Kneser-Ney, with one discount per order, and far too
slow for a corpus the size of PTB; SRILM and KenLM are command-line tools.

The n-grams are stored as a trie of integer ids, one table per order: the
k-gram `h w` gets the id of its row in the sorted keys `id(h) · |V| + w` of
order k, where `id(h)` is the id of its (k-1)-gram context `h`. Looking up
every n-gram of a text is then one `np.searchsorted` per order, and the
normalizers (`c(h•)`, `N₁(h•)`, `N₂(h•)`, `N₃₊(h•)`) are summed once, in
`fit`.
"""

import math
import time

import numpy as np

from keras_nlm.metrics import perplexity
from keras_nlm.validation import check_positive_int


class KneserNeyLM:
    """An n-gram language model with interpolated modified Kneser-Ney smoothing.

    The baseline of Chen & Goodman (1998), SRILM's `-kndiscount -interpolate`:
    the probability of `w` after the history `h` (its last `order - 1`
    tokens) interpolates the discounted count of `h w` with the model one
    order lower, whose history `h′` drops the first token of `h`:

        P_KN(w | h) = max(c(h w) − D(c(h w)), 0) / c(h•)  +  γ(h) · P_KN(w | h′)
        γ(h)        = (D₁ N₁(h•) + D₂ N₂(h•) + D₃₊ N₃₊(h•)) / c(h•)

    `c(h•) = Σ_w c(h w)`, and `Nᵢ(h•)` is the number of words `w` with
    `c(h w) = i` (`N₃₊`: `≥ 3`). At the highest order `c` is the raw count; at
    the lower orders it is the continuation count `c(h w) = N₁₊(• h w)`, the
    number of distinct tokens seen just before `h w`. A history never seen
    (`c(h•) = 0`) hands over to the lower order, `P_KN(w | h) = P_KN(w | h′)`,
    and the lowest order (`h` empty) interpolates with the uniform
    distribution `1 / |V|` over the vocabulary, the distinct training tokens,
    so every one of them has a non-zero probability.

    Each order has three discounts, from its count-of-counts `nᵢ` (the number
    of n-grams of that order with count `c = i`, continuation counts at the
    lower orders):

        Y = n₁ / (n₁ + 2 n₂)
        D₁ = 1 − 2Y n₂/n₁      D₂ = 2 − 3Y n₃/n₂      D₃₊ = 3 − 4Y n₄/n₃

    On a tiny corpus where some `nᵢ` is zero, an undefined estimate falls back
    to `Y` (0.5 where `Y` is undefined too), and `Dᵢ` is clipped to `[0, i]`,
    so the distributions stay proper.

    The training tokens are one stream (e.g. every line of PTB followed by
    `<eos>`), and histories run across `<eos>`, as the neural LMs are scored.
    The first token of the training stream counts as one distinct left
    extension of the n-grams it starts (it has no token before it), so every
    seen n-gram has a continuation count ≥ 1. A scored text is preceded by
    `history` (by default `<eos>`, as if the previous line had just ended);
    where fewer than `order - 1` tokens come before a token, it is predicted
    by the lower order that fits.

    Args:
        order: `n`, the length of the n-grams (history of `n - 1` tokens).

    Attributes:
        order: `n`.
        discounts: after `fit`, `(D₁, D₂, D₃₊)` for each order `1 … n`.

    Example:
    >>> lm = KneserNeyLM(order=5).fit(train_tokens)  # "<eos>" after each line
    >>> nll = lm.token_nll(test_tokens)  # -log P of every token, in nats
    >>> lm.perplexity(test_tokens)  # exp(mean(nll))
    """

    def __init__(self, order=5):
        self.order = check_positive_int(order, "order")
        self.discounts = None
        self._index = None

    @property
    def vocabulary_size(self):
        """`|V|`, the number of distinct tokens of the training stream."""
        self._check_fitted()
        return len(self._index)

    def fit(self, tokens):
        """Counts the n-grams of one training token stream; returns `self`.

        Args:
            tokens: the training tokens, a list (or any iterable) of strings,
                with `<eos>` after every line.
        """
        tokens = _token_list(tokens, "tokens")
        if not tokens:
            raise ValueError("`tokens` is empty: fit needs at least one token.")
        index = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
        ids = np.fromiter(map(index.__getitem__, tokens), np.int64, len(tokens))
        size, length = len(index), len(ids)

        # The trie: grams[k][i] is the id of the k-gram ending at position i
        # (-1 where i < k - 1); keys[k] is the sorted `id(h) · |V| + w`.
        grams, keys, raw_counts = [np.zeros(length, np.int64)], [None], [None]
        for k in range(1, self.order + 1):
            history = grams[k - 1][k - 2 : length - 1] if k > 1 else grams[0]
            key, inverse, count = np.unique(
                history * size + ids[k - 1 :], return_inverse=True, return_counts=True
            )
            gram = np.full(length, -1, np.int64)
            gram[k - 1 :] = inverse.reshape(-1)
            grams.append(gram)
            keys.append(key)
            raw_counts.append(count)

        self._index, self._keys = index, keys
        self._alpha, self._gamma = [None], [None]
        self.discounts = []
        for k in range(1, self.order + 1):
            if k == self.order:
                count = raw_counts[k]
            else:
                # N₁₊(• g): each distinct (k+1)-gram adds one to its suffix g,
                # the k-gram ending where it ends; the k-gram that starts the
                # stream has the stream start as one more left extension.
                _, first = np.unique(grams[k + 1][k:], return_index=True)
                count = np.bincount(grams[k][k:][first], minlength=len(keys[k]))
                if length >= k:
                    count[grams[k][k - 1]] += 1
            alpha, gamma, discounts = _interpolation_weights(
                keys[k] // size, count, len(keys[k - 1]) if k > 1 else 1
            )
            self._alpha.append(alpha)
            self._gamma.append(gamma)
            self.discounts.append(discounts)
        self.discounts = tuple(self.discounts)
        return self

    def token_nll(self, tokens, history=("<eos>",)):
        """The negative log-probability (nats) of every token of `tokens`.

        Each token is predicted from up to `order - 1` tokens before it in the
        stream `history + tokens`.

        Args:
            tokens: the tokens to score, a list (or any iterable) of strings;
                every one must be in the training vocabulary.
            history: the tokens before `tokens` (only the last `order - 1`
                matter). A history token outside the vocabulary is allowed:
                histories that contain it are unseen.

        Returns:
            A float64 array with one value per token of `tokens`.
        """
        self._check_fitted()
        tokens = _token_list(tokens, "tokens")
        history = _token_list(history, "history")
        history = history[-(self.order - 1) :] if self.order > 1 else []
        for position, token in enumerate(tokens):
            if token not in self._index:
                raise ValueError(
                    f"Token {token!r} (position {position} of `tokens`) is not in "
                    "the vocabulary, which comes from the training split passed "
                    "to `fit`. Map rare and unseen words to one token such as "
                    "'<unk>' (PTB and WikiText already do) in both splits."
                )
        index, size = self._index, len(self._index)
        ids = np.fromiter(
            (index.get(token, -1) for token in history + tokens),
            np.int64,
            len(history) + len(tokens),
        )
        start, length = len(history), len(ids)

        # Per order k, the trie ids of each position's history (its k - 1
        # tokens before) and of its k-gram; -1: never seen in training.
        histories, grams = [], [None]
        for k in range(1, self.order + 1):
            history_ids = np.full(length, -1 if k > 1 else 0, np.int64)
            if k > 1:
                history_ids[k - 1 :] = grams[k - 1][k - 2 : length - 1]
            histories.append(history_ids[start:])
            grams.append(self._lookup(k, history_ids, ids))

        probability = np.full(len(tokens), 1.0 / size)
        for k in range(1, self.order + 1):
            history_ids, gram = histories[k - 1], grams[k][start:]
            seen, found = history_ids >= 0, gram >= 0
            probability[seen] *= self._gamma[k][history_ids[seen]]
            probability[found] += self._alpha[k][gram[found]]
        return -np.log(probability)

    def perplexity(self, tokens, history=("<eos>",)):
        """`exp(mean(token_nll(tokens, history)))`; see `keras_nlm.metrics`."""
        return perplexity(self.token_nll(tokens, history))

    def _lookup(self, k, history_ids, ids):
        """Trie ids of the k-grams `(history, token)`; -1 where never seen."""
        keys = self._keys[k]
        if len(keys) == 0:
            return np.full(len(ids), -1, np.int64)
        known = (history_ids >= 0) & (ids >= 0)
        key = np.where(known, history_ids * len(self._index) + ids, -1)
        row = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
        return np.where(known & (keys[row] == key), row, -1)

    def _check_fitted(self):
        if self._index is None:
            raise ValueError("This KneserNeyLM is not fitted yet: call `fit(tokens)`.")


def _token_list(tokens, argument):
    if isinstance(tokens, (str, bytes)):
        raise ValueError(
            f"`{argument}` must be a sequence of tokens, not one string "
            f"({tokens[:20]!r}…); split it first, e.g. `line.split()`."
        )
    return list(tokens)


def _interpolation_weights(history, count, num_histories):
    """One order's discounted weights `α(h w)` and back-off weights `γ(h)`.

    `history[g]` is the history id of n-gram `g` and `count[g]` its count
    (raw or continuation). Returns `α(h w) = (c − D(c)) / c(h•)` per n-gram,
    `γ(h)` per history (1 where `c(h•) = 0`), and `(D₁, D₂, D₃₊)`.
    """
    discounts = _modified_discounts(count)
    discount = np.asarray(discounts)[np.minimum(count, 3) - 1]
    total = np.bincount(history, weights=count, minlength=num_histories)
    mass = np.bincount(history, weights=discount, minlength=num_histories)
    seen = total > 0
    gamma = np.where(seen, mass / np.where(seen, total, 1.0), 1.0)
    alpha = np.maximum(count - discount, 0.0) / total[history]
    return alpha, gamma, discounts


def baseline(corpus, split="test", order=5, data_dir=None):
    """The `order`-gram model fitted on a word corpus's training split, scored
    on `split`: what `keras-nlm ngram` prints and model cards quote."""
    start = time.perf_counter()
    model = KneserNeyLM(order).fit(corpus.tokens("train", data_dir))
    fitted = time.perf_counter()
    return {
        "dataset": corpus.name,
        "split": split,
        "order": order,
        "perplexity": model.perplexity(corpus.tokens(split, data_dir)),
        "fit_seconds": round(fitted - start, 2),
        "score_seconds": round(time.perf_counter() - fitted, 2),
    }


def _modified_discounts(count):
    """Chen & Goodman's `(D₁, D₂, D₃₊)` from the count-of-counts n₁ … n₄."""
    n1, n2, n3, n4 = (int(np.count_nonzero(count == i)) for i in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 + 2 * n2 > 0 else 0.5
    discounts = []
    for i, (n, n_next) in enumerate(((n1, n2), (n2, n3), (n3, n4)), start=1):
        d = i - (i + 1) * y * n_next / n if n > 0 else y
        discounts.append(min(max(d, 0.0), float(i)) if math.isfinite(d) else y)
    return tuple(discounts)
