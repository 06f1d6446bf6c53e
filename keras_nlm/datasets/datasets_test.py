import dataclasses
import gzip
import os
import pathlib
import re
import shutil
import zipfile

import pytest

from keras_nlm import datasets, files
from keras_nlm.testing import count_case, deadline, run_cli

MIRROR = pathlib.Path(os.environ["KERAS_NLM_DATA"])


def test_ptb_counts():
    ptb = datasets.get("ptb")
    sizes = {split: len(ptb.tokens(split)) for split in datasets.SPLITS}
    assert sizes == {"train": 929_589, "validation": 73_760, "test": 82_430}
    train = ptb.tokens("train")
    assert len(set(train)) == 10_000 and "<unk>" in train
    assert train.count("<eos>") == len(ptb.lines("train")) == 42_068
    assert set(ptb.tokens("test")) <= set(train)


def test_wikitext2_counts():
    wikitext = datasets.get("wikitext2")
    sizes = {split: len(wikitext.tokens(split)) for split in datasets.SPLITS}
    assert sizes == {"train": 2_088_628, "validation": 217_646, "test": 245_569}
    assert len(set(wikitext.tokens("train"))) == 33_278


def test_character_corpora_cut_90_5_5():
    shakespeare = datasets.get("tinyshakespeare")
    parts = [shakespeare.text(split) for split in datasets.SPLITS]
    assert sum(map(len, parts)) == 1_115_394
    assert len(parts[0]) == int(1_115_394 * 0.9)
    assert parts[0].startswith("First Citizen:")
    assert len(set("".join(parts))) == 65


def test_parallel_corpora():
    multi30k = datasets.get("multi30k")
    test = multi30k.pairs("test", source="de", target="en")
    assert len(test) == 1_000 and len(multi30k.pairs("train")) == 29_000
    assert all(de and en for de, en in test)
    fra_eng = datasets.get("fra_eng")
    splits = [fra_eng.pairs(split) for split in datasets.SPLITS]
    assert sum(map(len, splits)) == 167_130
    assert ("Go.", "Va !") in {pair for split in splits for pair in split}
    french = [f for split in splits for _, f in split]
    assert not any("\u202f" in f or "\xa0" in f for f in french)
    # The split is seeded: the same pairs in every process, on any machine.
    assert [len(split) for split in splits] == [150_417, 8_356, 8_357]
    assert splits[2][0] == ("I'll be back late tonight.", "Je rentrerai tard ce soir.")


def test_bad_names_list_the_known_ones():
    with pytest.raises(ValueError, match="known corpora: .*ptb"):
        datasets.get("ptb2")
    with pytest.raises(ValueError, match="`split` must be one of"):
        datasets.get("ptb").tokens("dev")
    with pytest.raises(ValueError, match="`source` must be one of en, de, fr"):
        datasets.get("multi30k").pairs("test", source="cs", target="en")


@pytest.fixture
def mirror_copy(tmp_path):
    """A writable mirror holding a copy of The Time Machine."""
    (tmp_path / "timemachine").mkdir()
    shutil.copy(MIRROR / "timemachine" / "timemachine.txt", tmp_path / "timemachine")
    return tmp_path


def test_a_corrupted_file_is_refused_with_both_hashes(mirror_copy):
    count_case("broken file", 2)  # a changed byte, then a truncated file
    corpus = datasets.get("timemachine")
    assert corpus.text("train", data_dir=mirror_copy)
    path = mirror_copy / "timemachine" / "timemachine.txt"
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError) as error:
        corpus.text("train", data_dir=mirror_copy)
    message = str(error.value)
    assert corpus.split_files["all"].sha256 in message
    assert files.sha256_of(path) in message
    path.write_bytes(bytes(data[:1000]))  # truncated
    with pytest.raises(ValueError, match="Refusing"):
        corpus.text("train", data_dir=mirror_copy)


