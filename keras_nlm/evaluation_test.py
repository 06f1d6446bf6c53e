import keras
import numpy as np
import pytest

from keras_nlm import models
from keras_nlm.evaluation import (
    bleu,
    evaluate,
    evaluate_perplexity,
    exact_match,
    token_accuracy,
    token_nll,
    translations,
)
from keras_nlm.tokenizers import WordTokenizer


def test_rnn_lm_chunks_with_carried_state_equal_one_pass():
    model = models.RNNLM(30, cell="gru", num_layers=2, hidden_dim=8, embedding_dim=6)
    ids = np.random.randint(0, 30, 53)
    nll = token_nll(model, ids, start_id=0, sequence_length=10)
    stream = np.concatenate([[0], ids])
    logits = keras.ops.convert_to_numpy(model(stream[None, :-1]))[0]
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -log_probs[np.arange(53), ids]
    assert nll.shape == (53,)
    np.testing.assert_allclose(nll, expected, rtol=1e-4, atol=1e-5)


def test_fixed_window_scores_every_token_from_its_window():
    model = models.FixedWindowLM(20, window_size=3, embedding_dim=4, hidden_dim=5)
    ids = np.random.randint(1, 20, 17)
    nll = token_nll(model, ids, start_id=0, batch_size=4)
    padded = np.concatenate([[0, 0, 0], ids])
    windows = np.stack([padded[k : k + 3] for k in range(17)])
    logits = keras.ops.convert_to_numpy(model(windows))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(
        nll, -log_probs[np.arange(17), ids], rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("cls", [models.RNNLM, models.FixedWindowLM])
def test_a_model_that_knows_nothing_has_perplexity_v(cls):
    model = cls(50, hidden_dim=4, embedding_dim=4)
    model(np.zeros((1, 4), "int32"))
    model.U.set_weights([np.zeros_like(w) for w in model.U.get_weights()])
    ppl = evaluate_perplexity(model, np.random.randint(0, 50, 40), start_id=0)
    assert ppl == pytest.approx(50, rel=1e-5)


def test_other_models_are_refused():
    model = models.RNNClassifier(10, 2)
    with pytest.raises(ValueError, match="must be a language model"):
        token_nll(model, [1, 2], start_id=0)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"ids": [1.7, 2.9]}, "`ids` must be a 1-D sequence of integer"),
        ({"ids": [[1, 2], [3, 4]]}, "`ids` must be a 1-D sequence of integer"),
        ({"ids": [2**32 + 3]}, r"`ids` must hold token ids in \[0, 2\*\*31\)"),
        ({"ids": []}, "`ids` must hold at least one token id"),
        ({"start_id": 2.5}, "`start_id` must be a 1-D sequence of integer"),
        ({"sequence_length": 0}, "`sequence_length` must be a positive integer"),
        ({"batch_size": 1.5}, "`batch_size` must be a positive integer"),
        ({"ids": [1, 60]}, "`ids` holds token id 60"),  # a target only
        ({"start_id": 50}, "`start_id` holds token id 50"),
    ],
)
def test_bad_arguments_are_refused_not_cast(arguments, message):
    # Float ids were truncated and int64 ids wrapped into the vocabulary.
    model = models.RNNLM(50, num_layers=1, hidden_dim=4, embedding_dim=4)
    arguments = {"ids": [1, 2, 3], "start_id": 0, **arguments}
    with pytest.raises(ValueError, match=message):
        token_nll(model, **arguments)


def test_evaluate_scores_the_tokens_the_ngram_baseline_scores():
    from keras_nlm import datasets
    from keras_nlm.baselines import KneserNeyLM
    from keras_nlm.tokenizers import WordTokenizer

    ptb = datasets.get("ptb")
    tokenizer = WordTokenizer.from_corpus(ptb.lines("train"))
    model = models.FixedWindowLM(
        tokenizer.vocabulary_size(), embedding_dim=2, hidden_dim=2
    )
    model.tokenizer = tokenizer
    model(np.zeros((1, 4), "int32"))
    model.U.set_weights([np.zeros_like(w) for w in model.U.get_weights()])
    result = evaluate(model, "ptb", "test")
    kneser_ney = KneserNeyLM(order=2).fit(ptb.tokens("train"))
    # Every token of the split, `<eos>` included, as the baseline counts them;
    # a uniform model's perplexity is the vocabulary size.
    assert result["tokens"] == len(kneser_ney.token_nll(ptb.tokens("test"))) == 82_430
    assert result["perplexity"] == pytest.approx(model.vocabulary_size, rel=1e-5)


class _Translator:
    """Stands in for a Seq2Seq: `translate` returns what it is given."""

    target_tokenizer = WordTokenizer(split_on="punctuation", lowercase=True)

    def __init__(self, outputs):
        self.outputs = outputs

    def translate(self, sources, max_length, sampler):
        return [self.outputs[s] for s in sources]


def test_bleu_scores_the_translations_on_the_target_tokenizers_tokens():
    pairs = [
        ("ein hund läuft .", "A dog's running."),
        ("zwei männer in t-shirts .", "Two men in T-shirts."),
    ]
    # What the tokenizer gives back: lowercased, punctuation split off. Raw
    # references with sacrebleu's 13a tokenization would not match `' s` or
    # `t - shirts`.
    exact = _Translator(
        {
            "ein hund läuft .": "a dog ' s running .",
            "zwei männer in t-shirts .": "two men in t - shirts .",
        }
    )
    score, signature, hypotheses = bleu(exact, pairs, batch_size=1)
    assert score == pytest.approx(100.0)
    assert "tok:none" in signature
    assert hypotheses == ["a dog ' s running .", "two men in t - shirts ."]
    wrong = _Translator({s: "a cat sleeps ." for s, _ in pairs})
    assert bleu(wrong, pairs)[0] < 10


def test_exact_match_counts_translations_equal_to_their_reference():
    pairs = [("ein hund läuft .", "A dog's running."), ("zwei männer .", "Two men.")]
    right = _Translator(
        {"ein hund läuft .": "a dog ' s running .", "zwei männer .": "two men ."}
    )
    hypotheses, references = translations(right, pairs)
    assert exact_match(hypotheses, references) == 1.0
    half = _Translator({**right.outputs, "zwei männer .": "two men"})
    assert exact_match(*translations(half, pairs)) == 0.5
    with pytest.raises(ValueError, match="aligned and not empty"):
        exact_match(["a"], [])


def test_token_accuracy_is_the_share_of_reference_tokens_predicted():
    source = WordTokenizer.from_corpus(["a b c"])
    target = WordTokenizer.from_corpus(["x y z"])
    model = models.Seq2Seq(
        source.vocabulary_size(),
        target.vocabulary_size(),
        hidden_dim=4,
        embedding_dim=3,
    )
    model.source_tokenizer, model.target_tokenizer = source, target
    pairs = [("a b", "x x y"), ("c", "z"), ("a", "x")]
    model({"source": np.ones((1, 2), "int32"), "target": np.ones((1, 2), "int32")})
    # The output layer always predicts "x": right for 3 of the 8 labels
    # (each reference's tokens and its end delimiter).
    bias = np.zeros(target.vocabulary_size(), "float32")
    bias[target.token_to_id("x")] = 10.0
    kernel = np.zeros_like(model.U.get_weights()[0])
    model.U.set_weights([kernel, bias])
    assert token_accuracy(model, pairs) == pytest.approx(3 / 8)
