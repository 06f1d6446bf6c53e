"""Saving and loading a trained model with its tokenizers, as a preset directory.

The layout is KerasHub's:

    config.json          the model's Keras config (`serialize_keras_object`)
    metadata.json        versions, parameter count, how it was trained
    model.weights.h5     the weights, in Keras's layout (loads on every backend)
    tokenizer.json       each tokenizer's config, named by its role:
    assets/tokenizer/    `tokenizer` for a language model, `source_tokenizer`
                         and `target_tokenizer` for a `Seq2Seq`

    SHA256SUMS           the sha256 of every file above, in `sha256sum`'s
                         format; loading refuses a preset that does not match
    README.md            the model card (for people; not hashed, so that it
                         can be edited without re-saving the weights)

Loading attaches the tokenizers to the model under those names
(`model.tokenizer`, ...), so that `model.generate("text", ...)` works on text.

A preset may come from a stranger, so loading runs nothing it was not meant
to run: the manifest is checked first; the configs may name only classes of
Keras, KerasHub and keras-nlm (no Lambda layers, no lambdas, no class
registered by another package), checked before anything is deserialised, and
Keras's `safe_mode` is on; the weights are HDF5 tensors, never a pickle.
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
from keras_nlm.datasets.registry import sha256_of

ZOO = pathlib.Path(__file__).resolve().parent.parent / "zoo"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"
MANIFEST_FILE = "SHA256SUMS"
CARD_FILE = "README.md"


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

    for role, tokenizer in tokenizers.items():
        problem = _vocabulary_mismatch(model, role, tokenizer)
        if problem:
            raise ValueError(f"Cannot save this preset: {problem}")
    directory = pathlib.Path(directory)
    (directory / "assets").mkdir(parents=True, exist_ok=True)
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)  # a preset is for use; training recompiles
    _write_json(directory / CONFIG_FILE, config)
    # The optimizer's state belongs to the training checkpoint, not the preset.
    skip = [model.optimizer] if getattr(model, "optimizer", None) else None
    partial = directory / f"partial.{WEIGHTS_FILE}"  # Keras wants *.weights.h5
    keras.src.saving.saving_lib.save_weights_only(
        model, str(partial), objects_to_skip=skip
    )
    os.replace(partial, directory / WEIGHTS_FILE)
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
    write_manifest(directory)


def _hashed_files(directory):
    """`{relative posix path: path}` of every file the manifest covers."""
    return {
        path.relative_to(directory).as_posix(): path
        for path in sorted(directory.rglob("*"))
        if path.is_file()
        and path.relative_to(directory).as_posix() not in (MANIFEST_FILE, CARD_FILE)
    }


def write_manifest(directory):
    """(Re)writes `SHA256SUMS` for the files now in the preset `directory`:
    call it after changing a preset's files by hand."""
    directory = pathlib.Path(directory)
    lines = [
        f"{sha256_of(path)}  {name}" for name, path in _hashed_files(directory).items()
    ]
    _write_text(directory / MANIFEST_FILE, "\n".join(lines) + "\n")


