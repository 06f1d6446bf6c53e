"""The standard corpora, verified by sha256, from a mirror, the cache or their origin.

>>> from keras_nlm import datasets
>>> tokens = datasets.get("ptb").tokens("train")      # 929,589 tokens
>>> pairs = datasets.get("multi30k").pairs("test", source="de", target="en")
>>> notes = datasets.from_files("notes.txt", level="character")  # one's own
"""

from keras_nlm.datasets.catalogue import CORPORA, get
from keras_nlm.datasets.corpora import EOS, SPLITS
from keras_nlm.datasets.own import from_config, from_files
from keras_nlm.datasets.registry import MIRROR_VARIABLE, CorpusFile, fetch, verify

__all__ = [
    "CORPORA",
    "EOS",
    "MIRROR_VARIABLE",
    "SPLITS",
    "CorpusFile",
    "fetch",
    "from_config",
    "from_files",
    "get",
    "verify",
]
