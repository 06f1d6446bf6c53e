"""Training speed of keras-nlm against the same models in native PyTorch.

Tokens per second of SGD training (and of evaluation) on random token ids,
for `RNNLM` (2 LSTM or GRU layers, vocabulary 10,000, state carried between
batches as in `CarriedState`), `FixedWindowLM` (window 4, d=200, h=600) and a
small `Seq2Seq`, each next to its equivalent written with `torch.nn` (same
sizes, same optimizer, `torch.nn.LSTM`/`GRU`, CPU). keras-nlm runs on the
current backend (`KERAS_BACKEND`); native PyTorch runs in the same process.
Both get `--threads` threads (default: one per core, as TensorFlow and XLA
take by default). On a machine busy with other work, use `--threads 1`: a
PyTorch thread pool larger than the free cores spins, 10-20 times slower.

Each measurement alternates the two, `--repeats` times (`--steps` batches
each, after one warm-up run of each that compiles and builds): `ratio` is
the median over repeats of keras tokens/s over native tokens/s of the run
next to it, so that load from other processes hits both sides alike. With
`--stock`, the same language model built from stock Keras layers (`Embedding`,
two `LSTM`s or `GRU`s, `Dense`, Keras's loss) takes its turn too, and
`stock_ratio` compares it with native PyTorch in the same way.

With `--policy mixed_bfloat16`, keras-nlm's models train under that Keras
mixed-precision policy (float32 weights, bfloat16 computation, float32
logits and loss) and native PyTorch under
`torch.autocast(DEVICE, dtype=torch.bfloat16)`, its own mixed precision.
With `--padded`, the `Seq2Seq`'s sources are padded, as real sentence
pairs' batches are (native PyTorch packs them for its encoder).

    KERAS_BACKEND=torch .venv/bin/python benchmarks/training.py --json
    KERAS_BACKEND=jax .venv/bin/python benchmarks/training.py --cell gru --configs small
"""

import argparse
import contextlib
import json
import os
import resource
import statistics
import time

import keras
import numpy as np
import torch

from keras_nlm import models

VOCABULARY_SIZE = 10_000
LEARNING_RATE = 0.1
# name: (hidden_dim = embedding_dim, batch size, unroll)
CONFIGS = {"small": (200, 20, 20), "medium": (650, 64, 35)}
WORKLOADS = ("train", "evaluate", "fixed_window", "seq2seq")
# Native PyTorch runs where keras-nlm's PyTorch backend would: the GPU if any.
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def on_device(tensor):
    return torch.from_numpy(tensor).to(DEVICE)


def synchronized(run):
    """`run`, returning once the GPU's queued work is done (timings)."""

    def run_and_wait():
        run()
        if DEVICE == "cuda":
            torch.cuda.synchronize()

    return run_and_wait


def peak_rss_mb():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TorchRNNLM(torch.nn.Module):
    def __init__(self, cell, vocabulary_size, hidden_dim):
        super().__init__()
        rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        self.E = torch.nn.Embedding(vocabulary_size, hidden_dim)
        self.rnn = rnn(hidden_dim, hidden_dim, num_layers=2, batch_first=True)
        self.U = torch.nn.Linear(hidden_dim, vocabulary_size)

    def forward(self, ids, state):
        h, state = self.rnn(self.E(ids), state)
        return self.U(h), state


class TorchFixedWindowLM(torch.nn.Module):
    def __init__(self, vocabulary_size, window_size, embedding_dim, hidden_dim):
        super().__init__()
        self.E = torch.nn.Embedding(vocabulary_size, embedding_dim)
        self.W = torch.nn.Linear(window_size * embedding_dim, hidden_dim)
        self.U = torch.nn.Linear(hidden_dim, vocabulary_size)

    def forward(self, ids):
        return self.U(torch.tanh(self.W(self.E(ids).flatten(1))))


class TorchSeq2Seq(torch.nn.Module):
    def __init__(self, cell, vocabulary_size, hidden_dim, padded=False):
        super().__init__()
        rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        self.padded = padded
        self.E_source = torch.nn.Embedding(vocabulary_size, hidden_dim)
        self.E_target = torch.nn.Embedding(vocabulary_size, hidden_dim)
        self.encoder = rnn(hidden_dim, hidden_dim, num_layers=2, batch_first=True)
        self.decoder = rnn(hidden_dim, hidden_dim, num_layers=2, batch_first=True)
        self.U = torch.nn.Linear(hidden_dim, vocabulary_size)

    def forward(self, source, target):
        embedded = self.E_source(source)
        if self.padded:  # the encoder reads each source up to its length
            embedded = torch.nn.utils.rnn.pack_padded_sequence(
                embedded,
                (source > 0).sum(1).cpu(),
                batch_first=True,
                enforce_sorted=False,
            )
        _, state = self.encoder(embedded)
        h, _ = self.decoder(self.E_target(target), state)
        return self.U(h)


