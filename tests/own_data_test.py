"""One's own corpus and sentence pairs, through the command line as a new
user takes them: train a recipe on each (one run killed and resumed),
evaluate, publish a model card, and the n-gram baseline."""

import json
import math

import keras
import numpy as np
import pytest

from keras_nlm import presets, training
from keras_nlm.testing import ACTIONS, command_pairs, kill_when, run_cli, start_cli
from keras_nlm.training.checkpoint import EpochCheckpoint

# Small versions of two recipes, trained in seconds.
CHARACTERS = training.get("char_lstm_timemachine").replace(
    name="tiny_characters",
    model={"class": "RNNLM", "cell": "lstm", "hidden_dim": 32, "embedding_dim": 8},
    batch_size=16,
    sequence_length=20,
    epochs=2,
)
PAIRS = training.get("seq2seq_multi30k_de_en").replace(
    name="tiny_pairs",
    model={
        "class": "Seq2Seq",
        "cell": "gru",
        "hidden_dim": 32,
        "embedding_dim": 16,
        "attention": "bahdanau",
    },
    tokenizer={"class": "WordTokenizer"},
    batch_size=16,
    learning_rate=1e-2,
    epochs=2,
)


def _recipe_file(tmp_path, recipe):
    path = tmp_path / f"{recipe.name}.json"
    path.write_text(json.dumps(recipe.to_dict()))
    return str(path)


def _json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_character_model_on_ones_own_text_killed_resumed_evaluated_published(
    tmp_path,
):
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(ACTIONS, 6)) + "." for _ in range(400)]
    notes = tmp_path / "notes.txt"
    notes.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    train = [
        "train",
        _recipe_file(tmp_path, CHARACTERS),
        "--train-file",
        str(notes),
        "--output",
        str(run),
    ]
    with open(tmp_path / "log.txt", "w") as log:
        process = start_cli(train, log)
        saved = lambda: EpochCheckpoint.latest(run / "checkpoint") is not None
        kill_when(saved, process, 0.0)
    assert not (run / presets.CONFIG_FILE).exists()
    metrics = _json(run_cli(*train, "--resume", "--json"))
    metadata = presets.load_metadata(run)
    assert [h["epoch"] for h in metadata["history"]] == [1, 2]
    assert metadata["recipe"]["dataset"]["files"]["all"]["path"] == str(notes)
    # Learned: far below the uniform model's perplexity (its alphabet's size).
    uniform = presets.load_preset(run).tokenizer.vocabulary_size()
    assert metrics["test"]["perplexity"] < uniform / 3

    # Scored on another file of one's own: the same text scores the same.
    text = notes.read_text()
    test_file = tmp_path / "held_out.txt"
    test_file.write_text(text[int(len(text) * 0.95) :])
    result = _json(
        run_cli("evaluate", str(run), "--test-file", str(test_file), "--json")
    )
    assert result["dataset"] == "held_out"
    assert result["perplexity"] == pytest.approx(
        metrics["test"]["perplexity"], rel=1e-4
    )

    backend = keras.backend.backend()
    zoo = tmp_path / "my_zoo"
    publish = ["publish", str(run), "--name", "notes", "--zoo", str(zoo)]
    _json(run_cli(*publish, "--backends", backend, "--json"))
    card = (zoo / "notes" / "README.md").read_text()
    assert f"--train-file {notes} --output runs/notes" in card
    assert f"`{notes}`: sha256" in card
    published = presets.load_metadata(zoo / "notes")["evaluations"][backend]["test"]
    assert f"| test | {published['perplexity']:.4f} |" in card


def test_a_seq2seq_on_ones_own_pairs_with_exact_match(tmp_path):
    pairs = command_pairs()
    rng = np.random.default_rng(1)
    rng.shuffle(pairs)
    train, valid, test = pairs[:120], pairs[120:140], pairs[140:]
    (tmp_path / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in train))
    (tmp_path / "valid.src").write_text("".join(f"{s}\n" for s, _ in valid))
    (tmp_path / "valid.tgt").write_text("".join(f"{t}\n" for _, t in valid))
    (tmp_path / "test.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in test))
    run = tmp_path / "run"
    files = ["--train-file", str(tmp_path / "train.tsv"), "--validation-file"]
    files += [str(tmp_path / "valid.src"), str(tmp_path / "valid.tgt")]
    files += ["--test-file", str(tmp_path / "test.tsv")]
    recipe = _recipe_file(tmp_path, PAIRS)
    metrics = _json(run_cli("train", recipe, *files, "--output", str(run), "--json"))
    scores = metrics["test"]
    assert scores["sentences"] == len(test)
    assert 0 <= scores["exact_match"] <= 1 and 0 < scores["token_accuracy"] <= 1
    assert math.isfinite(scores["bleu"])
    saved = presets.load_metadata(run)["recipe"]
    assert saved["languages"] == ["source", "target"]
    assert saved["bucket_widths"] == "auto"
    test_file = str(tmp_path / "test.tsv")
    again = _json(run_cli("evaluate", str(run), "--test-file", test_file, "--json"))
    for metric in ("bleu", "exact_match", "token_accuracy"):
        assert again[metric] == pytest.approx(scores[metric], rel=1e-5)
    translated = run_cli("translate", str(run), "jump twice")
    assert translated.returncode == 0 and translated.stdout.strip(), translated.stderr


def test_the_ngram_baseline_on_ones_own_words_and_the_dataset_or_files_rule(tmp_path):
    rng = np.random.default_rng(2)
    words = tmp_path / "words.txt"
    words.write_text(
        "".join(" ".join(rng.choice(ACTIONS, 5)) + "\n" for _ in range(300))
    )
    result = _json(
        run_cli("ngram", "--train-file", str(words), "--order", "3", "--json")
    )
    # Four words and <eos>, drawn uniformly: about 5, the order barely helps.
    assert 4 < result["perplexity"] < 6
    both = run_cli("ngram", "--dataset", "ptb", "--train-file", str(words))
    neither = run_cli("evaluate", "char_lstm_shakespeare")
    for result in (both, neither):
        assert result.returncode == 2
        assert "Give --dataset NAME or your own files" in result.stderr


def test_a_bad_file_stops_the_command_line_before_anything_is_written(tmp_path):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("première ligne\n".encode("latin-1") * 50)
    run = tmp_path / "run"
    for path, message in (
        (tmp_path / "missing.txt", "does not exist"),
        (latin, "is not UTF-8 text: line 1"),
    ):
        result = run_cli(
            "train",
            "char_lstm_timemachine",
            "--train-file",
            str(path),
            "--output",
            str(run),
        )
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1
    assert not run.exists()
