"""Compiled steps are pure: every example model trains with `jit_compile=True`
(XLA on TensorFlow, `jax.jit`, `torch.compile`) to the losses it has without,
and neither TensorFlow's graphs nor JAX's lowered programs of its steps hold a
host callback (the checks run on the host before a step; see
`keras_nlm.validation`)."""

import keras
import numpy as np
import pytest

from keras_nlm import testing

BACKEND = keras.backend.backend()
EXAMPLES = {name: example for name, *example in testing.example_models()}
# TensorFlow's Python-calling ops (`numpy_function`, `py_function`).
TF_CALLBACK_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def _fresh(name):
    """The example model, untrained, without any dropout (Zaremba's, locked,
    embedding, weight drop): TensorFlow draws other masks under XLA (its
    random kernels differ), not other losses."""
    model, x, y = EXAMPLES[name]
    config = model.get_config()
    for key in config:
        if key.endswith("dropout"):
            config[key] = 0.0
    return type(model).from_config(config), x, y


# `torch.compile` takes 40-85 s per model on one core (inductor's C++ code):
# on PyTorch the models whose layers take paths of their own when compiled
# (`keras_nlm.layers.recurrent`: the fused LSTM unmasked, Keras's loop
# masked; bidirectional; attention). The fixed-window LM has none: Keras's
# `train_step` of Dense and Embedding layers, compiled in each of these.
JIT_EXAMPLES = sorted(EXAMPLES)
if BACKEND == "torch":
    JIT_EXAMPLES = ["rnn_lm_lstm", "rnn_tagger_bidirectional", "seq2seq_gru_bahdanau"]


@pytest.mark.parametrize("name", JIT_EXAMPLES)
def test_jit_compile_trains_to_the_same_losses_with_no_host_callback(name):
    if BACKEND == "torch":
        import torch

        # Dynamo recompiles Keras's one `train_step` for each new model, and
        # falls back to eager after 8: each model starts afresh here.
        torch._dynamo.reset()
    losses = []
    for jit_compile in (False, True):
        keras.utils.set_random_seed(0)
        model, x, y = _fresh(name)
        model.compile(optimizer="sgd", jit_compile=jit_compile)
        history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        # Keras turns it off, with a warning, for a model it cannot compile.
        assert model.jit_compile is jit_compile
        losses.append(history.history["loss"])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    if BACKEND == "tensorflow":
        _assert_no_callback_in_tensorflow_graphs(model, x, y)
    elif BACKEND == "jax":
        _assert_no_callback_in_jax_programs(model, x, y)


def _tf_op_types(function, *args):
    import tensorflow as tf

    args = keras.tree.map_structure(tf.constant, args)
    graph = function.get_concrete_function(*args).graph.as_graph_def()
    types = {node.op for node in graph.node}
    for library_function in graph.library.function:
        types |= {node.op for node in library_function.node_def}
    return types


def _assert_no_callback_in_tensorflow_graphs(model, x, y):
    import tensorflow as tf

    for step, data in (
        (model.train_step, (x, y)),
        (model.test_step, (x, y)),
        (model.predict_step, (x,)),
    ):
        types = _tf_op_types(tf.function(step, jit_compile=True), data)
        assert "ResourceGather" in types or "GatherV2" in types  # E's lookup
        assert not types & TF_CALLBACK_OPS, step.__name__


def _assert_no_callback_in_jax_programs(model, x, y):
    import jax

    def values(variables):
        return [v.value for v in variables]

    trainable = values(model.trainable_variables)
    non_trainable = values(model.non_trainable_variables)
    metrics = values(model.metrics_variables)
    optimizer = values(model.optimizer.variables)
    for step, state, data in (
        (model.train_step, (trainable, non_trainable, optimizer, metrics), (x, y)),
        (model.test_step, (trainable, non_trainable, metrics), (x, y)),
        (model.predict_step, (trainable, non_trainable), (x,)),
    ):
        program = jax.jit(step).lower(state, data).as_text()
        assert "gather" in program  # E's lookup
        assert "callback" not in program, step.__name__
