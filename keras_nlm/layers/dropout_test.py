import keras
import numpy as np
import pytest

from keras_nlm.layers import LockedDropout


def test_locked_dropout_keeps_one_mask_per_sequence():
    dropout = LockedDropout(0.5)
    x = np.random.default_rng(0).uniform(1, 2, (16, 9, 32)).astype("float32")
    y = keras.ops.convert_to_numpy(dropout(x, training=True))
    kept = y != 0
    # The same features dropped at every time step of a sequence,
    assert (kept == kept[:, :1]).all()
    # different ones in different sequences,
    assert len({row.tobytes() for row in kept[:, 0]}) == 16
    # about half of them, the kept ones scaled by 1 / (1 - p).
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(y[kept], 2 * x[kept], rtol=1e-6)
    # A new mask at the next call.
    again = keras.ops.convert_to_numpy(dropout(x, training=True)) != 0
    assert (again != kept).any()


def test_locked_dropout_is_off_at_inference():
    x = np.random.randn(2, 5, 3).astype("float32")
    dropout = LockedDropout(0.9)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(dropout(x)), x)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(dropout(x, training=False)), x
    )


def test_locked_dropout_checks_and_serializes():
    with pytest.raises(ValueError, match="`rate` must be in"):
        LockedDropout(1.0)
    with pytest.raises(ValueError, match=r"`inputs` must have shape \(batch, time"):
        LockedDropout(0.5)(np.ones((2, 3), "float32"), training=True)
    dropout = LockedDropout(0.25)
    config = dropout.get_config()
    assert config["rate"] == 0.25 and isinstance(config["seed"], int)
    assert LockedDropout.from_config(config).get_config() == config
