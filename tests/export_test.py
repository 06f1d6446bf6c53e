"""Export for serving: every example model, exported under TensorFlow and under
JAX to a TF SavedModel, reloaded by TensorFlow alone (a process that never
imports keras_nlm), gives the model's logits for two batch sizes and
lengths; its state endpoints give the step-by-step outputs; the CLI exports a
zoo preset."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_nlm import presets, testing
from keras_nlm.models import RNNLM, FixedWindowLM, Seq2Seq
from keras_nlm.testing import run_cli

BACKEND = keras.backend.backend()
saved_model_backends = pytest.mark.skipif(
    BACKEND == "torch",
    reason="Keras exports a TF SavedModel from TensorFlow and JAX (README)",
)

# Runs in a fresh interpreter with TensorFlow only: each call of `calls.json`
# (export folder, endpoint, input arrays by name) → its outputs, flat.
SERVE = """
import json, sys
import numpy as np
import tensorflow as tf

folder = sys.argv[1]
calls = json.load(open(f"{folder}/calls.json"))
inputs = np.load(f"{folder}/inputs.npz")
outputs, loaded = {}, {}
for i, (export, endpoint, names) in enumerate(calls):
    if export not in loaded:
        loaded[export] = tf.saved_model.load(f"{folder}/{export}")
    args = []
    for name in names:
        if isinstance(name, list):  # a list of tensors (the states)
            args.append([tf.constant(inputs[n]) for n in name])
        elif name.startswith("dict:"):
            args.append({k: tf.constant(inputs[f"{name}:{k}"]) for k in ("source", "target")})
        else:
            args.append(tf.constant(inputs[name]))
    result = getattr(loaded[export], endpoint)(*args)
    for j, tensor in enumerate(tf.nest.flatten(result)):
        outputs[f"{i}:{j}"] = tensor.numpy()
