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
to run: the manifest is checked first (a preset holds only regular files, no
links, so that it covers all that loading reads); the configs may name only
classes of Keras, KerasHub and keras-nlm (no Lambda layers, no lambdas, no
class registered by another package), checked before anything is
deserialised, and Keras's `safe_mode` is on; a model whose weights would not
fit in memory is refused before any is allocated; the weights are HDF5
tensors, never a pickle.
KerasHub's own preset loader needs a KerasHub `Backbone`; ours are plain Keras
models, hence these few functions.
"""

import contextlib
import datetime
import json
import math
import os
import pathlib
import random
import stat
import warnings

import keras
import numpy as np
from keras.src.backend.common import global_state
from keras.src.utils.dtype_utils import dtype_size

from keras_nlm.files import sha256_of, write_json, write_text
from keras_nlm.validation import format_bytes, physical_memory
from keras_nlm.version import __version__

# In a checkout, `keras_nlm/zoo` links to the project's `zoo/`; a wheel holds
# a copy (see pyproject.toml).
ZOO = pathlib.Path(__file__).resolve().parent / "zoo"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"
MANIFEST_FILE = "SHA256SUMS"
CARD_FILE = "README.md"


# The split, metric and bound each zoo preset must meet (the published number
# it reproduces), and the prompts its samples start from.
TARGETS = {
    "fixed_window_ptb": ("test", "perplexity", "<=", 140.2),
    "rnn_ptb": ("test", "perplexity", "<=", 124.7),
    "lstm_ptb_small": ("test", "perplexity", "<=", 114.5),
    "gru_ptb_small": ("test", "perplexity", "<=", 114.5),
    "lstm_ptb_medium": ("test", "perplexity", "<=", 82.7),
    "lstm_wikitext2": ("test", "perplexity", "<=", 102.3),
    "char_lstm_shakespeare": ("validation", "nats_per_character", "<=", 1.50),
    "seq2seq_multi30k_de_en": ("test", "bleu", ">=", 28.3),
}

PROMPTS = {
    "ptb": ["the company said", "in the first quarter"],
    "wikitext2": ["the game was", "in the early"],
    "tinyshakespeare": ["ROMEO:\n", "First Citizen:\n"],
    "timemachine": ["the time traveller", "the machine"],
}


def headline(name, metadata):
    """`(split, metric, value, target)` of a zoo preset: its target metric, as
    measured under the first backend evaluated."""
    split, metric, comparison, bound = TARGETS.get(name, ("test", "perplexity", "", ""))
    if metadata["recipe"].get("languages"):
        metric = "bleu"
    evaluations = metadata.get("evaluations") or {}
    measured = next(iter(evaluations.values()), metadata.get("metrics", {}))
    value = measured.get(split, {}).get(metric)
    return split, metric, value, f"{comparison} {bound}".strip()


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


def save_preset(model, directory, tokenizers, metadata=None, keep=()):
    """Writes `model` and its `tokenizers` (`{role: Tokenizer}`) to `directory`.

    `metadata` (a JSON-able dict, e.g. the training recipe and the measured
    metrics) is stored in `metadata.json` beside the versions. `directory`
    must be new, empty or a preset of the same roles, whose files are
    replaced; it may also hold the names in `keep` (a training run's own).
    """
    for role, tokenizer in tokenizers.items():
        problem = vocabulary_mismatch(model, role, tokenizer)
        if problem:
            raise ValueError(f"Cannot save this preset: {problem}")
    directory = pathlib.Path(directory)
    _refuse_foreign_files(directory, tokenizers, keep)
    (directory / "assets").mkdir(parents=True, exist_ok=True)
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)  # a preset is for use; training recompiles
    write_json(directory / CONFIG_FILE, config)
    # The optimizer's state belongs to the training checkpoint, not the preset.
    skip = [model.optimizer] if getattr(model, "optimizer", None) else None
    partial = directory / f"partial.{WEIGHTS_FILE}"  # Keras wants *.weights.h5
    keras.src.saving.saving_lib.save_weights_only(
        model, str(partial), objects_to_skip=skip
    )
    os.replace(partial, directory / WEIGHTS_FILE)
    for role, tokenizer in tokenizers.items():
        save_tokenizer(
            tokenizer, directory / f"{role}.json", directory / "assets" / role
        )
    write_json(
        directory / METADATA_FILE,
        {
            "keras_nlm_version": __version__,
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "parameter_count": model.count_params(),
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
            "tokenizers": sorted(tokenizers),
            **(metadata or {}),
        },
    )
    write_manifest(directory)


def preset_names(roles=()):
    """The names at the top of a preset whose tokenizers have `roles` (with
    the partial weights of a save that was interrupted); the trainer and
    `publish` add their own."""
    return {
        CONFIG_FILE,
        METADATA_FILE,
        WEIGHTS_FILE,
        f"partial.{WEIGHTS_FILE}",
        MANIFEST_FILE,
        "assets",
        *(f"{role}.json" for role in roles),
    }


def _refuse_foreign_files(directory, roles, keep):
    """Refuses to save into a folder holding other files than a preset's:
    its manifest would list them, and a model card would describe another
    model than the one saved beside it."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise ValueError(f"Cannot save a preset to {directory}: it is not a folder.")
    own = preset_names(roles) | set(keep)
    foreign = [
        name
        for name in sorted(os.listdir(directory))
        if name not in own and not name.endswith(".partial")
    ]
    assets = directory / "assets"
    if assets.is_dir():
        foreign += [f"assets/{n}" for n in sorted(os.listdir(assets)) if n not in roles]
    if foreign:
        raise ValueError(
            f"Cannot save a preset to {directory}: it holds "
            f"{', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}, which "
            f"is not this preset's (a {CARD_FILE} would describe another model, "
            f"other files would be listed in its {MANIFEST_FILE}). Save to a new "
            "or empty folder, or over a preset of the same kind."
        )


def regular_files(directory):
    """`{relative posix path: path}` of every file under `directory`.

    Raises `ValueError` naming an entry that is a symbolic link or not a
    regular file or directory: a manifest would not cover what a link points
    at (a linked directory's files are not even listed), yet loading follows
    it, so a preset (or checkpoint) holds only its own regular files.
    """
    directory = pathlib.Path(directory)
    files = {}
    for root, folders, names in os.walk(directory):  # never follows links
        for name in folders + names:
            path = pathlib.Path(root, name)
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode):
                files[path.relative_to(directory).as_posix()] = path
            elif not stat.S_ISDIR(mode):
                kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
                raise ValueError(
                    f"{path} is {kind}: a preset or checkpoint may hold only "
                    f"regular files, which its {MANIFEST_FILE} covers. Refusing "
                    "it: copy the files in instead."
                )
    return dict(sorted(files.items()))


