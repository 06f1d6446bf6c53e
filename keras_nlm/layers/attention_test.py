import keras
import numpy as np
import pytest

from keras_nlm.layers import EncoderDecoderAttention


@pytest.mark.parametrize("score", ["bahdanau", "luong"])
def test_weights_are_a_distribution_over_unpadded_source(score):
    attention = EncoderDecoderAttention(score, hidden_dim=6)
    decoder = np.random.randn(2, 3, 6).astype("float32")
    encoder = np.random.randn(2, 5, 8).astype("float32")
    mask = np.array([[True] * 5, [True] * 2 + [False] * 3])
    attended, weights = attention(decoder, encoder, mask, return_attention_scores=True)
    weights = keras.ops.convert_to_numpy(weights)
    assert tuple(attended.shape) == (2, 3, 6) and weights.shape == (2, 3, 5)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(weights[1, :, 2:], 0.0, atol=1e-7)
    # Padding content cannot leak into the result.
    changed = encoder.copy()
    changed[1, 2:] = 100.0
    again = attention(decoder, changed, mask)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(again)[1],
        keras.ops.convert_to_numpy(attended)[1],
        atol=1e-5,
    )


def test_luong_needs_matching_sizes():
    attention = EncoderDecoderAttention("luong", hidden_dim=6)
    with pytest.raises(ValueError, match="must be equal"):
        attention(np.zeros((1, 2, 5), "float32"), np.zeros((1, 3, 6), "float32"))


def test_unknown_score():
    with pytest.raises(ValueError, match="`score` must be one of 'bahdanau'"):
        EncoderDecoderAttention("dot-product")
