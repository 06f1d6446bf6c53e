"""Loads the models that `cross_backend_test.py` saved and writes their outputs.

Run in a subprocess with another `KERAS_BACKEND`:
`python cross_backend_worker.py DIRECTORY`.
"""

import pathlib
import sys

import keras
import numpy as np

from keras_nlm.models.base import LanguageModel

# Greedy generation from these prompts must give the same ids on every backend.
PROMPTS = [[1, 2, 3], [4], [5, 6]]
GENERATED_LENGTH = 12


def generated(model):
    """Greedy continuations for language models, else None."""
    if isinstance(model, LanguageModel):
        return np.array(model.generate(PROMPTS, max_length=GENERATED_LENGTH))
    return None


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
        tokens = generated(model)
        if tokens is not None:
            np.save(path.with_suffix(f".generated.{backend}.npy"), tokens)


if __name__ == "__main__":
    main(sys.argv[1])
