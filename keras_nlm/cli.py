"""The `keras-nlm` command line.

    keras-nlm data NAME [--json]                   a corpus's statistics per split
    keras-nlm ngram --dataset NAME | FILES [--order N] [--split test] [--json]
                                                   the Kneser-Ney baseline's perplexity
    keras-nlm recipes [--json]                     the training recipes
    keras-nlm train RECIPE [--epochs N] [--output DIR] [--resume] [--devices N]
                   [--optimizer sgd|adam|adafactor] [--learning-rate LR] [--dropout P]
                   [FILES]                         train a recipe (a name or a JSON file)
    keras-nlm evaluate MODEL --dataset NAME | FILES [--split test] [--beam N] [--limit N]
    keras-nlm generate MODEL "prompt" [--max-length N] [--sampler top_k] [--seed S]
    keras-nlm translate MODEL "sentence" [--beam N] [--max-length N]
    keras-nlm export MODEL OUTPUT [--format tf_saved_model]
                                                   export for serving (`model.export`)
    keras-nlm zoo [--json]                         the zoo's presets and metrics
    keras-nlm publish RUN --name NAME [--zoo DIR] [--backends jax,torch]
                                                   a trained run into a zoo, measured

MODEL is a zoo preset name or a preset directory (what `train` writes).
FILES are one's own corpus: `--train-file F [--validation-file F --test-file F]`
(only a training file: cut 90/5/5); for sentence pairs each is a TSV file or
two aligned files (`--train-file train.de train.en`). See `datasets.from_files`.

`--json` prints one JSON object, alone on stdout (progress goes to stderr).
Errors exit non-zero with one clear line.
"""

import argparse
import contextlib
import json
import os
import pathlib
import subprocess
import sys


def _data(args):
    from keras_nlm import datasets

    corpus = datasets.get(args.name)
    stats = corpus.statistics(args.data_dir)
    if args.json:
        return {"dataset": corpus.name, "splits": stats}
    print(f"{corpus.name}: {corpus.description}")
    for split, values in stats.items():
        print(f"  {split:<10} " + ", ".join(f"{k} {v:,}" for k, v in values.items()))
    return None


def _ngram(args):
    from keras_nlm import datasets
    from keras_nlm.baselines import baseline
    from keras_nlm.datasets.corpora import WordCorpus

    corpus = _corpus(args, "word")
    if not isinstance(corpus, WordCorpus):
        word_corpora = [
            n for n, c in datasets.CORPORA.items() if isinstance(c, WordCorpus)
        ]
        raise ValueError(
            f"--dataset must be a word-level corpus ({', '.join(word_corpora)}); "
            f"got {args.dataset!r}."
        )
    result = baseline(corpus, args.split, args.order, args.data_dir)
    if args.json:
        return result
    print(
        f"Kneser-Ney {args.order}-gram on {corpus.name} {args.split}: "
        f"perplexity {result['perplexity']:.1f} (fit {result['fit_seconds']} s, "
        f"scoring {result['score_seconds']} s)"
    )
    return None


def _recipes(args):
    from keras_nlm import training

    if args.json:
        return {name: r.to_dict() for name, r in training.RECIPES.items()}
    for name, recipe in training.RECIPES.items():
        print(f"{name} (v{recipe.version}): {recipe.description}")
    return None


def _recipe(name_or_file):
    from keras_nlm import training

    if name_or_file.endswith(".json"):
        path = pathlib.Path(name_or_file)
        if path.exists() and not path.is_file():
            # A directory fails to open; a FIFO or a device would never end.
            raise ValueError(f"The recipe {path} is not a regular file.")
        try:
            with open(path, encoding="utf-8") as file:
                return training.Recipe(**json.load(file))
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{name_or_file} is not a recipe (a JSON object of Recipe "
                f"fields, as a run's recipe.json): {error}"
            ) from None
    return training.get(name_or_file)