def _hashed_files(directory):
    """`{relative posix path: path}` of every file the manifest covers."""
    return {
        name: path
        for name, path in regular_files(directory).items()
        if name not in (MANIFEST_FILE, CARD_FILE)
    }


def write_manifest(directory):
    """(Re)writes `SHA256SUMS` for the files now in the preset `directory`:
    call it after changing a preset's files by hand."""
    directory = pathlib.Path(directory)
    lines = [
        f"{sha256_of(path)}  {name}" for name, path in _hashed_files(directory).items()
    ]
    write_text(directory / MANIFEST_FILE, "\n".join(lines) + "\n")


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
            and module.split(".")[0] not in TRUSTED_PACKAGES
            # A family of the user's own, registered under `keras_nlm` by
            # code this process already imported, is as trusted as ours.
            and keras.saving.get_registered_object(registered) is None
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


def _read_config(path, expected_type):
    """The config of a file describing a keras-nlm `expected_type`, once it
    is known to be safe to deserialise."""
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
    return config


@contextlib.contextmanager
def _naming(path):
    """Turns the errors of Keras's deserialisation and of a tokenizer's assets
    (an unknown class or argument, a bad value) into one naming the file."""
    try:
        yield
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"Cannot load {path}: {error}") from None


def _instantiate(path, config, expected_type):
    with _naming(path):
        obj = keras.saving.deserialize_keras_object(config, safe_mode=True)
    if not isinstance(obj, expected_type):
        raise ValueError(
            f"Refusing to load {path}: it describes a {type(obj).__name__}, not a "
            f"keras-nlm {expected_type.__name__}."
        )
    return obj


def save_tokenizer(tokenizer, config_path, assets_directory):
    """Writes `tokenizer` as presets and `.keras` files hold it: its class and
    constructor settings (`serialize_keras_object`) to the JSON file
    `config_path`, its vocabulary (its `save_assets`) to `assets_directory`."""
    write_json(config_path, keras.saving.serialize_keras_object(tokenizer))
    pathlib.Path(assets_directory).mkdir(parents=True, exist_ok=True)
    tokenizer.save_assets(str(assets_directory))


def load_tokenizer(config_path, assets_directory):
    """The tokenizer `save_tokenizer` wrote. Refuses (`ValueError`, naming the
    file) a config that does not describe a keras-nlm tokenizer, before
    deserialising anything, and a vocabulary its `load_assets` refuses."""
    from keras_nlm.tokenizers import Tokenizer

    config = _read_config(config_path, Tokenizer)
    tokenizer = _instantiate(config_path, config, Tokenizer)
    with _naming(assets_directory):
        tokenizer.load_assets(str(assets_directory))
    return tokenizer


