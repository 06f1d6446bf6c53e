"""Text generation from the language models with KerasHub's samplers.

A prompt batch is laid in a `(batch, max_length)` buffer and a sampler from
`keras_hub.samplers` (greedy, top-k, top-p, random, with a temperature) fills
the rest one token at a time. Each step costs one model step, not a pass over
the prefix: the `RNNLM` carries its recurrent state between steps (KerasHub's
"cache"), the `FixedWindowLM` reads only its window.

The sampling loop is compiled once per model, sampler, stop ids and input
shape, as KerasHub's `CausalLM.generate` does: `jax.jit` on JAX, `tf.function`
on TensorFlow; PyTorch runs it eagerly, without autograd.

On JAX and PyTorch, KerasHub is imported without TensorFlow (see
`import_keras_hub`): generating does not load it.
"""

import functools
import importlib.util
import numbers
import sys
import types

import keras
import numpy as np
from keras import ops

from keras_nlm.validation import (
    check_buffer_fits,
    check_choice,
    check_positive_int,
    check_token_ids,
    checked_upstream,
    is_integer_dtype,
)


class _LazyModule(types.ModuleType):
    """A module imported when one of its attributes is first read."""

    def __getattr__(self, name):
        return getattr(importlib.import_module(self.__name__), name)


def import_keras_hub():
    """`keras_hub`, imported without TensorFlow on JAX and PyTorch.

    KerasHub imports TensorFlow (and TensorFlow Text, for its tokenizers) when
    it is imported, though its samplers and metrics need neither; loading
    TensorFlow costs seconds and, on JAX and PyTorch, nothing here uses it.
    Unless TensorFlow is the backend or already loaded, KerasHub is imported
    with TensorFlow hidden, then its modules that found none are given one
    that loads when first used: its TensorFlow features (tokenizers,
    preprocessing layers) still work, and load TensorFlow then. Import
    `keras_hub` yourself before keras-nlm generates to have it load
    TensorFlow at once.
    """
    if "keras_hub" in sys.modules:
        return sys.modules["keras_hub"]
    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        return importlib.import_module("keras_hub")
    hidden = {"tensorflow": "tf", "tensorflow_text": "tf_text"}  # KerasHub's names
    # Importing a module that `sys.modules` maps to None raises ImportError,
    # which KerasHub takes for "not installed".
    sys.modules.update(dict.fromkeys(hidden))
    try:
        keras_hub = importlib.import_module("keras_hub")
    except ImportError:  # a KerasHub that needs TensorFlow to import
        for name in [n for n in sys.modules if n.partition(".")[0] == "keras_hub"]:
            del sys.modules[name]
        keras_hub = None
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    if keras_hub is None:
        return importlib.import_module("keras_hub")
    for name, alias in hidden.items():
        if importlib.util.find_spec(name) is None:
            continue  # not installed: KerasHub's None says so
        lazy = _LazyModule(name)
        for module_name, module in list(sys.modules.items()):
            if (
                module_name.partition(".")[0] == "keras_hub"
                and module is not None
                and alias in vars(module)
                and vars(module)[alias] is None
            ):
                setattr(module, alias, lazy)
    return keras_hub


keras_hub = import_keras_hub()

# One instance per sampler name, so that its compiled loops are reused.
_named_samplers = {}
SAMPLER_NAMES = ("greedy", "top_k", "top_p", "random", "beam")


