"""The `keras-nlm` command line: the installed program once, then its `main`
in this process (what the program runs, without its seconds of imports)."""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from keras_nlm.testing import count_case
from keras_nlm.testing import run_cli as keras_nlm


def test_the_installed_program_prints_the_statistics():
    program = pathlib.Path(sys.executable).with_name("keras-nlm")
    result = subprocess.run(
        [program, "data", "ptb", "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)["splits"]
    assert stats["train"] == {"tokens": 929_589, "vocabulary": 10_000}
    assert stats["test"]["tokens"] == 82_430


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "ptb3"], "known corpora: fra_eng, multi30k, ptb"),
        (
            ["ngram", "--dataset", "tinyshakespeare"],
            "word-level corpus (ptb, wikitext2)",
        ),
        (
            ["ngram", "--dataset", "ptb", "--order", "0"],
            "`order` must be a positive integer",
        ),
        (
            ["data", "ptb", "--data-dir", "/nonexistent"],
            "ptb/ptb.train.txt is not in the data mirror",
        ),
        (["data", "ptb", "--data-dir", __file__], f"{__file__} (set by"),
    ],
)
def test_errors_are_one_clear_line(args, message):
    result = keras_nlm(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    error = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("keras-nlm: error:")
    ]
    assert len(error) == 1 and message in error[0], result.stderr


def test_ngram_json_prints_the_baseline_perplexity():
    result = keras_nlm("ngram", "--dataset", "ptb", "--order", "3", "--json")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["perplexity"] == pytest.approx(148.38, abs=0.01)


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    """An (untrained) character RNNLM and a word Seq2Seq saved as presets."""
    import keras_hub

    from keras_nlm import datasets
    from keras_nlm.models import RNNLM, Seq2Seq
    from keras_nlm.tokenizers import CharacterTokenizer, WordTokenizer

    root = tmp_path_factory.mktemp("presets")
    text = datasets.get("timemachine").text("train")
    characters = CharacterTokenizer.from_corpus([text])
    lm = RNNLM(characters.vocabulary_size(), num_layers=1, hidden_dim=16)
    lm.tokenizer = characters
    lm.generate("the", max_length=5)  # builds it
    lm.save_to_preset(root / "lm")

    words = WordTokenizer.from_corpus(["ein mann fährt fahrrad .", "a man rides ."])
    seq2seq = Seq2Seq(words.vocabulary_size(), words.vocabulary_size(), hidden_dim=8)
    seq2seq.source_tokenizer = seq2seq.target_tokenizer = words
    seq2seq.translate("ein mann", max_length=3)
    seq2seq.save_to_preset(root / "seq2seq")
    beam = keras_hub.samplers.BeamSampler(2)
    return {
        "root": root,
        "lm": lm,
        "seq2seq": seq2seq,
        "greedy": lm.generate("the time", max_length=20),
        "beam": seq2seq.translate("ein mann fährt", max_length=6, sampler=beam),
    }


def test_evaluate_json_gives_the_perplexity_of_the_saved_model(presets):
    from keras_nlm import evaluation

    result = keras_nlm(
        "evaluate", str(presets["root"] / "lm"), "--dataset", "timemachine", "--json"
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    expected = evaluation.evaluate(presets["lm"], "timemachine", "test")
    assert output["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-5)
    assert output["bits_per_character"] == pytest.approx(
        expected["bits_per_character"], rel=1e-5
    )


def test_generate_and_translate_match_the_model_in_python(presets):
    lm, seq2seq = str(presets["root"] / "lm"), str(presets["root"] / "seq2seq")
    greedy = keras_nlm("generate", lm, "the time", "--max-length", "20", "--json")
    assert greedy.returncode == 0, greedy.stderr
    assert json.loads(greedy.stdout)["text"] == presets["greedy"]
    sampled = [
        keras_nlm("generate", lm, "the", "--sampler", "top_k", "--seed", "7").stdout
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1] and sampled[0].startswith("the")
    beam = keras_nlm(
        "translate", seq2seq, "ein mann fährt", "--beam", "2", "--max-length", "6"
    )
    assert beam.returncode == 0, beam.stderr
    assert beam.stdout.strip() == presets["beam"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["train", "lstm_ptb_large"],
            "known recipes: awd_lstm_ptb_medium, awd_lstm_ptb_small, char_lstm",
        ),
        (["evaluate", "no_such_model", "--dataset", "ptb"], "zoo presets:"),
        (["generate", "{seq2seq}", "hello"], "use `translate` for a Seq2Seq"),
        (["translate", "{lm}", "hello"], "`translate` needs a translation model"),
        (["evaluate", "{lm}", "--dataset", "ptb"], "'ptb' is not one"),
    ],
)
def test_model_command_errors_are_one_clear_line(presets, args, message):
    args = [
        a.format(**{k: presets["root"] / k for k in ("lm", "seq2seq")}) for a in args
    ]
    result = keras_nlm(*args)
    assert result.returncode == 2
    assert "keras-nlm: error: " in result.stderr and message in result.stderr


def _contents(folder):
    return {
        path.relative_to(folder).as_posix(): path.is_file() and path.read_bytes()
        for path in sorted(folder.rglob("*"))
    }


def test_outputs_that_are_not_the_commands_own_are_refused_untouched(presets, tmp_path):
    from keras_nlm import training

    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(training.get("char_lstm_shakespeare").to_dict()))
    (tmp_path / "folder.json").mkdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    # A preset with its model card, and a zoo with someone's folder.
    preset = tmp_path / "preset"
    shutil.copytree(presets["root"] / "lm", preset)
    (preset / "README.md").write_text("the card")
    zoo = tmp_path / "zoo"
    shutil.copytree(preset, zoo / "lm")
    (zoo / "mine").mkdir()
    (zoo / "mine" / "notes.txt").write_text("mine")
    before = _contents(tmp_path)
    cases = [
        (["train", str(tmp_path / "folder.json")], "is not a regular file"),
        (["train", str(recipe), "--output", str(notes)], f"{notes} is not a folder"),
        (["train", str(recipe), "--output", f"{notes}/run"], f"{notes} is not a"),
        (["train", str(recipe), "--output", str(preset)], "it holds README.md"),
        (["train", str(recipe), "--output", str(preset), "--resume"], "choose a new"),
        (["publish", str(preset), "--name", "mine", "--zoo", str(zoo)], "notes.txt"),
        (
            ["publish", str(notes.parent), "--name", "lm", "--zoo", str(zoo)],
            "no trained",
        ),
        (["publish", str(zoo / "lm"), "--name", "lm", "--zoo", str(zoo)], "itself"),
    ]
    count_case("bad input", len(cases))
    for args, message in cases:
        result = keras_nlm(*args)
        assert result.returncode == 2, (args, result.stderr)
        error = result.stderr.strip()
        assert "\n" not in error and error.startswith("keras-nlm: error: "), error
        assert message in error, (args, error)
    assert _contents(tmp_path) == before


def test_zoo_lists_the_presets_with_their_headline_metric():
    result = keras_nlm("zoo", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["presets"]}
    small = rows["lstm_ptb_small"]
    assert (small["split"], small["metric"], small["target"]) == (
        "test",
        "perplexity",
        "<= 114.5",
    )
    assert small["value"] <= 114.5
    listing = keras_nlm("zoo").stdout
    assert "lstm_ptb_small" in listing and "test perplexity" in listing
