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


def _pairs(rows=6, seed=0):
    """Sources and shifted targets (1 = start), some rows padded."""
    rng = np.random.default_rng(seed)
    source = rng.integers(3, 15, (rows, 4))
    target = np.concatenate(
        [np.ones((rows, 1), int), rng.integers(3, 11, (rows, 4))], 1
    )
    source[::3, 2:] = 0
    target[::2, 3:] = 0
    return {"source": source, "target": target}


def _record_fed_tokens(model, monkeypatch):
    """The tokens each call of `model.decode` is fed, as numpy."""
    fed, decode = [], model.decode

    def recording(target, *args, **kwargs):
        fed.append(_numpy(target))
        return decode(target, *args, **kwargs)

    monkeypatch.setattr(model, "decode", recording)
    return fed


def _always_predicting(model, inputs, k):
    """Builds `model` and biases its output layer so that its argmax is `k`
    whatever it reads (`|U h| < 100`: `h` is a tanh's), its logits still
    depending on its inputs."""
    model(inputs)
    kernel, bias = model.U.get_weights()
    bias[k] = 100.0
    model.U.set_weights([kernel, bias])


def _free_running(model, inputs):
    """Free-running decoding, step by step through `decode` in inference
    mode: each step fed the previous step's argmax (never padding), padding
    where the target is padding."""
    target = inputs["target"]
    outputs, state, mask = model.encode(inputs["source"])
    token, steps = target[:, :1], []
    for t in range(target.shape[1]):
        token = np.where(target[:, t : t + 1] == 0, 0, token)
        logits, state = model.decode(token, outputs, state, mask, return_state=True)
        steps.append(_numpy(logits))
        token = steps[-1][:, :, 1:].argmax(-1).astype(target.dtype) + 1
    return np.concatenate(steps, 1)


