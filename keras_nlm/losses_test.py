import keras
import numpy as np
import pytest

from keras_nlm.losses import SparseCategoricalCrossentropy


@pytest.mark.parametrize("ignore_class", [None, 0])
@pytest.mark.parametrize("shape", [(6,), (3, 4)], ids=["2d_logits", "3d_logits"])
def test_loss_equals_keras_loss(shape, ignore_class):
    # The backend shortcuts (label picking on JAX, folded time on PyTorch)
    # must give Keras's numbers, padding and sample weights included.
    rng = np.random.default_rng(0)
    logits = rng.normal(size=shape + (7,)).astype("float32") * 3
    labels = rng.integers(0, 7, shape)
    labels.flat[:2] = 0  # padding, where ignored
    weights = rng.uniform(size=shape).astype("float32")
    ours = SparseCategoricalCrossentropy(from_logits=True, ignore_class=ignore_class)
    keras_loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=ignore_class
    )
    for sample_weight in (None, weights):
        expected = keras.ops.convert_to_numpy(keras_loss(labels, logits, sample_weight))
        got = keras.ops.convert_to_numpy(ours(labels, logits, sample_weight))
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    if ignore_class is not None:
        # The padded tokens change nothing.
        changed = logits.copy()
        changed[labels == 0] = 100.0
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(ours(labels, changed)),
            keras.ops.convert_to_numpy(ours(labels, logits)),
            rtol=1e-6,
        )
