"""The one definition of perplexity used across keras-nlm (and bits per
character, its base-2 logarithm)."""

import numpy as np


def perplexity(negative_log_likelihoods):
    """exp of the mean negative log-likelihood of every token of the split,
    `<eos>` included, each predicted from the tokens before it:

        PPL = exp(-(1/N) Σᵢ log P(wᵢ | w₁ … wᵢ₋₁))

    Args:
        negative_log_likelihoods: the per-token `-log P` (natural log), one per
            token of the split, any array-like of numbers.

    Example:
    >>> from keras_nlm.evaluation import token_nll
    >>> nll = token_nll(model, test_ids, start_id)  # one value per token
    >>> perplexity(nll)
    141.2
    """
    return float(np.exp(_mean_nll(negative_log_likelihoods)))


def bits_per_character(negative_log_likelihoods):
    """The mean `-log₂ P` of every character: `log₂ PPL`, for character models.

    Args:
        negative_log_likelihoods: the per-character `-log P` (natural log).
    """
    return float(_mean_nll(negative_log_likelihoods) / np.log(2))


def _mean_nll(negative_log_likelihoods):
    nll = np.asarray(negative_log_likelihoods, dtype="float64").reshape(-1)
    if nll.size == 0:
        raise ValueError(
            "`negative_log_likelihoods` is empty: a score needs the "
            "negative log-likelihood of at least one token."
        )
    if np.isnan(nll).any():
        raise ValueError("`negative_log_likelihoods` holds NaN: a score needs numbers.")
    # -log P >= 0; the slack is float32 rounding of a near-certain log-softmax.
    if nll.min() < -1e-3:
        raise ValueError(
            "`negative_log_likelihoods` must hold -log P, numbers >= 0; got "
            f"{nll.min():.4g} (log-probabilities? negate them)."
        )
    return nll.mean()
