import json
import re

import h5py
import keras
import keras_hub
import numpy as np
import pytest

from keras_nlm import cli, presets, training
from keras_nlm.models import CarriedState, FixedWindowLM
from keras_nlm.testing import count_case, kill_when, start_cli
from keras_nlm.training import trainer
from keras_nlm.training.checkpoint import EpochCheckpoint
from keras_nlm.training.optimizers import NTASGD
from keras_nlm.training.trainer import _batches, _check_output

# A character LSTM small enough to train in seconds, with dropout (whose
# random state a resumed run must restore) and a learning-rate decay.
TINY = training.Recipe(
    name="tiny_timemachine",
    version=1,
    description="A test recipe.",
    reference="none",
    dataset="timemachine",
    model={
        "class": "RNNLM",
        "cell": "lstm",
        "num_layers": 1,
        "hidden_dim": 32,
        "embedding_dim": 16,
        "dropout": 0.1,
    },
    tokenizer={"class": "CharacterTokenizer"},
    batch_size=64,
    sequence_length=50,
    carry_state=True,
    optimizer="adam",
    learning_rate=1e-2,
    global_clipnorm=1.0,
    epochs=3,
    decay_after=1,
    decay=0.5,
)


# TINY in fewer, bigger steps (1000 streams of 5 characters): quicker to run,
# where a test needs a training run but not its result.
QUICK = TINY.replace(batch_size=1000, sequence_length=5)

# QUICK with Merity et al.'s methods: SGD whose learning rate grows eightfold
# each epoch, so that epoch 3's validation loss is worse than epoch 1's and
# (interval 1) triggers NT-ASGD's average; variable-length BPTT.
MERITY = QUICK.replace(
    optimizer="sgd",
    learning_rate=1.0,
    decay_after=1,
    decay=8.0,
    nonmonotone_interval=1,
    average_learning_rate=0.5,
    variable_length=True,
    epochs=4,
)


def _weights(directory):
    return [np.asarray(w) for w in presets.load_preset(directory).get_weights()]


SAVE_PAUSE = 0.25


def _state_after_kill(checkpoints, latest):
    leftovers = sorted(p.name for p in checkpoints.iterdir() if "partial" in p.name)
    return f"latest epoch {latest['epoch']}, left half-written: {leftovers}"


