import keras
import numpy as np
import pytest

from keras_nlm.layers import OneHot, TokenEmbedding


def test_one_hot_vectors():
    ids = np.array([[3, 0], [1, 4]])
    vectors = keras.ops.convert_to_numpy(OneHot(5)(ids))
    np.testing.assert_array_equal(vectors, np.eye(5)[ids])


def test_one_hot_times_matrix_equals_embedding_lookup():
    v, d = 11, 4
    ids = np.array([[1, 5, 10], [0, 3, 3]])
    embedding = TokenEmbedding(v, d)
    looked_up = keras.ops.convert_to_numpy(embedding(ids))
    E = embedding.get_weights()[0]
    dense = keras.layers.Dense(d, use_bias=False)
    dense.build((None, v))
    dense.set_weights([E])
    multiplied = keras.ops.convert_to_numpy(dense(OneHot(v)(ids)))
    np.testing.assert_allclose(multiplied, looked_up, atol=1e-7)


def test_out_of_range_ids_raise():
    with pytest.raises(
        ValueError, match=r"token id 5, outside the allowed range \[0, 5\)"
    ):
        OneHot(5)(np.array([[1, 5]]))
    with pytest.raises(ValueError, match="token id -2"):
        OneHot(5)(np.array([[-2, 1]]))


def test_serializes():
    layer = OneHot(7)
    assert OneHot.from_config(layer.get_config()).vocabulary_size == 7