def test_teacher_forcing_ratio_one_is_the_whole_sequence_path(monkeypatch):
    inputs = _pairs()
    default = _model(cell="lstm", attention="luong")
    model = _model(cell="lstm", attention="luong", teacher_forcing_ratio=1.0)
    default(inputs)
    model(inputs)
    # The same variables (no seed generator): presets load as before.
    assert len(model.variables) == len(default.variables)
    model.set_weights(default.get_weights())
    fed = _record_fed_tokens(model, monkeypatch)
    logits = _numpy(model(inputs, training=True))
    assert len(fed) == 1  # one call on the whole target, the fused path
    np.testing.assert_array_equal(fed[0], inputs["target"])
    np.testing.assert_array_equal(logits, _numpy(default(inputs, training=True)))
    monkeypatch.undo()
    labels = np.where(inputs["target"] == 0, 0, 5)
    for m in (default, model):
        m.compile(optimizer=keras.optimizers.SGD(0.5))
        m.train_on_batch(inputs, labels)
    for a, b in zip(model.get_weights(), default.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("options", VARIANTS)
def test_teacher_forcing_ratio_zero_feeds_its_own_predictions(options, monkeypatch):
    inputs, k = _pairs(), 11  # no gold target token is 11
    model = _model(teacher_forcing_ratio=0.0, **options)
    _always_predicting(model, inputs, k)
    fed = _record_fed_tokens(model, monkeypatch)
    logits = _numpy(model(inputs, training=True))
    fed = np.concatenate(fed, axis=1)
    gold = inputs["target"]
    expected = np.where(gold == 0, 0, k)  # padding stays padding
    expected[:, 0] = gold[:, 0]  # the start delimiter
    np.testing.assert_array_equal(fed, expected)
    monkeypatch.undo()
    teacher_forced = _numpy(model(inputs))  # inference: teacher forcing
    assert not np.allclose(logits[:, 1:], teacher_forced[:, 1:], atol=1e-3)
    np.testing.assert_allclose(logits, _free_running(model, inputs), atol=1e-5)


@pytest.mark.parametrize("options", VARIANTS[:2])
def test_teacher_forcing_ratio_zero_is_greedy_free_running(options):
    """Without a forced prediction: the argmax of each step, fed back."""
    inputs = _pairs(rows=8)
    model = _model(teacher_forcing_ratio=0.0, **options)
    logits = _numpy(model(inputs, training=True))
    np.testing.assert_allclose(logits, _free_running(model, inputs), atol=1e-5)


def test_teacher_forcing_ratio_mixes_per_row_and_step(monkeypatch):
    keras.utils.set_random_seed(1)
    inputs, k = _pairs(rows=400), 11
    model = _model(cell="gru", attention="bahdanau", teacher_forcing_ratio=0.5)
    _always_predicting(model, inputs, k)
    fed = _record_fed_tokens(model, monkeypatch)
    logits = _numpy(model(inputs, training=True))
    fed = np.concatenate(fed, axis=1)
    gold = inputs["target"]
    np.testing.assert_array_equal(fed[:, 0], gold[:, 0])
    np.testing.assert_array_equal(fed == 0, gold == 0)
    assert np.all((fed == gold) | (fed == k))
    sampled = (fed == k)[:, 1:][gold[:, 1:] != 0]
    assert 0.45 < sampled.mean() < 0.55, sampled.mean()
    # One coin per row: every step feeds some rows gold, others predictions.
    steps = (fed == k)[:, 1:]
    assert np.all(steps.any(axis=0)) and np.all((~steps).any(axis=0))
    # The logits are those of teacher forcing on the tokens fed (where the
    # loss reads them: a padded step's output is each backend's own).
    monkeypatch.undo()
    teacher_forced = _numpy(model({"source": inputs["source"], "target": fed}))
    kept = gold != 0
    np.testing.assert_allclose(logits[kept], teacher_forced[kept], atol=1e-5)


def test_teacher_forcing_ratio_in_config():
    model = _model(cell="gru", teacher_forcing_ratio=0.5)
    config = model.get_config()
    assert config["teacher_forcing_ratio"] == 0.5
    assert Seq2Seq.from_config(config).teacher_forcing_ratio == 0.5
    # Configs saved before the argument existed load as teacher forcing.
    del config["teacher_forcing_ratio"]
    assert Seq2Seq.from_config(config).teacher_forcing_ratio == 1.0
    assert _model().get_config()["teacher_forcing_ratio"] == 1.0


@pytest.mark.parametrize("ratio", [-0.1, 1.5, "x", True, None])
def test_bad_teacher_forcing_ratio_is_refused(ratio):
    with pytest.raises(
        ValueError, match=r"`teacher_forcing_ratio` must be .* \[0, 1\]"
    ):
        _model(teacher_forcing_ratio=ratio)


def test_fits_with_teacher_forcing_ratio():
    """Scheduled sampling in `fit`'s compiled step (jitted on JAX)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    source = rng.integers(3, 10, (128, 4))
    target_in = np.concatenate([np.ones((128, 1), int), source], axis=1)
    target_out = np.concatenate([source, np.full((128, 1), 2)], axis=1)
    model = Seq2Seq(
        10,
        10,
        cell="lstm",
        num_layers=2,
        hidden_dim=16,
        embedding_dim=8,
        attention="luong",
        dropout=0.1,
        teacher_forcing_ratio=0.5,
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    seed = _numpy(model.teacher_forcing_seed_generator.state)
    history = model.fit(
        {"source": source, "target": target_in},
        target_out,
        epochs=4,
        batch_size=32,
        verbose=0,
    )
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    # Each step drew its own coins.
    assert not np.array_equal(_numpy(model.teacher_forcing_seed_generator.state), seed)
    if keras.backend.backend() == "jax":
        assert model.jit_compile


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX's jit")
def test_teacher_forcing_ratio_inside_jit():
    import jax

    inputs = _pairs()
    model = _model(cell="gru", attention="luong", teacher_forcing_ratio=0.0)
    eager = _numpy(model(inputs, training=True))

    @jax.jit
    def forward(trainable, non_trainable, inputs):
        logits, _ = model.stateless_call(
            trainable, non_trainable, inputs, training=True
        )
        return logits

    logits = forward(
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        inputs,
    )
    np.testing.assert_allclose(_numpy(logits), eager, atol=1e-5)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's graphs"
)
def test_teacher_forcing_ratio_in_a_graph_of_unknown_length():
    """Batches of varying width: a symbolic loop, with gradients."""
    import tensorflow as tf

    inputs = {k: v.astype("int32") for k, v in _pairs().items()}
    model = _model(cell="lstm", attention="bahdanau", teacher_forcing_ratio=0.0)

    def forward(inputs):
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)
            loss = tf.reduce_sum(logits**2)
        gradients = tape.gradient(loss, model.trainable_variables)
        return logits, [tf.convert_to_tensor(g) for g in gradients]

    spec = tf.TensorSpec((None, None), tf.int32)
    graph = tf.function(forward, input_signature=[{"source": spec, "target": spec}])
    logits, gradients = graph(inputs)
    eager_logits, eager_gradients = forward(inputs)
    np.testing.assert_allclose(logits.numpy(), eager_logits.numpy(), atol=1e-5)
    for a, b in zip(gradients, eager_gradients):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    assert any(np.abs(g.numpy()).max() > 0 for g in gradients)
