"""Scoring a language model on a token stream, the one way the project does it.

Every token of the split is predicted from the tokens before it, the stream
preceded by `start_id` (`<eos>`: as if the previous line had just ended), the
same convention as `KneserNeyLM.token_nll`; `keras_nlm.metrics.perplexity`
turns the result into the perplexity.
"""

import numpy as np
from keras import ops

from keras_nlm.datasets.batching import SentencePairs, as_ids
from keras_nlm.datasets.corpora import CharacterCorpus, ParallelCorpus, WordCorpus
from keras_nlm.metrics import bits_per_character, perplexity
from keras_nlm.models.base import LanguageModel
from keras_nlm.validation import check_positive_int, check_token_ids


def _nll(logits, targets):
    log_probs = ops.convert_to_numpy(ops.log_softmax(logits, axis=-1))
    return -np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]


def token_nll(model, ids, start_id, sequence_length=35, batch_size=256):
    """`-log P(token | tokens before it)` (nats) for every token of `ids`.

    The model reads the stream as its `stream_logits` hook says (an `RNNLM`
    in chunks of `sequence_length` tokens, its state carried along one row;
    a `FixedWindowLM` in `batch_size` windows), in its compiled predict
    step; the log-probabilities are taken in numpy, chunk by chunk, so the
    logits of the whole split are never held at once.

    Args:
        model: a `LanguageModel`.
        ids: the split as a 1-D sequence of token ids.
        start_id: the id before the first token (that of `<eos>`).
        sequence_length: how many tokens a recurrent model reads at once.
        batch_size: how many windows a window model scores at once.
    """
    if not isinstance(model, LanguageModel):
        raise ValueError(
            f"`model` must be a language model (a LanguageModel); got "
            f"{type(model).__name__}."
        )
    ids = as_ids(ids, "ids")
    if not len(ids):
        raise ValueError("`ids` must hold at least one token id to score.")
    # The last id is only ever a target, which the model's own check skips.
    check_token_ids(ids, model.vocabulary_size, "ids")
    start_id = as_ids([start_id], "start_id")[0]
    check_token_ids(start_id, model.vocabulary_size, "start_id")
    sequence_length = check_positive_int(sequence_length, "sequence_length")
    batch_size = check_positive_int(batch_size, "batch_size")
    stream = np.concatenate([[start_id], ids]).astype("int32")
    chunks = model.stream_logits(stream, sequence_length, batch_size)
    return np.concatenate([_nll(logits, targets) for logits, targets in chunks])


def evaluate_perplexity(model, ids, start_id, **kwargs):
    """The perplexity of `model` on the stream `ids` (see `token_nll`)."""
    return perplexity(token_nll(model, ids, start_id, **kwargs))


def corpus_ids(corpus, split, tokenizer, data_dir=None):
    """A word or character corpus's split as one stream of token ids."""
    from keras_nlm.tokenizers import CharacterTokenizer

    characters = isinstance(tokenizer, CharacterTokenizer)
    if characters != isinstance(corpus, CharacterCorpus) and not isinstance(
        corpus, ParallelCorpus
    ):
        kind = "character" if characters else "word"
        raise ValueError(
            f"A {kind}-level model is scored on a {kind}-level corpus; "
            f"{corpus.name!r} is not one."
        )
    if isinstance(corpus, CharacterCorpus):
        tokens = tokenizer.split(corpus.text(split, data_dir))
    elif isinstance(corpus, WordCorpus):
        tokens = corpus.tokens(split, data_dir)
    else:
        raise ValueError(
            f"A language model is scored on a word or character corpus; "
            f"{corpus.name!r} is a parallel corpus (use it with a Seq2Seq)."
        )
    # One `token_to_id` per distinct token: a character split has a million.
    ids = {token: tokenizer.token_to_id(token) for token in set(tokens)}
    return np.array([ids[t] for t in tokens], dtype="int32")


def stream_start_id(tokenizer):
    """What precedes a stream: `<eos>` for words, a newline for characters
    (either way, as if a line had just ended)."""
    if tokenizer.eos_token is not None:
        return tokenizer.token_to_id(tokenizer.eos_token)
    return tokenizer.token_to_id("\n")


# The most tokens a translation scored for BLEU may have (model cards say it).
BLEU_MAX_LENGTH = 50


def translations(model, pairs, beam=None, batch_size=64, max_length=BLEU_MAX_LENGTH):
    """`(hypotheses, references)`: `model.translate` of the `(source,
    reference)` text pairs' sources, greedy or with a beam of `beam`, and the
    references as the target tokenizer writes them back (split and joined,
    so that they compare token for token with the translations)."""
    from keras_nlm.generation import keras_hub  # without TensorFlow on JAX, PyTorch

    sampler = keras_hub.samplers.BeamSampler(num_beams=beam) if beam else "greedy"
    sources = [source for source, _ in pairs]
    hypotheses = []
    for start in range(0, len(sources), batch_size):
        batch = sources[start : start + batch_size]
        hypotheses += model.translate(batch, max_length, sampler=sampler)
    target = model.target_tokenizer
    return hypotheses, [target.join(target.split(ref)) for _, ref in pairs]


