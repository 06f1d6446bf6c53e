"""Trains each case's model three steps through
`keras_nlm.distribution.DataParallel` and saves its final weights and loss:
`distribution_test.py` trains on one device in its own process and runs
this on two (JAX and TensorFlow in one process, PyTorch in two processes
started by torchrun); the results must be equal.

    python tests/distribution_worker.py DEVICES OUT_FOLDER
"""

import sys

import keras
import numpy as np

from keras_nlm import models
from keras_nlm.datasets.batching import NGramWindows, SentencePairs, StreamBatches
from keras_nlm.distribution import DataParallel

BATCH_SIZE = 8


def rnn_lm(rng):
    """A stateful LSTM LM: the state carried across the three batches."""
    model = models.RNNLM(30, cell="lstm", num_layers=2, hidden_dim=12, embedding_dim=6)
    trainer = models.CarriedState(model, BATCH_SIZE)
    batches = StreamBatches(rng.integers(1, 30, 8 * 3 * 5 + 1), BATCH_SIZE, 5)
    return trainer, batches


def fixed_window(rng):
    """Bengio et al.'s window model, with the direct connections."""
    model = models.FixedWindowLM(
        30, window_size=3, embedding_dim=6, hidden_dim=12, direct_connections=True
    )
    ids = rng.integers(1, 30, 3 * BATCH_SIZE + 3)
    return model, NGramWindows(ids, window_size=3, batch_size=BATCH_SIZE, shuffle=False)


def seq2seq(rng):
    """A Seq2Seq with attention on padded pairs of different lengths: the
    two halves of a batch hold different numbers of tokens."""
    model = models.Seq2Seq(25, 27, num_layers=1, hidden_dim=10, attention="luong")
    lengths = rng.integers(2, 9, (2, 3 * BATCH_SIZE))
    sources = [list(rng.integers(3, 25, n)) for n in lengths[0]]
    targets = [list(rng.integers(3, 27, n)) for n in lengths[1]]
    batches = SentencePairs(
        sources, targets, start_id=1, end_id=2, batch_size=BATCH_SIZE, shuffle=False
    )
    return model, batches


def train(case, devices):
    """`(loss, how far the weights moved, weights)` after three steps of `case` on `devices` devices,
    or None in PyTorch's other processes."""
    parallel = DataParallel(devices)
    rng = np.random.default_rng(0)
    with parallel.scope():
        trainer, batches = CASES[case](rng)
        data = parallel.shard(batches)
        trainer(data[0][0])
        initial = []
        for weight in trainer.trainable_weights:
            initial.append(rng.uniform(-0.3, 0.3, weight.shape).astype("float32"))
            weight.assign(initial[-1])
        # Clipping binds (the gradients' norm is above 0.05): it must see the
        # global gradient.
        trainer.compile(keras.optimizers.SGD(0.5, global_clipnorm=0.05))
        history = trainer.fit(data, epochs=1, shuffle=False, verbose=0)
    parallel.close()
    if not parallel.writes:
        return None
    weights = [keras.ops.convert_to_numpy(w) for w in trainer.trainable_weights]
    moved = max(float(np.abs(w - i).max()) for w, i in zip(weights, initial))
    return history.history["loss"][-1], moved, weights


CASES = {"rnn_lm": rnn_lm, "fixed_window": fixed_window, "seq2seq": seq2seq}


def main(devices, folder):
    for case in CASES:
        result = train(case, devices)
        if result is not None:
            np.savez(f"{folder}/{case}.npz", result[0], result[1], *result[2])


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
