"""The README's examples run as written, on the current backend."""

import json
import pathlib
import re

import keras
import pytest

from keras_nlm.testing import readme_commands, run_cli, write_own_files

README = pathlib.Path(__file__).parents[1] / "README.md"


def test_readme_examples_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)  # the examples save files
    write_own_files(tmp_path)  # "your own data" reads them
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert (tmp_path / "seq2seq.keras").exists()


def _run_bash_block(containing):
    """Runs the README's `keras-nlm` block containing `containing`; the outputs.
    (tests/cli_test.py starts the installed program itself.)"""
    outputs = []
    for args in readme_commands(containing):
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    return outputs


def test_readme_command_line_walkthrough_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it trains into runs/
    outputs = _run_bash_block("keras-nlm train")
    # The evaluation is a JSON object, and the model learned something: its
    # perplexity is far below the uniform model's (70 characters).
    assert json.loads(outputs[1])["perplexity"] < 20
    assert outputs[2].startswith("the time traveller")


# The whole PTB test set through the preset takes 14-26 s a backend; every
# preset's loading and published numbers are checked under each backend by
# tests/zoo_test.py, so the commands as written run under one.
@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="the zoo commands run under torch"
)
def test_readme_zoo_commands_run():
    listing, evaluation, generated = _run_bash_block("keras-nlm zoo")
    assert "lstm_ptb_small" in listing
    assert json.loads(evaluation)["perplexity"] <= 114.5
    assert generated.startswith("the company said")


def test_readme_own_data_commands_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_own_files(tmp_path)
    _, notes, ngram, _, pairs = _run_bash_block("--train-file notes.txt")
    # Six words and a full stop a line, drawn uniformly: a character model
    # learns the spelling, the n-gram model sees 4 choices for 6 of 7 tokens.
    assert json.loads(notes)["perplexity"] < 6
    assert 3 < json.loads(ngram)["perplexity"] < 6
    scores = json.loads(pairs)
    assert scores["sentences"] == 156 and 0 <= scores["exact_match"] <= 1
