"""Saving and loading a trained model with its tokenizers, as a preset directory.

The layout is KerasHub's:

    config.json          the model's Keras config (`serialize_keras_object`)
    metadata.json        versions, parameter count, how it was trained
    model.weights.h5     the weights, in Keras's layout (loads on every backend)
    tokenizer.json       each tokenizer's config, named by its role:
    assets/tokenizer/    `tokenizer` for a language model, `source_tokenizer`
                         and `target_tokenizer` for a `Seq2Seq`

Loading attaches the tokenizers to the model under those names
(`model.tokenizer`, ...), so that `model.generate("text", ...)` works on text.
KerasHub's own preset loader needs a KerasHub `Backbone`; ours are plain Keras
models, hence these few functions.
"""

import datetime
import json
import os
import pathlib

import keras

# Registers the classes a preset's config may name.
from keras_nlm import models, tokenizers  # noqa: F401

ZOO = pathlib.Path(__file__).resolve().parent.parent / "zoo"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"


def zoo_presets():
    """The names of the presets in `zoo/`."""
    if not ZOO.is_dir():
        return []
    return sorted(p.name for p in ZOO.iterdir() if (p / CONFIG_FILE).is_file())


def resolve(name_or_directory):
    """A preset directory from a zoo name or a path; unknown names list the zoo."""
    path = pathlib.Path(name_or_directory)
    if (path / CONFIG_FILE).is_file():
        return path
    if (ZOO / str(name_or_directory) / CONFIG_FILE).is_file():
        return ZOO / str(name_or_directory)
    known = ", ".join(zoo_presets()) or "none yet"
    raise ValueError(
        f"{str(name_or_directory)!r} is neither a preset directory (with a "
        f"{CONFIG_FILE}) nor a zoo preset; zoo presets: {known}."
    )


def save_preset(model, directory, tokenizers, metadata=None):
    """Writes `model` and its `tokenizers` (`{role: Tokenizer}`) to `directory`.

    `metadata` (a JSON-able dict, e.g. the training recipe and the measured
    metrics) is stored in `metadata.json` beside the versions.
    """
    import keras_nlm

    directory = pathlib.Path(directory)
    (directory / "assets").mkdir(parents=True, exist_ok=True)
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)  # a preset is for use; training recompiles
    _write_json(directory / CONFIG_FILE, config)
    # The optimizer's state belongs to the training checkpoint, not the preset.
    skip = [model.optimizer] if getattr(model, "optimizer", None) else None
    keras.src.saving.saving_lib.save_weights_only(
        model, str(directory / WEIGHTS_FILE), objects_to_skip=skip
    )
    for role, tokenizer in tokenizers.items():
        _write_json(
            directory / f"{role}.json", keras.saving.serialize_keras_object(tokenizer)
        )
        (directory / "assets" / role).mkdir(exist_ok=True)
        tokenizer.save_assets(str(directory / "assets" / role))
    _write_json(
        directory / METADATA_FILE,
        {
            "keras_nlm_version": keras_nlm.__version__,
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "parameter_count": model.count_params(),
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
            "tokenizers": sorted(tokenizers),
            **(metadata or {}),
        },
    )


def load_preset(name_or_directory):
    """The model of a preset (a zoo name or a directory), tokenizers attached."""
    directory = resolve(name_or_directory)
    with open(directory / CONFIG_FILE, encoding="utf-8") as file:
        model = keras.saving.deserialize_keras_object(json.load(file), safe_mode=True)
    model.load_weights(str(directory / WEIGHTS_FILE))
    for role in load_metadata(directory).get("tokenizers", []):
        with open(directory / f"{role}.json", encoding="utf-8") as file:
            tokenizer = keras.saving.deserialize_keras_object(
                json.load(file), safe_mode=True
            )
        tokenizer.load_assets(str(directory / "assets" / role))
        setattr(model, role, tokenizer)
    return model


def load_metadata(name_or_directory):
    with open(resolve(name_or_directory) / METADATA_FILE, encoding="utf-8") as file:
        return json.load(file)


def _write_json(path, value):
    # Write then rename, so that a reader never sees half a file.
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as file:
        json.dump(value, file, indent=2, ensure_ascii=False)
    os.replace(partial, path)
