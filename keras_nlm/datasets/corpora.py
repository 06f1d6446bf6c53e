"""Corpora read from verified files: the course's standard ones, or one's own.

Splits are named as in `tensorflow-datasets`: `"train"`, `"validation"`,
`"test"`; a corpus has one file per split, or one file cut into 90% / 5% / 5%
(by position; pairs by a seeded shuffle). Three kinds of corpus:

- `WordCorpus` (PTB, WikiText-2): already tokenized, words split by spaces;
  `tokens(split)` is the split's words with `"<eos>"` after every line, the
  stream that every language model of the project is trained and scored on.
- `CharacterCorpus` (Tiny Shakespeare, The Time Machine): `text(split)`.
- `ParallelCorpus` (Tatoeba English-French, Multi30k): aligned sentences, from
  a TSV file or one file per language; `pairs(split, source, target)`.
"""

import dataclasses
import random
import shlex

from keras_nlm.datasets.registry import fetch

EOS = "<eos>"
SPLITS = ("train", "validation", "test")


def _check_split(corpus, split):
    if split not in SPLITS:
        raise ValueError(
            f"`split` must be one of {', '.join(SPLITS)} for {corpus.name}; "
            f"got {split!r}."
        )


def _cut(items, boundaries, split):
    """The `split`'s share of `items`, cut by position at `boundaries`."""
    cuts = [0] + [int(len(items) * b) for b in boundaries] + [len(items)]
    i = SPLITS.index(split)
    return items[cuts[i] : cuts[i + 1]]


def read_text(file, data_dir=None):
    """The verified `file` (a `CorpusFile`) decoded as UTF-8; bytes that are
    not UTF-8 are refused, naming the file and the line."""
    path = fetch(file, data_dir)
    with open(path, "rb") as opened:
        data = opened.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path} is not UTF-8 text: line {line} holds the byte "
            f"{data[error.start]:#04x}. Save it as UTF-8."
        ) from None


def entry_files(split_files):
    """The files of a corpus's `split_files`, in order: each split's file, or
    its languages' aligned files."""
    for entry in split_files.values():
        yield from entry.values() if isinstance(entry, dict) else [entry]


@dataclasses.dataclass(frozen=True)
class _Corpus:
    """What every corpus has: its files, by split, and where a file holding
    every split (`"all"`) is cut.

    `split_files` maps a split to its file (for a `ParallelCorpus`, a TSV file
    or `{language: file}` of aligned files), or `"all"` to one file whose
    splits are cut at `boundaries` (fractions: where validation and test
    start). `config` is how a recipe names a corpus made from one's own files
    (see `keras_nlm.datasets.from_files`); `None` for the built-in ones,
    named by `name`.
    """

    name: str
    description: str
    split_files: dict
    boundaries: tuple = (0.9, 0.95)
    config: dict = None

    @property
    def files(self):
        return list(entry_files(self.split_files))

    def options(self, train=False):
        """The command line's options for this corpus: `" --dataset NAME"`,
        or one's own files (`" --train-file F ..."`); `train`: for `keras-nlm
        train`, which takes no `--dataset` (a recipe names its corpus)."""
        if self.config is None:
            return "" if train else f" --dataset {self.name}"
        text = ""
        for split, entry in self.split_files.items():
            files = entry_files({split: entry})
            paths = " ".join(shlex.quote(file.path) for file in files)
            text += f" --{'train' if split == 'all' else split}-file {paths}"
        return text

    def has_split(self, split):
        _check_split(self, split)
        return split in self.split_files or "all" in self.split_files

    def _entry(self, split):
        """`(file entry, cut)`: the split's own file, or the one file to cut."""
        _check_split(self, split)
        if split in self.split_files:
            return self.split_files[split], False
        if "all" in self.split_files:
            return self.split_files["all"], True
        raise ValueError(
            f"{self.name} has no {split} split: it was made from "
            f"{', '.join(sorted(self.split_files))} files only (give a "
            f"`{split}` file, `--{split}-file`)."
        )


