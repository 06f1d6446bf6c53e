"""The one definition of perplexity used across keras-nlm."""

import numpy as np


def perplexity(negative_log_likelihoods):
    """exp of the mean negative log-likelihood of every token of the split,
    `<eos>` included, each predicted from the tokens before it:

        PPL = exp(-(1/N) Σᵢ log P(wᵢ | w₁ … wᵢ₋₁))

    Args:
        negative_log_likelihoods: the per-token `-log P` (natural log), one per
            token of the split, any array-like of numbers.

    Example:
    >>> nll = model.token_nll(test_tokens)  # one value per token
    >>> perplexity(nll)
    141.2
    """
    nll = np.asarray(negative_log_likelihoods, dtype="float64").reshape(-1)
    if nll.size == 0:
        raise ValueError(
            "`negative_log_likelihoods` is empty: perplexity needs the "
            "negative log-likelihood of at least one token."
        )
    return float(np.exp(nll.mean()))