def _train(args):
    from keras_nlm import training

    recipe = _recipe(args.recipe)
    changes = {"epochs": args.epochs, "dropout": args.dropout}
    if args.optimizer and args.optimizer != recipe.optimizer:
        # Another optimiser starts from its Keras default learning rate.
        default = training.OPTIMIZERS[args.optimizer]().learning_rate
        changes["optimizer"] = args.optimizer
        changes["learning_rate"] = float(default)
    if args.learning_rate is not None:
        changes["learning_rate"] = args.learning_rate
    recipe = recipe.replace(**{k: v for k, v in changes.items() if v is not None})
    if _files(args):
        recipe = recipe.on_files(*_files(args).values())
    output = args.output or f"runs/{recipe.name}"
    _, metadata = training.train(
        recipe,
        output,
        resume=args.resume,
        data_dir=args.data_dir,
        devices=args.devices,
    )
    if metadata is None:  # one of PyTorch's other processes
        return None
    result = {"output": output, **metadata["metrics"]}
    if args.json:
        return result
    print(f"Saved the trained model to {output}.")
    for split, values in metadata["metrics"].items():
        print(
            f"  {split:<10} " + ", ".join(f"{k} {v:.4g}" for k, v in _numbers(values))
        )
    return None


def _devices(devices):
    """Prepares this process to train on `devices` devices; returns how many
    processes to start instead (PyTorch's one per device), or 0."""
    import keras

    backend = keras.backend.backend()
    if backend == "torch" and "WORLD_SIZE" not in os.environ:
        return devices
    if backend == "jax":
        # Read when JAX starts, at its first computation, which is to come:
        # it splits a CPU into that many devices (GPUs and TPUs are unchanged).
        flag = f"--xla_force_host_platform_device_count={devices}"
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()
    return 0


def _torchrun(processes, argv):
    """This command again, in `processes` processes started by torchrun on
    this machine; its exit code."""
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
        *("--nproc-per-node", str(processes), "-m", "keras_nlm.cli", *argv),
    ]
    return subprocess.run(command).returncode


FILE_OPTIONS = ("train_file", "validation_file", "test_file")


def _files(args):
    """`{split: path(s)}` of the `--*-file` options given, as
    `datasets.from_files` takes them (two aligned files: a pair)."""
    files = {}
    for split, option in zip(("train", "validation", "test"), FILE_OPTIONS):
        paths = getattr(args, option)
        if paths:
            if len(paths) > 2:
                raise ValueError(
                    f"--{option.replace('_', '-')} takes one file, or two aligned "
                    f"files of sentence pairs; got {len(paths)}."
                )
            files[split] = paths[0] if len(paths) == 1 else tuple(paths)
    return files


def _corpus(args, level):
    """The corpus that `--dataset` names, or one made from `--*-file`
    options (of `level`)."""
    from keras_nlm import datasets

    files = _files(args)
    if bool(files) == bool(args.dataset):
        raise ValueError(
            "Give --dataset NAME or your own files (--train-file, "
            "--validation-file, --test-file), not both nor neither."
        )
    if files:
        return datasets.from_files(**files, level=level)
    return datasets.get(args.dataset)


def _numbers(values):
    return [(k, v) for k, v in values.items() if isinstance(v, float)]


def _evaluate(args):
    from keras_nlm import evaluation, presets

    model = presets.load_preset(args.model)
    languages = presets.load_metadata(args.model).get("recipe", {}).get("languages")
    corpus = _corpus(args, evaluation.level(model))
    if corpus.config is not None:
        languages = corpus.languages if languages else None
    result = evaluation.evaluate(
        model, corpus, args.split, languages, args.beam, args.data_dir, args.limit
    )
    result = {
        "model": str(args.model),
        "dataset": corpus.name,
        "split": args.split,
        **result,
    }
    if args.json:
        return result
    print(
        f"{args.model} on {corpus.name} {args.split}: "
        + ", ".join(f"{k} {v:.4g}" for k, v in _numbers(result))
    )
    return None


def _sampler(args):
    from keras_nlm.generation import keras_hub  # without TensorFlow on JAX, PyTorch

    samplers = keras_hub.samplers
    options = {"temperature": args.temperature}
    if args.sampler == "greedy":
        return samplers.GreedySampler(**options)
    if args.sampler == "top_k":
        return samplers.TopKSampler(k=args.k, seed=args.seed, **options)
    if args.sampler == "top_p":
        return samplers.TopPSampler(p=args.p, seed=args.seed, **options)
    return samplers.RandomSampler(seed=args.seed, **options)


