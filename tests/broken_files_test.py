"""Broken files are refused with a message naming the file, never loaded.

`keras_nlm/presets_test.py` damages a preset behind its manifest's back (a
changed or truncated file, a missing or unlisted one, no manifest, a
malformed one) and `keras_nlm/datasets/datasets_test.py` a corpus file
(changed, truncated, a bad download). Here: the cases those leave out, the
preset cases where the manifest was rewritten to match the damage (so the
loader itself must notice), half-written or damaged training checkpoints,
and recipe files naming what keras-nlm cannot build.
"""

import json
import os
import shutil

import numpy as np
import pytest

from keras_nlm import presets, training
from keras_nlm.models import RNNLM
from keras_nlm.testing import count_case, deadline
from keras_nlm.tokenizers import WordTokenizer
from keras_nlm.training.checkpoint import EpochCheckpoint


def _flip_a_byte(path, at=-1):
    data = bytearray(path.read_bytes())
    data[at] ^= 1
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# --- presets -----------------------------------------------------------------


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    tokenizer = WordTokenizer.from_corpus(["a b c", "c d"])
    for name, hidden in (("lm", 4), ("other", 6)):
        model = RNNLM(tokenizer.vocabulary_size(), num_layers=1, hidden_dim=hidden)
        model.tokenizer = tokenizer
        model(np.array([[1, 2]]))
        model.save_to_preset(root / name)
    return root


def _write(name, content):
    return lambda d, root: (d / name).write_bytes(content)


def _edit_json(name, edit):
    def damage(directory, root):
        value = json.loads((directory / name).read_text())
        edit(value)
        (directory / name).write_text(json.dumps(value))

    return damage


def _repeat_a_token(directory, root):
    path = directory / "assets/tokenizer/vocabulary.json"
    tokens = json.loads(path.read_text())
    path.write_text(json.dumps(tokens[:-1] + tokens[-2:-1]))


# (damage, rewrite the manifest afterwards, what the message must say)
PRESET_DAMAGE = {
    "truncated_weights": (
        lambda d, root: _truncate(d / presets.WEIGHTS_FILE),
        False,
        "model.weights.h5 has sha256 .* changed or truncated",
    ),
    "manifest_of_another_preset": (
        lambda d, root: shutil.copy(root / "other" / "SHA256SUMS", d),
        False,
        "config.json has sha256 .* but SHA256SUMS says",
    ),
    "half_written_weights_left_by_a_killed_save": (
        _write(f"partial.{presets.WEIGHTS_FILE}", b"\x89HDF\r\n"),
        False,
        "not listed: partial.model.weights.h5",
    ),
    "truncated_weights_behind_a_rewritten_manifest": (
        lambda d, root: _truncate(d / presets.WEIGHTS_FILE),
        True,
        "Cannot load the weights of .*model.weights.h5",
    ),
    "weights_of_another_model": (
        lambda d, root: shutil.copy(root / "other" / presets.WEIGHTS_FILE, d),
        True,
        "Cannot load the weights of .*model.weights.h5",
    ),
    "config_not_json": (
        _write(presets.CONFIG_FILE, b'{"module": "keras_nlm'),
        True,
        "config.json is not a JSON config",
    ),
    "metadata_not_an_object": (
        _write(presets.METADATA_FILE, b"[1, 2]"),
        True,
        "metadata.json must hold a JSON object",
    ),
    "tokenizer_config_missing": (
        lambda d, root: (d / "tokenizer.json").unlink(),
        True,
        "tokenizer.json",
    ),
    "tokenizer_asset_missing": (
        lambda d, root: (d / "assets/tokenizer/vocabulary.json").unlink(),
        True,
        "Tokenizer asset .*vocabulary.json is missing",
    ),
    "tokenizer_asset_not_json": (
        _write("assets/tokenizer/vocabulary.json", b"\xff\xfe<unk>"),
        True,
        "Tokenizer asset .*vocabulary.json is not a JSON list",
    ),
    "tokenizer_asset_not_a_list": (
        _write("assets/tokenizer/vocabulary.json", b'{"<pad>": 0}'),
        True,
        "Tokenizer asset .*vocabulary.json must hold a JSON list",
    ),
    "tokenizer_asset_without_its_special_tokens": (
        _write("assets/tokenizer/vocabulary.json", b'["a", "b"]'),
        True,
        "`vocabulary` must start with the special tokens",
    ),
    # Keras's and the tokenizers' own errors, which named no file.
    "tokenizer_asset_repeating_a_token": (
        _repeat_a_token,
        True,
        "Cannot load .*assets/tokenizer: `vocabulary` must not repeat a token",
    ),
    "config_naming_an_unknown_class": (
        _edit_json(
            presets.CONFIG_FILE,
            lambda c: c.update(class_name="GPT", registered_name="keras_nlm>GPT"),
        ),
        True,
        "Cannot load .*config.json: Could not locate class 'GPT'",
    ),
    "config_with_an_unknown_argument": (
        _edit_json(presets.CONFIG_FILE, lambda c: c["config"].update(heads=8)),
        True,
        "Cannot load .*config.json: Unrecognized keyword arguments passed to RNNLM",
    ),
    "config_with_a_size_that_is_not_an_integer": (
        _edit_json(presets.CONFIG_FILE, lambda c: c["config"].update(hidden_dim="4")),
        True,
        "Cannot load .*config.json: `hidden_dim` must be a positive integer",
    ),
    "config_whose_build_config_builds_no_weights": (
        _edit_json(presets.CONFIG_FILE, lambda c: c.update(build_config={})),
        True,
        "config.json: its build_config {} does not build the weights",
    ),
    "tokenizer_config_naming_an_unknown_class": (
        _edit_json(
            "tokenizer.json",
            lambda c: c.update(class_name="BPE", registered_name="keras_nlm>BPE"),
        ),
        True,
        "Cannot load .*tokenizer.json: Could not locate class 'BPE'",
    ),
    "tokenizer_config_with_an_unknown_argument": (
        _edit_json("tokenizer.json", lambda c: c["config"].update(merges=[])),
        True,
        "Cannot load .*tokenizer.json: .*WordTokenizer",
    ),
}