def load_preset(name_or_directory):
    """The model of a preset (a zoo name or a directory), tokenizers attached.

    Refuses (`ValueError`, naming the file) a preset that fails `verify`, or
    whose configs name a class outside Keras, KerasHub and keras-nlm, a Lambda
    layer or a lambda, before deserialising anything; and one whose weights
    would not fit in this machine's memory, before allocating any.
    """
    # Models are found in Keras's registry, never imported here: they import
    # this module (`from_preset`).
    Model = keras.Model
    directory = verify(name_or_directory)
    path = directory / CONFIG_FILE
    config = _read_config(path, Model)
    model = _build_to_load(
        lambda: _instantiate(path, config, Model),
        config.get("config"),
        f"Refusing to load {path}",
    )
    # A `build_config` that builds nothing leaves the model without weights
    # for `load_weights` to fill.
    if not model.built or not model.weights:
        raise ValueError(
            f"Refusing to load {path}: its build_config "
            f"{config.get('build_config')!r:.100} does not build the weights of "
            "the model it describes."
        )
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
        tokenizer = load_tokenizer(
            directory / f"{role}.json", directory / "assets" / role
        )
        problem = vocabulary_mismatch(model, role, tokenizer)
        if problem:
            raise ValueError(f"Refusing to load {directory}: {problem}")
        setattr(model, role, tokenizer)
    return model


def check_weights_fit(make, arguments, where):
    """Raises `ValueError`, starting with `where`, when the weights of the
    model `make()` returns would not fit in this machine's memory; else
    returns their `[(path, shape, dtype)]`.

    Allocating them would kill the process instead (JAX aborts, PyTorch gets
    OOM-killed). They are measured on a model built without allocating them,
    and the message names the `arguments` (a config dict) whose values size
    the largest weight. `make()`'s own errors are raised as they are.
    """
    weights = _weight_shapes(make)
    _refuse_unless_they_fit(weights, arguments, where)
    return weights


def _refuse_unless_they_fit(weights, arguments, where):
    sizes = [
        (math.prod(shape) * _itemsize(dtype), path, shape)
        for path, shape, dtype in weights
    ]
    total = sum(size for size, _, _ in sizes)
    memory = physical_memory()
    if total <= memory:
        return
    _, path, shape = max(sizes)
    fields = ", ".join(
        f"{name}={value!r}"
        for name, value in (arguments or {}).items()
        if isinstance(value, int) and not isinstance(value, bool) and value in shape
    )
    raise ValueError(
        f"{where}: its weights would take {format_bytes(total)} (the variable {path!r} "
        f"of shape {shape}{f' from {fields}' if fields else ''}), more than this "
        f"machine's {format_bytes(memory)} of memory."
    )


def _build_to_load(make, arguments, where):
    """The model `make()` builds (deserialising a config builds it), its
    weights allocated only once they are known to fit in memory (else
    `check_weights_fit`'s `ValueError`), as zeros for `load_weights` to fill.

    Built once, deferred: in Keras's stateless scope a variable holds only its
    shape until initialised. Zeros, not the weights' initializers, as these
    would be overwritten, and on JAX each compiles a random program (3 of the
    6 s a sequence-to-sequence preset took to load there)."""
    pending = list(global_state.get_global_attribute("uninitialized_variables") or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = make()
        created = global_state.get_global_attribute("uninitialized_variables")
        created = created[len(pending) :]
        weights = [(v.path, tuple(v.shape), v.dtype) for v in model.weights]
        _refuse_unless_they_fit(weights, arguments, where)
    finally:
        # Nothing of a refused model is left for Keras to initialise later.
        global_state.set_global_attribute("uninitialized_variables", pending)
    loaded = {id(v) for v in model.weights}
    for variable in created:
        if id(variable) in loaded:
            variable._initializer = _zeros
        # The others (seed generators' states) get their own initializers.
        variable._deferred_initialize()
    return model


def _zeros(shape, dtype):
    return np.zeros(shape, keras.backend.standardize_dtype(dtype))


def _weight_shapes(make):
    """`[(path, shape, dtype)]` of the weights of the model `make()` returns,
    built on symbolic inputs without allocating them, and without changing
    Keras's or Python's state (random seeds, layer names)."""
    pending = list(global_state.get_global_attribute("uninitialized_variables") or [])
    names = global_state.get_global_attribute("object_name_uids")
    names = names.copy() if names is not None else None
    seeds = random.getstate()  # initializers and dropout draw their seeds here
    try:
        # Variables created in a stateless scope only hold their shape
        # (Keras's deferred initialisation), and this one never initialises them.
        with keras.StatelessScope(initialize_variables=False):
            model = make()
            inputs = keras.tree.map_structure(
                lambda spec: keras.KerasTensor(
                    tuple(n or 1 for n in spec.shape), spec.dtype
                ),
                model.serving_signature(),
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    model(*inputs)
                except Exception:
                    # JAX cannot trace an embedding of 2**31 rows or more; the
                    # weights created up to there are what there is to measure.
                    pass
            return [(v.path, tuple(v.shape), v.dtype) for v in model.weights]
    finally:
        global_state.set_global_attribute("uninitialized_variables", pending)
        global_state.set_global_attribute("object_name_uids", names)
        random.setstate(seeds)


def _itemsize(dtype):
    return dtype_size(dtype) // 8  # bits


def vocabulary_mismatch(model, role, tokenizer):
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
