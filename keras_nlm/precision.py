"""Mixed precision (`"mixed_bfloat16"`, `"mixed_float16"`): what Keras's
policies leave to the models.

Under a mixed policy layers compute in 16 bits and keep float32 weights. The
loss, the softmax over the vocabulary and the recurrent state carried between
batches stay float32: `to_float32` widens the output layer's logits (as
Keras's mixed precision guide keeps the final softmax in float32) and the
activation penalties; `autocast` gives code that calls layers' `call`s
directly (generation's single steps) the 16-bit weights `__call__` would.
"""

import contextlib

import keras

HALF = ("float16", "bfloat16")


def to_float32(x):
    """`x` cast to float32 when it was computed in 16 bits.

    The log-softmax over the vocabulary sums thousands of exponentials: in
    bfloat16 (8 significant bits) the largest terms swallow the rest, and in
    float16 logits overflow past 65504; TensorFlow also refuses to add a
    16-bit penalty to the float32 loss.
    """
    if keras.backend.standardize_dtype(x.dtype) in HALF:
        return keras.ops.cast(x, "float32")
    return x


def logits_dtype(compute_dtype):
    """The dtype of a model's logits: float32 for a 16-bit compute dtype."""
    if keras.backend.standardize_dtype(compute_dtype) in HALF:
        return "float32"
    return compute_dtype


def autocast(layer):
    """Keras's scope in which float variables read as `layer`'s compute
    dtype, as inside its `__call__` (a null context when it is not mixed):
    otherwise the float32 weights would promote each 16-bit step back to
    float32, and a generation loop's carried state would change dtype.
    Keras has no public name for it (`keras.src.backend.AutocastScope`)."""
    if layer.compute_dtype == layer.variable_dtype:
        return contextlib.nullcontext()
    return keras.src.backend.AutocastScope(layer.compute_dtype)
