"""Calling a built layer without Keras's per-call bookkeeping, where it costs."""

import keras

from keras_nlm.precision import autocast


def direct_call(layer, *args, **kwargs):
    """`layer(*args, **kwargs)`; on PyTorch, once built, its `call` directly.

    PyTorch runs every training step eagerly, so Keras's `__call__` runs
    around every layer at every step: input conversion, the call context,
    masks, nested structures (about 0.3 ms a call on a 2-core CPU, 4 ms of a
    small LSTM LM's 40 ms step, where native PyTorch has none). TensorFlow
    and JAX trace it once into their compiled steps, so they keep `__call__`.
    What `__call__` would do that `call` needs is done here: 16-bit casts of
    float inputs and weights under a mixed policy. Callers pass `training`
    (and masks) explicitly: no call context fills them in.
    """
    if keras.backend.backend() != "torch" or not layer.built:
        return layer(*args, **kwargs)
    if layer.compute_dtype != layer.variable_dtype:

        def convert(x):
            return layer.dtype_policy.convert_input(
                x, layer.autocast, layer.input_dtype
            )

        args, kwargs = keras.tree.map_structure(convert, (args, kwargs))
    with autocast(layer):
        return layer.call(*args, **kwargs)


def dense_call(layer, inputs):
    """A `keras.layers.Dense` without activation on `(..., features)` inputs:
    on PyTorch, once built, one `torch.addmm` over the rows, as
    `torch.nn.Linear` runs it.

    Keras's `Dense` multiplies the 3-D input, then adds the bias in a second
    pass: over a language model's `(batch, time, vocabulary)` logits, one
    more tensor of the logits' size written and read in each direction, and
    the bias's gradient summed over two axes (`torch.profiler`, small LSTM
    LM: about 4 ms of its 74 ms step on 2 cores). The weights and their
    layout stay Keras's; elsewhere it is `direct_call`.
    """
    if (
        keras.backend.backend() != "torch"
        or not layer.built
        or layer.bias is None
        or layer.activation is not keras.activations.linear
        or layer.quantization_mode is not None
    ):
        return direct_call(layer, inputs)
    import torch

    with autocast(layer):
        kernel = keras.ops.convert_to_tensor(layer.kernel)  # LoRA included
        bias = keras.ops.convert_to_tensor(layer.bias)
        x = keras.ops.cast(inputs, layer.compute_dtype)
        rows = torch.addmm(bias, x.reshape(-1, x.shape[-1]), kernel)
    return rows.reshape(*x.shape[:-1], layer.units)
