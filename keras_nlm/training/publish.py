"""Publishing a trained run to the zoo: a verified preset and its model card.

    keras-nlm publish runs/lstm_ptb_small --name lstm_ptb_small

copies the run's preset to `zoo/<name>/`, measures it with `keras-nlm evaluate`
under each backend (a fresh process per backend, so each one really loads the
checkpoint), scores the n-gram baseline on the same split, generates samples,
and records all of it in `metadata.json`, with a quick check (the perplexity or
BLEU of the first few hundred test tokens or sentences) that the zoo's tests
compare against on every backend. It then writes `SHA256SUMS` and the model
card, `README.md`. Every number on the card is one measured here.
"""

import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys

import keras

from keras_nlm import datasets, presets
from keras_nlm.evaluation import BLEU_MAX_LENGTH
from keras_nlm.files import write_json

BACKENDS = ("tensorflow", "jax", "torch")

CHECK_LIMIT = 500
SAMPLE_SOURCES = 3


def _cli(backend, *args, data_dir=None):
    """One `keras-nlm ... --json` run under `backend`, in a fresh process."""
    env = dict(os.environ, KERAS_BACKEND=backend)
    if data_dir:
        env[datasets.registry.MIRROR_VARIABLE] = str(data_dir)
    done = subprocess.run(
        [sys.executable, "-m", "keras_nlm.cli", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"keras-nlm {' '.join(args)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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


def _samples(backend, target, recipe, data_dir):
    if recipe.get("languages"):
        corpus = datasets.get(recipe["dataset"])
        pairs = corpus.pairs("test", *recipe["languages"], data_dir=data_dir)
        return [
            {
                "source": source,
                "reference": reference,
                "greedy": _cli(backend, "translate", str(target), source)[
                    "translation"
                ],
                "beam_5": _cli(
                    backend, "translate", str(target), source, "--beam", "5"
                )["translation"],
            }
            for source, reference in pairs[:SAMPLE_SOURCES]
        ]
    samples = []
    for prompt in presets.PROMPTS[recipe["dataset"]]:
        for sampler in ("greedy", "top_k"):
            options = ["--sampler", sampler, "--max-length", "40", "--seed", "1"]
            result = _cli(backend, "generate", str(target), prompt, *options)
            samples.append(
                {"prompt": prompt, "sampler": sampler, "text": result["text"]}
            )
    return samples


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
    recipe = metadata["recipe"]
    dataset = recipe["dataset"]

    evaluate = ["evaluate", str(target), "--dataset", dataset]
    metadata["evaluations"] = {
        backend: {
            split: _cli(backend, *evaluate, "--split", split, data_dir=data_dir)
            for split in ("validation", "test")
        }
        for backend in backends
    }
    metadata["check"] = _cli(
        backends[0], *evaluate, "--limit", str(CHECK_LIMIT), data_dir=data_dir
    )
    metadata["check"]["limit"] = CHECK_LIMIT
    if isinstance(datasets.get(dataset), datasets.corpora.WordCorpus):
        metadata["baseline"] = _cli(
            backends[0], "ngram", "--dataset", dataset, data_dir=data_dir
        )
    metadata["samples"] = _samples(backends[0], target, recipe, data_dir)
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
        for m in ("perplexity", "bits_per_character")
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
        f"keras-nlm train {recipe['name']} --output runs/{name}   # add --resume after an interruption",
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
        f"{name} --dataset {recipe['dataset']} --split <split> --json` under each backend:",
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
            f"(`keras-nlm ngram --dataset {recipe['dataset']}`): perplexity "
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
