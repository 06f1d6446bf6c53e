"""Publishing a trained run to the zoo: a verified preset and its model card.

    keras-nlm publish runs/lstm_ptb_small --name lstm_ptb_small

copies the run's preset to `zoo/<name>/`, measures it with
`keras_nlm.evaluation` under each backend (this process's backend here, each
other one in a fresh process, `python -m keras_nlm.training.publish`, which
writes its measurements to a JSON file), scores the n-gram baseline on the same split, generates samples,
and records all of it in `metadata.json`, with a quick check (the perplexity or
BLEU of the first few hundred test tokens or sentences) that the zoo's tests
compare against on every backend. It then writes `SHA256SUMS` and the model
card, `README.md`. Every number on the card is one measured here.
"""

import importlib.util
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys

import keras

from keras_nlm import baselines, datasets, evaluation, presets
from keras_nlm.evaluation import BLEU_MAX_LENGTH
from keras_nlm.files import write_json
from keras_nlm.generation import keras_hub  # without TensorFlow on JAX, PyTorch

BACKENDS = ("tensorflow", "jax", "torch")

CHECK_LIMIT = 500
SAMPLE_SOURCES = 3
SAMPLE_LENGTH = 40  # tokens of a generated sample, the prompt's included
TRANSLATION_LENGTH = 50


def measure(target, data_dir=None, first=True):
    """What `publish` records of the preset `target` under this process's
    backend: its `evaluations` per split; with `first` (the first backend),
    also the quick `check`, the n-gram `baseline` and the `samples`."""
    model = presets.load_preset(target)
    recipe = presets.load_metadata(target)["recipe"]
    corpus = datasets.get(recipe["dataset"])

    def evaluate(split, limit=None):
        result = evaluation.evaluate(
            model, corpus, split, recipe.get("languages"), None, data_dir, limit
        )
        return {"model": str(target), "dataset": corpus.name, "split": split, **result}

    measured = {"evaluations": {s: evaluate(s) for s in ("validation", "test")}}
    if first:
        measured["check"] = {**evaluate("test", CHECK_LIMIT), "limit": CHECK_LIMIT}
        if isinstance(corpus, datasets.corpora.WordCorpus):
            measured["baseline"] = baselines.baseline(corpus, data_dir=data_dir)
        measured["samples"] = _samples(model, recipe, corpus, data_dir)
    return measured


def _plugins(model_class):
    """The module files a fresh process imports before loading a preset of
    `model_class` (a class name of the registry): none for keras-nlm's own,
    else the file of the user's family."""
    module = keras.saving.get_registered_object(f"keras_nlm>{model_class}").__module__
    if module.startswith("keras_nlm."):
        return []
    if module == "__main__":
        raise ValueError(
            f"The model class {model_class} is defined in the script being run; "
            "define it in a module, which the other backends' processes import."
        )
    return [sys.modules[module].__file__]


def _measure_under(backend, target, data_dir, first, plugins):
    """`measure` under `backend`: here if it is this process's, else in a
    fresh process that first imports the `plugins` (module files)."""
    if backend == keras.backend.backend():
        return measure(target, data_dir, first)
    output = target.parent / f"{target.name}.{backend}.partial.json"
    command = [sys.executable, "-m", "keras_nlm.training.publish", str(target)]
    command += [str(output), str(data_dir or ""), str(int(first)), *plugins]
    env = dict(os.environ, KERAS_BACKEND=backend)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"Measuring {target} under {backend} failed:\n{done.stderr}")
    try:
        return json.loads(output.read_text("utf-8"))
    finally:
        output.unlink()


def _check_target(run, target):
    """Refuses a `target` that publishing would delete other files with: it
    replaces an earlier version of the preset only."""
    if not target.exists():
        return
    if target.resolve() == run.resolve():
        raise ValueError(f"RUN {run} is the preset {target} itself; publish a run.")
    preset = presets.preset_names() | {presets.CARD_FILE}
    if not target.is_dir():
        raise ValueError(
            f"{target} is not a folder, so publishing will not replace it; "
            "choose another --name or --zoo."
        )
    foreign = [
        name
        for name in sorted(os.listdir(target))
        if name.removesuffix(".partial") not in preset
        and not name.removesuffix(".partial").endswith("tokenizer.json")
    ]
    if foreign:
        raise ValueError(
            f"{target} is not an earlier version of a preset (it holds "
            f"{', '.join(foreign[:5])}), so publishing will not replace it; "
            "choose another --name or --zoo."
        )


