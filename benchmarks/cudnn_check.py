"""Whether `RecurrentStack`'s LSTM and GRU take the backend's cuDNN path on a GPU.

Runs one training step (forward and backward) of a 2-layer LSTM and GRU stack
under the current `KERAS_BACKEND` and looks for cuDNN's RNN in what ran:
TensorFlow, the `CudnnRNN*` ops of the traced step; JAX, a cuDNN RNN custom
call in the lowered program (Keras's JAX backend has no cuDNN RNN, so a scan is
expected); PyTorch, cuDNN's RNN kernels in the profiler's trace of the step
(keras-nlm runs PyTorch's fused `torch.lstm` / `torch.gru`). Prints one JSON
object. Reproduce with `KERAS_BACKEND=<backend> python benchmarks/cudnn_check.py`.
"""

import json

import keras
import numpy as np

from keras_nlm.layers import RecurrentStack

BACKEND = keras.backend.backend()


def _step(stack, x):
    """A function of `x` that runs the stack forward and backward."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(stack(x, training=True))
            return tape.gradient(loss, stack.trainable_variables)

        return step
    if BACKEND == "jax":
        import jax

        def loss(values, x):
            outputs, _ = stack.stateless_call(
                values, [v.value for v in stack.non_trainable_variables], x
            )
            return outputs.sum()

        return lambda x: jax.jit(jax.grad(loss)).lower(
            [v.value for v in stack.trainable_variables], x
        )

    def step(x):
        stack(x, training=True).sum().backward()

    return step


def check(cell):
    stack = RecurrentStack(cell, hidden_dim=256, num_layers=2)
    x = keras.ops.convert_to_tensor(np.random.rand(32, 35, 128).astype("float32"))
    stack(x)
    step = _step(stack, x)
    if BACKEND == "tensorflow":
        graph = step.get_concrete_function(x).graph.as_graph_def()
        ops = {n.op for n in graph.node} | {
            n.op for f in graph.library.function for n in f.node_def
        }
        found = sorted(op for op in ops if op.startswith("CudnnRNN"))
    elif BACKEND == "jax":
        program = step(x).as_text()
        found = sorted({w for w in program.split('"') if "cudnn" in w.lower()})
    else:
        import torch

        step(x)  # warm-up
        with torch.profiler.profile() as profile:
            step(x)
            torch.cuda.synchronize() if torch.cuda.is_available() else None
        names = {e.name for e in profile.events()}
        found = sorted(n for n in names if "cudnn" in n.lower() and "rnn" in n.lower())
    return {"cudnn": bool(found), "evidence": found[:5]}


def main():
    if BACKEND == "torch":  # Keras 3.15 has no distribution API for PyTorch
        import torch

        cuda = torch.cuda.is_available()
        devices = [torch.cuda.get_device_name() if cuda else "cpu"]
    else:
        devices = [str(d) for d in keras.distribution.list_devices()]
    result = {"backend": BACKEND, "devices": devices}
    for cell in ("lstm", "gru"):
        result[cell] = check(cell)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
