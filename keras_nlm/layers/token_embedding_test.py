import keras
import numpy as np
import pytest

from keras_nlm.layers import TokenEmbedding, WindowEmbedding


def test_lookup_is_a_row_of_E():
    embedding = TokenEmbedding(vocabulary_size=10, embedding_dim=3)
    ids = np.array([[4, 7, 1]])
    vectors = keras.ops.convert_to_numpy(embedding(ids))
    np.testing.assert_allclose(vectors[0], embedding.get_weights()[0][[4, 7, 1]])


def test_reverse_is_the_tied_output_layer():
    embedding = TokenEmbedding(10, 3, reversible=True)
    embedding.build()
    E, b = embedding.get_weights()
    b = np.arange(10, dtype="float32")
    embedding.set_weights([E, b])
    hidden = np.random.randn(2, 5, 3).astype("float32")
    logits = keras.ops.convert_to_numpy(embedding(hidden, reverse=True))
    np.testing.assert_allclose(logits, hidden @ E.T + b, rtol=1e-5, atol=1e-5)


def test_reverse_needs_reversible():
    embedding = TokenEmbedding(10, 3)
    embedding.build()
    with pytest.raises(ValueError, match="reversible=True"):
        embedding(np.zeros((1, 3), "float32"), reverse=True)


def test_out_of_range_ids_raise_in_eager_calls():
    # In compiled steps the layer does not check (no host callback there):
    # keras-nlm's models check each batch before it enters one.
    model = keras.Sequential([keras.Input((2,), dtype="int32"), TokenEmbedding(6, 2)])
    for bad, id in (
        (np.array([[1, 6]]), 6),
        (keras.ops.convert_to_tensor([[-1, 2]]), -1),
    ):
        with pytest.raises(
            ValueError, match=rf"token id {id}, outside the allowed range \[0, 6\)"
        ):
            model(bad)


def test_window_concatenates_the_lookups():
    window = WindowEmbedding(vocabulary_size=20, embedding_dim=3, window_size=4)
    ids = np.array([[1, 2, 3, 4], [5, 5, 0, 19]])
    A = keras.ops.convert_to_numpy(window(ids))
    E = window.get_weights()[0]
    assert A.shape == (2, 12)
    np.testing.assert_allclose(A, E[ids].reshape(2, 12))


def test_window_size_is_checked():
    window = WindowEmbedding(20, 3, window_size=4)
    with pytest.raises(ValueError, match="window_size=4"):
        window(np.array([[1, 2, 3]]))
    with pytest.raises(ValueError, match="rank 2"):
        window(np.array([1, 2, 3, 4]))


def test_serializes_with_course_names():
    layer = WindowEmbedding(20, 3, window_size=5, name="E")
    config = layer.get_config()
    assert config["vocabulary_size"] == 20 and config["embedding_dim"] == 3
    assert WindowEmbedding.from_config(config).get_config() == config


def test_embedding_dropout_drops_whole_words_in_training_only():
    embedding = TokenEmbedding(50, 4, embedding_dropout=0.5)
    embedding.build()
    ids = np.random.default_rng(0).integers(0, 50, (8, 30))
    E = keras.ops.convert_to_numpy(embedding.embeddings)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(embedding(ids)), E[ids])
    vectors = keras.ops.convert_to_numpy(embedding(ids, training=True))
    dropped = (vectors == 0).all(-1)
    # Every occurrence of a word is dropped or none is; the kept ones are
    # E's rows scaled by 1 / (1 - p).
    dropped_words = set(ids[dropped])
    assert dropped_words and not dropped_words & set(ids[~dropped])
    np.testing.assert_allclose(vectors[~dropped], 2 * E[ids[~dropped]], rtol=1e-6)
    # A new mask for every call; E itself untouched.
    again = (keras.ops.convert_to_numpy(embedding(ids, training=True)) == 0).all(-1)
    assert (again != dropped).any()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(embedding.embeddings), E)


def test_embedding_dropout_is_checked_and_serialized():
    with pytest.raises(ValueError, match="`embedding_dropout`"):
        TokenEmbedding(10, 3, embedding_dropout=1.0)
    config = TokenEmbedding(10, 3, embedding_dropout=0.1).get_config()
    assert config["embedding_dropout"] == 0.1
    assert TokenEmbedding.from_config(config).get_config() == config