def bleu(model, pairs, beam=None, batch_size=64, max_length=BLEU_MAX_LENGTH):
    """Corpus BLEU of `model.translate` on `(source, reference)` text pairs.

    sacrebleu on the target tokenizer's tokens: the references are split by
    `model.target_tokenizer` as the translations were, so `j ' ai` or
    `t - shirt` match, which sacrebleu's own 13a tokenization of raw text
    would never give (pytorch-seq2seq's BLEU is on its tokens too).
    Returns `(score, signature, hypotheses)`.
    """
    hypotheses, references = translations(model, pairs, beam, batch_size, max_length)
    return (*bleu_score(hypotheses, references), hypotheses)


def bleu_score(hypotheses, references):
    """`(score, signature)`: sacrebleu's corpus BLEU of tokenized text."""
    import sacrebleu

    metric = sacrebleu.metrics.BLEU(tokenize="none")
    score = metric.corpus_score(hypotheses, [references])
    return score.score, str(metric.get_signature())


def exact_match(hypotheses, references):
    """The fraction of translations equal to their reference, token for
    token (the references as `translations` gives them): sequence accuracy,
    the metric of tasks with one right answer (SCAN, arithmetic)."""
    if len(hypotheses) != len(references) or not references:
        raise ValueError(
            "`hypotheses` and `references` must be aligned and not empty; got "
            f"{len(hypotheses)} and {len(references)}."
        )
    return float(np.mean([h == r for h, r in zip(hypotheses, references)]))


def token_accuracy(model, pairs, batch_size=64):
    """Teacher-forced token accuracy of a `Seq2Seq` on `(source, reference)`
    text pairs: how often the most likely next token is the reference's,
    over the reference's tokens and its end delimiter (Keras's
    `"accuracy"` metric on the decoder's labels, padding left out)."""
    source = model.tokenizer_for("source_tokenizer")
    target = model.tokenizer_for("target_tokenizer")
    batches = SentencePairs(
        source.tokenize([s for s, _ in pairs]),
        target.tokenize([t for _, t in pairs]),
        target.start_id,
        target.end_id,
        batch_size=batch_size,
        shuffle=False,
    )
    correct = total = 0
    for i in range(len(batches)):
        inputs, labels = batches[i]
        predicted = np.argmax(ops.convert_to_numpy(model.predict_on_batch(inputs)), -1)
        kept = labels != model.ignored_label
        correct += int(np.sum((predicted == labels) & kept))
        total += int(np.sum(kept))
    return correct / total


def level(model):
    """What `model` is scored on, as `datasets.from_files`' `level`."""
    from keras_nlm.tokenizers import CharacterTokenizer

    if not isinstance(model, LanguageModel):
        return "pairs"
    tokenizer = model.tokenizer_for("tokenizer")
    return "character" if isinstance(tokenizer, CharacterTokenizer) else "word"


def evaluate(
    model, dataset, split="test", languages=None, beam=None, data_dir=None, limit=None
):
    """The project's metrics of a model with its tokenizers on a corpus split.

    `dataset` is a corpus name, a corpus (`datasets.from_files`: one's own)
    or its `config`. Language models: `perplexity` (and `bits_per_character`,
    `nats_per_character` for character models). A `Seq2Seq`: `bleu`,
    `exact_match` (the fraction of translations equal to their reference)
    and `token_accuracy` (teacher-forced) on `languages=(source, target)`,
    the translations greedy or with a beam of `beam`. `limit` scores only the
    split's first `limit` tokens (sentence pairs for a `Seq2Seq`): a quick
    check.
    """
    if limit is not None:
        check_positive_int(limit, "limit")
    from keras_nlm import datasets

    corpus = datasets.get(dataset)
    if not isinstance(model, LanguageModel):  # a translation model
        if not isinstance(corpus, ParallelCorpus):
            raise ValueError(
                f"A Seq2Seq is scored on a parallel corpus; {corpus.name!r} is not one."
            )
        pairs = corpus.pairs(split, *(languages or (None, None)), data_dir=data_dir)
        pairs = pairs[:limit]
        hypotheses, references = translations(model, pairs, beam)
        score, signature = bleu_score(hypotheses, references)
        return {
            "bleu": score,
            "exact_match": exact_match(hypotheses, references),
            "token_accuracy": token_accuracy(model, pairs),
            "sentences": len(pairs),
            "signature": signature,
        }
    tokenizer = model.tokenizer_for("tokenizer")
    ids = corpus_ids(corpus, split, tokenizer, data_dir)[:limit]
    nll = token_nll(model, ids, stream_start_id(tokenizer))
    result = {"perplexity": perplexity(nll), "tokens": len(ids)}
    if isinstance(corpus, CharacterCorpus):
        result["nats_per_character"] = float(np.mean(nll))
        result["bits_per_character"] = bits_per_character(nll)
    return result
