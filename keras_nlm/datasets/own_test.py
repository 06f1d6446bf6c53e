import os

import pytest

from keras_nlm import datasets, training
from keras_nlm.testing import count_case


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_one_file_is_cut_90_5_5_and_split_files_are_read_whole(tmp_path):
    lines = [f"line {i} of my corpus" for i in range(100)]
    whole = _write(tmp_path / "mine.txt", "\n".join(lines) + "\n")
    corpus = datasets.from_files(whole)
    assert corpus.name == "mine"
    assert corpus.lines("train") == lines[:90]
    assert corpus.lines("validation") == lines[90:95]
    assert corpus.lines("test") == lines[95:]
    assert corpus.tokens("test")[:6] == ["line", "95", "of", "my", "corpus", "<eos>"]

    valid = _write(tmp_path / "valid.txt", "a b\n")
    split = datasets.from_files(whole, valid, whole)
    assert split.lines("train") == split.lines("test") == lines
    assert split.lines("validation") == ["a b"]

    characters = datasets.from_files(whole, level="character")
    text = whole.read_text()
    assert (
        characters.text("train")
        + characters.text("validation")
        + characters.text("test")
        == text
    )
    assert len(characters.text("train")) == int(len(text) * 0.9)


def test_pairs_from_a_tsv_file_or_two_aligned_files(tmp_path):
    tsv = _write(tmp_path / "pairs.tsv", "jump twice\tJUMP JUMP\n\nwalk\tWALK\n")
    source = _write(tmp_path / "train.src", "jump twice\nwalk\n")
    target = _write(tmp_path / "train.tgt", "JUMP JUMP\nWALK\n")
    from_tsv = datasets.from_files(tsv, tsv, tsv, level="pairs")
    from_two = datasets.from_files((source, target), tsv, tsv, level="pairs")
    expected = [("jump twice", "JUMP JUMP"), ("walk", "WALK")]
    assert from_tsv.pairs("train") == from_two.pairs("train") == expected
    assert from_tsv.languages == ("source", "target")
    assert from_two.pairs("test", "target", "source") == [(t, s) for s, t in expected]


def test_a_corpus_config_names_it_again_and_a_changed_file_is_refused(tmp_path):
    path = _write(tmp_path / "mine.txt", "one two three\n" * 40)
    corpus = datasets.from_files(path)
    again = datasets.get(corpus.config)
    assert again.tokens("train") == corpus.tokens("train")
    assert corpus.config["files"]["all"]["path"] == str(path)
    assert corpus.options() == f" --train-file {path}"
    assert datasets.get("ptb").options() == " --dataset ptb"
    _write(path, "one two four\n" * 40)
    with pytest.raises(ValueError, match="changed since the corpus was made"):
        again.tokens("train")


@pytest.mark.parametrize(
    "case",
    ["missing", "empty", "not utf-8", "half a pair", "unaligned", "too short", "fifo"],
)
def test_bad_files_get_a_clear_error_naming_the_file(tmp_path, case):
    count_case("broken file")
    path = tmp_path / "bad.txt"
    level, train = "word", path
    if case == "missing":
        error, message = FileNotFoundError, rf"`train \(--train-file\)`: {path} does"
    elif case == "empty":
        _write(path, "")
        error, message = ValueError, rf"`train \(--train-file\)`: {path} is empty"
    elif case == "not utf-8":
        _write(path, "première ligne\nseconde ligne\n", "latin-1")
        error, message = ValueError, rf"{path} is not UTF-8 text: line 1 .* 0xe8"
    elif case == "half a pair":
        _write(path, "jump\tJUMP\nwalk\n")
        level = "pairs"
        error, message = ValueError, rf"Line 2 of {path} is not a pair"
    elif case == "unaligned":
        _write(path, "jump\nwalk\n")
        other = _write(tmp_path / "other.txt", "JUMP\n")
        level, train = "pairs", (path, other)
        error, message = ValueError, rf"as many lines; got {path}: 2, {other}: 1"
    elif case == "too short":
        _write(path, "just one line\n")
        error, message = (
            ValueError,
            rf"{path} leaves the train split empty: the file is too short",
        )
    else:
        os.mkfifo(path)
        error, message = ValueError, rf"Refusing {path}: it is not a regular file"
    with pytest.raises(error, match=message):
        datasets.from_files(train, level=level)


def test_a_recipe_on_ones_files_takes_the_corpus_of_its_kind(tmp_path):
    text = _write(tmp_path / "notes.txt", "the cat sat on the mat\n" * 40)
    pairs = _write(tmp_path / "pairs.tsv", "jump\tJUMP\n" * 40)
    words = training.get("lstm_ptb_small").on_files(text)
    assert words.dataset["level"] == "word" and words.level() == "word"
    characters = training.get("char_lstm_timemachine").on_files(text)
    assert isinstance(characters.corpus(), datasets.corpora.CharacterCorpus)
    translation = training.get("seq2seq_multi30k_de_en").on_files(pairs)
    assert translation.languages == ("source", "target")
    assert translation.bucket_widths == "auto"
    assert translation.corpus().pairs("train")[0] == ("jump", "JUMP")
    with pytest.raises(ValueError, match="trains on a ParallelCorpus; its `dataset`"):
        translation.replace(dataset=characters.dataset).corpus()
    with pytest.raises(ValueError, match="notes. has no validation split"):
        training.train(
            training.get("lstm_ptb_small").replace(
                dataset=datasets.from_files(text, test=text).config
            ),
            tmp_path / "run",
        )
    assert not (tmp_path / "run").exists()