def read_manifest(manifest):
    """`{file: sha256}` from a `SHA256SUMS` file; raises `ValueError` naming it
    at a line that is not `<sha256>  <file>`."""
    try:
        lines = pathlib.Path(manifest).read_text("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"{manifest} is not a text manifest ({error}).") from None
    expected = {}
    for number, line in enumerate(lines, 1):
        digest, separator, name = line.partition("  ")
        if not separator or len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise ValueError(
                f"{manifest}, line {number}: expected '<sha256>  <file>'; got {line!r}."
            )
        expected[name] = digest
    return expected


def verify(name_or_directory):
    """Raises `ValueError` unless every file of the preset matches its
    `SHA256SUMS` and the manifest lists them all; returns the directory."""
    directory = resolve(name_or_directory)
    manifest = directory / MANIFEST_FILE
    if not manifest.is_file():
        raise ValueError(
            f"Preset {directory} has no {MANIFEST_FILE}, so its files cannot be "
            "verified. `keras_nlm.presets.save_preset` writes one; for a preset "
            f"you trust, `keras_nlm.presets.write_manifest({str(directory)!r})`."
        )
    expected = read_manifest(manifest)
    files = _hashed_files(directory)
    missing = sorted(set(expected) - set(files))
    unlisted = sorted(set(files) - set(expected))
    if missing or unlisted:
        raise ValueError(
            f"Preset {directory} does not match its {MANIFEST_FILE}: "
            + "; ".join(
                f"{what}: {', '.join(names)}"
                for what, names in (("missing", missing), ("not listed", unlisted))
                if names
            )
            + ". Refusing to load it."
        )
    for name, path in files.items():
        actual = sha256_of(path)
        if actual != expected[name]:
            raise ValueError(
                f"Preset {directory}: {name} has sha256 {actual}, but "
                f"{MANIFEST_FILE} says {expected[name]}; the file was changed or "
                "truncated. Refusing to load it: re-save or re-download the preset."
            )
    return directory


# What a preset's configs may name: modules of these packages, and classes
# registered by keras-nlm or KerasHub (Keras's own have no package prefix).
TRUSTED_PACKAGES = ("keras", "keras_hub", "keras_nlm")
# Keras classes that run code given in the config, or load a graph from a file.
REFUSED_CLASSES = ("Lambda", "__lambda__", "TFSMLayer")


def _check_config(value, path, where="config"):
    """Raises unless every object the config `value` names is a trusted one."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_config(item, path, f"{where}[{i}]")
        return
    if not isinstance(value, dict):
        return
    if "class_name" in value:
        module = value.get("module") or ""
        registered = value.get("registered_name") or ""
        class_name = value.get("class_name")
        reason = None
        if class_name in REFUSED_CLASSES:
            reason = f"class {class_name!r} runs code given in the config"
        elif (
            module
            and module != "builtins"
            and module.split(".")[0] not in (TRUSTED_PACKAGES)
        ):
            reason = f"module {module!r} is not part of Keras, KerasHub or keras-nlm"
        elif ">" in registered and registered.split(">")[0] not in TRUSTED_PACKAGES:
            reason = (
                f"registered_name {registered!r} belongs to another package than "
                "keras-nlm or KerasHub"
            )
        if reason:
            raise ValueError(
                f"Refusing to load {path}: {where} names {class_name!r}, and its "
                f"{reason}. A preset's config may only name classes of Keras, "
                "KerasHub and keras-nlm; nothing was deserialised."
            )
    for key, item in value.items():
        _check_config(item, path, f"{where}.{key}")


def _deserialize(path, expected_type):
    """The object a config file describes, once it is known to be safe."""
    try:
        with open(path, encoding="utf-8") as file:
            config = json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a JSON config ({error}).") from None
    if not isinstance(config, dict) or not str(
        config.get("registered_name")
    ).startswith("keras_nlm>"):
        raise ValueError(
            f"Refusing to load {path}: it must describe a keras-nlm "
            f"{expected_type.__name__} (registered_name 'keras_nlm>...'); got "
            f"{str(config)[:200]}."
        )
    _check_config(config, path)
    obj = keras.saving.deserialize_keras_object(config, safe_mode=True)
    if not isinstance(obj, expected_type):
        raise ValueError(
            f"Refusing to load {path}: it describes a {type(obj).__name__}, not a "
            f"keras-nlm {expected_type.__name__}."
        )
    return obj


def load_preset(name_or_directory):
    """The model of a preset (a zoo name or a directory), tokenizers attached.

    Refuses (`ValueError`, naming the file) a preset that fails `verify`, or
    whose configs name a class outside Keras, KerasHub and keras-nlm, a Lambda
    layer or a lambda, before deserialising anything.
    """
    from keras_nlm.models.base import Model
    from keras_nlm.tokenizers import Tokenizer

    directory = verify(name_or_directory)
    model = _deserialize(directory / CONFIG_FILE, Model)
    roles = load_metadata(directory).get("tokenizers", [])
    if not isinstance(roles, list) or any(
        role not in model.tokenizer_roles for role in roles
    ):
        raise ValueError(
            f"Refusing to load {directory / METADATA_FILE}: its 'tokenizers' must "
            f"list roles of a {type(model).__name__} "
            f"({', '.join(model.tokenizer_roles)}); got {roles!r}."
        )
    try:
        model.load_weights(str(directory / WEIGHTS_FILE))
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            f"Cannot load the weights of {directory / WEIGHTS_FILE} into the "
            f"model its config describes ({error})."
        ) from None
    for role in roles:
        tokenizer = _deserialize(directory / f"{role}.json", Tokenizer)
        tokenizer.load_assets(str(directory / "assets" / role))
        problem = _vocabulary_mismatch(model, role, tokenizer)
        if problem:
            raise ValueError(f"Refusing to load {directory}: {problem}")
        setattr(model, role, tokenizer)
    return model


def _vocabulary_mismatch(model, role, tokenizer):
    """What is wrong when a tokenizer's ids are not the model's, or None.

    A larger vocabulary gives ids the model refuses; a smaller one lets the
    model generate ids the tokenizer cannot turn back into text."""
    # tokenizer: vocabulary_size, source_tokenizer: source_vocabulary_size, ...
    argument = role.replace("tokenizer", "vocabulary_size")
    expected = getattr(model, argument)
    if tokenizer.vocabulary_size() != expected:
        return (
            f"`{role}` has {tokenizer.vocabulary_size()} tokens but the model's "
            f"`{argument}` is {expected}; they must be equal."
        )
    return None


def load_metadata(name_or_directory):
    path = resolve(name_or_directory) / METADATA_FILE
    try:
        with open(path, encoding="utf-8") as file:
            metadata = json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}).") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{path} must hold a JSON object; got {metadata!r:.100}.")
    return metadata


def _write_json(path, value):
    _write_text(path, json.dumps(value, indent=2, ensure_ascii=False))


def _write_text(path, text):
    # Write then rename, so that a reader never sees half a file.
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(partial, path)