np.savez(f"{folder}/outputs.npz", **outputs)
assert not any(m.split(".")[0] == "keras_nlm" for m in sys.modules)
"""


class _Calls:
    """The calls for the TensorFlow-only process, and what each must give."""

    def __init__(self):
        self.calls, self.inputs, self.expected = [], {}, []

    def add(self, export, endpoint, args, expected):
        names = []
        for arg in args:
            if isinstance(arg, dict):
                name = f"dict:{len(self.inputs)}"
                for key, value in arg.items():
                    self.inputs[f"{name}:{key}"] = np.asarray(value)
                names.append(name)
            elif isinstance(arg, list):
                names.append([self._put(value) for value in arg])
            else:
                names.append(self._put(arg))
        self.calls.append((export, endpoint, names))
        self.expected.append([keras.ops.convert_to_numpy(t) for t in expected])

    def _put(self, value):
        name = f"a{len(self.inputs)}"
        self.inputs[name] = keras.ops.convert_to_numpy(value)
        return name

    def check(self, folder):
        (folder / "calls.json").write_text(json.dumps(self.calls))
        np.savez(folder / "inputs.npz", **self.inputs)
        env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
        subprocess.run(
            [sys.executable, "-c", SERVE, str(folder)], check=True, env=env, timeout=600
        )
        outputs = np.load(folder / "outputs.npz")
        for i, (call, expected) in enumerate(zip(self.calls, self.expected)):
            for j, tensor in enumerate(expected):
                np.testing.assert_allclose(
                    outputs[f"{i}:{j}"], tensor, atol=1e-5, err_msg=str(call)
                )


def _ids(rng, size, shape):
    return rng.integers(1, size, shape).astype("int32")


def _flat(states):
    return keras.tree.flatten(states)


# On JAX each model's programs are converted to TensorFlow's (jax2tf), 5-10 s
# a model on 2 cores: there, one model of each family and the bidirectional
# and attention ones, which add layers of their own.
EXPORTED = [name for name, *_ in testing.example_models()]
if BACKEND == "jax":
    EXPORTED = [
        "fixed_window",
        "rnn_lm_awd",
        "rnn_tagger_bidirectional",
        "seq2seq_lstm_luong_bidirectional",
        "seq2seq_gru_bahdanau",
    ]


@saved_model_backends
def test_example_models_serve_their_logits_from_tensorflow_alone(tmp_path):
    rng = np.random.default_rng(0)
    calls = _Calls()
    for name, model, x, _ in testing.example_models():
        if name not in EXPORTED:
            continue
        model(x)
        model.export(str(tmp_path / name), verbose=False)
        for batch, length in ((3, 5), (6, 9)):
            if isinstance(model, Seq2Seq):
                inputs = {
                    "source": _ids(rng, model.source_vocabulary_size, (batch, length)),
                    "target": _ids(rng, model.target_vocabulary_size, (batch, 4)),
                }
                inputs["source"][0, length - 2 :] = 0  # padded
            elif isinstance(model, FixedWindowLM):
                inputs = _ids(rng, model.vocabulary_size, (batch, model.window_size))
            else:
                inputs = _ids(rng, model.vocabulary_size, (batch, length))
            calls.add(name, "serve", [inputs], [model(inputs)])
        if isinstance(model, RNNLM):
            # Generation from the export: the state goes out and back in.
            ids = _ids(rng, model.vocabulary_size, (2, 6))
            _, states = model(ids[:, :4], return_state=True)
            whole = model(ids)
            zeros = _flat(model.rnn.initial_state(2))
            calls.add(
                name, "serve_with_state", [ids[:, :4], zeros], [_, *_flat(states)]
            )
            calls.add(
                name, "serve_with_state", [ids[:, 4:], _flat(states)], [whole[:, 4:]]
            )
        if isinstance(model, Seq2Seq):
            source = _ids(rng, model.source_vocabulary_size, (2, 7))
            source[1, 5:] = 0
            outputs, state, mask = model.encode(source)
            calls.add(name, "encode", [source], [outputs, mask, *_flat(state)])
            target = _ids(rng, model.target_vocabulary_size, (2, 3))
            logits, after = model.decode(
                target, outputs, state, mask, return_state=True
            )
            step = model.decode(target[:, 2:], outputs, after, mask)
            calls.add(
                name,
                "decode",
                [target, outputs, _flat(state), mask],
                [logits, *_flat(after)],
            )
            calls.add(
                name, "decode", [target[:, 2:], outputs, _flat(after), mask], [step]
            )
    calls.check(tmp_path)


@saved_model_backends
def test_cli_exports_a_zoo_preset(tmp_path):
    output = tmp_path / "rnn_ptb"
    result = run_cli("export", "rnn_ptb", str(output), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["endpoints"] == ["serve", "serve_with_state"]
    model = presets.load_preset("rnn_ptb")
    calls = _Calls()
    ids = np.array([model.tokenizer.tokenize("the company said it expects")], "int32")
    calls.add("rnn_ptb", "serve", [ids], [model(ids)])
    calls.check(tmp_path)
    # A second export never overwrites the first.
    again = run_cli("export", "rnn_ptb", str(output))
    assert again.returncode == 2 and "exists" in again.stderr


@pytest.mark.skipif(BACKEND != "torch", reason="PyTorch's own export format")
def test_torch_export_keeps_the_padding_mask(tmp_path):
    """An export records one path for every input: the masked recurrence, not
    the fused kernel that an unpadded sample batch would take (an ONNX export
    once gave wrong logits for padded batches that way)."""
    import torch

    for name in ("seq2seq_gru_bahdanau", "rnn_classifier_bidirectional"):
        model, x, _ = next(e[1:] for e in testing.example_models() if e[0] == name)
        model(x)
        unpadded = keras.tree.map_structure(lambda a: np.maximum(a, 1), x)
        signature = [
            keras.tree.map_structure(
                lambda a: keras.InputSpec(shape=a.shape, dtype="int32"), x
            )
        ]
        path = tmp_path / f"{name}.pt2"
        model.export(str(path), format="torch", input_signature=signature)
        exported = torch.export.load(str(path)).module()
        for inputs in (x, unpadded):  # x: half its rows padded with 0
            tensors = keras.tree.map_structure(
                lambda a: torch.tensor(a, dtype=torch.int32), inputs
            )
            np.testing.assert_allclose(
                exported(tensors).detach().numpy(),
                keras.ops.convert_to_numpy(model(inputs)),
                atol=1e-5,
                err_msg=name,
            )
