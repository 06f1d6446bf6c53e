"""Mixed precision: every example model under `"mixed_bfloat16"`, one of each
family under `"mixed_float16"`.

Under `"mixed_bfloat16"` and `"mixed_float16"` layers compute in 16 bits and
keep their weights in float32; `compile()` wraps the optimizer in a
`LossScaleOptimizer` under `"mixed_float16"`. The models return float32
logits (the loss and softmax stay in float32), train, generate, and their
files load under either policy.
"""

import contextlib

import keras
import numpy as np
import pytest

from keras_nlm import models
from keras_nlm.models.base import LanguageModel
from keras_nlm.testing import example_models

POLICIES = ("mixed_bfloat16", "mixed_float16")
NAMES = [name for name, *_ in example_models()]
# Logits of the mixed model against the float32 one with the same weights,
# as a fraction of the float32 logits' largest magnitude: bfloat16 keeps 8
# significant bits (~2-3 decimal digits), float16 11 (~3). Through an
# embedding, a few recurrent steps and the output layer the rounding adds
# up: the worst example measured 1.1% (bfloat16) and 0.18% (float16) on JAX,
# untrained; 3% and 0.5% leave room for trained weights and other backends.
TOLERANCE = {"mixed_bfloat16": 0.03, "mixed_float16": 0.005}
# Every example runs under bfloat16 (the CPUs' and TPUs' 16 bits), one of each
# family under float16 (GPUs: loss scaling): compiling a train step per
# example and policy is most of this file's time, and the suite runs it on
# three backends.
FLOAT16 = (
    "fixed_window",
    "rnn_lm_awd",
    "rnn_tagger_bidirectional",
    "seq2seq_gru_bahdanau",
)
CASES = [(name, "mixed_bfloat16") for name in NAMES]
CASES += [(name, "mixed_float16") for name in FLOAT16]


@contextlib.contextmanager
def global_policy(name):
    """Sets Keras's global dtype policy to `name`, then back as it was."""
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


@pytest.fixture(autouse=True)
def float32_after():
    yield
    assert keras.config.dtype_policy().name == "float32"


@pytest.fixture(params=POLICIES)
def policy(request):
    with global_policy(request.param):
        yield request.param


def example(name, build=True):
    """A new `(model, inputs, labels)` of the example `name`, made (and with
    `build`, called once) under the policy in force."""
    for other, model, x, y in example_models():
        if other == name:
            if build:
                model(x)
            return model, x, y
    raise KeyError(name)


def float32_twin(name, model):
    """The example `name` built in float32, with `model`'s weights."""
    with global_policy("float32"):
        twin, x, _ = example(name)
    twin.set_weights(model.get_weights())
    return twin


def assert_close(mixed, reference, policy):
    mixed = keras.ops.convert_to_numpy(mixed)
    reference = keras.ops.convert_to_numpy(reference)
    scale = np.max(np.abs(reference))
    np.testing.assert_allclose(mixed, reference, rtol=0, atol=TOLERANCE[policy] * scale)


def assert_same_weights(model, weights):
    read = model.get_weights()
    assert len(read) == len(weights)
    for saved, value in zip(weights, read):
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, saved)


# One test per example and policy, its steps in turn, so that each model is
# built, and each step compiled, once (the suite runs it on three backends;
# compiling the train step is most of its time).
@pytest.mark.parametrize("name, policy", CASES, indirect=["policy"])
# Weights loaded into the trained model leave its optimizer as it is.
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_mixed_precision(name, policy, tmp_path):
    model, x, y = example(name, build=False)
    assert model.dtype_policy.name == policy
    assert model.compute_dtype == policy.removeprefix("mixed_")

    # It trains: Adam steps on one batch lower the loss, the loss scaled under
    # float16 (Keras wraps the optimizer: a step whose scaled gradients
    # overflow is skipped and the scale halved).
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (policy == "mixed_float16")
    losses = model.fit(x, y, epochs=15, batch_size=len(y), verbose=0)
    losses = losses.history["loss"]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < 0.9 * losses[0], losses
    # The weights stay float32, so that small updates are not rounded away.
    assert {v.dtype for v in model.weights} == {"float32"}

    # Float32 logits, close to float32's with the same weights. The loss's
    # log-softmax reads them: in 16 bits the largest logits would swallow
    # the small ones' contributions (and float16 overflows past 65504).
    twin = float32_twin(name, model)
    logits = model(x)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert_close(logits, twin(x), policy)

    # Files saved under one policy load under the other, weights unchanged
    # (float32 in both). A `.keras` file keeps the policy it was saved
    # with, as Keras's files do.
    weights = model.get_weights()
    model.save(tmp_path / "mixed.keras")
    model.save_weights(tmp_path / "mixed.weights.h5")
    twin.save(tmp_path / "float32.keras")
    with global_policy("float32"):
        loaded = keras.saving.load_model(tmp_path / "mixed.keras")
        assert loaded.dtype_policy.name == policy
        assert_same_weights(loaded, weights)
        twin.load_weights(tmp_path / "mixed.weights.h5")
        assert_same_weights(twin, weights)
        twin.save_weights(tmp_path / "float32.weights.h5")
    loaded = keras.saving.load_model(tmp_path / "float32.keras")
    assert loaded.dtype_policy.name == "float32"
    assert_same_weights(loaded, weights)
    model.load_weights(tmp_path / "float32.weights.h5")
    assert_same_weights(model, weights)

    # It generates (greedy) under the policy.
    if isinstance(model, models.Seq2Seq):
        sources = [list(row[row > 0]) for row in x["source"][:3]]
        translated = model.translate(
            sources, max_length=6, start_id=1, end_id=2, sampler="greedy"
        )
        assert len(translated) == 3 and all(len(row) <= 6 for row in translated)
        assert all(0 < t < model.target_vocabulary_size for r in translated for t in r)
    elif isinstance(model, LanguageModel):
        prompts = [[3, 4, 5], [6, 7]]
        generated = model.generate(prompts, max_length=8, sampler="greedy")
        assert [len(row) for row in generated] == [8, 8]
        assert [row[: len(p)] for row, p in zip(generated, prompts)] == prompts
        assert all(0 <= t < model.vocabulary_size for r in generated for t in r)


def test_carried_state_is_kept_in_float32(policy):
    # `CarriedState` writes each batch's final states into its variables
    # inside its call, where a mixed policy reads float variables as 16-bit
    # copies (on PyTorch, the state was once written into such a copy).
    model, x, y = example("rnn_lm_lstm")
    _, expected = float32_twin("rnn_lm_lstm", model)(x, return_state=True)
    carried = models.CarriedState(model, batch_size=len(y))
    carried.compile(optimizer=keras.optimizers.Adam(0.05))
    carried.fit(x, y, epochs=1, batch_size=len(y), verbose=0)  # one step
    assert {v.dtype for v in carried.state} == {"float32"}
    # The step started from zeros, with the twin's weights.
    for variable, state in zip(carried.state, keras.tree.flatten(expected)):
        assert_close(variable, state, policy)
    logits = carried.predict(x, batch_size=len(y), verbose=0)
    assert logits.dtype == np.float32 and np.all(np.isfinite(logits))