def _copy_preset(run, target):
    """The run's preset files (not its training checkpoints) into `target`."""
    if not (run / presets.CONFIG_FILE).is_file():
        raise ValueError(
            f"RUN {run} holds no trained model (no {presets.CONFIG_FILE}); "
            "`keras-nlm train` writes one when a run ends."
        )
    metadata = presets.load_metadata(run)
    _check_target(run, target)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    names = [presets.CONFIG_FILE, presets.METADATA_FILE, presets.WEIGHTS_FILE]
    for role in metadata["tokenizers"]:
        names.append(f"{role}.json")
        shutil.copytree(run / "assets" / role, target / "assets" / role)
    for name in names:
        shutil.copyfile(run / name, target / name)
    return metadata


def store_weights_as_float16(path):
    """Rewrites a Keras `.weights.h5` file with its float32 arrays as float16.

    Halves a preset (the medium LSTM's 79 MB become 40, under the zoo's 60 MB
    per checkpoint); Keras casts the values back to the variables' float32 on
    loading, and every number on a model card is measured on these weights.
    Keras has no option for it, so the file is copied array by array (into a
    new file: HDF5 would not give back the space of arrays deleted in place).
    """
    import h5py
    import numpy as np

    halved = f"{path}.partial"
    with h5py.File(path, "r") as source, h5py.File(halved, "w") as target:
        target.attrs.update(source.attrs)

        def copy(name, item):
            if isinstance(item, h5py.Group):
                copied = target.require_group(name)
            else:
                data = item[()]
                if data.dtype == np.float32:
                    data = data.astype(np.float16)
                copied = target.create_dataset(name, data=data)
            copied.attrs.update(item.attrs)

        source.visititems(copy)
    os.replace(halved, path)


def _prompts(corpus, data_dir):
    """The zoo's prompts of a standard corpus; for one's own, the start of
    the test split's first two lines (three words, or twelve characters)."""
    if corpus.config is None:
        return presets.PROMPTS[corpus.name]
    if isinstance(corpus, datasets.corpora.WordCorpus):
        lines = [" ".join(line.split()[:3]) for line in corpus.lines("test", data_dir)]
    else:
        lines = [line[:12] for line in corpus.text("test", data_dir).splitlines()]
    return [line for line in lines if line.strip()][:2]


def _samples(model, recipe, corpus, data_dir):
    if recipe.get("languages"):
        pairs = corpus.pairs("test", *recipe["languages"], data_dir=data_dir)
        beam = keras_hub.samplers.BeamSampler(5)
        return [
            {
                "source": source,
                "reference": reference,
                "greedy": model.translate(source, TRANSLATION_LENGTH),
                "beam_5": model.translate(source, TRANSLATION_LENGTH, sampler=beam),
            }
            for source, reference in pairs[:SAMPLE_SOURCES]
        ]
    samplers = {
        "greedy": keras_hub.samplers.GreedySampler,
        "top_k": lambda: keras_hub.samplers.TopKSampler(k=5, seed=1),
    }
    return [
        {
            "prompt": prompt,
            "sampler": name,
            "text": model.generate(prompt, SAMPLE_LENGTH, sampler=make()),
        }
        for prompt in _prompts(corpus, data_dir)
        for name, make in samplers.items()
    ]


def _hardware():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            models = [ln.split(":", 1)[1].strip() for ln in file if "model name" in ln]
        cpu = models[0] if models else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores (CPU only)"