def native_precision():
    """The context native PyTorch's forward and loss run in: its autocast
    under a mixed policy (`--policy`), set by `main`."""
    policy = keras.config.dtype_policy()
    if policy.compute_dtype == policy.variable_dtype:
        return contextlib.nullcontext()
    return torch.autocast(DEVICE, dtype=getattr(torch, policy.compute_dtype))


def detach(state):
    return (
        tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
    )


def torch_trainer(model, loss_of, batches):
    """A function running one epoch of SGD over `batches`."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)

    def epoch():
        model.train()
        for batch in batches:
            optimizer.zero_grad()
            with native_precision():
                loss = loss_of(*batch)
            loss.backward()
            optimizer.step()

    return epoch


def compile_sgd(model, args, **kwargs):
    model.compile(
        keras.optimizers.SGD(LEARNING_RATE),
        steps_per_execution=args.steps_per_execution,
        **kwargs,
    )


def stock_rnnlm(args, vocabulary_size, hidden_dim):
    """The same language model from stock Keras layers and loss (without the
    carried state), the baseline keras-nlm's layers are measured against."""
    rnn = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[args.cell]
    model = keras.Sequential(
        [
            keras.layers.Embedding(vocabulary_size, hidden_dim),
            rnn(hidden_dim, return_sequences=True),
            rnn(hidden_dim, return_sequences=True),
            keras.layers.Dense(vocabulary_size),
        ]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    compile_sgd(model, args, loss=loss)
    return model


def rnnlm(args, config, rng):
    """(keras run, native run, tokens per run) for training or evaluating an
    RNNLM, and the other runs to alternate with them: the stock Keras model
    (`--stock`), keras-nlm with `jit_compile=True` (`--jit`)."""
    h, b, t = CONFIGS[config]
    v, steps = VOCABULARY_SIZE, args.steps
    x = rng.integers(0, v, (steps * b, t))
    y = rng.integers(0, v, (steps * b, t))

    def carried(**compile_options):
        lm = models.RNNLM(
            v, cell=args.cell, num_layers=2, hidden_dim=h, embedding_dim=h
        )
        model = models.CarriedState(lm, b)
        compile_sgd(model, args, **compile_options)
        return model

    model = carried()

    native = TorchRNNLM(args.cell, v, h).to(DEVICE)
    batches = [
        (
            on_device(x[i * b : (i + 1) * b]),
            on_device(y[i * b : (i + 1) * b]),
        )
        for i in range(steps)
    ]
    state = [None]

    def loss_of(ids, labels):
        logits, state[0] = native(ids, state[0])
        state[0] = detach(state[0])
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())

    if args.workload == "train":
        keras_run = lambda: model.fit(x, y, batch_size=b, verbose=0, shuffle=False)
        native_run = torch_trainer(native, loss_of, batches)
        others = {}
        if args.stock:
            stock = stock_rnnlm(args, v, h)
            others["stock"] = lambda: stock.fit(
                x, y, batch_size=b, verbose=0, shuffle=False
            )
        if args.jit:
            jit = carried(jit_compile=True)
            others["jit"] = lambda: jit.fit(
                x, y, batch_size=b, verbose=0, shuffle=False
            )
        return keras_run, native_run, steps * b * t, others
    else:
        keras_run = lambda: model.evaluate(x, y, batch_size=b, verbose=0)

        def native_run():
            native.eval()
            state[0] = None
            with torch.no_grad(), native_precision():
                for batch in batches:
                    loss_of(*batch)

    return keras_run, native_run, steps * b * t


def fixed_window(args, config, rng):
    v, window, d, h, b = VOCABULARY_SIZE, 4, 200, 600, 256
    x = rng.integers(0, v, (args.steps * b, window))
    y = rng.integers(0, v, (args.steps * b,))
    model = models.FixedWindowLM(v, window, embedding_dim=d, hidden_dim=h)
    compile_sgd(model, args)
    native = TorchFixedWindowLM(v, window, d, h).to(DEVICE)
    batches = [
        (
            on_device(x[i * b : (i + 1) * b]),
            on_device(y[i * b : (i + 1) * b]),
        )
        for i in range(args.steps)
    ]

    def loss_of(ids, labels):
        return torch.nn.functional.cross_entropy(native(ids), labels)

    keras_run = lambda: model.fit(x, y, batch_size=b, verbose=0, shuffle=False)
    return keras_run, torch_trainer(native, loss_of, batches), args.steps * b