def _generate(args):
    from keras_nlm.models.base import LanguageModel
    from keras_nlm.presets import load_preset

    model = load_preset(args.model)
    if not isinstance(model, LanguageModel):
        raise ValueError(
            f"{args.model} is a {type(model).__name__}; `generate` needs a language "
            "model (use `translate` for a Seq2Seq)."
        )
    text = model.generate(args.prompt, args.max_length, sampler=_sampler(args))
    if args.json:
        return {"prompt": args.prompt, "text": text}
    print(text)
    return None


def _translate(args):
    from keras_nlm.generation import keras_hub  # without TensorFlow on JAX, PyTorch
    from keras_nlm.presets import load_preset

    model = load_preset(args.model)
    if not callable(getattr(model, "translate", None)):
        raise ValueError(
            f"{args.model} is a {type(model).__name__}; `translate` needs a "
            "translation model (a Seq2Seq)."
        )
    sampler = keras_hub.samplers.BeamSampler(args.beam) if args.beam else "greedy"
    text = model.translate(args.sentence, args.max_length, sampler=sampler)
    if args.json:
        return {"source": args.sentence, "translation": text}
    print(text)
    return None


EXPORT_FORMATS = ("tf_saved_model", "onnx", "openvino", "litert", "torch")


def _export(args):
    from keras_nlm.presets import load_preset

    output = pathlib.Path(args.output)
    if output.exists():
        raise ValueError(f"OUTPUT {output} exists; export writes a new path only.")
    model = load_preset(args.model)
    model.export(str(output), format=args.format, verbose=False)
    endpoints = []
    if args.format == "tf_saved_model":
        endpoints = ["serve", *model.serving_endpoints()]
    if args.json:
        return {
            "model": args.model,
            "output": str(output),
            "format": args.format,
            "endpoints": endpoints,
        }
    print(
        f"Exported {args.model} to {output} ({args.format})"
        + (f"; endpoints: {', '.join(endpoints)}." if endpoints else ".")
    )
    return None


def _zoo(args):
    from keras_nlm import presets

    rows = []
    for name in presets.zoo_presets():
        split, metric, value, target = presets.headline(
            name, presets.load_metadata(name)
        )
        rows.append(
            {
                "name": name,
                "split": split,
                "metric": metric,
                "value": value,
                "target": target,
            }
        )
    if args.json:
        return {"presets": rows}
    if not rows:
        print(f"The zoo ({presets.ZOO}) holds no presets yet.")
    for row in rows:
        print(
            f"{row['name']:<26} {row['split']} {row['metric']} {row['value']:.4g} "
            f"(target {row['target']})"
        )
    return None


def _publish(args):
    from keras_nlm.training.publish import BACKENDS, publish

    backends = args.backends.split(",") if args.backends else BACKENDS
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise ValueError(
            f"--backends lists {', '.join(unknown)}; the backends are "
            f"{', '.join(BACKENDS)}."
        )
    target = publish(
        args.run_dir, args.name, args.zoo, backends=backends, data_dir=args.data_dir
    )
    if args.json:
        return {"preset": str(target)}
    print(f"Published {args.run_dir} as {target}; see its README.md.")
    return None


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def _seed(text):
    value = int(text)
    if not 0 <= value < 2**32:
        # JAX's random keys are unsigned 32-bit; refused alike everywhere.
        raise argparse.ArgumentTypeError(f"must be in [0, 2**32); got {text}")
    return value


