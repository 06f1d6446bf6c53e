import keras
import numpy as np
import pytest

from keras_nlm.models import RNNClassifier, RNNTagger


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_the_prediction(bidirectional):
    model = RNNClassifier(
        20,
        3,
        cell="lstm",
        num_layers=2,
        hidden_dim=5,
        embedding_dim=4,
        bidirectional=bidirectional,
    )
    ids = np.array([[3, 4, 5, 6]])
    padded = np.array([[3, 4, 5, 6, 0, 0, 0]])
    np.testing.assert_allclose(_numpy(model(padded)), _numpy(model(ids)), atol=1e-5)


def test_bidirectional_reads_the_whole_sequence():
    tagger = RNNTagger(20, 4, hidden_dim=5, embedding_dim=4, bidirectional=True)
    ids = np.array([[3, 4, 5, 6]])
    changed = np.array([[3, 4, 5, 9]])
    # The first word's tag depends on the last word only through the backward layer.
    first = _numpy(tagger(ids))[0, 0]
    assert not np.allclose(first, _numpy(tagger(changed))[0, 0])
    forward_only = RNNTagger(20, 4, hidden_dim=5, embedding_dim=4)
    np.testing.assert_allclose(
        _numpy(forward_only(ids))[0, 0], _numpy(forward_only(changed))[0, 0], atol=1e-6
    )


def test_tagger_output_per_token_and_padding_labels_ignored():
    tagger = RNNTagger(20, 4, hidden_dim=5, embedding_dim=4)
    ids = np.array([[3, 4, 5, 0, 0]] * 4)
    tags = np.array([[1, 2, 3, 0, 0]] * 4)
    assert tuple(tagger(ids).shape) == (4, 5, 4)
    tagger.compile()
    loss = tagger.evaluate(ids, tags, verbose=0)
    # The same loss as over the unpadded tokens alone.
    logits = _numpy(tagger(ids))[:, :3]
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_probs, tags[:, :3, None], -1).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-4)


def test_learns_a_sequence_label():
    # Label = whether token 7 occurs anywhere in the (padded) sequence.
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 7, (512, 8))
    ids[rng.random(512) < 0.5, rng.integers(0, 8)] = 7
    ids[::3, 6:] = 0
    labels = (ids == 7).any(axis=1).astype(int)
    model = RNNClassifier(
        8, 2, cell="gru", hidden_dim=16, embedding_dim=8, bidirectional=True
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), metrics=["accuracy"])
    history = model.fit(ids, labels, epochs=15, batch_size=64, verbose=0)
    assert history.history["accuracy"][-1] > 0.9


def test_bad_arguments():
    with pytest.raises(ValueError, match="`num_classes`"):
        RNNClassifier(10, 0)
    model = RNNTagger(10, 3, hidden_dim=2, embedding_dim=2)
    with pytest.raises(ValueError, match="token id 11"):
        model(np.array([[1, 11]]))
