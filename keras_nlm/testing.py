"""Small models and inputs that the tests share, one per model variant.

Sizes are tiny so that every variant builds, trains a few steps and
round-trips through saving in seconds on each backend.
"""

import collections
import contextlib
import io
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import time

import keras
import numpy as np

from keras_nlm import cli, models

# What the reliability tests tried, by kind ("bad input", "broken file",
# "kill point"): each test adds its cases, and the root conftest prints the
# totals after a run (and writes them to $KERAS_NLM_RELIABILITY_COUNTS).
RELIABILITY_CASES = collections.Counter()


def count_case(kind, n=1):
    RELIABILITY_CASES[kind] += n


@contextlib.contextmanager
def deadline(seconds):
    """Fails, instead of hanging, a call that takes longer than `seconds`
    (SIGALRM interrupts a blocking open or read, such as a FIFO's)."""

    def fail(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(*args):
    """`keras-nlm ARGS` run in this process as its console script runs it
    (`cli.main`), without a new interpreter's seconds of imports: the exit code
    and what it printed, as a `subprocess.CompletedProcess`."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = cli.main(list(args))
        except SystemExit as exit:  # argparse's usage errors
            code = exit.code
    return subprocess.CompletedProcess(args, code, stdout.getvalue(), stderr.getvalue())


def readme_commands(containing):
    """The argument lists of the README's `bash` block that contains
    `containing`, one per line (`.venv/bin/keras-nlm ARGS`), for a test to run
    as written."""
    readme = pathlib.Path(__file__).parents[1] / "README.md"
    blocks = re.findall(r"```bash\n(.*?)```", readme.read_text(), re.S)
    block = next(b for b in blocks if containing in b)
    commands = []
    for line in block.strip().splitlines():
        program, *args = shlex.split(line)
        assert program == ".venv/bin/keras-nlm", line
        commands.append(args)
    return commands


def start_cli(arguments, log, pause=0.0):
    """`keras-nlm ARGUMENTS` in a new process. With `pause`, each file a
    checkpoint save writes, renames or deletes takes that many seconds more
    (the six steps of a save), so that a kill can land inside a save."""
    code = (
        "import functools, os, shutil, sys, time\n"
        "import numpy as np\n"
        "from keras_nlm import cli\n"
        "def slowed(write):\n"
        "    @functools.wraps(write)\n"
        "    def slow(*args, **kwargs):\n"
        f"        time.sleep({pause})\n"
        "        return write(*args, **kwargs)\n"
        "    return slow\n"
        f"if {pause}:\n"
        "    os.replace, np.savez = slowed(os.replace), slowed(np.savez)\n"
        "    shutil.rmtree = slowed(shutil.rmtree)\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    command = [sys.executable, "-c", code, *arguments]
    return subprocess.Popen(command, stdout=log, stderr=log, env=env)


def kill_when(condition, process, delay):
    """SIGKILLs `process` `delay` seconds after `condition()` holds."""
    deadline = time.monotonic() + 600
    while not condition():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()


ACTIONS = ("jump", "walk", "run", "look")


def command_pairs():
    """SCAN-like commands and their action sequences (Lake & Baroni 2018's
    task, in miniature): `("jump twice and walk", "I_JUMP I_JUMP I_WALK")`."""
    times = {"": 1, "twice": 2, "thrice": 3}
    singles = [
        (f"{a} {t}".strip(), " ".join([f"I_{a.upper()}"] * n))
        for a in ACTIONS
        for t, n in times.items()
    ]
    return singles + [
        (f"{a} and {b}", f"{x} {y}") for a, x in singles for b, y in singles
    ]


def write_own_files(folder):
    """The README's own files in `folder`: `notes.txt` (lines of words, 30
    KB) and `pairs.tsv` (the 156 `command_pairs`)."""
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(ACTIONS, 6)) + "." for _ in range(1000)]
    (folder / "notes.txt").write_text("\n".join(lines) + "\n")
    pairs = "".join(f"{s}\t{t}\n" for s, t in command_pairs())
    (folder / "pairs.tsv").write_text(pairs)


VOCABULARY_SIZE = 23
TARGET_VOCABULARY_SIZE = 19


def _ids(rng, shape, vocabulary_size, padded_from=None):
    ids = rng.integers(1, vocabulary_size, shape)
    if padded_from is not None:
        ids[: shape[0] // 2, padded_from:] = 0  # half the rows padded with 0
    return ids


def example_models(seed=0, batch_size=8):
    """Yields `(name, model, inputs, labels)` for every model variant."""
    rng = np.random.default_rng(seed)
    v = VOCABULARY_SIZE
    window = _ids(rng, (batch_size, 4), v)
    yield (
        "fixed_window",
        models.FixedWindowLM(v, window_size=4, embedding_dim=6, hidden_dim=10),
        window,
        rng.integers(0, v, (batch_size,)),
    )
    yield (
        "fixed_window_direct",
        models.FixedWindowLM(
            v, 3, embedding_dim=6, hidden_dim=10, direct_connections=True, dropout=0.1
        ),
        window[:, :3],
        rng.integers(0, v, (batch_size,)),
    )
    stream = _ids(rng, (batch_size, 7), v)
    for cell in ("simple", "lstm", "gru"):
        yield (
            f"rnn_lm_{cell}",
            models.RNNLM(v, cell=cell, num_layers=2, hidden_dim=8, embedding_dim=6),
            stream[:, :-1],
            stream[:, 1:],
        )
    yield (
        "rnn_lm_tied",
        models.RNNLM(v, cell="lstm", hidden_dim=8, embedding_dim=8, tie_weights=True),
        stream[:, :-1],
        stream[:, 1:],
    )
    yield (
        "rnn_lm_awd",
        models.RNNLM(
            v,
            cell="lstm",
            num_layers=2,
            hidden_dim=8,
            embedding_dim=6,
            embedding_dropout=0.02,
            input_dropout=0.05,
            hidden_dropout=0.05,
            output_dropout=0.05,
            weight_dropout=0.1,
            activation_regularization=0.1,
            temporal_activation_regularization=0.1,
        ),
        stream[:, :-1],
        stream[:, 1:],
    )
    padded = _ids(rng, (batch_size, 6), v, padded_from=4)
    yield (
        "rnn_classifier_bidirectional",
        models.RNNClassifier(
            v,
            3,
            cell="gru",
            num_layers=2,
            hidden_dim=6,
            embedding_dim=5,
            bidirectional=True,
        ),
        padded,
        rng.integers(0, 3, (batch_size,)),
    )
    yield (
        "rnn_tagger_bidirectional",
        models.RNNTagger(
            v,
            4,
            cell="lstm",
            num_layers=2,
            hidden_dim=6,
            embedding_dim=5,
            bidirectional=True,
        ),
        padded,
        np.where(padded > 0, rng.integers(1, 4, padded.shape), 0),
    )
    source = _ids(rng, (batch_size, 7), v, padded_from=5)
    target = _ids(rng, (batch_size, 6), TARGET_VOCABULARY_SIZE, padded_from=4)
    for name, options in (
        ("seq2seq_lstm", dict(cell="lstm", reverse_source=True)),
        ("seq2seq_gru_bahdanau", dict(cell="gru", attention="bahdanau")),
        (
            "seq2seq_lstm_luong_bidirectional",
            dict(cell="lstm", attention="luong", bidirectional_encoder=True),
        ),
    ):
        yield (
            name,
            models.Seq2Seq(
                v,
                TARGET_VOCABULARY_SIZE,
                num_layers=2,
                hidden_dim=8,
                embedding_dim=6,
                **options,
            ),
            {"source": source, "target": target},
            target,
        )
