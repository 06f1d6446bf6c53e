import dataclasses
import json
import os
import pathlib
import time

import keras

from keras_nlm import evaluation, presets
from keras_nlm.datasets.batching import SentencePairs
from keras_nlm.datasets.corpora import SPLITS
from keras_nlm.distribution import DataParallel
from keras_nlm.files import write_json
from keras_nlm.generation import keras_hub  # without TensorFlow on JAX, PyTorch
from keras_nlm.models import CarriedState
from keras_nlm.training.checkpoint import EpochCheckpoint

RECIPE_FILE = "recipe.json"
CHECKPOINTS = "checkpoint"


def _batches(recipe, model, tokenizers, split, data_dir, epoch):
    corpus = recipe.corpus()
    try:
        return _split_batches(recipe, corpus, model, tokenizers, split, data_dir, epoch)
    except ValueError as error:  # e.g. a split of one's own too small to batch
        raise ValueError(f"The {split} split of {corpus.name}: {error}") from None


def _split_batches(recipe, corpus, model, tokenizers, split, data_dir, epoch):
    train = split == "train"
    if recipe.languages:
        pairs = corpus.pairs(split, *recipe.languages, data_dir=data_dir)
        return SentencePairs(
            [s for s, _ in pairs],
            [t for _, t in pairs],
            source_tokenizer=tokenizers["source_tokenizer"],
            target_tokenizer=tokenizers["target_tokenizer"],
            batch_size=recipe.batch_size,
            max_length=recipe.sequence_length,
            pad_to_multiple_of=None if recipe.bucket_widths else 8,
            bucket_widths=recipe.bucket_widths,
            shuffle=train,
            seed=recipe.seed,
            epoch=epoch,
        )
    tokenizer = tokenizers["tokenizer"]
    return model.stream_batches(
        evaluation.corpus_ids(corpus, split, tokenizer, data_dir),
        recipe.batch_size,
        recipe.sequence_length,
        evaluation.stream_start_id(tokenizer),
        shuffle=train,
        seed=recipe.seed,
        epoch=epoch,
        variable_length=recipe.variable_length and train,
    )


class _StartAveraging(keras.callbacks.Callback):
    """Starts NT-ASGD's average after the epoch that triggers it, before
    `checkpoint` saves the epoch (so that the checkpoint holds the start)."""

    def __init__(self, recipe, checkpoint):
        super().__init__()
        self.recipe, self.checkpoint = recipe, checkpoint

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if self.recipe.average_start([*self.checkpoint.history, logs]) == epoch + 1:
            self.model.optimizer.start_averaging()


