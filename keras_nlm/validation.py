"""Checks that turn bad input into one clear `ValueError` on every backend.

Out-of-range token ids are the dangerous case: TensorFlow raises its own error,
PyTorch an `IndexError`, and JAX silently clamps the gather. Keras has no
portable in-graph assertion, so this module writes one: concrete tensors are
checked in Python; inside a compiled step (`tf.function`, `jax.jit`) the ids'
minimum and maximum go to a host callback that raises, and `guard_step`
turns the backend's wrapper exception back into that `ValueError`.
"""

import functools
import itertools
import numbers
import types

import keras
import numpy as np
from keras import ops

# Not thread-local: TensorFlow and JAX run host callbacks on threads of their own.
_state = types.SimpleNamespace(error=None, prechecked=False, in_step=False)


def check_positive_int(value, argument):
    """Raises unless `value` is an integer >= 1 (numpy integers included,
    bools excluded); returns it as a Python `int`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{argument}` must be a positive integer, got {value!r}.")
    return int(value)


def _dtype_name(dtype):
    try:
        return keras.backend.standardize_dtype(dtype)
    except ValueError:  # e.g. numpy's object or string dtypes
        return str(dtype)


def is_integer_dtype(dtype):
    """Whether `dtype` (numpy's, a backend's or a name) holds integers."""
    return _dtype_name(dtype).startswith(("int", "uint"))


def check_choice(value, argument, choices):
    """Raises unless `value` is one of `choices`."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{argument}` must be one of {allowed}; got {value!r}.")
    return value