@pytest.mark.parametrize("name", sorted(PRESET_DAMAGE))
def test_a_broken_preset_is_refused_naming_the_file(genuine, tmp_path, name):
    count_case("broken file")
    damage, rewrite_manifest, message = PRESET_DAMAGE[name]
    directory = tmp_path / "lm"
    shutil.copytree(genuine / "lm", directory)
    damage(directory, genuine)
    if rewrite_manifest:
        presets.write_manifest(directory)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        presets.load_preset(directory)


# --- training checkpoints ----------------------------------------------------

V = 9


def _model():
    # Dropout: its random state is a non-trainable variable, in the .npz.
    model = RNNLM(
        V, cell="gru", num_layers=1, hidden_dim=4, embedding_dim=3, dropout=0.1
    )
    model(np.ones((1, 2), "int32"))  # builds the weights
    model.compile()
    return model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A run's checkpoint folder after 2 epochs, and the weights it holds:
    written by the callback as `fit` would call it, without training."""
    directory = tmp_path_factory.mktemp("run") / "checkpoint"
    model = _model()
    model.optimizer.build(model.trainable_variables)
    callback = EpochCheckpoint(directory)
    callback.set_model(model)
    for epoch in range(2):
        callback.on_epoch_begin(epoch)
        model.set_weights([w + 1 for w in model.get_weights()])
        callback.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    return directory, model.get_weights()


def _resume(directory):
    """What `fit` does first when resuming: returns the model it loaded into."""
    model = _model()
    callback = EpochCheckpoint(directory)
    callback.set_model(model)
    callback.on_train_begin()
    return model


def _latest(directory):
    return json.loads((directory / "latest.json").read_text())


def _in_latest(name):
    return lambda d: d / _latest(d)["folder"] / name


def _pickled_non_trainable(directory, marker):
    folder = directory / _latest(directory)["folder"]

    class Unpickled:
        def __reduce__(self):
            return open, (str(marker), "w")

    count = len(_model().non_trainable_variables)
    assert count  # else nothing would be read from the file
    arrays = [np.array([Unpickled()], dtype=object)] * count
    np.savez(folder / "non_trainable.npz", *arrays)
    marker.unlink(missing_ok=True)
    presets.write_manifest(folder)


def _pointer(**changes):
    def damage(directory, marker):
        latest = {**_latest(directory), **changes}
        (directory / "latest.json").write_text(json.dumps(latest))

    return damage


def _linked_from_outside(name):
    """Moves the latest folder's `name` (or the folder) out of the run and
    links it back."""

    def damage(directory, marker):
        path = directory / _latest(directory)["folder"] / name
        outside = directory.parent / "outside" / path.name
        outside.parent.mkdir()
        shutil.move(path, outside)
        path.symlink_to(outside)

    return damage


def _folder_outside_the_run(directory, marker):
    folder = directory / _latest(directory)["folder"]
    shutil.copytree(folder, directory.parent / "elsewhere" / folder.name)
    _pointer(folder=f"../elsewhere/{folder.name}")(directory, marker)


CHECKPOINT_DAMAGE = {
    "pointer_to_a_missing_folder": (
        lambda d, m: shutil.rmtree(d / _latest(d)["folder"]),
        "Checkpoint folder .*epoch-0002 is missing",
    ),
    "truncated_weights": (
        lambda d, m: _truncate(_in_latest("model.weights.h5")(d)),
        "Checkpoint file .*model.weights.h5 does not match its sha256",
    ),
    "altered_weights": (
        lambda d, m: _flip_a_byte(_in_latest("model.weights.h5")(d), at=-100),
        "Checkpoint file .*model.weights.h5 does not match its sha256",
    ),
    "missing_state_file": (
        lambda d, m: _in_latest("non_trainable.npz")(d).unlink(),
        "Checkpoint file .*non_trainable.npz is missing",
    ),
    "pointer_not_json": (
        lambda d, m: (d / "latest.json").write_text('{"epoch": 2, "fol'),
        "Checkpoint pointer .*latest.json is unreadable",
    ),
    "pointer_without_its_folder": (
        lambda d, m: (d / "latest.json").write_text('{"epoch": 2}'),
        "Checkpoint pointer .*latest.json is unreadable",
    ),
    "truncated_weights_behind_a_rewritten_manifest": (
        lambda d, m: (
            _truncate(_in_latest("model.weights.h5")(d)),
            presets.write_manifest(d / _latest(d)["folder"]),
        ),
        "Cannot resume from checkpoint file .*model.weights.h5",
    ),
    "pickle_in_the_state_file": (
        _pickled_non_trainable,
        "Cannot resume from checkpoint file .*non_trainable.npz",
    ),
    # Once resumed on a check that the files exist: zeroed weights would do.
    "manifest_deleted": (
        lambda d, m: _in_latest("SHA256SUMS")(d).unlink(),
        "Checkpoint manifest .*epoch-0002/SHA256SUMS is missing",
    ),
    "pointer_to_a_folder_outside_the_run": (
        _folder_outside_the_run,
        "latest.json is wrong: 'folder' must be 'epoch-0002'.*'../elsewhere",
    ),
    "pointer_to_another_epochs_folder": (
        _pointer(epoch=1),
        "latest.json is wrong: 'folder' must be 'epoch-0001'.* got 'epoch-0002'",
    ),
    "pointer_epoch_not_an_integer": (
        _pointer(epoch="2"),
        "latest.json is wrong: 'epoch' must be a positive integer; got '2'",
    ),
    "pointer_epoch_a_bool": (
        _pointer(epoch=True),
        "latest.json is wrong: 'epoch' must be a positive integer; got True",
    ),
    "pointer_epoch_negative": (
        _pointer(epoch=-2),
        "latest.json is wrong: 'epoch' must be a positive integer; got -2",
    ),
    "pointer_history_not_logs": (
        _pointer(history=["loss"]),
        "latest.json is wrong: 'history' must be a list of per-epoch logs",
    ),
    "pointer_history_not_a_list": (
        _pointer(history={"loss": 1.0}),
        "latest.json is wrong: 'history' must be a list of per-epoch logs",
    ),
    "weights_linked_from_outside": (
        _linked_from_outside("model.weights.h5"),
        "epoch-0002/model.weights.h5 is a symbolic link",
    ),
    "state_file_linked_from_outside": (
        _linked_from_outside("non_trainable.npz"),
        "epoch-0002/non_trainable.npz is a symbolic link",
    ),
    # Opening it would wait for a writer forever.
    "pointer_a_fifo": (
        lambda d, m: ((d / "latest.json").unlink(), os.mkfifo(d / "latest.json")),
        "latest.json is unreadable .*not a regular file",
    ),
    "folder_linked_from_outside": (
        _linked_from_outside(""),
        "Checkpoint folder .*epoch-0002/? is a symbolic link",
    ),
}


@pytest.mark.parametrize("name", sorted(CHECKPOINT_DAMAGE))
def test_a_broken_checkpoint_is_refused_naming_the_file(checkpoint, tmp_path, name):
    count_case("broken file")
    damage, message = CHECKPOINT_DAMAGE[name]
    directory, marker = tmp_path / "checkpoint", tmp_path / "marker"
    shutil.copytree(checkpoint[0], directory)
    damage(directory, marker)
    with deadline(60), pytest.raises(ValueError, match=message):
        EpochCheckpoint.verify(directory) and _resume(directory)
    assert not marker.exists()  # nothing was unpickled


def test_a_save_killed_half_way_leaves_the_previous_checkpoint_in_use(
    checkpoint, tmp_path
):
    count_case("broken file")
    directory, weights = checkpoint
    directory = shutil.copytree(directory, tmp_path / "checkpoint")
    # What a kill during the save of epoch 3 leaves: a half-written folder
    # and pointer, never renamed.
    partial = directory / "epoch-0003.partial"
    partial.mkdir()
    (partial / "model.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    (directory / "latest.json.partial").write_text('{"epoch": 3, "fo')
    assert EpochCheckpoint.verify(directory)["epoch"] == 2
    model = _resume(directory)
    assert model._initial_epoch == 2
    assert len(model.get_weights()) == len(weights) > 0
    for saved, loaded in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(saved, loaded)


# --- recipes -----------------------------------------------------------------


def _recipe(**changes):
    """A recipe file's fields (`keras-nlm train RECIPE.json` reads them)."""
    return {**training.get("char_lstm_timemachine").to_dict(), **changes}


