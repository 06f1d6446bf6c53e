"""Broken files are refused with a message naming the file, never loaded.

`keras_nlm/presets_test.py` damages a preset behind its manifest's back (a
changed or truncated file, a missing or unlisted one, no manifest, a
malformed one) and `keras_nlm/datasets/datasets_test.py` a corpus file
(changed, truncated, a bad download). Here: the cases those leave out, the
preset cases where the manifest was rewritten to match the damage (so the
loader itself must notice), and half-written or damaged training checkpoints.
"""

import json
import shutil

import numpy as np
import pytest

from keras_nlm import presets
from keras_nlm.models import RNNLM
from keras_nlm.testing import count_case
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
}


@pytest.mark.parametrize("name", sorted(CHECKPOINT_DAMAGE))
def test_a_broken_checkpoint_is_refused_naming_the_file(checkpoint, tmp_path, name):
    count_case("broken file")
    damage, message = CHECKPOINT_DAMAGE[name]
    directory, marker = tmp_path / "checkpoint", tmp_path / "marker"
    shutil.copytree(checkpoint[0], directory)
    damage(directory, marker)
    with pytest.raises(ValueError, match=message):
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


def test_checkpoints_written_before_manifests_still_resume(checkpoint, tmp_path):
    directory, weights = checkpoint
    directory = shutil.copytree(directory, tmp_path / "checkpoint")
    (directory / _latest(directory)["folder"] / "SHA256SUMS").unlink()
    model = _resume(directory)
    assert len(model.get_weights()) == len(weights) > 0
    for saved, loaded in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(saved, loaded)
