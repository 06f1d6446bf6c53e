"""Scoring a language model on a token stream, the one way the project does it.

Every token of the split is predicted from the tokens before it, the stream
preceded by `start_id` (`<eos>`: as if the previous line had just ended), the
same convention as `KneserNeyLM.token_nll`; `keras_nlm.metrics.perplexity`
turns the result into the perplexity.
"""

import numpy as np
from keras import ops

from keras_nlm.datasets.batching import NGramWindows
from keras_nlm.metrics import perplexity
from keras_nlm.models import RNNLM, FixedWindowLM


def _nll(logits, targets):
    log_probs = ops.convert_to_numpy(ops.log_softmax(logits, axis=-1))
    return -np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]


def token_nll(model, ids, start_id, sequence_length=35, batch_size=256):
    """`-log P(token | tokens before it)` (nats) for every token of `ids`.

    Args:
        model: a `FixedWindowLM` or an `RNNLM`.
        ids: the split as a 1-D sequence of token ids.
        start_id: the id before the first token (that of `<eos>`).
        sequence_length: an `RNNLM` reads the stream in chunks of this many
            tokens, carrying its state from one chunk to the next, in one row,
            so that every token sees the whole stream before it.
        batch_size: windows scored at once by a `FixedWindowLM`.
    """
    ids = np.asarray(ids, dtype="int32").reshape(-1)
    if isinstance(model, FixedWindowLM):
        windows = NGramWindows(
            ids, model.window_size, batch_size, shuffle=False, start_id=start_id
        )
        return np.concatenate([_nll(model(x, training=False), y) for x, y in windows])
    if isinstance(model, RNNLM):
        stream = np.concatenate([[start_id], ids]).astype("int32")
        states, nll = None, []
        for start in range(0, len(ids), sequence_length):
            end = min(start + sequence_length, len(ids))
            inputs, targets = stream[None, start:end], stream[None, start + 1 : end + 1]
            logits, states = model(
                inputs, initial_state=states, return_state=True, training=False
            )
            nll.append(_nll(logits, targets)[0])
        return np.concatenate(nll)
    raise ValueError(
        f"`model` must be a FixedWindowLM or an RNNLM; got {type(model).__name__}."
    )


def evaluate_perplexity(model, ids, start_id, **kwargs):
    """The perplexity of `model` on the stream `ids` (see `token_nll`)."""
    return perplexity(token_nll(model, ids, start_id, **kwargs))
