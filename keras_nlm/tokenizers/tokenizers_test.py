import keras
import numpy as np
import pytest

from keras_nlm import datasets
from keras_nlm.tokenizers import CharacterTokenizer, WordTokenizer


def test_word_vocabulary_from_training_split():
    lines = datasets.get("ptb").lines("train")
    tokenizer = WordTokenizer.from_corpus(
        lines, padding_token=None, start_token=None, end_token=None
    )
    # PTB's 9,999 words (<unk> included) plus <eos>: the standard 10k vocabulary.
    assert tokenizer.vocabulary_size() == 10_000
    assert tokenizer.get_vocabulary()[:2] == ["<unk>", "<eos>"]
    assert tokenizer.get_vocabulary()[2] == "the"  # most frequent word next
    ids = tokenizer.tokenize("the stock market fell")
    assert tokenizer.detokenize(ids) == "the stock market fell"
    assert tokenizer.tokenize("the zyzzyva") == [2, tokenizer.token_to_id("<unk>")]


def test_special_tokens_order_and_delimiters():
    tokenizer = WordTokenizer.from_corpus(["a b b c", "c c"])
    assert tokenizer.get_vocabulary() == [
        "<pad>",
        "<unk>",
        "<s>",
        "</s>",
        "<eos>",
        "c",
        "b",
        "a",
    ]
    assert tokenizer.padding_id == 0
    ids = tokenizer.tokenize("b a", add_start=True, add_end=True)
    assert ids == [2, 6, 7, 3]
    # Decoding stops at the end delimiter and drops start and padding.
    assert tokenizer.detokenize(ids + [5, 0]) == "b a"
    assert tokenizer.detokenize(ids, skip_special_tokens=False) == "<s> b a </s>"


@pytest.mark.parametrize(
    "cls, corpus, specials",
    [
        (WordTokenizer, ["a b c"], {}),
        (WordTokenizer, ["a b c"], {"unknown_token": None, "padding_token": None}),
        (CharacterTokenizer, ["abc"], {"start_token": "<s>", "end_token": "</s>"}),
        (
            CharacterTokenizer,
            ["abc"],
            {"padding_token": "<pad>", "unknown_token": "<unk>", "end_token": "$"},
        ),
    ],
)
def test_start_and_end_ids(cls, corpus, specials):
    tokenizer = cls.from_corpus(corpus, **specials)
    for token, id in (
        (tokenizer.start_token, tokenizer.start_id),
        (tokenizer.end_token, tokenizer.end_id),
    ):
        if token is None:
            assert id is None
        else:
            assert isinstance(id, int) and id == tokenizer.token_to_id(token)
            assert tokenizer.id_to_token(id) == token
    if tokenizer.start_token is not None:
        assert tokenizer.tokenize("a", add_start=True)[0] == tokenizer.start_id
    if tokenizer.end_token is not None:
        assert tokenizer.tokenize("a", add_end=True)[-1] == tokenizer.end_id


def test_start_and_end_ids_are_absent_without_the_tokens():
    word = WordTokenizer.from_corpus(["a b"], start_token=None, end_token=None)
    assert word.start_id is None and word.end_id is None
    character = CharacterTokenizer.from_corpus(["ab"])  # no special tokens
    assert character.start_id is None and character.end_id is None
    assert character.padding_id is None
    # Read-only, as `padding_id`.
    with pytest.raises(AttributeError):
        word.start_id = 3
    with pytest.raises(ValueError, match="no vocabulary yet"):
        WordTokenizer().start_id


def test_min_frequency_and_max_size():
    corpus = ["a a a b b c"]
    assert WordTokenizer.from_corpus(corpus, min_frequency=2).get_vocabulary()[5:] == [
        "a",
        "b",
    ]
    assert WordTokenizer.from_corpus(corpus, max_size=6).get_vocabulary()[5:] == ["a"]
    with pytest.raises(ValueError, match="`max_size`"):
        WordTokenizer.from_corpus(corpus, max_size=2)
    for argument, value in (("min_frequency", 0), ("max_size", 7.5)):
        with pytest.raises(ValueError, match=f"`{argument}` must be a positive"):
            WordTokenizer.from_corpus(corpus, **{argument: value})
    # One string is not a corpus: its characters would become the vocabulary.
    with pytest.raises(ValueError, match="`texts` must be an iterable of strings"):
        WordTokenizer.from_corpus("a a a b b c")


def test_batches_pad_and_cut():
    tokenizer = WordTokenizer.from_corpus(["x y z"])
    batch = tokenizer.tokenize(["x y z", "z"], add_end=True, sequence_length=3)
    assert batch.dtype == np.int32 and batch.shape == (2, 3)
    np.testing.assert_array_equal(batch[1], [tokenizer.token_to_id("z"), 3, 0])
    assert tokenizer.detokenize(batch) == ["x y z", "z"]
    one = tokenizer.tokenize("z", add_end=True, sequence_length=3)
    assert one.dtype == np.int32
    np.testing.assert_array_equal(one, batch[1])
    for id in (True, 1.0):
        with pytest.raises(ValueError, match="`id` must be an integer token id"):
            tokenizer.id_to_token(id)


def test_punctuation_split_and_lowercase():
    tokenizer = WordTokenizer.from_corpus(
        ["Two dogs, running."], split_on="punctuation", lowercase=True
    )
    assert (
        tokenizer.detokenize(tokenizer.tokenize("Dogs running!"))
        == "dogs running <unk>"
    )


def test_unknown_without_unknown_token_raises():
    tokenizer = WordTokenizer.from_corpus(["a b"], unknown_token=None)
    with pytest.raises(ValueError, match="'c' is not in the vocabulary"):
        tokenizer.tokenize("a c")
    with pytest.raises(ValueError, match="no vocabulary yet"):
        WordTokenizer().tokenize("a")
    with pytest.raises(ValueError, match=r"`id` must be in \[0, 6\)"):
        tokenizer.detokenize([1, 99])


def test_characters_round_trip_with_newlines():
    text = datasets.get("tinyshakespeare").text("train")
    tokenizer = CharacterTokenizer.from_corpus([text])
    assert tokenizer.vocabulary_size() == 65
    sample = "First Citizen:\nBefore we proceed"
    assert tokenizer.detokenize(tokenizer.tokenize(sample)) == sample
    with pytest.raises(ValueError, match="'é' is not in the vocabulary"):
        tokenizer.tokenize("é")
    with_unknown = CharacterTokenizer.from_corpus(["ab"], unknown_token="<unk>")
    assert with_unknown.tokenize("ac") == [1, 0]


@pytest.mark.parametrize(
    "cls, corpus", [(WordTokenizer, ["a b c"]), (CharacterTokenizer, ["ab\nc"])]
)
def test_saves_and_loads_as_assets(cls, corpus, tmp_path):
    tokenizer = cls.from_corpus(corpus)
    tokenizer.save_assets(tmp_path)
    config = keras.saving.serialize_keras_object(tokenizer)
    restored = keras.saving.deserialize_keras_object(config)
    restored.load_assets(tmp_path)
    assert type(restored) is cls
    assert restored.get_vocabulary() == tokenizer.get_vocabulary()
    assert restored.get_config() == tokenizer.get_config()
    with pytest.raises(FileNotFoundError, match="vocabulary.json"):
        cls().load_assets(tmp_path / "missing")
