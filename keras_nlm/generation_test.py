import keras
import numpy as np
import pytest

from keras_nlm import models


def _greedy_by_full_recompute(model, prompt, max_length, start_id=0):
    """The slow reference: rerun the model on the whole prefix for each token."""
    tokens = list(prompt)
    while len(tokens) < max_length:
        if isinstance(model, models.FixedWindowLM):
            context = ([start_id] * model.window_size + tokens)[-model.window_size :]
            logits = model(np.array([context]))[0]
        else:
            logits = model(np.array([tokens]))[0, -1]
        tokens.append(int(np.argmax(keras.ops.convert_to_numpy(logits))))
    return tokens


@pytest.mark.parametrize(
    "model",
    [
        models.RNNLM(15, cell="lstm", num_layers=2, hidden_dim=8, embedding_dim=6),
        models.RNNLM(15, cell="simple", num_layers=1, hidden_dim=8, embedding_dim=6),
        models.FixedWindowLM(15, window_size=3, embedding_dim=4, hidden_dim=8),
    ],
    ids=["lstm", "simple", "fixed_window"],
)
def test_greedy_steps_equal_recomputing_the_prefix(model):
    prompts = [[3, 4, 5], [7], [1, 2]]
    generated = model.generate(prompts, max_length=9)
    for prompt, tokens in zip(prompts, generated):
        assert tokens[: len(prompt)] == prompt and len(tokens) == 9
        assert tokens == _greedy_by_full_recompute(model, prompt, 9)


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


def _greedy_translation_by_recompute(model, source, max_length, start_id, end_id):
    target = [start_id]
    while len(target) <= max_length:
        logits = model({"source": np.array([source]), "target": np.array([target])})
        token = 1 + int(np.argmax(keras.ops.convert_to_numpy(logits)[0, -1, 1:]))
        if token == end_id:
            break
        target.append(token)
    return target[1:]


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
        assert translation == _greedy_translation_by_recompute(model, source, 6, 1, 2)


def test_translate_needs_non_empty_sources():
    model = models.Seq2Seq(10, 10, num_layers=1, hidden_dim=4, embedding_dim=4)
    with pytest.raises(ValueError, match="`sources` must hold at least one sequence"):
        model.translate([[]], max_length=8, start_id=1, end_id=2)
