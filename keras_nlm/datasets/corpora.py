"""The standard corpora of the course, read from verified files.

Splits are named as in `tensorflow-datasets`: `"train"`, `"validation"`,
`"test"`. Three kinds of corpus:

- `WordCorpus` (PTB, WikiText-2): one file per split, already tokenized;
  `tokens(split)` is the split's words with `"<eos>"` after every line, the
  stream that every language model of the project is trained and scored on.
- `CharacterCorpus` (Tiny Shakespeare, The Time Machine): one text, cut into
  90% / 5% / 5% by position; `text(split)`.
- `ParallelCorpus` (Tatoeba English-French, Multi30k): aligned sentences;
  `pairs(split, source, target)`.
"""

import dataclasses
import random

from keras_nlm.datasets.registry import CorpusFile, fetch

EOS = "<eos>"
SPLITS = ("train", "validation", "test")


def _check_split(corpus, split):
    if split not in SPLITS:
        raise ValueError(
            f"`split` must be one of {', '.join(SPLITS)} for {corpus.name}; "
            f"got {split!r}."
        )


@dataclasses.dataclass(frozen=True)
class WordCorpus:
    name: str
    description: str
    split_files: dict  # split -> CorpusFile

    @property
    def files(self):
        return list(self.split_files.values())

    def lines(self, split="train", data_dir=None):
        _check_split(self, split)
        path = fetch(self.split_files[split], data_dir)
        with open(path, encoding="utf-8") as file:
            return file.read().splitlines()

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
class CharacterCorpus:
    name: str
    description: str
    file: CorpusFile
    # Where validation and test start, as fractions of the text.
    boundaries: tuple = (0.9, 0.95)

    @property
    def files(self):
        return [self.file]

    def text(self, split="train", data_dir=None):
        _check_split(self, split)
        with open(fetch(self.file, data_dir), encoding="utf-8") as file:
            text = file.read()
        cuts = [0] + [int(len(text) * b) for b in self.boundaries] + [len(text)]
        i = SPLITS.index(split)
        return text[cuts[i] : cuts[i + 1]]

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
class ParallelCorpus:
    name: str
    description: str
    languages: tuple
    # split -> {language: CorpusFile} (one file per language), or
    # "all" -> CorpusFile of tab-separated pairs, cut by a seeded shuffle.
    split_files: dict
    boundaries: tuple = (0.9, 0.95)
    seed: int = 1234

    @property
    def files(self):
        files = []
        for entry in self.split_files.values():
            files += list(entry.values()) if isinstance(entry, dict) else [entry]
        return files

    def _check_languages(self, source, target):
        for argument, language in (("source", source), ("target", target)):
            if language not in self.languages:
                raise ValueError(
                    f"`{argument}` must be one of {', '.join(self.languages)} "
                    f"for {self.name}; got {language!r}."
                )
        if source == target:
            raise ValueError("`source` and `target` must be different languages.")

    def rows(self, split="train", data_dir=None):
        """The split's aligned sentences, one `{language: sentence}` each."""
        _check_split(self, split)
        if "all" not in self.split_files:
            columns = []
            for language in self.languages:
                path = fetch(self.split_files[split][language], data_dir)
                with open(path, encoding="utf-8") as file:
                    columns.append([_clean(s) for s in file.read().splitlines()])
            return [dict(zip(self.languages, row)) for row in zip(*columns)]
        with open(fetch(self.split_files["all"], data_dir), encoding="utf-8") as file:
            # Two columns, or three with Tatoeba's attribution in newer files.
            rows = [
                dict(zip(self.languages, map(_clean, line.split("\t")[:2])))
                for line in file.read().splitlines()
                if line
            ]
        order = list(range(len(rows)))
        random.Random(self.seed).shuffle(order)  # the file is sorted by length
        cuts = [0] + [int(len(order) * b) for b in self.boundaries] + [len(order)]
        i = SPLITS.index(split)
        return [rows[j] for j in order[cuts[i] : cuts[i + 1]]]

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
