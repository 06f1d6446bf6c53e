import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_nlm import presets, training
from keras_nlm.training.checkpoint import EpochCheckpoint
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


def _weights(directory):
    return [np.asarray(w) for w in presets.load_preset(directory).get_weights()]


def test_a_tiny_corpus_is_learned_and_a_killed_run_resumes_to_the_same_end(tmp_path):
    model, metadata = training.train(TINY, tmp_path / "whole", verbose=0)
    # Learned: far below the uniform model's perplexity (the alphabet size).
    uniform = model.tokenizer.vocabulary_size()
    assert metadata["metrics"]["test"]["perplexity"] < uniform / 4
    assert [h["epoch"] for h in metadata["history"]] == [1, 2, 3]

    recipe_file = tmp_path / "tiny.json"
    recipe_file.write_text(json.dumps(TINY.to_dict()))
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "keras_nlm.cli", "train", str(recipe_file)]
    command += ["--output", str(run)]
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    with open(tmp_path / "log.txt", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 600
        while EpochCheckpoint.latest(run / "checkpoint") is None:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert EpochCheckpoint.latest(run / "checkpoint")["epoch"] < TINY.epochs
    assert not (run / presets.CONFIG_FILE).exists()

    # Without --resume the run is not overwritten; with it, it ends as the
    # uninterrupted one did.
    refused = subprocess.run(command, capture_output=True, text=True, env=env)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    subprocess.run(command + ["--resume"], check=True, capture_output=True, env=env)
    resumed = presets.load_metadata(run)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    for a, b in zip(_weights(tmp_path / "whole"), _weights(run)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert resumed["metrics"]["test"]["perplexity"] == pytest.approx(
        metadata["metrics"]["test"]["perplexity"], rel=1e-5
    )


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
    x, y = _batches(recipe, tokenizers, "train", None, 0)[0]
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


def test_zaremba_schedule_halves_after_epoch_four():
    recipe = training.get("lstm_ptb_small")
    rates = [recipe.learning_rate_at(epoch) / 20 for epoch in range(7)]
    assert rates == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]


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
