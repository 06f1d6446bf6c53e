"""`tensorflow-datasets` builders for the corpora, for `tf.data` users.

Importing this module registers one builder per corpus, named
`keras_nlm_<corpus>` (e.g. `tfds.load("keras_nlm_ptb", split="test")`). They
prepare from the same sha256-verified files as `keras_nlm.datasets` (mirror,
Keras cache or origin), not from a download of their own. Examples:

- word and character corpora: one line each, `{"text": line}` (character
  corpora keep the newline, so the lines join back into the split's text);
- parallel corpora: one aligned sentence per language, `{"en": ..., "fr": ...}`.
"""

import tensorflow_datasets as tfds

from keras_nlm.datasets.catalogue import CORPORA
from keras_nlm.datasets.corpora import SPLITS, CharacterCorpus, ParallelCorpus


class _CorpusBuilder(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")
    corpus = None  # set by each subclass

    def _info(self):
        if isinstance(self.corpus, ParallelCorpus):
            features = {
                language: tfds.features.Text() for language in self.corpus.languages
            }
        else:
            features = {"text": tfds.features.Text()}
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.corpus.description,
            features=tfds.features.FeaturesDict(features),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # files come from keras_nlm.datasets.fetch, verified
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split):
        if isinstance(self.corpus, ParallelCorpus):
            rows = self.corpus.rows(split)
        elif isinstance(self.corpus, CharacterCorpus):
            rows = [{"text": line} for line in self.corpus.text(split).splitlines(True)]
        else:
            rows = [{"text": line} for line in self.corpus.lines(split)]
        yield from enumerate(rows)


def _builder(corpus):
    # tfds names a builder after its class: KerasNlmPtb -> "keras_nlm_ptb".
    name = "KerasNlm" + "".join(part.capitalize() for part in corpus.name.split("_"))
    return type(name, (_CorpusBuilder,), {"corpus": corpus, "__module__": __name__})


BUILDERS = {name: _builder(corpus) for name, corpus in CORPORA.items()}
