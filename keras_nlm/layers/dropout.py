import random

import keras

from keras_nlm.validation import check_rank, check_rate


def draw_seed():
    """A seed for a layer's `SeedGenerator`, drawn from Python's generator
    (which `keras.utils.set_random_seed` seeds).

    Unseeded, Keras's PyTorch backend draws dropout masks from torch's global
    generator, outside the layer's state, so a checkpoint cannot capture them
    and a resumed run would differ from an uninterrupted one. Seeded, the
    masks come from the layer's seed-generator variable on every backend.
    """
    return random.randint(0, 2**31 - 1)


def seeded_dropout(rate, **kwargs):
    """`keras.layers.Dropout(rate)` seeded with `draw_seed()`."""
    return keras.layers.Dropout(rate, seed=draw_seed(), **kwargs)


@keras.saving.register_keras_serializable(package="keras_nlm")
class LockedDropout(keras.layers.Dropout):
    """Variational dropout (Gal & Ghahramani 2016), Merity et al.'s LockedDropout.

    One mask per sequence, the same at every time step:

        yₜ = m ⊙ xₜ / (1 − p),   m ~ Bernoulli(1 − p)ᶠ drawn once per sequence

    so a dropped feature stays dropped for the whole sequence (a mask of
    shape `(batch, 1, features)`), where `keras.layers.Dropout` draws one for
    every element. Only in training. The seed defaults to `draw_seed()`.

    Args:
        rate: `p`, the fraction of features dropped, in [0, 1) (0.5 as in
            Merity et al.'s LockedDropout).
        seed: the seed of the layer's `SeedGenerator`.

    Example:
    >>> dropout = LockedDropout(0.5)
    >>> y = dropout(np.ones((2, 7, 4)), training=True)   # y[:, t] the same ∀ t
    """

    def __init__(self, rate=0.5, seed=None, **kwargs):
        super().__init__(
            check_rate(rate, "rate"),
            noise_shape=(None, 1, None),
            seed=draw_seed() if seed is None else seed,
            **kwargs,
        )

    def call(self, inputs, training=False):
        check_rank(inputs, "inputs", ("batch", "time", "features"))
        return super().call(inputs, training=training)

    def get_config(self):
        config = super().get_config()
        del config["noise_shape"]
        return config
