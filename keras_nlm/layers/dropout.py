import random

import keras


def seeded_dropout(rate, **kwargs):
    """`keras.layers.Dropout(rate)` with a seed drawn from Python's generator
    (which `keras.utils.set_random_seed` seeds).

    Unseeded, Keras's PyTorch backend draws the masks from torch's global
    generator, outside the layer's state, so a checkpoint cannot capture them
    and a resumed run would differ from an uninterrupted one. Seeded, the
    masks come from the layer's seed-generator variable on every backend.
    """
    return keras.layers.Dropout(rate, seed=random.randint(0, 2**31 - 1), **kwargs)
