"""Training throughput of data parallelism (`keras_nlm.distribution`) on 1
and on 2 devices, under each backend.

The small PTB LSTM LM's shape (2×200 LSTM, vocabulary 10,000, global batch
20, unroll 20, the state carried between batches, SGD with the gradient's
norm clipped) on random token ids, trained with `fit` through
`DataParallel(devices)`: one epoch of `--steps` batches to compile and
warm up, then the timed epoch. Tokens/s count the global batch's tokens.
Each backend and device count runs in its own process (PyTorch's 2 devices
as two processes started by torchrun, JAX's as two XLA host devices,
TensorFlow's as two logical CPU devices), one after the other.

    .venv/bin/python benchmarks/devices.py --json
"""

import argparse
import json
import os
import subprocess
import sys
import time

VOCABULARY_SIZE, HIDDEN_DIM, BATCH_SIZE, UNROLL = 10_000, 200, 20, 20


def measure(devices, steps):
    """Tokens/s of the timed epoch on `devices` devices (None in PyTorch's
    other processes)."""
    import keras
    import numpy as np

    from keras_nlm import models
    from keras_nlm.datasets.batching import StreamBatches
    from keras_nlm.distribution import DataParallel

    parallel = DataParallel(devices)
    ids = np.random.default_rng(0).integers(
        0, VOCABULARY_SIZE, BATCH_SIZE * UNROLL * steps + 1
    )
    batches = parallel.shard(StreamBatches(ids, BATCH_SIZE, UNROLL))

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    times = EpochTimes()
    with parallel.scope():
        model = models.RNNLM(
            VOCABULARY_SIZE, num_layers=2, hidden_dim=HIDDEN_DIM, embedding_dim=200
        )
        trainer = models.CarriedState(model, BATCH_SIZE)
        trainer.compile(keras.optimizers.SGD(1.0, global_clipnorm=0.25))
        trainer.fit(batches, epochs=2, callbacks=[times], verbose=0)
    parallel.close()
    if not parallel.writes:
        return None
    return BATCH_SIZE * UNROLL * steps / times.seconds


def run(backend, devices, steps):
    env = {**os.environ, "KERAS_BACKEND": backend}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    launcher = [sys.executable]
    if backend == "torch" and devices > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone"]
        launcher += ["--nproc-per-node", str(devices)]
    command = [*launcher, __file__, "--measure", str(devices), "--steps", str(steps)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    return float(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--steps", type=int, default=30, help="batches per epoch")
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        tokens_per_second = measure(args.measure, args.steps)
        if tokens_per_second is not None:
            print(tokens_per_second)
        return
    results = {}
    for backend in args.backends:
        one, two = (run(backend, n, args.steps) for n in (1, 2))
        results[backend] = {
            "1 device tokens/s": round(one),
            "2 devices tokens/s": round(two),
            "ratio": round(two / one, 2),
        }
        if not args.json:
            print(backend, results[backend], flush=True)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
