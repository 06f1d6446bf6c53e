"""A model's attached tokenizers travel with it in a `.keras` file.

`Model.save_assets` / `load_assets` are the hooks Keras's `saving_lib`
calls on the model; these tests go through `model.save` and
`keras.saving.load_model` only, as a user would.
"""

import json
import os
import pathlib
import subprocess
import sys
import zipfile

import h5py
import keras
import numpy as np
import pytest

from keras_nlm.models import RNNLM, Seq2Seq
from keras_nlm.models.base import TOKENIZERS_FOLDER, Model
from keras_nlm.tokenizers import CharacterTokenizer, WordTokenizer

BACKENDS = ("tensorflow", "jax", "torch")
KERAS_FILES = {"config.json", "metadata.json", "model.weights.h5"}
PROMPT = "the cat"
SOURCE = "ein Mann, ein Hund."


def _language_model():
    # Settings other than the defaults, so that a lost setting shows.
    tokenizer = WordTokenizer.from_corpus(
        ["the cat sat on the mat", "the dog sat on the log", "a cat ran"],
        lowercase=True,
        start_token=None,
    )
    keras.utils.set_random_seed(3)
    model = RNNLM(tokenizer.vocabulary_size(), num_layers=1, hidden_dim=8)
    model(np.array([[1, 2, 3]]))
    model.tokenizer = tokenizer
    return model


def _seq2seq():
    source = WordTokenizer.from_corpus(
        ["ein Mann fährt Rad .", "ein Hund, eine Katze ."],
        split_on="punctuation",
        eos_token=None,
    )
    target = CharacterTokenizer.from_corpus(
        ["a man rides a bike.", "a dog, a cat."],
        padding_token="<pad>",
        start_token="<s>",
        end_token="</s>",
    )
    keras.utils.set_random_seed(4)
    model = Seq2Seq(
        source.vocabulary_size(),
        target.vocabulary_size(),
        cell="gru",
        num_layers=1,
        hidden_dim=8,
        embedding_dim=6,
        attention="luong",
    )
    model({"source": np.array([[3, 4, 5]]), "target": np.array([[1, 4, 5]])})
    model.source_tokenizer, model.target_tokenizer = source, target
    return model


def _outputs(model):
    """Greedy text outputs: what a user gets from the loaded model."""
    if isinstance(model, Seq2Seq):
        return model.translate([SOURCE, "eine Katze"], max_length=8)
    return model.generate([PROMPT, "a dog"], max_length=8)


def _assert_same_tokenizers(loaded, model):
    for role in model.tokenizer_roles:
        saved, restored = getattr(model, role), getattr(loaded, role, None)
        assert restored is not saved and type(restored) is type(saved), role
        assert restored.get_config() == saved.get_config(), role
        assert restored.get_vocabulary() == saved.get_vocabulary(), role


@pytest.mark.parametrize("make", [_language_model, _seq2seq], ids=["rnn_lm", "seq2seq"])
@pytest.mark.parametrize("zipped", [True, False], ids=["keras", "folder"])
def test_tokenizers_travel_with_the_model(tmp_path, make, zipped):
    model = make()
    expected = _outputs(model)
    path = tmp_path / ("model.keras" if zipped else "model")
    model.save(path, zipped=zipped)
    loaded = keras.saving.load_model(path)
    _assert_same_tokenizers(loaded, model)
    assert _outputs(loaded) == expected
    for saved, restored in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(saved, restored)
    if zipped:  # each tokenizer in its role's folder, nothing else added
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
        assert names - KERAS_FILES == {
            f"assets/{TOKENIZERS_FOLDER}/{role}/{name}"
            for role in model.tokenizer_roles
            for name in ("config.json", "assets/vocabulary.json")
        }


@pytest.mark.parametrize("zipped", [True, False], ids=["keras", "folder"])
def test_a_model_without_tokenizers_saves_as_before(tmp_path, zipped):
    model = _seq2seq()
    del model.source_tokenizer, model.target_tokenizer
    ids = [[3, 4, 5], [6]]
    expected = model.translate(ids, max_length=6, start_id=1, end_id=2)
    path = tmp_path / ("model.keras" if zipped else "model")
    model.save(path, zipped=zipped)
    if zipped:
        with zipfile.ZipFile(path) as archive:
            assert set(archive.namelist()) == KERAS_FILES
    else:  # Keras then calls `load_assets` with an empty folder
        assert os.listdir(path / "assets") == []
    loaded = keras.saving.load_model(path)
    assert getattr(loaded, "source_tokenizer", None) is None
    assert getattr(loaded, "target_tokenizer", None) is None
    assert loaded.translate(ids, max_length=6, start_id=1, end_id=2) == expected


def test_only_the_attached_tokenizers_are_saved(tmp_path):
    model = _seq2seq()
    del model.target_tokenizer
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.source_tokenizer.get_vocabulary() == (
        model.source_tokenizer.get_vocabulary()
    )
    assert getattr(loaded, "target_tokenizer", None) is None


