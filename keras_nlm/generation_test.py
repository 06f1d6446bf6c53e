import keras
import keras_hub
import numpy as np
import pytest

from keras_nlm import models


def _is_greedy(model, prompt, tokens, start_id=0):
    """Whether each token after `prompt` is the argmax of the model rerun on
    all the tokens before it (the slow reference). All prefixes go in one call:
    an RNN's output at step t reads only the tokens up to t, and a fixed-window
    LM's windows are a batch."""
    if isinstance(model, models.FixedWindowLM):
        size = model.window_size
        padded = [start_id] * size + tokens
        windows = [padded[t : t + size] for t in range(1, len(tokens) + 1)]
        logits = model(np.array(windows))
    else:
        logits = model(np.array([tokens]))[0]
    following = np.argmax(keras.ops.convert_to_numpy(logits), axis=-1)
    return tokens[: len(prompt)] == prompt and (
        tokens[len(prompt) :] == following[len(prompt) - 1 : -1].tolist()
    )


@pytest.mark.parametrize(
    "model",
    [
        models.RNNLM(15, cell="lstm", num_layers=2, hidden_dim=8, embedding_dim=6),
        models.RNNLM(15, cell="simple", num_layers=1, hidden_dim=8, embedding_dim=6),
        # Untied: tied output weights start so small that near-equal logits
        # make greedy choices hang on rounding (`RNNLM.step` with tied weights
        # is checked against `call` to a tolerance in rnn_lm_test.py).
        models.RNNLM(15, cell="gru", num_layers=1, hidden_dim=8, embedding_dim=6),
        models.FixedWindowLM(15, window_size=3, embedding_dim=4, hidden_dim=8),
    ],
    ids=["lstm", "simple", "gru", "fixed_window"],
)
@pytest.mark.parametrize(
    "prompts",
    # The second and third: the prompts' shared length is read in one pass.
    [[[3, 4, 5], [7], [1, 2]], [[3, 4, 5, 6], [7, 1, 2]], [[9, 4, 5, 6, 1, 2]]],
)
def test_greedy_steps_equal_recomputing_the_prefix(model, prompts):
    generated = model.generate(prompts, max_length=9)
    for prompt, tokens in zip(prompts, generated):
        assert len(tokens) == 9 and _is_greedy(model, prompt, tokens)


def test_compiled_loop_reads_the_current_weights():
    model = models.RNNLM(15, num_layers=1, hidden_dim=8, embedding_dim=6)
    model.generate([[3, 4]], max_length=9)  # builds the model, compiles the loop
    generated = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
        generated.append(model.generate([[3, 4]], max_length=9)[0])
        assert _is_greedy(model, [3, 4], generated[-1])
    assert generated[0] != generated[1]


def test_stop_tokens_and_samplers():
    model = models.RNNLM(15, num_layers=1, hidden_dim=8, embedding_dim=6)
    greedy = model.generate([[3, 4]], max_length=10)[0]
    stop = greedy[3]
    cut = model.generate([[3, 4]], max_length=10, stop_token_ids=[stop])[0]
    assert cut == greedy[: greedy.index(stop, 2) + 1]
    for sampler in ("top_k", "top_p", "random"):
        tokens = model.generate([[3, 4]], max_length=10, sampler=sampler)[0]
        assert len(tokens) == 10 and all(0 <= t < 15 for t in tokens)


def test_bad_prompts():
    model = models.RNNLM(15, num_layers=1, hidden_dim=4, embedding_dim=4)
    with pytest.raises(ValueError, match="at least one token"):
        model.generate([[]], max_length=5)
    with pytest.raises(
        ValueError, match="`max_length` \\(3\\) must exceed the longest prompt"
    ):
        model.generate([[1, 2, 3]], max_length=3)
    with pytest.raises(ValueError, match="`max_length` must be a positive integer"):
        model.generate([[1]], max_length=0)
    with pytest.raises(ValueError, match="`prompts` holds token id 15"):
        model.generate([[1, 15]], max_length=5)
    window = models.FixedWindowLM(15, window_size=2, embedding_dim=4, hidden_dim=4)
    with pytest.raises(ValueError, match="`start_id` holds token id 15"):
        window.generate([[1]], max_length=5, start_id=15)