def check_rate(value, argument):
    """Raises unless `value` is a number in [0, 1) (numpy's included, bools
    excluded); returns it as a Python `float`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{argument}` must be a number in [0, 1), got {value!r}.")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{argument}` must be in [0, 1), got {value!r}.")
    return float(value)


def check_rank(x, argument, dimensions):
    """Raises unless `x` has one axis per name in `dimensions` and none empty.

    `dimensions` names the expected axes, e.g. `("batch", "time")`.
    """
    shape = tuple(x.shape)
    rank = len(dimensions)
    layout = "(" + ", ".join(dimensions) + ")"
    if len(shape) != rank:
        raise ValueError(
            f"`{argument}` must have shape {layout} (rank {rank}); "
            f"got shape {shape} (rank {len(shape)})."
        )
    empty = [name for name, d in zip(dimensions, shape) if d == 0]
    if empty:
        raise ValueError(
            f"`{argument}` must not be empty: shape {layout} got {shape} "
            f"(no {empty[0]} entries). Every sequence needs at least one token."
        )


def _out_of_range_error(argument, vocabulary_size, low, high, size_name):
    bad = low if low < 0 else high
    what = "token id" if size_name.endswith("vocabulary_size") else "label"
    return ValueError(
        f"`{argument}` holds {what} {bad}, outside the allowed range "
        f"[0, {vocabulary_size}) of {size_name}={vocabulary_size} "
        f"(ids seen: min {low}, max {high})."
    )


def _host_check(argument, vocabulary_size, size_name="vocabulary_size"):
    def check(low, high):
        low, high = int(low), int(high)
        if low < 0 or high >= vocabulary_size:
            error = _out_of_range_error(argument, vocabulary_size, low, high, size_name)
            # Remembered so that `guard_step` can raise it as it is.
            _state.error = error
            raise error

    return check


def _is_concrete(x):
    """Whether `x` holds values now (eager), rather than being traced."""
    if isinstance(x, keras.KerasTensor):
        return False
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly()
    if backend == "jax":
        import jax

        return not isinstance(x, jax.core.Tracer)
    if backend == "torch":
        import torch

        # Eager, or torch.compile, which breaks the graph to run the check;
        # meta tensors (Keras's shape inference) hold no values.
        return not isinstance(x, torch.Tensor) or x.device.type != "meta"
    return True


def _dtype_error(argument, dtype):
    return ValueError(
        f"`{argument}` must hold integer token ids; got {_dtype_name(dtype)} "
        "values, which would be cast silently (tokenize text first; convert "
        "whole-number floats with `.astype('int32')`)."
    )


def check_token_ids(
    ids, vocabulary_size, argument="inputs", size_name="vocabulary_size"
):
    """Raises `ValueError` if any id is outside `[0, vocabulary_size)`, or
    if the ids are not integers (floats and bools would be truncated).

    Works eagerly and inside compiled steps on TensorFlow, JAX and PyTorch.
    Numpy arrays are checked as they are, before a backend converts them
    (JAX would wrap int64 ids beyond int32 round). Returns `ids`; use the
    returned tensor, which in a TensorFlow graph only becomes available once
    the check has passed. `size_name` names the bound in the message.
    """
    if isinstance(ids, keras.KerasTensor):
        return ids
    check = _host_check(argument, vocabulary_size, size_name)
    if isinstance(ids, (np.ndarray, np.generic, list, tuple, int, float)):
        values = np.asarray(ids)
        if not is_integer_dtype(values.dtype):
            raise _dtype_error(argument, values.dtype)
        if values.size:
            check(values.min(), values.max())
        return ids
    if _state.prechecked:
        # The batch was checked before it entered the compiled step, or the
        # ids come from the sampling loop, which only picks vocabulary ids.
        return ids
    concrete = _is_concrete(ids)
    if (concrete or _state.in_step) and not is_integer_dtype(ids.dtype):
        # In a compiled step the dtype is known while tracing; outside one
        # (Keras building a model from float placeholders) it is not data.
        raise _dtype_error(argument, ids.dtype)
    low, high = ops.min(ids), ops.max(ids)
    if concrete:
        check(ops.convert_to_numpy(low), ops.convert_to_numpy(high))
        return ids
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        # Else the gather that reads `ids` may fail first, with TF's own error.
        passed = tf.numpy_function(lambda a, b: check(a, b) or 0, [low, high], tf.int64)
        with tf.control_dependencies([passed]):
            return tf.identity(ids)
    if backend == "jax":
        import jax

        # JAX's gather clamps instead of failing, so the callback always wins.
        jax.debug.callback(check, low, high)
    return ids


def check_token_tensor(ids, vocabulary_size, argument, dimensions):
    """`check_rank` and `check_token_ids` of one tensor of token ids."""
    check_rank(ids, argument, dimensions)
    return check_token_ids(ids, vocabulary_size, argument)


def guard_step(step, check_batch, restore_variables, steps_per_execution=1):
    """Wraps a Keras train/test/predict step function for bad token ids.

    On JAX, each batch is checked by `check_batch(x, y)` while still concrete,
    before it enters the jitted step (a step that failed inside `jax.jit` would
    have consumed the model's donated weights); as Keras's JAX loop detaches
    the weights while it runs, `restore_variables(state)` puts them back when a
    batch is refused. On TensorFlow the check runs inside the graph, and the
    backend's wrapper exception is turned back into the check's `ValueError`.
    With `steps_per_execution`, the JAX step runs that many batches; all are
    checked before the first runs, as the restored state is the one before it.
    """
    if getattr(step, "_keras_nlm_guarded", False):
        return step

    @functools.wraps(step)
    def guarded(*args):
        _state.error = None
        jax = keras.backend.backend() == "jax"
        _state.in_step = True
        try:
            if jax:
                state, batches = args
                args = (state, _checked(batches, check_batch, steps_per_execution))
                _state.prechecked = True
            return step(*args)
        except Exception as backend_error:
            error, _state.error = _state.error, None
            if jax and error is backend_error:
                restore_variables(state)
            if error is None or error is backend_error:
                raise
            raise ValueError(str(error)) from None
        finally:
            _state.prechecked = False
            _state.in_step = False

    guarded._keras_nlm_guarded = True
    return guarded


def _checked(batches, check_batch, steps):
    batches = list(itertools.islice(batches, steps))
    for batch in batches:
        x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
        check_batch(x, y)
    return iter(batches)


def supports_jit_on_backend():
    """XLA in TensorFlow drops host callbacks, so id-checking layers opt out."""
    return keras.backend.backend() != "tensorflow"