@pytest.mark.parametrize("zipped", [True, False], ids=["keras", "folder"])
def test_a_file_saved_before_tokenizers_were_kept_still_loads(
    tmp_path, monkeypatch, zipped
):
    model = _language_model()
    expected = model.generate([[4, 5]], max_length=6)
    # What `model.save` wrote before `Model.save_assets` existed.
    path = tmp_path / ("old.keras" if zipped else "old")
    with monkeypatch.context() as patch:
        patch.delattr(Model, "save_assets")
        assert not hasattr(model, "save_assets")
        model.save(path, zipped=zipped)
    loaded = keras.saving.load_model(path)
    assert getattr(loaded, "tokenizer", None) is None
    assert loaded.generate([[4, 5]], max_length=6) == expected
    with pytest.raises(ValueError, match="Text needs the model's `tokenizer`"):
        loaded.generate(PROMPT, max_length=6)


def test_weights_files_are_unchanged(tmp_path):
    model = _language_model()
    model.save_weights(tmp_path / "with.weights.h5")
    del model.tokenizer
    model.save_weights(tmp_path / "without.weights.h5")

    def contents(path):
        with h5py.File(path, "r") as file:
            names = []
            file.visit(names.append)
            return names, [
                np.asarray(file[n]) for n in names if isinstance(file[n], h5py.Dataset)
            ]

    (with_names, with_values), (names, values) = (
        contents(tmp_path / "with.weights.h5"),
        contents(tmp_path / "without.weights.h5"),
    )
    assert with_names == names
    for a, b in zip(with_values, values):
        np.testing.assert_array_equal(a, b)
    fresh = RNNLM(model.vocabulary_size, num_layers=1, hidden_dim=8)
    fresh(np.array([[1, 2, 3]]))
    fresh.load_weights(tmp_path / "with.weights.h5")
    assert getattr(fresh, "tokenizer", None) is None
    for saved, restored in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(saved, restored)


def test_a_tokenizer_of_another_size_is_not_saved(tmp_path):
    model = _language_model()
    model.tokenizer = WordTokenizer.from_corpus(["just a few words"])
    with pytest.raises(ValueError, match="`tokenizer` has 9 tokens but the model's"):
        model.save(tmp_path / "model.keras")


def _rewrite_member(path, name, change):
    """Rewrites the member `name` of the zip file at `path` with `change(bytes)`."""
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members[name] = change(members[name])
    with zipfile.ZipFile(path, "w") as archive:
        for n, data in members.items():
            archive.writestr(n, data)


@pytest.mark.parametrize(
    "member, change, message",
    [
        (
            "tokenizer/config.json",
            lambda data: json.dumps(
                {**json.loads(data), "module": "os", "registered_name": "os>system"}
            ).encode(),
            "must describe a keras-nlm Tokenizer",
        ),
        (
            "tokenizer/assets/vocabulary.json",
            lambda data: json.dumps(json.loads(data)[:-1]).encode(),
            "`tokenizer` has 12 tokens but the model's `vocabulary_size` is 13",
        ),
        (
            "tokenizer/assets/vocabulary.json",
            lambda data: data[:-3],
            "is not a JSON list of tokens",
        ),
    ],
    ids=["foreign_class", "short_vocabulary", "truncated_vocabulary"],
)
def test_a_damaged_tokenizer_is_refused(tmp_path, member, change, message):
    model = _language_model()
    assert model.vocabulary_size == 13  # the messages above
    path = tmp_path / "model.keras"
    model.save(path)
    _rewrite_member(path, f"assets/{TOKENIZERS_FOLDER}/{member}", change)
    with pytest.raises(ValueError, match=message):
        keras.saving.load_model(path)


def test_a_folder_of_another_role_is_refused(tmp_path):
    model = _language_model()
    path = tmp_path / "model"
    model.save(path, zipped=False)
    folder = path / "assets" / TOKENIZERS_FOLDER
    os.rename(folder / "tokenizer", folder / "source_tokenizer")
    with pytest.raises(ValueError, match="source_tokenizer is not a tokenizer role"):
        keras.saving.load_model(path)


# Loads the files and prints what they give, under another backend.
OTHER_BACKEND = """
import json, sys
import keras
sys.path.insert(0, sys.argv[1])
from keras_file_test import _outputs

print(json.dumps([_outputs(keras.saving.load_model(p)) for p in sys.argv[2:]]))
"""


def test_tokenizers_load_under_another_backend(tmp_path):
    backend = keras.backend.backend()
    other = BACKENDS[(BACKENDS.index(backend) + 1) % len(BACKENDS)]
    paths, expected = [], []
    for make in (_language_model, _seq2seq):
        model = make()
        expected.append(_outputs(model))
        paths.append(str(tmp_path / f"{make.__name__}.keras"))
        model.save(paths[-1])
    result = subprocess.run(
        [sys.executable, "-c", OTHER_BACKEND, str(pathlib.Path(__file__).parent)]
        + paths,
        env=dict(os.environ, KERAS_BACKEND=other),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == expected