def test_seeded_samplers_are_reproducible():
    model = models.RNNLM(15, num_layers=1, hidden_dim=8, embedding_dim=6)

    def top_k(seed=7):
        return keras_hub.samplers.TopKSampler(k=10, seed=seed)

    prompts = [[3, 4]] * 4
    first = model.generate(prompts, max_length=12, sampler=top_k())
    assert model.generate(prompts, max_length=12, sampler=top_k()) == first
    # One sampler's seed advances from call to call, as in KerasHub.
    sampler = top_k()
    assert model.generate(prompts, max_length=12, sampler=sampler) == first
    assert model.generate(prompts, max_length=12, sampler=sampler) != first


def _count_calls(monkeypatch, model, method):
    """Counts the Python calls of `model.method`: a compiled loop makes them
    only while being traced."""
    calls = []
    original = getattr(model, method)

    def counted(*args, **kwargs):
        calls.append(method)
        return original(*args, **kwargs)

    monkeypatch.setattr(model, method, counted)
    return calls


@pytest.mark.skipif(
    keras.backend.backend() == "torch", reason="PyTorch runs the loop eagerly"
)
def test_same_shapes_reuse_the_compiled_loop(monkeypatch):
    lm = models.RNNLM(15, num_layers=1, hidden_dim=8, embedding_dim=6)
    lm.generate([[4, 5], [6]], max_length=8, sampler="top_k")
    calls = _count_calls(monkeypatch, lm, "step")
    # Other ids and prompt lengths, same shape: no tracing.
    lm.generate([[7], [8, 9, 10]], max_length=8, sampler="top_k")
    assert calls == []
    lm.generate([[7]], max_length=8, sampler="top_k")  # a new batch size
    assert calls

    seq2seq = models.Seq2Seq(15, 12, num_layers=1, hidden_dim=8, embedding_dim=6)
    beam = keras_hub.samplers.BeamSampler(num_beams=2)
    seq2seq.translate([[3, 4], [5]], 6, start_id=1, end_id=2, sampler=beam)
    calls = _count_calls(monkeypatch, seq2seq, "decode")
    seq2seq.translate([[6], [7, 8]], 6, start_id=1, end_id=2, sampler=beam)
    assert calls == []


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's own warning"
)
def test_a_new_model_compiles_its_own_loop_without_a_retracing_warning(caplog):
    # Like the main job, which generates from every zoo model in turn:
    # TensorFlow warned after the fifth, as if one function were retraced.
    for hidden_dim in range(2, 8):
        lm = models.RNNLM(15, num_layers=1, hidden_dim=hidden_dim, embedding_dim=4)
        lm.generate([[4, 5]], max_length=4)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert not [w for w in warnings if "retracing" in w], warnings


def _is_greedy_translation(model, source, translation, max_length, start_id, end_id):
    """Whether each target token, and `end_id` after them unless `max_length`
    was reached, is the argmax (padding id 0 excluded) of the model rerun with
    the tokens before it fed in. One call: the decoder's output at step t reads
    only the target up to t."""
    target = [start_id, *translation]
    logits = model({"source": np.array([source]), "target": np.array([target])})
    following = 1 + np.argmax(keras.ops.convert_to_numpy(logits)[0, :, 1:], axis=-1)
    if len(translation) < max_length:
        translation = [*translation, end_id]
    return translation == following[: len(translation)].tolist()


@pytest.mark.parametrize("attention", [None, "bahdanau"])
def test_greedy_translation_equals_recomputing_the_prefix(attention):
    model = models.Seq2Seq(
        15,
        12,
        cell="lstm",
        num_layers=2,
        hidden_dim=8,
        embedding_dim=6,
        attention=attention,
    )
    sources = [[3, 4, 5], [7, 8], [9]]
    translations = model.translate(sources, max_length=6, start_id=1, end_id=2)
    for source, translation in zip(sources, translations):
        assert _is_greedy_translation(model, source, translation, 6, 1, 2)


def test_bad_translation_arguments():
    model = models.Seq2Seq(10, 10, num_layers=1, hidden_dim=4, embedding_dim=4)
    with pytest.raises(ValueError, match="`sources` must hold at least one sequence"):
        model.translate([[]], max_length=8, start_id=1, end_id=2)
    with pytest.raises(ValueError, match="`start_id` holds token id 10"):
        model.translate([[3]], max_length=8, start_id=10, end_id=2)
