"""The `keras-nlm` command line, run as a user would, in a subprocess."""

import json
import subprocess
import sys

import pytest


def keras_nlm(*args):
    return subprocess.run(
        [sys.executable, "-m", "keras_nlm.cli", *args], capture_output=True, text=True
    )


def test_data_json_prints_the_statistics():
    result = keras_nlm("data", "ptb", "--json")
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
