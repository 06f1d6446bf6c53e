"""A model family is a plug-in: the one below is defined in this file alone,
and keras-nlm trains it from a recipe, evaluates it, generates from it, saves
and loads it as a preset and publishes it with a model card measured under
every backend, without an edit to the library."""

import keras
import numpy as np
from keras import ops

from keras_nlm import evaluation, presets, training
from keras_nlm.datasets.batching import NGramWindows
from keras_nlm.models.base import LanguageModel
from keras_nlm.training import publish
from keras_nlm.validation import check_token_tensor


@keras.saving.register_keras_serializable(package="keras_nlm")
class BagOfWindowLM(LanguageModel):
    """A fixed-window language model that ignores the order of the window's
    words: their embeddings are averaged.

        A = mean(E(X))
        B = tanh(W A)
        Z = softmax(U B)

    Args:
        vocabulary_size, window_size, embedding_dim, hidden_dim: as
            `FixedWindowLM`'s.
    """

    EQUATION = ("A = mean(E(X))", "B = tanh(W A)", "Z = softmax(U B)")
    PAPERS = "a toy family of keras-nlm's tests"

    def __init__(
        self, vocabulary_size, window_size=4, embedding_dim=16, hidden_dim=32, **kwargs
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.window_size = window_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.E = keras.layers.Embedding(vocabulary_size, embedding_dim, name="E")
        self.W = keras.layers.Dense(hidden_dim, activation="tanh", name="W")
        self.U = keras.layers.Dense(vocabulary_size, name="U")

    def check_inputs(self, inputs):
        window = f"window_size={self.window_size}"
        return check_token_tensor(
            inputs, self.vocabulary_size, "inputs", ("batch", window)
        )

    def call(self, inputs, training=None):
        inputs = self.check_inputs(inputs)
        return self.U(self.W(ops.mean(self.E(inputs), axis=1)))

    def label_shape(self, inputs):
        return tuple(inputs.shape[:1])  # the word after each window

    def serving_signature(self):
        return [keras.InputSpec(shape=(None, self.window_size), dtype="int32")]

    def generation_cache(self, buffer, index):
        if not self.built:  # weights must exist before the loop is traced
            self(np.zeros((1, self.window_size), "int32"))
        return index, None, None

    def next_token_logits(self, buffer, cache, index):
        # The window ending before `index`; a prompt shorter than the window
        # repeats its first token.
        positions = ops.maximum(
            index - self.window_size + ops.arange(self.window_size), 0
        )
        return self(ops.take(buffer, positions, axis=1)), cache

    def stream_logits(self, stream, sequence_length, batch_size):
        padded = np.concatenate([np.full(self.window_size - 1, stream[0]), stream])
        windows = np.lib.stride_tricks.sliding_window_view(
            padded[:-1], self.window_size
        )
        for start in range(0, len(windows), batch_size):
            end = start + batch_size
            yield self.predict_on_batch(windows[start:end]), stream[start + 1 : end + 1]

    def stream_batches(
        self,
        ids,
        batch_size,
        sequence_length,
        start_id,
        shuffle,
        seed,
        epoch,
        variable_length=False,
    ):
        if variable_length:
            raise ValueError("A window model reads windows, not BPTT chunks.")
        return NGramWindows(
            ids,
            self.window_size,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            start_id=start_id,
            epoch=epoch,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "window_size": self.window_size,
            "embedding_dim": self.embedding_dim,
            "hidden_dim": self.hidden_dim,
        }


RECIPE = training.Recipe(
    name="bag_of_window_timemachine",
    version=1,
    description="A toy family's recipe.",
    reference="none",
    dataset="timemachine",
    model={"class": "BagOfWindowLM", "window_size": 4, "embedding_dim": 8},
    tokenizer={"class": "CharacterTokenizer"},
    batch_size=256,
    learning_rate=1e-2,
    epochs=2,
)


def test_a_family_defined_outside_the_library_is_trained_used_and_published(
    tmp_path,
):
    model, metadata = training.train(RECIPE, tmp_path / "run", verbose=0)
    losses = [epoch["val_loss"] for epoch in metadata["history"]]
    assert isinstance(model, BagOfWindowLM) and losses[1] < losses[0]

    loaded = BagOfWindowLM.from_preset(tmp_path / "run")
    windows = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded(windows)), ops.convert_to_numpy(model(windows))
    )
    scored = evaluation.evaluate(loaded, "timemachine", "validation")
    # Scoring the stream window by window is what validation did in training.
    np.testing.assert_allclose(np.log(scored["perplexity"]), losses[-1], rtol=0.02)
    assert scored["perplexity"] < loaded.vocabulary_size / 2  # it learned
    text = loaded.generate("the time", max_length=20)
    assert text.startswith("the time") and len(text) > len("the time")

    # Published: measured here and, in fresh processes that import this
    # file, under the other backends, from the preset saved under this one.
    backends = sorted(publish.BACKENDS, key=lambda b: b != keras.backend.backend())
    zoo = tmp_path / "zoo"
    preset = publish.publish(tmp_path / "run", RECIPE.name, zoo=zoo, backends=backends)
    measured = presets.load_metadata(preset)["evaluations"]
    assert list(measured) == backends
    for backend in backends[1:]:
        for split in ("validation", "test"):
            np.testing.assert_allclose(
                measured[backend][split]["perplexity"],
                measured[backends[0]][split]["perplexity"],
                rtol=1e-5,
                err_msg=f"{split} under {backend}",
            )
    card = (preset / "README.md").read_text("utf-8")
    assert "`BagOfWindowLM`: A = mean(E(X)), B = tanh(W A), Z = softmax(U B)" in card
    assert "greedy, prompt 'the time traveller'" in card
