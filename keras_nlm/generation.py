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


def _prompt_buffer(prompts, max_length, padding_id):
    rows = [list(p) for p in prompts]
    if not rows or any(len(row) == 0 for row in rows):
        raise ValueError(
            "`prompts` must hold at least one prompt, each of at least one token id."
        )
    longest = max(map(len, rows))
    if longest >= max_length:
        raise ValueError(
            f"`max_length` ({max_length}) must exceed the longest prompt "
            f"({longest} tokens): it counts the prompt and the generated tokens."
        )
    buffer = np.full((len(rows), max_length), padding_id, "int32")
    mask = np.zeros((len(rows), max_length), bool)
    for i, row in enumerate(rows):
        buffer[i, : len(row)] = row
        mask[i, : len(row)] = True
    return buffer, mask, min(map(len, rows))


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
    buffer, mask, index = _prompt_buffer(prompts, max_length, padding_id=0)
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
