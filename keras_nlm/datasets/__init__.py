"""The standard corpora, verified by sha256, from a mirror, the cache or their origin.

>>> from keras_nlm import datasets
>>> tokens = datasets.get("ptb").tokens("train")      # 929,589 tokens
>>> pairs = datasets.get("multi30k").pairs("test", source="de", target="en")
"""

from keras_nlm.datasets.catalogue import CORPORA, get
from keras_nlm.datasets.corpora import EOS, SPLITS
from keras_nlm.datasets.registry import MIRROR_VARIABLE, CorpusFile, fetch, verify

__all__ = [
    "CORPORA",
    "EOS",
    "MIRROR_VARIABLE",
    "SPLITS",
    "CorpusFile",
    "fetch",
    "get",
    "verify",
]