def publish(run, name, zoo=None, backends=BACKENDS, data_dir=None):
    """Publishes the trained run in `run` as the zoo preset `name`.

    Returns the preset's directory; its `metadata.json` holds the per-backend
    `evaluations`, the `baseline`, the `check` and the `samples`.
    """
    run = pathlib.Path(run)
    target = pathlib.Path(zoo or presets.ZOO) / name
    metadata = _copy_preset(run, target)
    store_weights_as_float16(target / presets.WEIGHTS_FILE)
    metadata["weights_dtype"] = "float16"
    presets.write_manifest(target)
    metadata["evaluations"] = {}
    plugins = _plugins(metadata["recipe"]["model"]["class"])
    for i, backend in enumerate(backends):
        measured = _measure_under(backend, target, data_dir, i == 0, plugins)
        metadata["evaluations"][backend] = measured.pop("evaluations")
        metadata.update(measured)
    metadata["hardware"] = _hardware()
    write_json(target / presets.METADATA_FILE, metadata)
    presets.write_manifest(target)
    (target / presets.CARD_FILE).write_text(model_card(name, metadata), "utf-8")
    return target


def _table(metadata, metric):
    rows = []
    for split in ("validation", "test"):
        values = [
            metadata["evaluations"][b][split].get(metric)
            for b in metadata["evaluations"]
        ]
        rows.append(f"| {split} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    header = "| split | " + " | ".join(metadata["evaluations"]) + " |"
    return "\n".join([header, "|---" * (len(metadata["evaluations"]) + 1) + "|", *rows])


def _backends(metadata):
    """'the jax backend', or each backend with its epochs when the run was
    resumed under another one (epochs logged without one: the saving backend)."""
    spans = []  # [backend, first epoch, last epoch]
    for epoch in metadata.get("history", []):
        backend = epoch.get("backend", metadata["backend"])
        if spans and spans[-1][0] == backend:
            spans[-1][2] = epoch["epoch"]
        else:
            spans.append([backend, epoch["epoch"], epoch["epoch"]])
    if len(spans) < 2:
        return f"the {metadata['backend']} backend"
    return ", then ".join(
        f"the {backend} backend (epochs {first}-{last})"
        if first < last
        else f"the {backend} backend (epoch {first})"
        for backend, first, last in spans
    )


def _training_time(metadata):
    """' in 96 minutes of wall time.', and each backend's median step where
    the history has them (wall time includes any pause of the run)."""
    history = metadata.get("history", [])
    seconds = sum(epoch.get("seconds", 0) for epoch in history) or metadata.get(
        "training_seconds_this_session"
    )
    steps = {}
    for epoch in history:
        if "step_seconds" in epoch:
            backend = epoch.get("backend", metadata["backend"])
            steps.setdefault(backend, []).append(epoch["step_seconds"])
    text = ""
    if seconds:
        hours = seconds / 3600
        text = f"{hours:.1f} hours" if hours >= 2 else f"{hours * 60:.0f} minutes"
        text = f" in {text} of wall time"
    if steps:
        medians = [f"{statistics.median(s):.3g} s under {b}" for b, s in steps.items()]
        text += (
            f"; a training step of batch {metadata['recipe']['batch_size']} took a "
            f"median {' and '.join(medians)}"
        )
    return text + "."


def equation(model_class):
    """What the model class named `model_class` computes, and its papers."""
    cls = keras.saving.get_registered_object(f"keras_nlm>{model_class}")
    return f"{', '.join(cls.EQUATION)} ({cls.PAPERS})"


def model_card(name, metadata):
    recipe = metadata["recipe"]
    corpus = datasets.get(recipe["dataset"])
    split, metric, value, target = presets.headline(name, metadata)
    history = metadata.get("history", [])
    metrics = [metric] + [
        m
        for m in ("perplexity", "bits_per_character", "exact_match", "token_accuracy")
        if m != metric
        and m in metadata["evaluations"][next(iter(metadata["evaluations"]))][split]
    ]
    lines = [
        f"# `{name}`",
        "",
        recipe["description"],
        "",
        f"**Headline**: {split} {metric} **{value:.4g}** (target {target}; "
        f"reference: {recipe['reference']}).",
        "",
        "## The model",
        "",
        f"`{recipe['model']['class']}`: {equation(recipe['model']['class'])}.",
        "",
        "Weights stored as float16 (half the size; loaded as float32), the "
        "numbers below measured on them.",
        "",
        f"Arguments: `{json.dumps({k: v for k, v in recipe['model'].items() if k != 'class'})}`, "
        f"{metadata['parameter_count']:,} parameters.",
        "",
        "```python",
        "from keras_nlm.presets import load_preset",
        f'model = load_preset("{name}")  # offline, on any backend; checks SHA256SUMS',
        "```",
        "",
        "## Data",
        "",
        f"{corpus.description} Files (fetched from their origin or a local mirror, "
        "verified by sha256 before use):",
        "",
        *[f"- `{f.path}`: sha256 `{f.sha256}`" for f in corpus.files],
        "",
        "## How it was made",
        "",
        "```bash",
        f"keras-nlm train {recipe['name']}{corpus.options(train=True)} --output "
        f"runs/{name}   # add --resume after an interruption",
        f"keras-nlm publish runs/{name} --name {name}",
        "```",
        "",
        f"Recipe `{recipe['name']}` version {recipe['version']}: optimizer "
        f"{recipe['optimizer']}, learning rate {recipe['learning_rate']}, "
        + (
            f"gradient norm clipped at {recipe['global_clipnorm']}, "
            if recipe.get("global_clipnorm") is not None
            else ""
        )
        + f"batch {recipe['batch_size']}, {recipe['epochs']} epochs, seed "
        f"{recipe['seed']}"
        + (
            f"; the weights are those of epoch {metadata['best_epoch']}, the best "
            "on validation. "
            if metadata.get("best_epoch")
            else ". "
        )
        + f"Trained under {_backends(metadata)} on {metadata['hardware']}"
        + _training_time(metadata),
        "",
        "## Results",
        "",
        "Measured with `keras-nlm evaluate "
        f"{name}{corpus.options()} --split <split> --json` under each backend:",
        "",
    ]
    for m in metrics:
        lines += [f"**{m}**", "", _table(metadata, m), ""]
    if "bleu" in metrics:
        signature = metadata["metrics"]["test"]["signature"]
        lines += [
            f"BLEU of greedy translations (at most {BLEU_MAX_LENGTH} tokens), "
            "sacrebleu's corpus "
            f"BLEU (`{signature}`) on the target tokenizer's "
            + ("lowercased " if recipe["tokenizer"].get("lowercase") else "")
            + "tokens, "
            "with the references split the same way, as pytorch-seq2seq's BLEU "
            "is computed on its tokens.",
            "",
        ]
    if "baseline" in metadata:
        baseline = metadata["baseline"]
        lines += [
            f"Kneser-Ney {baseline['order']}-gram baseline on the same test split "
            f"(`keras-nlm ngram{corpus.options()}`): perplexity "
            f"{baseline['perplexity']:.2f}.",
            "",
        ]
    lines += [f"Reference: {recipe['reference']}.", "", "## Samples", ""]
    for sample in metadata["samples"]:
        if "source" in sample:
            lines += [
                f"- source: {sample['source']}",
                f"  - reference: {sample['reference']}",
                f"  - greedy: {sample['greedy']}",
                f"  - beam 5: {sample['beam_5']}",
            ]
        else:
            text = sample["text"].replace("\n", "⏎")
            lines.append(f"- {sample['sampler']}, prompt {sample['prompt']!r}: {text}")
    columns = [
        c
        for c in ("loss", "val_loss", "learning_rate", "seconds")
        if history and c in history[0]
    ]
    lines += [
        "",
        "Training history (per epoch):",
        "",
        "| epoch | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for epoch in history:
        values = " | ".join(f"{epoch[c]:.4g}" for c in columns)
        lines.append(f"| {epoch['epoch']} | {values} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # `_measure_under`'s worker: TARGET OUTPUT DATA_DIR FIRST [PLUGIN.py ...].
    target, output, data_dir, first, *plugins = sys.argv[1:]
    for path in plugins:
        spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    measured = measure(pathlib.Path(target), data_dir or None, first == "1")
    write_json(pathlib.Path(output), measured)