@dataclasses.dataclass(frozen=True)
class WordCorpus(_Corpus):
    def lines(self, split="train", data_dir=None):
        entry, cut = self._entry(split)
        lines = read_text(entry, data_dir).splitlines()
        return _cut(lines, self.boundaries, split) if cut else lines

    def tokens(self, split="train", data_dir=None):
        """The split as one token stream, `<eos>` closing every line."""
        return [t for line in self.lines(split, data_dir) for t in line.split() + [EOS]]

    def statistics(self, data_dir=None):
        stats = {}
        for split in SPLITS:
            tokens = self.tokens(split, data_dir)
            stats[split] = {"tokens": len(tokens), "vocabulary": len(set(tokens))}
        return stats


@dataclasses.dataclass(frozen=True)
class CharacterCorpus(_Corpus):
    def text(self, split="train", data_dir=None):
        entry, cut = self._entry(split)
        text = read_text(entry, data_dir)
        return _cut(text, self.boundaries, split) if cut else text

    def statistics(self, data_dir=None):
        stats = {}
        for split in SPLITS:
            text = self.text(split, data_dir)
            stats[split] = {"characters": len(text), "vocabulary": len(set(text))}
        return stats


def _clean(sentence):
    # Tatoeba's French puts (narrow) no-break spaces before punctuation.
    return sentence.replace("\u202f", " ").replace("\xa0", " ").strip()


@dataclasses.dataclass(frozen=True)
class ParallelCorpus(_Corpus):
    # The languages, in the order of a TSV file's columns. A split cut from
    # one file (`"all"`) is drawn by a seeded shuffle: such files are often
    # sorted (Tatoeba's by length).
    languages: tuple = ("source", "target")
    seed: int = 1234

    def _check_languages(self, source, target):
        for argument, language in (("source", source), ("target", target)):
            if language not in self.languages:
                raise ValueError(
                    f"`{argument}` must be one of {', '.join(self.languages)} "
                    f"for {self.name}; got {language!r}."
                )
        if source == target:
            raise ValueError("`source` and `target` must be different languages.")

    def _aligned(self, files, data_dir):
        columns = []
        for language, file in files.items():
            lines = read_text(file, data_dir).splitlines()
            columns.append([_clean(s) for s in lines])
        if len({len(column) for column in columns}) > 1:
            counts = ", ".join(
                f"{f.path}: {len(c)}" for f, c in zip(files.values(), columns)
            )
            raise ValueError(f"Aligned files must have as many lines; got {counts}.")
        rows = [dict(zip(files, row)) for row in zip(*columns)]
        for number, row in enumerate(rows, 1):
            if any(row.values()) and not all(row.values()):
                empty = [files[k].path for k, v in row.items() if not v]
                raise ValueError(
                    f"Line {number} of {', '.join(empty)} is empty while its "
                    "pair's other side is not: every pair needs both sides."
                )
        return [row for row in rows if any(row.values())]

    def _tsv(self, file, data_dir):
        rows = []
        for number, line in enumerate(read_text(file, data_dir).splitlines(), 1):
            if not line.strip():
                continue
            # Two columns, or three with Tatoeba's attribution in newer files.
            sides = list(map(_clean, line.split("\t")[:2]))
            if len(sides) < 2 or not all(sides):
                raise ValueError(
                    f"Line {number} of {file.path} is not a pair: a TSV line "
                    "holds the source, a tab and the target, both non-empty."
                )
            rows.append(dict(zip(self.languages, sides)))
        return rows

    def rows(self, split="train", data_dir=None):
        """The split's aligned sentences, one `{language: sentence}` each."""
        entry, cut = self._entry(split)
        if isinstance(entry, dict):
            rows = self._aligned(entry, data_dir)
        else:
            rows = self._tsv(entry, data_dir)
        if not cut:
            return rows
        order = list(range(len(rows)))
        random.Random(self.seed).shuffle(order)
        return [rows[j] for j in _cut(order, self.boundaries, split)]

    def pairs(self, split="train", source=None, target=None, data_dir=None):
        """`(source sentence, target sentence)` pairs of a split."""
        source = source or self.languages[0]
        target = target or self.languages[1]
        self._check_languages(source, target)
        return [(row[source], row[target]) for row in self.rows(split, data_dir)]

    def statistics(self, data_dir=None):
        stats = {}
        for split in SPLITS:
            rows = self.rows(split, data_dir)
            stats[split] = {"pairs": len(rows)}
            for language in self.languages:
                words = sum(len(row[language].split()) for row in rows)
                stats[split][f"{language}_words"] = words
        return stats
