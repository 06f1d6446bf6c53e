"""Text generation from the language models with KerasHub's samplers.

A prompt batch is laid in a `(batch, max_length)` buffer and a sampler from
`keras_hub.samplers` (greedy, top-k, top-p, random, with a temperature) fills
the rest one token at a time. Each step costs one model step, not a pass over
the prefix: the `RNNLM` carries its recurrent state between steps (KerasHub's
"cache"), the `FixedWindowLM` reads only its window.
"""

import keras
import keras_hub
import numpy as np
from keras import ops

from keras_nlm.validation import check_positive_int, check_token_ids


def _pad(sequences, argument, length=None):
    """Token-id lists → `(ids, given)`: a `(batch, length)` int32 array padded
    with 0, and where it holds given tokens."""
    rows = [list(s) for s in sequences]
    if not rows or any(len(row) == 0 for row in rows):
        raise ValueError(
            f"`{argument}` must hold at least one sequence, each of at least one "
            "token id."
        )
    length = length or max(map(len, rows))
    ids = np.zeros((len(rows), length), "int32")
    given = np.zeros((len(rows), length), bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        given[i, : len(row)] = True
    return ids, given


def _prompt_buffer(prompts, max_length):
    longest = max(map(len, prompts), default=0)
    if longest >= max_length:
        raise ValueError(
            f"`max_length` ({max_length}) must exceed the longest prompt "
            f"({longest} tokens): it counts the prompt and the generated tokens."
        )
    buffer, given = _pad(prompts, "prompts", max_length)
    return buffer, given, min(map(len, prompts))


def generate(
    model,
    prompts,
    max_length,
    sampler="greedy",
    stop_token_ids=None,
    start_id=0,
):
    """Continues each prompt of token ids up to `max_length` tokens in all.

    Args:
        model: an `RNNLM` or a `FixedWindowLM`.
        prompts: a list of token-id lists (lengths may differ).
        max_length: the length of each result, prompt included.
        sampler: a `keras_hub.samplers.Sampler` or its name (`"greedy"`,
            `"top_k"`, `"top_p"`, `"random"`).
        stop_token_ids: ids that end a sequence (e.g. that of `<eos>`); the
            result is cut after the first one generated.
        start_id: the id a `FixedWindowLM` sees before the prompt's start.

    Returns:
        A list with one list of token ids per prompt.
    """
    from keras_nlm.models import RNNLM, FixedWindowLM

    check_positive_int(max_length, "max_length")
    buffer, mask, index = _prompt_buffer(prompts, max_length)
    check_token_ids(buffer, model.vocabulary_size, "prompts")
    sampler = keras_hub.samplers.get(sampler) if isinstance(sampler, str) else sampler
    batch = buffer.shape[0]

    if isinstance(model, RNNLM):
        # The cache is the state after reading every token before `index - 1`.
        if index > 1:
            _, cache = model(buffer[:, : index - 1], return_state=True, training=False)
        else:
            cache = model.rnn.initial_state(batch)

        def next(prompt, cache, index):
            token = ops.slice(prompt, [0, index - 1], [batch, 1])
            logits, cache = model(token, initial_state=cache, return_state=True)
            return logits[:, 0], None, cache

    elif isinstance(model, FixedWindowLM):
        window = model.window_size
        # `start_id` fills the window before the prompt's first token.
        buffer = np.concatenate(
            [np.full((batch, window), start_id, "int32"), buffer], 1
        )
        mask = np.concatenate([np.ones((batch, window), bool), mask], 1)
        index += window
        cache = None

        def next(prompt, cache, index):
            context = ops.slice(prompt, [0, index - window], [batch, window])
            return model(context), None, cache

    else:
        raise ValueError(
            f"`model` must be an RNNLM or a FixedWindowLM; got {type(model).__name__}."
        )
    if not model.built:
        # Weights must exist before the sampler's loop traces `next` (JAX).
        next(ops.convert_to_tensor(buffer), cache, index)
    tokens = sampler(
        next,
        ops.convert_to_tensor(buffer),
        cache=cache,
        index=index,
        mask=ops.convert_to_tensor(mask),
        stop_token_ids=stop_token_ids,
        model=model,
    )
    tokens = keras.ops.convert_to_numpy(tokens)
    if isinstance(model, FixedWindowLM):
        tokens = tokens[:, model.window_size :]
    results = []
    for row, prompt in zip(tokens.tolist(), prompts):
        for i in range(len(prompt), len(row)):
            if stop_token_ids and row[i] in stop_token_ids:
                row = row[: i + 1]
                break
        results.append(row)
    return results


def translate(model, sources, max_length, start_id, end_id, sampler="greedy"):
    """Decodes a `Seq2Seq` from the start delimiter until the end delimiter.

    The source is encoded once; the decoder is fed the start delimiter, then
    each token it chose, carrying its state (and the encoder's outputs, for
    attention) between steps, until it emits `end_id` or has produced
    `max_length` tokens. `sampler="greedy"` or `keras_hub.samplers.BeamSampler(
    num_beams=4)` are the usual choices.

    Args:
        model: a `Seq2Seq`.
        sources: a list of source token-id lists.
        max_length: the most target tokens to produce.
        start_id, end_id: the target vocabulary's delimiters.
        sampler: a `keras_hub.samplers.Sampler` or its name.

    Returns:
        One list of target ids per source, without the delimiters.
    """
    check_positive_int(max_length, "max_length")
    source, _ = _pad(sources, "sources")
    sampler = keras_hub.samplers.get(sampler) if isinstance(sampler, str) else sampler
    buffer = np.zeros((len(source), max_length + 1), "int32")
    if not model.built:
        # Weights must exist before the sampler's loop traces a step (JAX).
        model({"source": source, "target": buffer[:, :1]})
    encoder_outputs, state, source_mask = model.encode(source, training=False)
    buffer[:, 0] = start_id
    given = np.zeros_like(buffer, bool)
    given[:, 0] = True
    # Everything a decoding step needs travels in the cache, so that beam
    # search repeats and reorders it together with the beams.
    cache = {
        "state": state,
        "encoder_outputs": encoder_outputs,
        "source_mask": ops.cast(source_mask, "int32"),
    }

    def next(prompt, cache, index):
        token = ops.slice(prompt, [0, index - 1], [ops.shape(prompt)[0], 1])
        logits, state = model.decode(
            token,
            cache["encoder_outputs"],
            cache["state"],
            ops.cast(cache["source_mask"], "bool"),
            return_state=True,
        )
        # Padding (id 0) is never part of a translation: fed back, it would
        # be masked out and the decoder's state would stall.
        logits = ops.where(ops.arange(ops.shape(logits)[-1]) == 0, -1e9, logits[:, 0])
        return logits, None, {**cache, "state": state}

    tokens = sampler(
        next,
        ops.convert_to_tensor(buffer),
        cache=cache,
        index=1,
        mask=ops.convert_to_tensor(given),
        stop_token_ids=[end_id],
        model=model,
    )
    results = []
    for row in keras.ops.convert_to_numpy(tokens)[:, 1:].tolist():
        results.append(row[: row.index(end_id)] if end_id in row else row)
    return results