BAD_RECIPES = {
    "model_class_not_a_model": (
        _recipe(model={"class": "keras", "hidden_dim": 8}),
        "A recipe's `model` must be a dict whose 'class' is one of .*RNNLM.*; "
        "got {'class': 'keras'",
    ),
    "model_class_a_module": (
        _recipe(model={"class": "base"}),  # keras_nlm.models.base
        "`model` must be a dict whose 'class' is one of",
    ),
    "model_not_a_dict": (
        _recipe(model="RNNLM"),
        "`model` must be a dict whose 'class' is one of .*; got 'RNNLM'",
    ),
    "tokenizer_class_the_base_class": (
        _recipe(tokenizer={"class": "Tokenizer"}),
        "`tokenizer` must be a dict whose 'class' is one of CharacterTokenizer, "
        "WordTokenizer",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_RECIPES))
def test_a_recipe_naming_no_class_of_keras_nlm_is_refused(name):
    count_case("broken file")
    fields, message = BAD_RECIPES[name]
    with pytest.raises(ValueError, match=message):
        training.Recipe(**fields)


def test_a_recipe_whose_model_would_not_fit_is_refused_before_allocating():
    count_case("broken file")
    recipe = training.get("char_lstm_timemachine")
    tokenizers = {"tokenizer": WordTokenizer.from_corpus(["a b c"])}
    huge = recipe.replace(model={**recipe.model, "hidden_dim": 10**7})
    with pytest.raises(
        ValueError,
        match=r"Recipe 'char_lstm_timemachine': its weights would take .* from "
        r"model.hidden_dim=10000000\), more than this machine's",
    ):
        huge.make_model(tokenizers)
    unknown = recipe.replace(model={**recipe.model, "heads": 8})
    with pytest.raises(
        ValueError,
        match="Recipe 'char_lstm_timemachine': its `model` cannot be built "
        r"\(Unrecognized keyword arguments passed to RNNLM: {'heads': 8}\)",
    ):
        unknown.make_model(tokenizers)
    assert recipe.make_model(tokenizers).hidden_dim == recipe.model["hidden_dim"]