def seq2seq(args, config, rng):
    h, b, t = CONFIGS[config]
    v, steps = VOCABULARY_SIZE, args.steps
    # Ids from 1: every sequence is `t` tokens long, or with `--padded` each
    # source is cut to a length from t/2 to t and padded with 0s.
    source = rng.integers(1, v, (steps * b, t))
    if args.padded:
        lengths = rng.integers(t // 2, t + 1, steps * b)
        source[np.arange(t) >= lengths[:, None]] = 0
    target = rng.integers(1, v, (steps * b, t + 1))
    inputs = {"source": source, "target": target[:, :-1]}
    model = models.Seq2Seq(
        v, v, cell=args.cell, num_layers=2, hidden_dim=h, embedding_dim=h
    )
    compile_sgd(model, args)
    native = TorchSeq2Seq(args.cell, v, h, args.padded).to(DEVICE)
    batches = [
        tuple(on_device(a[i * b : (i + 1) * b]) for a in (source, target))
        for i in range(steps)
    ]

    def loss_of(source, target):
        logits = native(source, target[:, :-1])
        return torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), target[:, 1:].flatten(), ignore_index=0
        )

    keras_run = lambda: model.fit(
        inputs, target[:, 1:], batch_size=b, verbose=0, shuffle=False
    )
    return keras_run, torch_trainer(native, loss_of, batches), steps * b * t


def measure(args, config):
    rng = np.random.default_rng(0)
    make = {"fixed_window": fixed_window, "seq2seq": seq2seq}.get(args.workload, rnnlm)
    keras_run, native_run, tokens, *others = make(args, config, rng)
    runs = {"keras": keras_run, "native": native_run, **(others[0] if others else {})}
    runs = {name: synchronized(run) for name, run in runs.items()}
    speeds = {name: [] for name in runs}
    for run in runs.values():
        run()  # warm-up: tracing, compiling, building
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            speeds[name].append(tokens / (time.perf_counter() - start))
    result = {"workload": args.workload, "config": config}
    for name in runs:
        result[f"{name}_tokens_per_s"] = round(statistics.median(speeds[name]), 1)
    for name, key in (
        ("keras", "ratio"),
        ("stock", "stock_ratio"),
        ("jit", "jit_ratio"),
    ):
        if name in runs:
            ratios = [k / n for k, n in zip(speeds[name], speeds["native"])]
            result[key] = round(statistics.median(ratios), 3)
            result[f"{key}s"] = [round(r, 3) for r in ratios]
    result["peak_rss_mb"] = round(peak_rss_mb())
    return result


def set_threads(n):
    torch.set_num_threads(n)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    if keras.backend.backend() == "jax" and n == 1:
        # Read when JAX first computes, after this.
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    parser.add_argument(
        "--configs", default="small,medium", help="comma-separated: small, medium"
    )
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated: {', '.join(WORKLOADS)} (the last two: small only)",
    )
    parser.add_argument("--steps", type=int, default=10, help="batches per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument(
        "--steps-per-execution", type=int, default=1, help="see Keras's compile()"
    )
    parser.add_argument(
        "--stock",
        action="store_true",
        help="also train the RNNLM built from stock Keras layers (train workload)",
    )
    parser.add_argument(
        "--jit",
        action="store_true",
        help="also train keras-nlm with jit_compile=True: XLA on TensorFlow, "
        "torch.compile on PyTorch (train workload)",
    )
    parser.add_argument(
        "--padded",
        action="store_true",
        help="seq2seq workload: sources of lengths t/2 to t, padded",
    )
    parser.add_argument(
        "--policy",
        default="float32",
        choices=("float32", "mixed_bfloat16", "mixed_float16"),
        help="Keras's dtype policy; native PyTorch autocasts to its 16 bits",
    )
    args = parser.parse_args()

    keras.config.set_dtype_policy(args.policy)
    set_threads(args.threads)
    configs = args.configs.split(",")
    runs = []
    for workload in args.workloads.split(","):
        args.workload = workload
        for config in configs if workload in ("train", "evaluate") else ["small"]:
            runs.append(measure(args, config))
    result = {
        "backend": keras.backend.backend(),
        "device": DEVICE,
        "cell": args.cell,
        "policy": args.policy,
        "threads": args.threads,
        "steps": args.steps,
        "repeats": args.repeats,
        "runs": runs,
        "peak_rss_mb": round(peak_rss_mb()),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"keras-nlm on {result['backend']} / native PyTorch, {args.cell.upper()}, "
        f"{args.policy}, "
        f"{args.threads} threads, median of {args.repeats} x {args.steps} steps"
    )
    for run in runs:
        print(
            f"  {run['workload']:>12} {run['config']:>6}: ratio {run['ratio']:5.2f}  "
            f"({run['keras_tokens_per_s']:>9.0f} / {run['native_tokens_per_s']:>9.0f} "
            f"tokens/s, peak RSS so far {run['peak_rss_mb']} MB)"
        )
        if "stock_ratio" in run:
            print(f"{'':>22}stock Keras layers: ratio {run['stock_ratio']:5.2f}")
        if "jit_ratio" in run:
            print(
                f"{'':>22}jit_compile=True: ratio {run['jit_ratio']:5.2f} "
                f"({run['jit_tokens_per_s']:>9.0f} tokens/s)"
            )


if __name__ == "__main__":
    main()
