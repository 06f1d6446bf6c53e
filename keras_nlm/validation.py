"""Checks that turn bad input into one clear `ValueError` on every backend.

Out-of-range token ids are the dangerous case: TensorFlow raises its own error,
PyTorch an `IndexError`, and JAX silently clamps the gather. The checks run on
the host, where values enter: eager calls, every batch that `fit`, `evaluate`
and `predict` read (`CheckedData`; for `tf.data`, inside the input pipeline),
prompts and the CLI. Compiled steps hold no host callback, so XLA, TPUs,
several devices and `model.export` can run them.
"""

import contextlib
import functools
import itertools
import math
import numbers
import os
import re
import threading

import keras
import numpy as np
from keras import ops

# Keras takes a `DataAdapter` as `x` in `fit`/`evaluate`/`predict` but does not
# export the class: the one way to see every batch before a compiled step reads it.
from keras.src.trainers.data_adapters.data_adapter import DataAdapter
from keras.src.trainers.data_adapters.tf_dataset_adapter import TFDatasetAdapter


class _State(threading.local):
    checked = False  # see `checked_upstream`
    pipeline = None  # the `Assert` ops of `in_pipeline`, while it traces


_state = _State()


def check_positive_int(value, argument):
    """Raises unless `value` is an integer >= 1 (numpy integers included,
    bools excluded); returns it as a Python `int`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{argument}` must be a positive integer, got {value!r}.")
    return int(value)


def physical_memory():
    """This machine's memory in bytes: allocating beyond it gets the process
    killed (JAX aborts, the kernel OOM-kills PyTorch) rather than an error."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def format_bytes(count):
    """`count` bytes for people: "3.2 PB"."""
    units = ("B", "KB", "MB", "GB", "TB", "PB")
    power = min(int(math.log10(max(count, 1)) // 3), len(units) - 1)
    return f"{count / 1000**power:.1f} {units[power]}"


def check_buffer_fits(rows, length, argument, copies=4):
    """Raises unless `copies` int64 buffers of `(rows, length)` ids (what
    generation and padding hold at once) fit in memory, naming the length's
    `argument`; returns `length`."""
    size, memory = copies * rows * length * 8, physical_memory()
    if size > memory:
        raise ValueError(
            f"`{argument}`={length} needs {format_bytes(size)} of token-id buffers "
            f"for {rows} row(s), more than this machine's {format_bytes(memory)} "
            "of memory."
        )
    return length


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


def check_non_negative(value, argument):
    """Raises unless `value` is a number >= 0 (a penalty's weight; numpy's
    included, bools excluded); returns it as a Python `float`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"`{argument}` must be a number >= 0, got {value!r}.")
    return float(value)


def check_rate(value, argument, closed=False):
    """Raises unless `value` is a number in [0, 1) (numpy's included, bools
    excluded), or in [0, 1] with `closed` (a probability that may be 1);
    returns it as a Python `float`."""
    interval = "[0, 1]" if closed else "[0, 1)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{argument}` must be a number in {interval}, got {value!r}.")
    if not (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0):
        raise ValueError(f"`{argument}` must be in {interval}, got {value!r}.")
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


def is_foreign_array(x):
    """Whether `x` holds values as another framework's tensor (a PyTorch
    tensor under JAX, say): converting it to this backend's could wrap or
    cast its ids silently (JAX makes int64 int32), so it is read as numpy."""
    return hasattr(x, "__array__") and not (
        keras.ops.is_tensor(x) or isinstance(x, (keras.KerasTensor, keras.Variable))
    )


def _out_of_range_error(argument, vocabulary_size, low, high, size_name):
    bad = low if low < 0 else high
    what = "token id" if size_name.endswith("vocabulary_size") else "label"
    return ValueError(
        f"`{argument}` holds {what} {bad}, outside the allowed range "
        f"[0, {vocabulary_size}) of {size_name}={vocabulary_size} "
        f"(ids seen: min {low}, max {high})."
    )


def _is_concrete(x):
    """Whether `x` holds values now (eager), rather than being traced or
    compiled: only concrete values are checked where they are used."""
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

        # Meta tensors (Keras's shape inference) hold no values.
        return not torch.compiler.is_compiling() and (
            not isinstance(x, torch.Tensor) or x.device.type != "meta"
        )
    return True


def _dtype_error(argument, dtype):
    return ValueError(
        f"`{argument}` must hold integer token ids; got {_dtype_name(dtype)} "
        "values, which would be cast silently (tokenize text first; convert "
        "whole-number floats with `.astype('int32')`)."
    )


def _check_range(low, high, vocabulary_size, argument, size_name):
    low, high = int(low), int(high)
    if low < 0 or high >= vocabulary_size:
        raise _out_of_range_error(argument, vocabulary_size, low, high, size_name)


def check_token_ids(
    ids, vocabulary_size, argument="inputs", size_name="vocabulary_size"
):
    """Raises `ValueError` if any id is outside `[0, vocabulary_size)`, or
    if the ids are not integers (floats and bools would be truncated).

    Checks values on the host, where they are concrete: numpy arrays and
    lists as they are, before a backend converts them (JAX would wrap int64
    ids beyond int32's range), and eager tensors. Traced tensors (a compiled
    step) pass unchecked: their batch was checked on its way in (see
    `CheckedData`), so compiled code holds no host callback. In a `tf.data`
    pipeline (`in_pipeline`), the check is an `Assert` op of the pipeline.
    Returns `ids`; `size_name` names the bound in the message.
    """
    if isinstance(ids, keras.KerasTensor):
        return ids
    if isinstance(ids, (np.ndarray, np.generic, list, tuple, int, float)) or (
        is_foreign_array(ids)
    ):
        values = np.asarray(ids)
        if not is_integer_dtype(values.dtype):
            raise _dtype_error(argument, values.dtype)
        if values.size:
            _check_range(
                values.min(), values.max(), vocabulary_size, argument, size_name
            )
        return ids
    pipelined = _state.pipeline is not None
    if not pipelined and (_state.checked or not _is_concrete(ids)):
        return ids
    if not is_integer_dtype(ids.dtype):
        raise _dtype_error(argument, ids.dtype)
    if pipelined:
        _state.pipeline.append(
            _pipeline_assert(ids, vocabulary_size, argument, size_name)
        )
    elif ops.size(ids):
        low, high = ops.min(ids), ops.max(ids)
        _check_range(
            ops.convert_to_numpy(low),
            ops.convert_to_numpy(high),
            vocabulary_size,
            argument,
            size_name,
        )
    return ids


@contextlib.contextmanager
def checked_upstream():
    """Within it, tensors reach the models already checked: a batch that
    `fit`/`evaluate`/`predict` checked on its way in, or ids that a sampler
    picked from the vocabulary. (Spares PyTorch's eager steps a
    device-to-host copy per check.)"""
    before, _state.checked = _state.checked, True
    try:
        yield
    finally:
        _state.checked = before


# A failed pipeline check: TensorFlow's message holds this, then the ids' min and max.
_PIPELINE_MARK = "keras_nlm.check_token_ids"


def _pipeline_assert(ids, vocabulary_size, argument, size_name):
    import tensorflow as tf

    ids = tf.cast(ids, "int64")
    low, high = tf.reduce_min(ids), tf.reduce_max(ids)
    valid = tf.logical_or(
        tf.equal(tf.size(ids), 0),
        tf.logical_and(low >= 0, high < vocabulary_size),
    )
    mark = f"{_PIPELINE_MARK}|{argument}|{size_name}|{vocabulary_size}|"
    return tf.debugging.Assert(valid, [mark, low, high])


def in_pipeline(check, batch):
    """Runs `check()` on `batch` while a `tf.data` map function is traced: the id
    checks become `Assert` ops of the pipeline (TensorFlow runs input
    pipelines on the host, outside the compiled step), and the batch comes
    back depending on them. `pipeline_errors` turns a failed one into its
    `ValueError`."""
    import tensorflow as tf

    _state.pipeline = []
    try:
        check()
        asserts = _state.pipeline
    finally:
        _state.pipeline = None
    with tf.control_dependencies(asserts):
        return tf.nest.map_structure(tf.identity, batch)


@contextlib.contextmanager
def pipeline_errors():
    """Raises a failed `in_pipeline` check as the `ValueError` it stands for
    (TensorFlow raises it from wherever it reads the pipeline)."""
    try:
        yield
    except Exception as error:
        match = re.search(
            re.escape(_PIPELINE_MARK)
            + r"\|(.*?)\|(.*?)\|(\d+)\|\] \[(-?\d+)\] \[(-?\d+)\]",
            str(error),
        )
        if match is None:
            raise
        argument, size_name, size, low, high = match.groups()
        raise _out_of_range_error(
            argument, int(size), int(low), int(high), size_name
        ) from None


def check_token_tensor(ids, vocabulary_size, argument, dimensions):
    """`check_rank` and `check_token_ids` of one tensor of token ids."""
    check_rank(ids, argument, dimensions)
    return check_token_ids(ids, vocabulary_size, argument)


def guard_step(step, restore_variables, steps_per_execution=1):
    """Wraps a Keras train/test/predict step function for batches checked
    on their way in (`CheckedData`, `in_pipeline`).

    On JAX, the batches a step reads are drawn (and so checked) before the
    jitted step runs: as Keras's JAX loop detaches the weights while it
    runs, `restore_variables(state)` puts them back when a batch is
    refused.
    """
    if getattr(step, "_keras_nlm_guarded", False):
        return step
    backend = keras.backend.backend()

    @functools.wraps(step)
    def guarded(*args):
        if backend == "jax":
            state, batches = args
            try:
                batches = list(itertools.islice(batches, steps_per_execution))
            except Exception:
                restore_variables(state)
                raise
            args = (state, iter(batches))
        with checked_upstream():
            return step(*args)

    guarded._keras_nlm_guarded = True
    return guarded


class CheckedData(DataAdapter):
    """Keras's data adapter for a dataset, each batch checked by
    `check_batch(x, y)` on the host before a compiled step reads it
    (`None`: checked already, as in-memory arrays are whole).

    Numpy, JAX and PyTorch iterators are checked batch by batch in Python;
    TensorFlow's `tf.data` pipeline gets the checks as ops (`in_pipeline`),
    and one that Keras builds (for arrays, a `PyDataset`, a generator) runs
    without autotuning (`without_autotune`); a user's own `tf.data.Dataset`
    keeps its options. Keras's own adapter (for arrays, a `PyDataset`,
    `tf.data`, a generator, PyTorch's `DataLoader`) does everything else.
    """

    def __init__(self, adapter, check_batch=None):
        self.adapter = adapter
        self.check_batch = check_batch

    def _checked(self, batches):
        if self.check_batch is None:
            yield from batches
            return
        for batch in batches:
            x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
            self.check_batch(x, y)
            yield batch

    def get_numpy_iterator(self):
        return self._checked(self.adapter.get_numpy_iterator())

    def get_jax_iterator(self):
        return self._checked(self.adapter.get_jax_iterator())

    def get_torch_dataloader(self):
        return self._checked(self.adapter.get_torch_dataloader())

    def get_tf_dataset(self):
        def check(*batch):
            batch = batch if len(batch) > 1 else batch[0]
            x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
            return in_pipeline(lambda: self.check_batch(x, y), batch)

        # Keras's adapter of a `PyDataset` takes `tf.data`'s signature from
        # the first two batches, fixing each dimension they agree on: batches
        # whose lengths and widths vary give theirs. The protocol: a
        # `PyDataset` with a `tf_signature()` method (`keras_nlm.datasets`'
        # batches; a wrapper, such as `distribution._Rows`, hands on its
        # wrapped batches' method, or None).
        py_dataset = getattr(self.adapter, "py_dataset", None)
        signature = getattr(py_dataset, "tf_signature", None)
        if signature is not None:
            self.adapter._output_signature = signature()
        dataset = self.adapter.get_tf_dataset()
        if self.check_batch is not None:
            dataset = dataset.map(check)
        if isinstance(self.adapter, TFDatasetAdapter):
            return dataset
        return without_autotune(dataset)

    @property
    def num_batches(self):
        return self.adapter.num_batches

    @property
    def batch_size(self):
        return self.adapter.batch_size

    @property
    def has_partial_batch(self):
        return self.adapter.has_partial_batch

    @property
    def partial_batch_size(self):
        return self.adapter.partial_batch_size

    def on_epoch_begin(self):
        self.adapter.on_epoch_begin()

    def on_epoch_end(self):
        self.adapter.on_epoch_end()


def without_autotune(dataset):
    """`dataset` with `tf.data`'s autotuning off.

    With it on, on the 2-core machine, about one `fit` in seven ran every
    step at half speed (a small LSTM LM: 129 against 64 ms a step, for
    numpy arrays and `tf.data` pipelines with or without `prefetch`), none
    of 79 with it off: its background work takes a core from TensorFlow's
    two-thread kernels. A pipeline that batches in memory (or reads a
    `PyDataset`) has nothing to tune.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def holds_arrays(x):
    """Numpy arrays, nested lists of numbers, or another framework's tensors
    (not this backend's tensors, not datasets)."""
    if isinstance(x, dict):
        return bool(x) and all(holds_arrays(v) for v in x.values())
    if isinstance(x, np.ndarray):
        return True
    if is_foreign_array(x):
        return True
    return isinstance(x, (list, tuple)) and not any(
        ops.is_tensor(v) or isinstance(v, (dict, str)) for v in x
    )


def as_arrays(x, argument="inputs"):
    if isinstance(x, dict):
        return {k: as_arrays(v, argument) for k, v in x.items()}
    try:
        return np.asarray(x)
    except ValueError:
        raise ValueError(
            f"`{argument}` must be a rectangular array of token ids (pad the rows "
            "to one length); got rows of different lengths."
        ) from None


def refuse_ragged(x, argument):
    """Ragged and sparse tensors hold rows of different lengths, which the
    models read as padded rectangles only: say so rather than fail inside."""
    kind = type(x).__name__
    if kind in ("RaggedTensor", "SparseTensor"):
        raise ValueError(
            f"`{argument}` must be a dense (batch, time) tensor of token ids; got a "
            f"tf.{kind}: pad it first (`.to_tensor()`, `tf.sparse.to_dense`)."
        )


def is_text(inputs):
    """A string or a non-empty list of strings (rather than token ids)."""
    if isinstance(inputs, str):
        return True
    return (
        isinstance(inputs, (list, tuple))
        and len(inputs) > 0
        and all(isinstance(x, str) for x in inputs)
    )
