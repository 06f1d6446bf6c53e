"""Loads the models that `cross_backend_test.py` saved and writes their outputs.

Run in a subprocess with another `KERAS_BACKEND`:
`python cross_backend_worker.py DIRECTORY`.
"""

import pathlib
import sys

import keras
import numpy as np

import keras_nlm  # noqa: F401  (registers the classes)


def main(directory):
    directory = pathlib.Path(directory)
    for path in sorted(directory.glob("*.keras")):
        inputs = dict(np.load(path.with_suffix(".inputs.npz")))
        if set(inputs) == {"inputs"}:
            inputs = inputs["inputs"]
        model = keras.saving.load_model(path)
        outputs = keras.ops.convert_to_numpy(model(inputs, training=False))
        backend = keras.backend.backend()
        np.save(path.with_suffix(f".{backend}.npy"), outputs)


if __name__ == "__main__":
    main(sys.argv[1])
