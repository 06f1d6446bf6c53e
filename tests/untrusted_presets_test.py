"""Presets from strangers: loading never runs code it was not meant to run.

Each hostile preset below carries a valid `SHA256SUMS` (written with
`presets.write_manifest`, as anyone can), so that the manifest check passes and
what is tested is the deserialisation guard itself. Each would create a marker
file if what it names were instantiated, unpickled or called; the test shows
it is refused with a message naming the file, and that the marker does not
exist.
"""

import copy
import json
import os
import pickle
import re
import shutil

import keras
import numpy as np
import pytest

from keras_nlm import cli, presets
from keras_nlm.models import RNNLM
from keras_nlm.testing import count_case
from keras_nlm.tokenizers import WordTokenizer


@keras.saving.register_keras_serializable(package="untrusted_test")
class Evil:
    """What another installed package could register: creating one has a
    side effect (here, the marker file)."""

    def __init__(self, marker):
        open(marker, "w").close()
        self.marker = marker

    def get_config(self):
        return {"marker": self.marker}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_nlm_extras")
class SpoofedEvil(Evil):
    """The same, from a package whose name starts like keras-nlm's."""


class _Unpickled:
    """Unpickling this creates the marker: `pickle` calls `open(marker, "w")`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    tokenizer = WordTokenizer.from_corpus(["a b c", "c d"])
    model = RNNLM(
        tokenizer.vocabulary_size(), num_layers=1, hidden_dim=4, embedding_dim=3
    )
    model.tokenizer = tokenizer
    model(np.array([[1, 2]]))
    directory = tmp_path_factory.mktemp("genuine") / "lm"
    model.save_to_preset(directory)
    return directory


def _evil(marker, cls=Evil):
    config = keras.saving.serialize_keras_object(cls(str(marker)))
    # Claims a trusted module: only its registered name says what it is.
    return {**config, "module": "keras_nlm.models"}


def test_the_hostile_object_would_run_if_keras_alone_loaded_it(tmp_path):
    # The control: Keras's own safe_mode does instantiate a registered class,
    # so the guard below is what keeps these presets harmless.
    marker = tmp_path / "marker"
    config = _evil(marker)
    marker.unlink()
    keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert marker.exists()


def _lambda_layer(marker):
    path = str(marker)
    layer = keras.layers.Lambda(lambda x: (open(path, "w").close(), x)[1])
    return keras.saving.serialize_keras_object(layer)


def _edit_json(name, edit):
    def damage(directory, marker):
        path = directory / name
        value = json.loads(path.read_text())
        path.write_text(json.dumps(edit(value, marker)))

    return damage


def _nested(key, make):
    """Puts the hostile object inside the genuine config, under `key`."""

    def edit(config, marker):
        config = copy.deepcopy(config)
        config["config"][key] = make(marker)
        return config

    return edit


def _pickled_weights(directory, marker):
    with open(directory / presets.WEIGHTS_FILE, "wb") as file:
        pickle.dump(_Unpickled(str(marker)), file)


def _tokenizers_outside(roles):
    def damage(directory, marker):
        (directory.parent / "outside.json").write_text(json.dumps(_evil(marker)))
        _edit_json(presets.METADATA_FILE, lambda m, _: {**m, "tokenizers": roles})(
            directory, marker
        )

    return damage


HOSTILE = {
    "os_system_as_the_model": (
        _edit_json(
            presets.CONFIG_FILE,
            lambda c, m: {
                "module": "os",
                "class_name": "system",
                "config": f"touch {m}",
            },
        ),
        "config.json: it must describe a keras-nlm Model",
    ),
    "registered_class_of_another_package_as_the_model": (
        _edit_json(presets.CONFIG_FILE, lambda c, m: _evil(m)),
        "config.json: it must describe a keras-nlm Model",
    ),
    "registered_class_of_another_package_nested": (
        _edit_json(presets.CONFIG_FILE, _nested("dtype", _evil)),
        "config.json: config.config.dtype names 'Evil'.*belongs to another package",
    ),
    "package_name_spoofing_keras_nlm": (
        _edit_json(
            presets.CONFIG_FILE,
            _nested("dtype", lambda m: _evil(m, SpoofedEvil)),
        ),
        "'keras_nlm_extras>SpoofedEvil' belongs to another package",
    ),
    "module_outside_keras": (
        _edit_json(
            presets.CONFIG_FILE,
            _nested(
                "dtype",
                lambda m: {
                    "module": "subprocess",
                    "class_name": "Popen",
                    "config": {"args": ["touch", str(m)]},
                },
            ),
        ),
        "module 'subprocess' is not part of Keras, KerasHub or keras-nlm",
    ),
    "lambda_layer": (
        _edit_json(presets.CONFIG_FILE, _nested("dtype", _lambda_layer)),
        "names 'Lambda', and its class 'Lambda' runs code",
    ),
    "bare_lambda": (
        _edit_json(
            presets.CONFIG_FILE,
            _nested("dtype", lambda m: _lambda_layer(m)["config"]["function"]),
        ),
        "class '__lambda__' runs code",
    ),
    "tfsm_layer": (
        _edit_json(
            presets.CONFIG_FILE,
            _nested(
                "dtype",
                lambda m: {
                    "module": "keras.layers",
                    "class_name": "TFSMLayer",
                    "config": {"filepath": str(m)},
                },
            ),
        ),
        "class 'TFSMLayer' runs code",
    ),
    "registered_class_of_another_package_as_the_tokenizer": (
        _edit_json("tokenizer.json", lambda c, m: _evil(m)),
        "tokenizer.json: it must describe a keras-nlm Tokenizer",
    ),
    "hostile_object_inside_the_tokenizer": (
        _edit_json("tokenizer.json", _nested("padding_token", _evil)),
        "tokenizer.json: config.config.padding_token names 'Evil'",
    ),
    "tokenizer_role_outside_the_preset": (
        _tokenizers_outside(["../outside"]),
        r"metadata.json: its 'tokenizers' must list roles of a RNNLM \(tokenizer\)",
    ),
    "tokenizer_role_overwriting_an_attribute": (
        _tokenizers_outside(["__class__"]),
        "metadata.json: its 'tokenizers' must list roles",
    ),
    "pickle_as_the_weights": (
        _pickled_weights,
        "Cannot load the weights of .*model.weights.h5",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_preset_is_refused_without_side_effects(genuine, tmp_path, name):
    count_case("hostile preset")
    damage, message = HOSTILE[name]
    directory, marker = tmp_path / "preset", tmp_path / "marker"
    shutil.copytree(genuine, directory)
    damage(directory, marker)
    marker.unlink(missing_ok=True)  # serialising Evil made one
    presets.write_manifest(directory)  # anyone can: the manifest passes
    presets.verify(directory)
    with pytest.raises(ValueError, match=message):
        presets.load_preset(directory)
    with pytest.raises(ValueError, match=message):
        RNNLM.from_preset(directory)
    assert not marker.exists()
    # The command line refuses it in one line too.
    assert cli.main(["generate", str(directory), "a b"]) == 2
    assert not marker.exists()


def test_the_genuine_preset_still_loads(genuine):
    model = presets.load_preset(genuine)
    assert model.tokenizer.get_vocabulary()[-4:] == ["c", "a", "b", "d"]


# --- links and special files -------------------------------------------------


def _link_the_tokenizer_assets_from_outside(directory, outside):
    # The manifest is written with the link in place, then the linked files
    # change: `rglob` did not descend into the link, so they were never hashed.
    shutil.move(directory / "assets" / "tokenizer", outside / "tokenizer")
    (directory / "assets" / "tokenizer").symlink_to(outside / "tokenizer")
    return "assets/tokenizer is a symbolic link"


def _link_the_config(directory, outside):
    shutil.move(directory / presets.CONFIG_FILE, outside / presets.CONFIG_FILE)
    (directory / presets.CONFIG_FILE).symlink_to(outside / presets.CONFIG_FILE)
    return "config.json is a symbolic link"


def _fifo_as_the_card(directory, outside):
    (directory / presets.CARD_FILE).unlink(missing_ok=True)
    os.mkfifo(directory / presets.CARD_FILE)  # reading it would block
    return "README.md is not a regular file"


LINKED = {
    "linked_directory": _link_the_tokenizer_assets_from_outside,
    "linked_file": _link_the_config,
    "fifo": _fifo_as_the_card,
}


@pytest.mark.parametrize("name", sorted(LINKED))
def test_a_preset_holds_only_regular_files(genuine, tmp_path, name):
    count_case("hostile preset")
    directory, outside = tmp_path / "preset", tmp_path / "outside"
    shutil.copytree(genuine, directory)
    outside.mkdir()
    message = LINKED[name](directory, outside)
    with pytest.raises(ValueError, match=message):
        presets.write_manifest(directory)
    with pytest.raises(ValueError, match=message):
        presets.load_preset(directory)
    with pytest.raises(ValueError, match=message):
        presets.verify(directory)


def test_a_linked_directory_edited_after_its_manifest_is_refused(genuine, tmp_path):
    count_case("hostile preset")
    directory, outside = tmp_path / "preset", tmp_path / "outside"
    shutil.copytree(genuine, directory)
    outside.mkdir()
    # The manifest of before the check: it lists no file of the linked folder.
    _link_the_tokenizer_assets_from_outside(directory, outside)
    manifest = presets.read_manifest(genuine / presets.MANIFEST_FILE)
    (directory / presets.MANIFEST_FILE).write_text(
        "".join(
            f"{digest}  {name}\n"
            for name, digest in manifest.items()
            if not name.startswith("assets/")
        )
    )
    vocabulary = outside / "tokenizer" / "vocabulary.json"
    tokens = json.loads(vocabulary.read_text())
    vocabulary.write_text(json.dumps(tokens[:-4] + tokens[-4:][::-1]))  # c a b d
    with pytest.raises(ValueError, match="assets/tokenizer is a symbolic link"):
        presets.load_preset(directory)


def test_a_preset_directory_may_itself_be_a_link(genuine, tmp_path):
    # As a zoo entry linked to where the preset was downloaded: only what is
    # inside must be its own files.
    (tmp_path / "linked").symlink_to(genuine)
    assert presets.load_preset(tmp_path / "linked").tokenizer is not None


# --- sizes -------------------------------------------------------------------


def _resized(**sizes):
    def edit(config, marker):
        return {**config, "config": {**config["config"], **sizes}}

    return edit


# A config with a valid manifest whose weights would be petabytes: building
# it aborted JAX (`Check failed: buffer_.IsConcrete()`) and got PyTorch's
# process OOM-killed, before any error could be raised.
TOO_LARGE = {
    "hidden_dim": (
        _resized(hidden_dim=10**7),
        r"\(10000000, 40000000\) from hidden_dim=10000000",
    ),
    "vocabulary_size": (
        _resized(vocabulary_size=10**12),
        r"\(.*1000000000000.*\) from vocabulary_size=1000000000000",
    ),
}


@pytest.mark.parametrize("name", sorted(TOO_LARGE))
def test_a_config_whose_weights_would_not_fit_is_refused_before_allocating(
    genuine, tmp_path, name
):
    count_case("hostile preset")
    edit, message = TOO_LARGE[name]
    directory = shutil.copytree(genuine, tmp_path / "preset")
    _edit_json(presets.CONFIG_FILE, edit)(directory, None)
    presets.write_manifest(directory)
    # In this process: had anything been allocated, it would have died here.
    with pytest.raises(ValueError) as refused:
        presets.load_preset(directory)
    assert re.search(
        r"Refusing to load .*config.json: its weights would take [0-9.]+ [TP]B "
        rf"\(the variable '.*' of shape {message}.*\), more than this "
        r"machine's [0-9.]+ [GT]B of memory",
        str(refused.value),
    ), str(refused.value)
    # Nothing of the throwaway model's deferred weights is left for Keras to
    # initialise later, and the genuine preset still loads.
    with keras.StatelessScope():
        pass
    assert presets.load_preset(genuine).weights