class _VariableLengths(keras.callbacks.Callback):
    """Draws each epoch's BPTT lengths and gives the optimizer their
    learning-rate factors, one per step."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        # Set, not counted: `fit` also ends an epoch of its data as it starts.
        self.batches.set_epoch(epoch)
        optimizer = self.model.optimizer
        if not optimizer.built:  # TensorFlow's `fit` builds it in a step
            optimizer.build(self.model.trainable_variables)
        optimizer.scale_steps(self.batches.length_scales)


def _own_names(recipe):
    """What a run of `recipe` writes into its folder: the recipe, the
    checkpoints and, at the end, the preset (and each write's partial file)."""
    roles = (
        ("source_tokenizer", "target_tokenizer") if recipe.languages else ("tokenizer",)
    )
    names = presets.preset_names(roles) | {RECIPE_FILE, CHECKPOINTS}
    return names | {f"{name}.partial" for name in names}


def _check_output(recipe, output, resume):
    """The epoch to start at. Refuses an output that holds anything but a run
    of this recipe: training writes over no one's files, and never mixes two
    runs in one folder."""
    existing = next(p for p in (output, *output.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(
            f"The output {output} cannot be a run's folder: {existing} is not "
            "a folder; choose a new or empty folder."
        )
    if existing != output:
        return 0
    names = sorted(os.listdir(output))
    if not names:
        return 0
    foreign = [name for name in names if name not in _own_names(recipe)]
    recipe_file = output / RECIPE_FILE
    if foreign or not recipe_file.is_file():
        shown = foreign or names
        listed = ", ".join(shown[:5]) + (", ..." if len(shown) > 5 else "")
        raise ValueError(
            f"The output {output} is not empty and not a run of this recipe (it "
            f"holds {listed}); training would write over its files: choose a new "
            "or empty folder."
        )
    latest = EpochCheckpoint.latest(output / CHECKPOINTS)
    if latest is not None and not resume:
        raise ValueError(
            f"{output} already holds a run of {latest['epoch']} epoch(s); pass "
            "`resume=True` (`--resume`) to continue it, or choose another output."
        )
    try:
        saved = json.loads(recipe_file.read_text(encoding="utf-8"))
        if not isinstance(saved, dict):
            raise ValueError(f"a JSON object is needed, not {type(saved).__name__}")
    except ValueError as error:
        raise ValueError(f"{recipe_file} is not a run's recipe: {error}") from None
    # A field added since the run started has its default there.
    defaults = {f.name: f.default for f in dataclasses.fields(recipe)}
    differing = [
        key
        for key, value in recipe.to_dict().items()
        if key != "epochs"
        and json.loads(json.dumps(value)) != saved.get(key, defaults[key])
    ]
    if differing:
        raise ValueError(
            f"{output} holds a run with a different {', '.join(differing)}; "
            "resume it with the same settings, or choose another output."
        )
    if latest is None:
        # Stopped before its first checkpoint: it starts again, with or
        # without `resume`, as nothing was trained.
        return 0
    if recipe.epochs < latest["epoch"]:
        raise ValueError(
            f"Cannot resume {output} for epochs={recipe.epochs} (`--epochs`): its "
            f"checkpoint already has {latest['epoch']} epochs. Resume with at "
            f"least {latest['epoch']} epochs, or train anew in another output."
        )
    return latest["epoch"]


def train(recipe, output, resume=False, data_dir=None, verbose="auto", devices=1):
    """Runs a recipe: trains, checkpoints every epoch, evaluates, saves a preset.

    Args:
        recipe: a `Recipe` (see `keras_nlm.training.recipes`).
        output: the run's folder: a new or empty one, or this recipe's run
            (to resume it, or to start again one stopped before its first
            checkpoint). It receives `recipe.json`, `checkpoint/` (the
            training state after each epoch) and, at the end, the trained
            model as a preset (`config.json`, `model.weights.h5`, tokenizers,
            `metadata.json` with the recipe, the per-epoch logs and the
            validation and test metrics).
        resume: continue the run in `output` from its last checkpoint. The
            resumed run ends where an uninterrupted one would have.
        data_dir: a local mirror of the corpora (default `$KERAS_NLM_DATA`).
        verbose: passed to `fit` (`"auto"` shows Keras's progress bar).
        devices: how many devices share each of the recipe's batches (data
            parallelism through the backend's own engine), or a
            `keras_nlm.distribution.DataParallel` (with a TPU's strategy).
            The recipe's numbers stay the same (the global batch, the
            learning rates), and so does what is trained, up to float
            rounding: a run's checkpoints resume on any number of devices.
            On PyTorch, each device is a process that `torchrun` starts and
            that calls `train`; the first one writes the run's files.

    Returns:
        The trained model (tokenizers attached) and its metadata dict (None
        in PyTorch's other processes, which stop after the last epoch).
    """
    # First: TensorFlow's CPU is split into devices before it starts.
    parallel = devices if isinstance(devices, DataParallel) else DataParallel(devices)
    parallel.check_batch_size(recipe.batch_size)
    output = pathlib.Path(output)
    corpus = recipe.corpus()
    missing = [split for split in SPLITS if not corpus.has_split(split)]
    if missing:
        raise ValueError(
            f"Recipe {recipe.name!r} needs a train, a validation and a test "
            f"split; {corpus.name!r} has no {', '.join(missing)} split."
        )
    initial_epoch = _check_output(recipe, output, resume)
    keras.utils.set_random_seed(recipe.seed)
    tokenizers = recipe.make_tokenizers(data_dir)
    started = time.perf_counter()
    with parallel.scope():
        model, trainer, checkpoint = _fit(
            recipe, output, data_dir, verbose, parallel, tokenizers, initial_epoch
        )
    parallel.close()
    if not parallel.writes:
        return model, None
    # Outside the scope: TensorFlow evaluates on one device.
    best_epoch = None
    if recipe.restore_best_weights:
        best_epoch = checkpoint.best_epoch()
    kept = best_epoch or checkpoint.history[-1]["epoch"]
    trainer.load_weights(checkpoint.weights_of(kept))
    if recipe.averaged(kept - 1, checkpoint.history):
        trainer.optimizer.finalize_variable_values(trainer.trainable_weights)
    averaged_after = recipe.average_start(checkpoint.history)
    metrics = {}
    for split in ("validation", "test"):
        metrics[split] = evaluation.evaluate(
            model, recipe.dataset, split, recipe.languages, data_dir=data_dir
        )
    metadata = {
        "recipe": recipe.to_dict(),
        "history": checkpoint.history,
        "metrics": metrics,
        **({"best_epoch": best_epoch} if best_epoch else {}),
        **({"averaged_after_epoch": averaged_after} if averaged_after else {}),
        "training_seconds_this_session": round(time.perf_counter() - started, 1),
    }
    presets.save_preset(
        model, output, tokenizers, metadata, keep=(RECIPE_FILE, CHECKPOINTS)
    )
    return model, metadata


def _fit(recipe, output, data_dir, verbose, parallel, tokenizers, initial_epoch):
    """Builds the model and trains it, checkpointing every epoch; returns
    the model, what trained it, and the checkpoint."""
    model = recipe.make_model(tokenizers)
    for role, tokenizer in tokenizers.items():
        setattr(model, role, tokenizer)
    batches = _batches(recipe, model, tokenizers, "train", data_dir, initial_epoch)
    train_data = parallel.shard(batches)
    validation_data = parallel.shard(
        _batches(recipe, model, tokenizers, "validation", data_dir, 0)
    )
    trainer = CarriedState(model, recipe.batch_size) if recipe.carry_state else model
    trainer(train_data[0][0])  # build the weights before initialising them
    if recipe.init_scale is not None:
        for i, weight in enumerate(model.trainable_weights):
            weight.assign(
                keras.random.uniform(
                    weight.shape,
                    -recipe.init_scale,
                    recipe.init_scale,
                    seed=recipe.seed + i,
                )
            )
    # Only a run that could start writes its folder: a failed start (a bad
    # recipe, a missing corpus) leaves nothing behind.
    if parallel.writes:
        output.mkdir(parents=True, exist_ok=True)
        write_json(output / RECIPE_FILE, recipe.to_dict())
    checkpoint = EpochCheckpoint(output / CHECKPOINTS, writes=parallel.writes)
    # The scheduler comes first, so that the epoch's learning rate, which it
    # adds to the logs, is in the checkpoint's history.
    schedule = keras.callbacks.LearningRateScheduler(
        lambda epoch, _: recipe.learning_rate_at(epoch, checkpoint.history)
    )
    # The averaged epochs, if any, are a second `fit` with an optimizer that
    # keeps the average: it starts at the weights the first part ended with.
    parts = [recipe.epochs]
    if recipe.average_after is not None:
        parts = [recipe.average_after, recipe.epochs]
    for end in parts:
        # The last part always runs: its `fit` loads the latest checkpoint.
        if end < recipe.epochs and initial_epoch >= end:
            continue
        optimizer = recipe.make_optimizer(recipe.averaged(end - 1), len(train_data))
        callbacks = [schedule, checkpoint]
        if optimizer.use_ema:
            # Validation sees the average. The checkpoints keep the weights
            # being trained as the model's and the average in the optimizer's
            # state, so that a resumed run goes on as an uninterrupted one.
            callbacks.insert(1, keras.callbacks.SwapEMAWeights())
        if recipe.nonmonotone_interval is not None:
            callbacks.insert(-1, _StartAveraging(recipe, checkpoint))
        if recipe.variable_length:
            callbacks.append(_VariableLengths(batches))
        trainer.compile(
            optimizer=optimizer,
            metrics=[
                keras_hub.metrics.Perplexity(
                    from_logits=True, mask_token_id=model.ignored_label
                )
            ],
        )
        # At the first averaged epoch the checkpoint's optimizer (without an
        # average) does not fit, so Keras skips loading it with a warning: the
        # new optimizer starts at step 0, where its average is the weights.
        trainer.fit(
            train_data,
            validation_data=validation_data,
            epochs=end,
            callbacks=callbacks,
            verbose=verbose if parallel.writes else 0,
            # The batches shuffle themselves, from (seed, epoch); Keras's own
            # shuffling would differ between a resumed and an uninterrupted run.
            shuffle=False,
        )
    return model, trainer, checkpoint