def parser():
    parser = argparse.ArgumentParser(
        prog="keras-nlm", description="Classic neural language models for Keras 3."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="a corpus's statistics per split")
    data.add_argument("name")
    data.set_defaults(run=_data)
    ngram = commands.add_parser("ngram", help="the Kneser-Ney n-gram baseline")
    ngram.add_argument("--dataset")
    ngram.add_argument("--order", type=int, default=5)
    ngram.add_argument("--split", default="test")
    ngram.set_defaults(run=_ngram)
    recipes = commands.add_parser("recipes", help="the training recipes")
    recipes.set_defaults(run=_recipes)

    train = commands.add_parser(
        "train", help="train a recipe, checkpointing every epoch"
    )
    train.add_argument("recipe", help="a recipe name (see `recipes`) or a JSON file")
    train.add_argument("--epochs", type=_positive_int)
    train.add_argument(
        "--output",
        help="the run's folder (default runs/RECIPE): a new or empty one, or "
        "this run's own with --resume",
    )
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --output"
    )
    train.add_argument(
        "--devices",
        type=_positive_int,
        default=1,
        help="devices that share each batch (data parallelism; on PyTorch, "
        "one process per device, started with torchrun)",
    )
    train.add_argument("--optimizer", choices=("sgd", "adam", "adafactor"))
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--dropout", type=float)
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="score a model on a split")
    evaluate.add_argument("model", help="a zoo preset name or a preset directory")
    evaluate.add_argument("--dataset")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument(
        "--beam", type=_positive_int, help="beam search width (Seq2Seq)"
    )
    evaluate.add_argument(
        "--limit",
        type=_positive_int,
        help="score only the first N tokens (sentence pairs for a Seq2Seq)",
    )
    evaluate.set_defaults(run=_evaluate)

    generate = commands.add_parser("generate", help="continue a text prompt")
    generate.add_argument("model", help="a zoo preset name or a preset directory")
    generate.add_argument("prompt")
    generate.add_argument("--max-length", type=_positive_int, default=50)
    generate.add_argument(
        "--sampler", choices=("greedy", "top_k", "top_p", "random"), default="greedy"
    )
    generate.add_argument("--k", type=_positive_int, default=5, help="for top_k")
    generate.add_argument("--p", type=float, default=0.9, help="for top_p")
    generate.add_argument("--temperature", type=float, default=1.0)
    generate.add_argument("--seed", type=_seed)
    generate.set_defaults(run=_generate)

    translate = commands.add_parser("translate", help="translate a sentence")
    translate.add_argument("model", help="a zoo preset name or a preset directory")
    translate.add_argument("sentence")
    translate.add_argument("--beam", type=_positive_int, help="beam search width")
    translate.add_argument("--max-length", type=_positive_int, default=50)
    translate.set_defaults(run=_translate)

    export = commands.add_parser("export", help="export a model for serving")
    export.add_argument("model", help="a zoo preset name or a preset directory")
    export.add_argument("output", help="where to write it (a new path)")
    export.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="tf_saved_model",
        help="Keras's export formats (see the README for which work)",
    )
    export.set_defaults(run=_export)

    zoo = commands.add_parser("zoo", help="the zoo's presets and their metrics")
    zoo.set_defaults(run=_zoo)
    publish = commands.add_parser(
        "publish", help="a trained run into the zoo, measured on every backend"
    )
    publish.add_argument(
        "run_dir", metavar="RUN", help="the run's folder (what `train` wrote)"
    )
    publish.add_argument("--name", required=True, help="the zoo preset's name")
    publish.add_argument("--zoo", help="the zoo folder (default: the project's zoo/)")
    publish.add_argument(
        "--backends",
        help="measure under these backends, comma-separated (default: all three)",
    )
    publish.set_defaults(run=_publish)

    everything = (
        data,
        ngram,
        recipes,
        train,
        evaluate,
        generate,
        translate,
        export,
        zoo,
    )
    for command in everything + (publish,):
        command.add_argument(
            "--json", action="store_true", help="print one JSON object"
        )
    for command in (data, ngram, train, evaluate, publish):
        command.add_argument(
            "--data-dir",
            help="a local mirror of the corpora (default: $KERAS_NLM_DATA)",
        )
    for command in (ngram, train, evaluate):
        for option in FILE_OPTIONS:
            command.add_argument(
                f"--{option.replace('_', '-')}",
                nargs="+",
                metavar="FILE",
                help="one's own corpus (see FILES above)",
            )
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    if getattr(args, "devices", 1) > 1:
        processes = _devices(args.devices)
        if processes:
            return _torchrun(processes, argv)
    # With --json, stdout holds the JSON object alone: anything else printed
    # there (Keras's progress bars) goes to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr)
    try:
        with quiet if args.json else contextlib.nullcontext():
            result = args.run(args)
    except (ValueError, OSError, FloatingPointError) as error:
        # OSError: the user's files (missing, unreadable, a file where a
        # folder should be), named in its message. FloatingPointError:
        # `TrainingDiverged`, a NaN loss.
        print(f"keras-nlm: error: {error}", file=sys.stderr)
        return 2
    if result is not None:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
