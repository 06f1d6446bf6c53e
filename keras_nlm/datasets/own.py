"""Corpora made from one's own files, as first-class as the built-in ones.

>>> from keras_nlm import datasets
>>> notes = datasets.from_files("notes.txt", level="character")   # cut 90/5/5
>>> pairs = datasets.from_files("train.tsv", "valid.tsv", "test.tsv", level="pairs")
>>> pairs = datasets.from_files(("train.de", "train.en"), level="pairs")

A file is checked once, when the corpus is made: it exists, is a regular file,
is UTF-8 text and holds something (pairs: every line a source and a target);
the corpus records each file's sha256 and size (`corpus.config`, what a
recipe stores), and every later read verifies them, so a run never trains on
one version of a file and is scored on another.
"""

import os
import pathlib

from keras_nlm.datasets.corpora import (
    SPLITS,
    CharacterCorpus,
    ParallelCorpus,
    WordCorpus,
    entry_files,
)
from keras_nlm.datasets.registry import CorpusFile
from keras_nlm.files import open_regular, sha256_of_file

LEVELS = {"word": WordCorpus, "character": CharacterCorpus, "pairs": ParallelCorpus}


def _own_file(path, argument):
    """A `CorpusFile` (origin `None`) of the file at `path`, checked."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"`{argument}` must be a file's path; got {path!r}.")
    path = pathlib.Path(path).expanduser().absolute()
    if not path.exists():
        raise FileNotFoundError(f"`{argument}`: {path} does not exist.")
    with open_regular(path) as file:
        size = os.fstat(file.fileno()).st_size
        sha256 = sha256_of_file(file)
    if not size:
        raise ValueError(f"`{argument}`: {path} is empty.")
    return CorpusFile(str(path), sha256, origin=None, size=size)


def _split_entry(value, split, level):
    argument = f"{split} (--{split}-file)"
    if level == "pairs" and isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"`{argument}` must be one TSV file or two aligned files (source, "
                f"target); got {len(value)} files."
            )
        return {
            role: _own_file(path, f"{argument} {role}")
            for role, path in zip(("source", "target"), value)
        }
    return _own_file(value, argument)


def _entry_config(entry):
    if isinstance(entry, dict):
        return {role: _entry_config(file) for role, file in entry.items()}
    return {"path": entry.path, "sha256": entry.sha256, "size": entry.size}


def _entry_of(config):
    if "path" not in config:
        return {role: _entry_of(file) for role, file in config.items()}
    return CorpusFile(
        config["path"], config["sha256"], origin=None, size=config["size"]
    )


def from_config(config):
    """The corpus that `corpus.config` describes (a recipe's `dataset`), its
    files not read: each read verifies them."""
    try:
        level = config["level"]
        split_files = {s: _entry_of(e) for s, e in config["files"].items()}
        name = config["name"]
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            "A dataset given as a dict must be a corpus's `config` ({'level', "
            f"'name', 'files'}}, see `datasets.from_files`); got {config!r:.200} "
            f"({type(error).__name__}: {error})."
        ) from None
    if level not in LEVELS:
        raise ValueError(
            f"A corpus's `level` must be one of {', '.join(LEVELS)}; got {level!r}."
        )
    paths = ", ".join(file.path for file in entry_files(split_files))
    return LEVELS[level](
        name=name,
        description=f"Your own {level}{'' if level == 'pairs' else '-level'} "
        f"corpus: {paths}.",
        split_files=split_files,
        config=config,
    )


def from_files(train=None, validation=None, test=None, level="word", name=None):
    """A corpus made from one's own files.

    Give one file per split, or only `train`: its text is then cut into
    90% / 5% / 5% for training, validation and test (by position; pairs by a
    seeded shuffle). A recipe trains on all three splits; `evaluate` and
    `ngram` need only the ones they read.

    Args:
        train, validation, test: each a path; for `level="pairs"`, a TSV
            file (source, a tab, target on each line) or a `(source, target)`
            pair of aligned files, one sentence per line.
        level: `"word"` (words separated by spaces, each line closed by
            `<eos>`, as PTB), `"character"`, or `"pairs"` (sentence pairs for
            a `Seq2Seq`; its languages are `"source"` and `"target"`).
        name: the corpus's name (default: the first file's name, without its
            extension).

    Raises a clear error, naming the argument and the file, for a missing,
    empty or not UTF-8 file, a pair with a missing side, aligned files of
    different lengths, or a split that the cut would leave empty.
    """
    if level not in LEVELS:
        raise ValueError(f"`level` must be one of {', '.join(LEVELS)}; got {level!r}.")
    given = {
        split: value
        for split, value in zip(SPLITS, (train, validation, test))
        if value is not None
    }
    if not given:
        raise ValueError("Give at least one file: `train`, `validation` or `test`.")
    split_files = {split: _split_entry(v, split, level) for split, v in given.items()}
    if list(split_files) == ["train"]:
        split_files = {"all": split_files["train"]}
    first = next(entry_files(split_files))
    name = name or pathlib.Path(first.path).stem
    config = {
        "level": level,
        "name": name,
        "files": {split: _entry_config(e) for split, e in split_files.items()},
    }
    corpus = from_config(config)
    for split in given if "all" not in split_files else SPLITS:
        _check_contents(corpus, split)
    return corpus


def _check_contents(corpus, split):
    """Reads `split` once: decoding, pairs and emptiness errors come now,
    before anything is trained or written."""
    if isinstance(corpus, ParallelCorpus):
        items = corpus.rows(split)
    elif isinstance(corpus, WordCorpus):
        items = [t for line in corpus.lines(split) for t in line.split()]
    else:
        items = corpus.text(split)
    if not items:
        entry, cut = corpus._entry(split)
        path = next(entry_files({split: entry})).path
        raise ValueError(
            f"{path} leaves the {split} split empty"
            + (": the file is too short to cut 90/5/5." if cut else ".")
        )