def test_a_tiny_corpus_is_learned_and_a_run_killed_anywhere_resumes_to_the_same_end(
    tmp_path, capsys
):
    whole = tmp_path / "whole"
    model, metadata = training.train(TINY, whole, verbose=0)
    # Learned: far below the uniform model's perplexity (the alphabet size).
    uniform = model.tokenizer.vocabulary_size()
    assert metadata["metrics"]["test"]["perplexity"] < uniform / 4
    assert [h["epoch"] for h in metadata["history"]] == [1, 2, 3]
    assert {h["backend"] for h in metadata["history"]} == {keras.backend.backend()}
    for epoch in metadata["history"]:
        assert 0 < epoch["step_seconds"] < epoch["seconds"], epoch

    recipe_file = tmp_path / "tiny.json"
    recipe_file.write_text(json.dumps(TINY.to_dict()))
    run = tmp_path / "killed"
    checkpoints = run / "checkpoint"
    train = ["train", str(recipe_file), "--output", str(run)]
    rng = np.random.default_rng(8)  # the kill times: random, and reproducible
    kills = []
    with open(tmp_path / "log.txt", "w") as log:
        # During a step: a random time after the first epoch was saved.
        process = start_cli(train, log)
        first_saved = lambda: EpochCheckpoint.latest(checkpoints) is not None
        kill_when(first_saved, process, rng.uniform(0.0, 1.0))
        # Without --resume the run is not overwritten.
        assert cli.main(train) == 2 and "--resume" in capsys.readouterr().err
        latest = EpochCheckpoint.verify(checkpoints)  # never left unreadable
        kills.append(_state_after_kill(checkpoints, latest))
        # During a save: a random time into the (slowed) save of the next
        # epoch, which leaves the last whole checkpoint in use.
        partial = checkpoints / f"epoch-{latest['epoch'] + 1:04d}.partial"
        process = start_cli([*train, "--resume"], log, pause=SAVE_PAUSE)
        kill_when(partial.exists, process, rng.uniform(0.0, 6 * SAVE_PAUSE))
        latest = EpochCheckpoint.verify(checkpoints)
        kills.append(_state_after_kill(checkpoints, latest))
    count_case("kill point", len(kills))
    print("killed at:", kills)
    assert not (run / presets.CONFIG_FILE).exists()

    # Resumed (here, in this process), it ends as the uninterrupted run did.
    _, resumed = training.train(TINY, run, resume=True, verbose=0)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    for a, b in zip(_weights(whole), _weights(run)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert resumed["metrics"]["test"]["perplexity"] == pytest.approx(
        metadata["metrics"]["test"]["perplexity"], rel=1e-5
    )


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    # From the second epoch on, the learning rate is 1e36, within float32's
    # range (to 3.4e38, so no cast overflows and warns): the weights, then the
    # logits and the loss, overflow.
    recipe = QUICK.replace(decay_after=1, decay=1e38)
    recipe_file = tmp_path / "diverging.json"
    recipe_file.write_text(json.dumps(recipe.to_dict()))
    run = tmp_path / "run"
    assert cli.main(["train", str(recipe_file), "--output", str(run)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error, error
    kept = re.escape(str(run / "checkpoint" / "epoch-0001"))
    assert re.fullmatch(
        r"keras-nlm: error: Training diverged: the loss is (nan|inf) at batch "
        rf"\d+ of epoch 2\. .*the last good checkpoint, epoch 1 in {kept}, is "
        r"kept\..*",
        error,
    ), error
    latest = EpochCheckpoint.verify(run / "checkpoint")
    assert latest["epoch"] == 1 and [h["epoch"] for h in latest["history"]] == [1]
    with h5py.File(run / "checkpoint" / "epoch-0001" / "model.weights.h5") as file:
        arrays = []
        file.visititems(
            lambda _, item: (
                arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None
            )
        )
    assert arrays and all(np.all(np.isfinite(a)) for a in arrays)
    assert not (run / presets.CONFIG_FILE).exists()  # no preset of a broken run


def test_seeded_training_and_sampling_are_reproducible(tmp_path, monkeypatch):
    # Only the training is compared: the evaluation after it is skipped.
    monkeypatch.setattr(trainer.evaluation, "evaluate", lambda *args, **kw: {})
    recipe = QUICK.replace(epochs=1)
    (first, first_metadata), (second, second_metadata) = [
        training.train(recipe, tmp_path / f"run{i}", verbose=0) for i in range(2)
    ]
    assert first.get_weights()
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first_metadata["history"], second_metadata["history"]):
        timing = {"seconds": 0, "step_seconds": 0}
        assert {**a, **timing} == {**b, **timing}

    def sample(model):
        sampler = keras_hub.samplers.TopKSampler(k=5, seed=1)
        return model.generate("the time", max_length=60, sampler=sampler)

    # Each run's model, each with a new sampler of the same seed.
    assert sample(first) == sample(second)


def test_resuming_with_other_settings_is_refused(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "recipe.json").write_text(json.dumps(TINY.to_dict()))
    (run / "checkpoint" / "latest.json").write_text(
        json.dumps({"epoch": 1, "folder": "epoch-0001", "history": []})
    )
    with pytest.raises(ValueError, match="learning_rate"):
        training.train(TINY.replace(learning_rate=0.5), run, resume=True)
    # A run saved before a recipe field existed resumes if the field keeps
    # its default.
    older = {k: v for k, v in TINY.to_dict().items() if k != "restore_best_weights"}
    (run / "recipe.json").write_text(json.dumps(older))
    assert _check_output(TINY, run, resume=True) == 1
    with pytest.raises(ValueError, match="restore_best_weights"):
        _check_output(TINY.replace(restore_best_weights=True), run, resume=True)


@pytest.mark.parametrize("name", sorted(training.RECIPES))
def test_every_recipe_builds_its_tokenizers_model_and_batches(name):
    recipe = training.get(name)
    tokenizers = recipe.make_tokenizers()
    model = recipe.make_model(tokenizers)
    x, y = _batches(recipe, model, tokenizers, "train", None, 0)[0]
    assert len(y) == recipe.batch_size
    # A corner of the batch is enough to check the shapes, and quick.
    x, y = keras.tree.map_structure(
        lambda a: a[:2, :5] if a.ndim == 2 else a[:2], (x, y)
    )
    logits = model(x)
    vocabulary = tokenizers["target_tokenizer" if recipe.languages else "tokenizer"]
    assert tuple(logits.shape) == (*y.shape, vocabulary.vocabulary_size())


def test_recipes_reject_bad_settings():
    with pytest.raises(ValueError, match="optimizer"):
        TINY.replace(optimizer="rmsprop")
    with pytest.raises(ValueError, match="dropout"):
        TINY.replace(dropout=1.5)
    with pytest.raises(ValueError, match="known recipes: .*lstm_ptb_small"):
        training.get("lstm_ptb_large")
    with pytest.raises(ValueError, match="average_after"):
        TINY.replace(average_after=3, average_learning_rate=1.0)
    with pytest.raises(ValueError, match="average_learning_rate"):
        TINY.replace(average_after=1)
    with pytest.raises(ValueError, match="average_momentum"):
        TINY.replace(average_after=1, average_learning_rate=1.0, average_momentum=1.0)
    sgd = TINY.replace(optimizer="sgd")
    with pytest.raises(ValueError, match="`nonmonotone_interval`"):
        sgd.replace(nonmonotone_interval=0)
    with pytest.raises(ValueError, match="`average_after`.*`nonmonotone_interval`"):
        sgd.replace(nonmonotone_interval=5, average_after=1, average_learning_rate=1.0)
    with pytest.raises(ValueError, match="`average_learning_rate`"):
        sgd.replace(nonmonotone_interval=5, average_learning_rate=-1.0)
    with pytest.raises(ValueError, match="`nonmonotone_interval`.*optimizer='sgd'"):
        TINY.replace(nonmonotone_interval=5)
    with pytest.raises(ValueError, match="`variable_length`.*optimizer='sgd'"):
        TINY.replace(variable_length=True)
    with pytest.raises(ValueError, match="`variable_length` must be True or False"):
        sgd.replace(variable_length="yes")
    with pytest.raises(ValueError, match="`variable_length`.*`sequence_length`"):
        sgd.replace(variable_length=True, sequence_length=None)
    with pytest.raises(ValueError, match="`variable_length`.*`average_after`"):
        sgd.replace(variable_length=True, average_after=1, average_learning_rate=1.0)
    window = FixedWindowLM(10, window_size=4)
    with pytest.raises(ValueError, match="`variable_length`.*FixedWindowLM"):
        window.stream_batches(np.arange(99), 4, 5, None, True, 0, 0, True)


def test_zaremba_schedule_halves_after_epoch_four():
    recipe = training.get("lstm_ptb_small")
    rates = [recipe.learning_rate_at(epoch) / 20 for epoch in range(7)]
    assert rates == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]


def test_plateau_annealing_divides_the_rate_after_each_epoch_without_improvement():
    recipe = TINY.replace(decay_after=None, learning_rate=20.0, anneal_on_plateau=4.0)
    history = [{"val_loss": loss} for loss in (5.0, 4.0, 4.5, 3.9, 3.9)]
    rates = [recipe.learning_rate_at(epoch, history) for epoch in range(6)]
    assert rates == [20.0, 20.0, 20.0, 5.0, 5.0, 1.25]
    with pytest.raises(ValueError, match="anneal_on_plateau"):
        TINY.replace(anneal_on_plateau=0.25)


def test_each_epochs_learning_rate_follows_the_logged_validation_losses(tmp_path):
    # The schedule of every epoch is asked with the logs of the epochs before
    # it, and the rate it returns is the one trained with and logged.
    asked = []

    class Recording(training.Recipe):
        def learning_rate_at(self, epoch, history=()):
            asked.append((epoch, [logs["val_loss"] for logs in history[:epoch]]))
            return super().learning_rate_at(epoch, history)

    recipe = Recording(**{**TINY.to_dict(), "anneal_on_plateau": 4.0})
    _, metadata = training.train(recipe, tmp_path / "run", verbose=0)
    history = metadata["history"]
    losses = [logs["val_loss"] for logs in history]
    assert asked[: len(history)] == [(e, losses[:e]) for e in range(len(history))]
    logged = [logs["learning_rate"] for logs in history]
    expected = [recipe.learning_rate_at(e, history) for e in range(len(history))]
    assert logged == pytest.approx(expected, rel=1e-6)


def test_averaged_epochs_validate_keep_and_resume_the_average(tmp_path):
    # SGD at lr 1 for an epoch, then at lr 0.5 with the weights averaged.
    recipe = QUICK.replace(
        optimizer="sgd",
        decay_after=None,
        learning_rate=1.0,
        average_after=1,
        average_learning_rate=0.5,
        average_momentum=0.9,
    )
    model, metadata = training.train(recipe, tmp_path / "whole", verbose=0)
    history = metadata["history"]
    assert [h["learning_rate"] for h in history] == [1.0, 0.5, 0.5]
    # The kept model is the average, which the checkpoint holds in the
    # optimizer's state; the model's weights there are those trained last.
    last = tmp_path / "whole" / "checkpoint" / "epoch-0003" / "model.weights.h5"
    with h5py.File(last) as file:
        saved = file["optimizer"]["vars"]
        state = [np.asarray(saved[str(i)]) for i in range(len(saved))]
    averages = [a for a in state if a.ndim]
    assert len(averages) == len(model.get_weights())
    for kept, average in zip(model.get_weights(), averages):
        np.testing.assert_allclose(kept, average, atol=1e-6)
    trained = presets.load_preset(tmp_path / "whole")
    reader = CarriedState(trained, recipe.batch_size)
    reader(np.zeros((recipe.batch_size, recipe.sequence_length), "int32"))
    reader.load_weights(last)
    for a, b in zip(model.get_weights(), trained.get_weights()):
        assert not np.allclose(a, b)
    # Stopped after the first averaged epoch and resumed, it ends the same.
    run = tmp_path / "resumed"
    training.train(recipe.replace(epochs=2), run, verbose=0)
    _, resumed = training.train(recipe, run, resume=True, verbose=0)
    for a, b in zip(model.get_weights(), _weights(run)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert resumed["history"][-1]["val_loss"] == pytest.approx(
        history[-1]["val_loss"], rel=1e-5
    )


def test_nonmonotone_trigger_fires_when_worse_than_the_best_before_the_last_n():
    recipe = TINY.replace(
        optimizer="sgd",
        decay_after=None,
        nonmonotone_interval=2,
        average_learning_rate=0.5,
    )
    # Epoch 4 is worse than epoch 3, one of the 2 before it; epoch 7 is worse
    # than epoch 3, which is not.
    losses = [5.0, 4.0, 3.0, 3.5, 3.2, 2.9, 3.05, 9.0]
    history = [{"val_loss": loss} for loss in losses]
    starts = [recipe.average_start(history[:k]) for k in range(len(losses) + 1)]
    assert starts == [None] * 7 + [7, 7]
    averaged = [recipe.averaged(epoch, history) for epoch in range(9)]
    assert averaged == [False] * 7 + [True] * 2
    rates = [recipe.learning_rate_at(epoch, history) for epoch in range(9)]
    assert rates == [TINY.learning_rate] * 7 + [0.5] * 2
    # Worse than all before it, but only with more than 2 epochs before it.
    rising = [{"val_loss": loss} for loss in (1.0, 2.0, 3.0, 4.0)]
    assert recipe.average_start(rising[:3]) is None
    assert recipe.average_start(rising) == 4
    # Without `average_learning_rate`, the schedule goes on.
    assert recipe.replace(average_learning_rate=None).learning_rate_at(8, history) == (
        TINY.learning_rate
    )


def test_ntasgd_keeps_the_plain_mean_and_scales_each_clipped_step():
    weights = keras.Variable(np.zeros(3, "float32"))
    optimizer = NTASGD(1.0, global_clipnorm=1.0, steps_per_epoch=4, use_ema=True)
    optimizer.build([weights])
    scales = [1.0, 0.5, 2.0, 1.0]
    optimizer.scale_steps(scales)
    gradient = np.array([3.0, 4.0, 0.0], "float32")  # norm 5, clipped to 1
    after = []
    for step in range(4):
        if step == 1:
            optimizer.start_averaging()
        optimizer.apply([keras.ops.convert_to_tensor(gradient)], [weights])
        after.append(keras.ops.convert_to_numpy(weights))
    # Merity et al.: the gradient clipped, then the step scaled.
    expected = -np.cumsum(scales)[:, None] * gradient / 5
    np.testing.assert_allclose(after, expected, rtol=1e-6)
    # The average: the plain mean of the weights after steps 2 to 4.
    optimizer.finalize_variable_values([weights])
    np.testing.assert_allclose(weights, np.mean(after[1:], 0), rtol=1e-6)


def test_ntasgd_and_variable_lengths_keep_and_resume_the_triggered_average(tmp_path):
    model, metadata = training.train(MERITY, tmp_path / "whole", verbose=0)
    history = metadata["history"]
    # Epoch 3 is worse than epoch 1, so epoch 4 is averaged, at its own rate.
    assert MERITY.average_start(history) == metadata["averaged_after_epoch"] == 3
    assert [h["learning_rate"] for h in history] == [1.0, 8.0, 64.0, 0.5]
    # The kept model is the average in the last checkpoint's optimizer
    # state: the iterations, learning rate, the averages, the average's
    # start, the last epoch's learning-rate factors and their first step.
    last = tmp_path / "whole" / "checkpoint" / "epoch-0004" / "model.weights.h5"
    with h5py.File(last) as file:
        saved = file["optimizer"]["vars"]
        state = [np.asarray(saved[str(i)]) for i in range(len(saved))]
    count = len(model.get_weights())
    iterations, averages, start = state[0], state[2 : 2 + count], state[2 + count]
    for kept, average in zip(model.get_weights(), averages):
        np.testing.assert_allclose(kept, average, atol=1e-6)
    # Epoch 4's batches, as a resumed run draws them: their lengths set the
    # learning rate of its steps.
    tokenizers = MERITY.make_tokenizers()
    batches = _batches(MERITY, model, tokenizers, "train", None, 3)
    np.testing.assert_allclose(state[-2], batches.length_scales, rtol=1e-6)
    assert iterations == 4 * len(batches) and start == 3 * len(batches)
    # Killed (SIGKILL) in the first averaged epoch and resumed, it ends the same.
    recipe_file = tmp_path / "merity.json"
    recipe_file.write_text(json.dumps(MERITY.to_dict()))
    run = tmp_path / "resumed"
    checkpoints = run / "checkpoint"
    with open(tmp_path / "log.txt", "w") as log:
        process = start_cli(["train", str(recipe_file), "--output", str(run)], log)
        trigger_saved = lambda: (
            (EpochCheckpoint.latest(checkpoints) or {}).get("epoch") == 3
        )
        kill_when(trigger_saved, process, 0.0)
    count_case("kill point")
    assert EpochCheckpoint.verify(checkpoints)["epoch"] == 3
    _, resumed = training.train(MERITY, run, resume=True, verbose=0)
    assert resumed["averaged_after_epoch"] == 3
    for a, b in zip(model.get_weights(), _weights(run)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert resumed["history"][-1]["val_loss"] == pytest.approx(
        history[-1]["val_loss"], rel=1e-5
    )


def test_restore_best_weights_ends_with_the_best_validation_epoch(tmp_path):
    # A learning rate multiplied by 50 each epoch wrecks the weights by the
    # last epoch, so the best epoch is an earlier one.
    recipe = TINY.replace(restore_best_weights=True, decay=50.0)
    model, metadata = training.train(recipe, tmp_path / "run", verbose=0)
    losses = [h["val_loss"] for h in metadata["history"]]
    best = metadata["best_epoch"]
    assert losses[best - 1] == min(losses) and best < len(losses), losses
    # Only the latest and the best epoch stay on disk.
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoint").glob("epoch-*"))
    assert kept == sorted({f"epoch-{best:04d}", f"epoch-{len(losses):04d}"})
    # The saved model is the best epoch's: it scores that epoch's validation loss.
    nll = np.log(metadata["metrics"]["validation"]["perplexity"])
    assert nll == pytest.approx(losses[best - 1], rel=0.02)


def test_train_json_prints_only_its_object_and_a_resume_never_goes_back(
    tmp_path, capsys
):
    recipe_file = tmp_path / "quick.json"
    recipe_file.write_text(json.dumps(QUICK.replace(epochs=2).to_dict()))
    run = tmp_path / "run"
    train = ["train", str(recipe_file), "--output", str(run)]
    assert cli.main([*train, "--json"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed)["output"] == str(run), printed  # nothing else
    finished = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    # Fewer epochs than the checkpoint has would save a history that
    # contradicts the recipe's epochs.
    assert cli.main([*train, "--resume", "--epochs", "1"]) == 2
    error = capsys.readouterr().err
    assert "epochs=1 (`--epochs`)" in error and "already has 2 epochs" in error
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == finished


def _contents(folder):
    return {
        path.relative_to(folder).as_posix(): path.is_file() and path.read_bytes()
        for path in sorted(folder.rglob("*"))
    }


def test_an_output_that_is_not_this_runs_own_is_refused_untouched(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    # A run of this recipe that someone gave a model card.
    carded = tmp_path / "carded"
    (carded / "checkpoint").mkdir(parents=True)
    (carded / "recipe.json").write_text(json.dumps(QUICK.to_dict()))
    (carded / "checkpoint" / "latest.json").write_text(
        json.dumps({"epoch": 1, "folder": "epoch-0001", "history": []})
    )
    (carded / "README.md").write_text("the card")
    # A run stopped before its first checkpoint: another recipe cannot take
    # its folder.
    stopped = tmp_path / "stopped"
    (stopped / "checkpoint" / "epoch-0001.partial").mkdir(parents=True)
    (stopped / "recipe.json").write_text(json.dumps(QUICK.to_dict()))
    before = _contents(tmp_path)
    count_case("bad input", 5)
    for resume in (False, True):
        message = f"{re.escape(str(other))} is not empty.*notes.txt"
        with pytest.raises(ValueError, match=message):
            training.train(QUICK, other, resume=resume)
    with pytest.raises(ValueError, match="it holds README.md"):
        training.train(QUICK, carded, resume=True)
    with pytest.raises(ValueError, match="different learning_rate"):
        training.train(QUICK.replace(learning_rate=0.5), stopped)
    with pytest.raises(ValueError, match="notes.txt is not a folder"):
        training.train(QUICK, other / "notes.txt" / "run")
    assert _contents(tmp_path) == before
    # The same recipe starts it again: nothing was trained, nothing is lost.
    assert _check_output(QUICK, stopped, resume=False) == 0
    assert _check_output(QUICK, stopped, resume=True) == 0


def test_a_start_that_fails_leaves_nothing_behind(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="not in the data mirror"):
        training.train(QUICK, tmp_path / "runs" / "run", data_dir=empty)
    with pytest.raises(ValueError, match="`cell`"):
        training.train(QUICK.replace(model={**QUICK.model, "cell": "nope"}), empty)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["empty"]
