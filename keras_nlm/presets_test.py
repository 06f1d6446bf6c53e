import hashlib
import shutil

import numpy as np
import pytest

from keras_nlm import presets
from keras_nlm.models import RNNLM
from keras_nlm.testing import count_case
from keras_nlm.tokenizers import CharacterTokenizer


@pytest.fixture
def preset(tmp_path):
    tokenizer = CharacterTokenizer.from_corpus(["the time machine"])
    model = RNNLM(tokenizer.vocabulary_size(), num_layers=1, hidden_dim=8)
    model.tokenizer = tokenizer
    model(np.array([[1, 2, 3]]))
    model.save_to_preset(tmp_path / "lm", {"note": "a test"})
    return tmp_path / "lm", model


def test_round_trip_with_tokenizer_and_manifest(preset):
    directory, model = preset
    loaded = presets.load_preset(directory)
    for saved, restored in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(saved, restored)
    assert loaded.tokenizer.get_vocabulary() == model.tokenizer.get_vocabulary()
    assert presets.load_metadata(directory)["note"] == "a test"
    # `sha256sum -c SHA256SUMS` format, covering every file but itself.
    lines = (directory / presets.MANIFEST_FILE).read_text().splitlines()
    listed = {}
    for line in lines:
        digest, name = line.split("  ")
        listed[name] = digest
    assert set(listed) == {
        "config.json",
        "metadata.json",
        "model.weights.h5",
        "tokenizer.json",
        "assets/tokenizer/vocabulary.json",
    }
    for name, digest in listed.items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda d: _flip_last_byte(d / "model.weights.h5"),
            "model.weights.h5 has sha256 [0-9a-f]{64}, but SHA256SUMS says",
        ),
        (
            lambda d: (d / "config.json").write_text(
                (d / "config.json").read_text()[:50]
            ),
            "config.json has sha256 .* changed or truncated",
        ),
        (
            lambda d: (d / "assets/tokenizer/vocabulary.json").unlink(),
            "missing: assets/tokenizer/vocabulary.json",
        ),
        (lambda d: (d / "extra.py").write_text("import os"), "not listed: extra.py"),
        (lambda d: (d / "SHA256SUMS").unlink(), "has no SHA256SUMS"),
        (
            lambda d: (d / "SHA256SUMS").write_text("abc  config.json\n"),
            "line 1: expected '<sha256>  <file>'",
        ),
    ],
)
def test_a_damaged_preset_is_refused(preset, damage, message):
    count_case("broken file")
    directory, _ = preset
    damage(directory)
    with pytest.raises(ValueError, match=message):
        presets.load_preset(directory)
    with pytest.raises(ValueError, match=message):
        RNNLM.from_preset(directory)


def test_the_model_card_is_not_hashed(preset):
    directory, _ = preset
    (directory / presets.CARD_FILE).write_text("# a model card, edited later\n")
    presets.load_preset(directory)


def test_write_manifest_accepts_a_trusted_change(preset, tmp_path):
    directory, _ = preset
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    (copy / "metadata.json").write_text('{"tokenizers": ["tokenizer"]}')
    with pytest.raises(ValueError, match="metadata.json has sha256"):
        presets.verify(copy)
    presets.write_manifest(copy)
    assert presets.verify(copy) == copy


def test_a_tokenizer_must_have_the_models_vocabulary(preset, tmp_path):
    directory, model = preset
    other = CharacterTokenizer.from_corpus(["the time machine!"])  # one more
    message = r"`tokenizer` has 10 tokens but the model's `vocabulary_size` is 9"
    model.tokenizer = other
    with pytest.raises(ValueError, match="Cannot save this preset: " + message):
        model.save_to_preset(tmp_path / "mismatched")
    # A preset whose vocabulary was swapped and its manifest rewritten.
    other.save_assets(str(directory / "assets" / "tokenizer"))
    presets.write_manifest(directory)
    with pytest.raises(ValueError, match="Refusing to load .*: " + message):
        presets.load_preset(directory)


def test_unknown_names_list_the_zoo():
    with pytest.raises(ValueError, match="neither a preset directory .* zoo presets:"):
        presets.load_preset("lstm_ptb_huge")


def test_saving_replaces_a_preset_but_never_writes_among_other_files(preset, tmp_path):
    directory, model = preset
    model.save_to_preset(directory)  # an earlier preset of the same kind
    presets.load_preset(directory)
    # A model card would describe the model it was written for; other files
    # would be listed in the new manifest as if they were the preset's.
    (directory / "README.md").write_text("# the model saved before\n")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine\n")
    (tmp_path / "a_file").write_text("mine\n")
    for target, message in [
        (directory, "holds README.md, which is not this preset's"),
        (notes, "holds todo.txt, which is not this preset's"),
        (tmp_path / "a_file", "it is not a folder"),
    ]:
        count_case("bad input")
        before = sorted(p.read_bytes() for p in target.rglob("*") if p.is_file())
        with pytest.raises(ValueError, match=f"Cannot save a preset to .*{message}"):
            model.save_to_preset(target)
        after = sorted(p.read_bytes() for p in target.rglob("*") if p.is_file())
        assert before == after
    assert (tmp_path / "a_file").read_text() == "mine\n"
