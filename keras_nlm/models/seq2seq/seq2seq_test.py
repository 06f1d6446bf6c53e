import keras
import keras_hub
import numpy as np
import pytest

from keras_nlm.models import Seq2Seq


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


VARIANTS = [
    {"cell": "lstm"},
    {"cell": "gru", "attention": "bahdanau"},
    {"cell": "lstm", "attention": "luong", "bidirectional_encoder": True},
    {"cell": "simple", "reverse_source": True},
]


def _model(**options):
    return Seq2Seq(15, 12, num_layers=2, hidden_dim=8, embedding_dim=6, **options)


@pytest.mark.parametrize("options", VARIANTS)
def test_source_padding_is_masked(options):
    model = _model(**options)
    target = np.array([[1, 4, 5]])
    short = model({"source": np.array([[3, 4, 5]]), "target": target})
    padded = model({"source": np.array([[3, 4, 5, 0, 0]]), "target": target})
    np.testing.assert_allclose(_numpy(padded), _numpy(short), atol=1e-5)


@pytest.mark.parametrize("options", VARIANTS)
def test_step_by_step_decoding_equals_teacher_forcing(options):
    """Use = feeding the start delimiter, then each output, one step at a time."""
    model = _model(**options)
    source = np.array([[3, 4, 5, 6], [7, 8, 0, 0]])
    target = np.array([[1, 4, 5, 9], [1, 2, 3, 3]])
    teacher_forced = _numpy(model({"source": source, "target": target}))
    outputs, state, source_mask = model.encode(source)
    steps = []
    for t in range(target.shape[1]):
        logits, state = model.decode(
            target[:, t : t + 1], outputs, state, source_mask, return_state=True
        )
        steps.append(_numpy(logits))
    np.testing.assert_allclose(np.concatenate(steps, 1), teacher_forced, atol=1e-5)


def test_encoder_state_initialises_the_decoder():
    model = _model(cell="gru")
    target = np.array([[1, 2]])
    a = _numpy(model({"source": np.array([[3, 4]]), "target": target}))
    b = _numpy(model({"source": np.array([[9, 4]]), "target": target}))
    assert not np.allclose(a, b)


def test_attention_weights_are_returned_for_heatmaps():
    model = _model(cell="gru", attention="bahdanau")
    source = np.array([[3, 4, 5, 0]])
    outputs, state, mask = model.encode(source)
    logits, weights = model.decode(
        np.array([[1, 2]]), outputs, state, mask, return_attention_scores=True
    )
    weights = _numpy(weights)
    assert weights.shape == (1, 2, 4)
    np.testing.assert_allclose(weights[..., 3], 0.0, atol=1e-7)


def test_learns_to_copy_and_translates_with_greedy_and_beam():
    rng = np.random.default_rng(0)
    source = rng.integers(3, 10, (512, 4))
    target_in = np.concatenate([np.ones((512, 1), int), source], axis=1)  # 1 = start
    target_out = np.concatenate([source, np.full((512, 1), 2)], axis=1)  # 2 = end
    model = Seq2Seq(
        10,
        10,
        cell="gru",
        num_layers=1,
        hidden_dim=32,
        embedding_dim=16,
        attention="luong",
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(
        {"source": source, "target": target_in},
        target_out,
        epochs=25,
        batch_size=64,
        verbose=0,
    )
    assert history.history["loss"][-1] < 0.3
    sources = [[3, 4, 5, 6], [9, 9, 8, 7]]
    assert model.translate(sources, max_length=8, start_id=1, end_id=2) == sources
    beam = keras_hub.samplers.BeamSampler(num_beams=3)
    translations = model.translate(
        sources, max_length=8, start_id=1, end_id=2, sampler=beam
    )
    assert translations == sources


def test_bad_input_names_the_argument():
    model = _model()
    with pytest.raises(ValueError, match="keys 'source' and 'target'"):
        model(np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"`source` holds token id 15"):
        model({"source": np.array([[1, 15]]), "target": np.array([[1]])})
    with pytest.raises(ValueError, match=r"`target` holds token id -1"):
        model({"source": np.array([[1, 2]]), "target": np.array([[-1]])})
    with pytest.raises(ValueError, match="`target` must not be empty"):
        model({"source": np.array([[1, 2]]), "target": np.zeros((1, 0), "int32")})
    with pytest.raises(ValueError, match="`attention`"):
        _model(attention="transformer")