def test_a_file_missing_from_the_mirror_says_how_to_provide_it(tmp_path):
    with pytest.raises(
        FileNotFoundError, match="timemachine/timemachine.txt.*KERAS_NLM_DATA"
    ):
        datasets.get("timemachine").text("train", data_dir=tmp_path)


@pytest.fixture
def no_mirror(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.MIRROR_VARIABLE)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path


def _cached(file, no_mirror):
    return no_mirror / "keras_home" / "datasets" / "keras_nlm" / file.path


@pytest.mark.parametrize("packing", ["plain", "gunzip", "zip"])
def test_download_into_the_keras_cache(no_mirror, packing):
    original = datasets.get("timemachine").split_files["all"]
    source = MIRROR / original.path
    origin = no_mirror / "origin" / "timemachine.txt"
    origin.parent.mkdir()
    member = None
    if packing == "plain":
        shutil.copy(source, origin)
    elif packing == "gunzip":
        origin = origin.with_suffix(".txt.gz")
        origin.write_bytes(gzip.compress(source.read_bytes()))
        member = "gunzip"
    else:
        origin = origin.with_suffix(".zip")
        with zipfile.ZipFile(origin, "w") as archive:
            archive.write(source, "timemachine/timemachine.txt")
        member = "timemachine/timemachine.txt"
    file = dataclasses.replace(original, origin=origin.as_uri(), member=member)
    path = datasets.fetch(file)
    assert path == _cached(file, no_mirror)
    assert files.sha256_of(path) == original.sha256
    origin.unlink()  # the second time it comes from the cache
    assert datasets.fetch(file) == path


def test_a_bad_download_is_refused_and_not_kept(no_mirror):
    count_case("broken file")
    original = datasets.get("timemachine").split_files["all"]
    origin = no_mirror / "evil.txt"
    origin.write_text("not the time machine")
    file = dataclasses.replace(original, origin=origin.as_uri())
    with pytest.raises(ValueError, match=original.sha256):
        datasets.fetch(file)
    assert not _cached(file, no_mirror).exists()


def test_offline_without_mirror_or_cache(no_mirror):
    file = dataclasses.replace(
        datasets.get("ptb").split_files["test"],
        origin=(no_mirror / "nowhere" / "ptb.test.txt").as_uri(),
    )
    with pytest.raises(
        FileNotFoundError,
        match=r"ptb/ptb.test.txt.*could not be downloaded.*KERAS_NLM_DATA",
    ):
        datasets.fetch(file)


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero", "directory"])
def test_a_mirror_file_that_is_not_a_regular_file_is_refused_at_once(tmp_path, kind):
    count_case("broken file")
    path = tmp_path / "timemachine" / "timemachine.txt"
    path.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(path)  # opening it would wait for a writer forever
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to("/dev/zero")  # reading it would never end
    with deadline(30):
        result = run_cli("data", "timemachine", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    expected = "a directory" if kind == "directory" else "not a regular file"
    assert f"keras-nlm: error: Refusing {path}: it is {expected}" in result.stderr


def test_a_file_of_the_wrong_size_is_refused_before_it_is_read(mirror_copy):
    count_case("broken file")
    for corpus in datasets.CORPORA.values():
        for file in corpus.files:
            assert file.size == (MIRROR / file.path).stat().st_size, file.path
    path = mirror_copy / "timemachine" / "timemachine.txt"
    os.truncate(path, 1 << 40)  # a sparse terabyte: hashing it takes hours
    with deadline(30), pytest.raises(ValueError, match=r"1,099,511,627,776 bytes"):
        datasets.get("timemachine").text("train", data_dir=mirror_copy)


def test_a_mirror_that_is_a_file_is_named(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.write_text("not a folder")
    message = f"data mirror {re.escape(str(mirror))} .* is not a folder"
    with pytest.raises(ValueError, match=message):
        datasets.get("ptb").tokens("test", data_dir=mirror)
