import tensorflow_datasets as tfds

from keras_nlm import datasets
from keras_nlm.datasets import tfds_builders


def test_builders_are_registered_by_corpus():
    assert {b.name for b in tfds_builders.BUILDERS.values()} == {
        f"keras_nlm_{name}" for name in datasets.CORPORA
    }


def test_tfds_gives_the_same_text_as_the_loader(tmp_path):
    lines = tfds.load("keras_nlm_timemachine", split="validation", data_dir=tmp_path)
    text = "".join(sorted(e["text"].numpy().decode() for e in lines))
    expected = datasets.get("timemachine").text("validation")
    assert text == "".join(sorted(expected.splitlines(True)))
    pairs = tfds.load("keras_nlm_multi30k", split="test", data_dir=tmp_path)
    german = sorted(e["de"].numpy().decode() for e in pairs)
    loader = datasets.get("multi30k").pairs("test", source="de", target="en")
    assert german == sorted(de for de, _ in loader)