def _pad(sequences, argument):
    """Token-id lists → `(ids, given)`: a `(batch, longest)` int64 array padded
    with 0, and where it holds given tokens."""
    if not isinstance(sequences, (list, tuple, np.ndarray)):
        sequences = [sequences]  # refused below, with the message that says why
    rows = []
    for sequence in sequences:
        try:
            row = np.asarray(sequence)
        except ValueError:  # ragged
            row = None
        if (
            row is None
            or row.ndim != 1
            or (row.size and not is_integer_dtype(row.dtype))
        ):
            raise ValueError(
                f"`{argument}` must be a list of token-id lists, one per "
                f"sequence; got {sequence!r} in it."
            )
        rows.append(row.astype("int64").tolist())
    if not rows or any(len(row) == 0 for row in rows):
        raise ValueError(
            f"`{argument}` must hold at least one sequence, each of at least one "
            "token id."
        )
    length = max(map(len, rows))
    # int64 until the ids are checked: int32 could not hold a bad one.
    ids = np.zeros((len(rows), length), "int64")
    given = np.zeros((len(rows), length), bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        given[i, : len(row)] = True
    return ids, given


def _prompt_buffer(prompts, max_length, sampler):
    ids, given = _pad(prompts, "prompts")
    check_buffer_fits(_rows(ids, sampler), max_length, "max_length")
    longest = ids.shape[1]
    if longest >= max_length:
        raise ValueError(
            f"`max_length` ({max_length}) must exceed the longest prompt "
            f"({longest} tokens): it counts the prompt and the generated tokens."
        )
    room = ((0, 0), (0, max_length - longest))
    return np.pad(ids, room), np.pad(given, room), int(given.sum(axis=1).min())


def _rows(ids, sampler):
    """The sequences a sampler works on at once: beam search holds each
    prompt's beams."""
    return len(ids) * getattr(sampler, "num_beams", 1)


def _get_sampler(sampler, vocabulary_size):
    """The sampler object, its settings checked against the vocabulary (the
    backends would otherwise fail each in its own way, from inside the
    compiled loop, or sample from a flipped distribution)."""
    samplers = keras_hub.samplers
    if isinstance(sampler, str):
        check_choice(sampler, "sampler", SAMPLER_NAMES)
        if sampler not in _named_samplers:
            _named_samplers[sampler] = keras_hub.samplers.get(sampler)
        named, sampler = sampler, _named_samplers[sampler]
        k = getattr(sampler, "k", None)
        if k is not None and k > vocabulary_size:
            raise ValueError(
                f"`sampler={named!r}` keeps KerasHub's default k={k} tokens, more "
                f"than vocabulary_size={vocabulary_size}; pass "
                f"`keras_hub.samplers.TopKSampler(k=...)` with k <= {vocabulary_size}."
            )
        return sampler
    if not isinstance(sampler, samplers.Sampler) or isinstance(
        sampler, samplers.ContrastiveSampler
    ):
        raise ValueError(
            "`sampler` must be one of "
            + ", ".join(repr(n) for n in SAMPLER_NAMES)
            + f" or a keras_hub sampler of those kinds; got {sampler!r}."
        )
    temperature = sampler.temperature
    if not _is_number(temperature) or not temperature > 0:
        raise ValueError(
            f"The sampler's `temperature` must be a positive number; got {temperature!r}."
        )
    # TopKSampler's k, or TopPSampler's optional one: a count of tokens.
    k = getattr(sampler, "k", None)
    if k is not None and (
        not isinstance(k, numbers.Integral)
        or isinstance(k, bool)
        or not 1 <= k <= vocabulary_size
    ):
        raise ValueError(
            f"The sampler's `k` must be an integer in [1, vocabulary_size="
            f"{vocabulary_size}]; got {k!r}."
        )
    if isinstance(sampler, samplers.TopPSampler) and not (
        _is_number(sampler.p) and 0 < sampler.p <= 1
    ):
        raise ValueError(f"The sampler's `p` must be in (0, 1]; got {sampler.p!r}.")
    if isinstance(sampler, samplers.BeamSampler):
        check_positive_int(sampler.num_beams, "num_beams")
        if sampler.return_all_beams:
            raise ValueError(
                "A `BeamSampler` with `return_all_beams=True` is not supported: "
                "generation returns the best sequence of each prompt."
            )
    return sampler


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _compile(model, sampler, next, start, stop_token_ids):
    """`sampler` as a function of `(prompt, mask, index, inputs)`, compiled for
    the backend."""

    def sample(prompt, mask, index, inputs):
        return sampler(
            next,
            prompt,
            cache=start(inputs) if start else inputs,
            index=index,
            mask=mask,
            stop_token_ids=stop_token_ids,
            model=model,
        )

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        # Without XLA, which would compile anew for every prompt shape; shapes
        # that vary from call to call (source lengths) are traced as unknown.
        # A partial, not the closure itself: TensorFlow counts traces by code
        # object, and warned of "retracing" once five models had compiled
        # their own loops (each model compiles one, by design).
        return tf.function(functools.partial(sample), reduce_retracing=True)
    if backend == "jax":
        import jax

        variables = (
            sampler.variables
            + model.trainable_variables
            + model.non_trainable_variables
        )

        # Stateless, so that the weights' values are inputs rather than
        # constants baked into the compiled loop (as in KerasHub's CausalLM).
        @jax.jit
        def stateless_sample(values, *inputs):
            with keras.StatelessScope(state_mapping=zip(variables, values)) as scope:
                tokens = sample(*inputs)
            return tokens, [scope.get_current_value(v) for v in sampler.variables]

        def run(*inputs):
            tokens, seeds = stateless_sample([v.value for v in variables], *inputs)
            # The sampler's seeds advance from call to call; weights never change.
            for variable, value in zip(sampler.variables, seeds):
                variable.assign(value)
            return tokens

        return run
    import torch

    def run(*inputs):
        with torch.no_grad():
            return sample(*inputs)

    return run


def _sample(
    model, sampler, next, prompt, mask, index, stop_token_ids, inputs, start=None
):
    """Runs `sampler` with `next` from `index` on, from the cache `start(inputs)`
    (or `inputs` without `start`), both computed in one function compiled at
    the first call of each model, sampler, stop ids and use of `start`. `next`
    and `start` must depend on nothing but the model: later calls reuse the
    first ones."""
    stop_token_ids = tuple(stop_token_ids) if stop_token_ids else None
    # Set in `__dict__`, out of Keras's and TensorFlow's attribute tracking,
    # which would otherwise save the compiled loops with the model.
    compiled = model.__dict__.setdefault("_keras_nlm_samplers", {})
    key = (sampler, stop_token_ids, start is None)
    if key not in compiled:
        compiled[key] = _compile(model, sampler, next, start, stop_token_ids)
    # The prompts and delimiters were checked on entry and the sampler only
    # picks ids of the vocabulary: PyTorch's eager loop need not check them.
    with checked_upstream():
        tokens = compiled[key](
            ops.convert_to_tensor(prompt),
            ops.convert_to_tensor(mask),
            # A tensor: a Python int would be a constant of the compiled loop.
            ops.convert_to_tensor(index, "int32"),
            inputs,
        )
    return ops.convert_to_numpy(tokens)


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
        model: a `LanguageModel` (`RNNLM`, `FixedWindowLM`, or any with the
            generation hooks that `LanguageModel` describes).
        prompts: a list of token-id lists (lengths may differ).
        max_length: the length of each result, prompt included.
        sampler: a `keras_hub.samplers.Sampler` or its name (`"greedy"`,
            `"top_k"`, `"top_p"`, `"random"`). Reuse one sampler object:
            each new one compiles the loop anew.
        stop_token_ids: ids that end a sequence (e.g. that of `<eos>`); the
            result is cut after the first one generated.
        start_id: the id a window model (`FixedWindowLM`) sees before the
            prompt's start.

    Returns:
        A list with one list of token ids per prompt.
    """
    if not callable(getattr(model, "next_token_logits", None)):
        raise ValueError(
            "`model` must be a language model (an RNNLM, a FixedWindowLM, or a "
            "`LanguageModel` with its generation hooks); got "
            f"{type(model).__name__}."
        )
    max_length = check_positive_int(max_length, "max_length")
    sampler = _get_sampler(sampler, model.vocabulary_size)
    buffer, mask, index = _prompt_buffer(prompts, max_length, sampler)
    check_token_ids(buffer, model.vocabulary_size, "prompts")
    buffer = buffer.astype("int32")
    if stop_token_ids is not None:
        stop = np.asarray(stop_token_ids)
        if stop.ndim != 1 or (stop.size and not is_integer_dtype(stop.dtype)):
            raise ValueError(
                f"`stop_token_ids` must be a list of token ids; got {stop_token_ids!r}."
            )
        check_token_ids(stop, model.vocabulary_size, "stop_token_ids")
        stop_token_ids = stop.tolist()
    buffer, mask, index, offset = model.prepare_prompts(buffer, mask, index, start_id)
    index, cache, start = model.generation_cache(buffer, index)

    def next(prompt, cache, index):
        logits, cache = model.next_token_logits(prompt, cache, index)
        return logits, None, cache

    tokens = _sample(
        model, sampler, next, buffer, mask, index, stop_token_ids, cache, start
    )[:, offset:]
    results = []
    for row, prompt in zip(tokens.tolist(), prompts):
        for i in range(len(prompt), len(row)):
            if stop_token_ids and row[i] in stop_token_ids:
                row = row[: i + 1]
                break
        results.append(row)
    return results


def _check_no_padding(source):
    """Refuses sources holding padding (id 0) before a token: the encoder
    masks it, so it would translate another sentence than the one given (or,
    for a row of padding only, none at all). Padding at the end is fine."""
    for i, row in enumerate(source):
        tokens = np.flatnonzero(row)
        if not tokens.size:
            raise ValueError(
                f"`sources` row {i} holds only padding (id 0); a source needs "
                "at least one token."
            )
        gap = np.flatnonzero(row[: tokens[-1]] == 0)
        if gap.size:
            raise ValueError(
                f"`sources` row {i} holds the padding id 0 at position {gap[0]}, "
                "before its last token; padding may only end a row."
            )


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
        sampler: a `keras_hub.samplers.Sampler` or its name; reuse one
            sampler object, as each new one compiles the loop anew.

    Returns:
        One list of target ids per source, without the delimiters.
    """
    max_length = check_positive_int(max_length, "max_length")
    sampler = _get_sampler(sampler, model.target_vocabulary_size)
    source, _ = _pad(sources, "sources")
    check_buffer_fits(_rows(source, sampler), max_length + 1, "max_length")
    check_token_ids(
        source, model.source_vocabulary_size, "source", "source_vocabulary_size"
    )
    _check_no_padding(source)
    source = source.astype("int32")
    for argument, id in (("start_id", start_id), ("end_id", end_id)):
        check_token_ids(
            np.array([id]),
            model.target_vocabulary_size,
            argument,
            "target_vocabulary_size",
        )
        if id == 0:
            # Fed back or searched for, padding is masked: the decoder would
            # stall, each backend its own way.
            raise ValueError(
                f"`{argument}` must be a delimiter's id, not 0, the padding id of "
                "the target vocabulary."
            )
    buffer = np.zeros((len(source), max_length + 1), "int32")
    if not model.built:
        # Weights must exist before the sampling loop is traced.
        model({"source": source, "target": buffer[:, :1]})
    buffer[:, 0] = start_id
    given = np.zeros_like(buffer, bool)
    given[:, 0] = True

    # The source is encoded in the compiled function too (eagerly, JAX would
    # trace the encoder at every call). Everything a decoding step needs
    # travels in the cache, so that beam search repeats and reorders it
    # together with the beams.
    def start(source):
        encoder_outputs, state, source_mask = model.encode(source, training=False)
        return {
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

    tokens = _sample(
        model,
        sampler,
        next,
        buffer,
        given,
        1,
        [end_id],
        ops.convert_to_tensor(source),
        start,
    )
    results = []
    for row in tokens[:, 1:].tolist():
        results.append(row[: row.index(end_id)] if end_id in row else row)
    return results
