"""`python -m keras_nlm`: the zoo and a tour of the course's models, on the
current backend, offline.

Loads every pretrained zoo preset (its sha256 manifest verified), prints its
measured headline metric and lets it generate (or translate) a sample; then
builds each model at the sizes of its paper, runs it on a batch of random ids
and prints what it computes, its parameter count and its output shape.
"""

import keras
import numpy as np

import keras_nlm
from keras_nlm import models, presets

TOUR = [
    (
        "Bengio 2003, tanh",
        lambda: models.FixedWindowLM(
            10_000, window_size=4, embedding_dim=60, hidden_dim=100
        ),
        lambda rng: rng.integers(0, 10_000, (2, 4)),
    ),
    (
        "LSTM 2x200, Zaremba small",
        lambda: models.RNNLM(
            10_000, cell="lstm", num_layers=2, hidden_dim=200, embedding_dim=200
        ),
        lambda rng: rng.integers(0, 10_000, (2, 20)),
    ),
    (
        "bidirectional GRU",
        lambda: models.RNNTagger(10_000, 18, cell="gru", bidirectional=True),
        lambda rng: rng.integers(1, 10_000, (2, 12)),
    ),
    (
        "GRU with Bahdanau attention",
        lambda: models.Seq2Seq(8_000, 6_000, cell="gru", attention="bahdanau"),
        lambda rng: {
            "source": rng.integers(1, 8_000, (2, 9)),
            "target": rng.integers(1, 6_000, (2, 7)),
        },
    ),
]


def zoo():
    print(
        f"The zoo ({len(presets.zoo_presets())} pretrained presets, greedy decoding):"
    )
    for name in presets.zoo_presets():
        model = presets.load_preset(name)
        metadata = presets.load_metadata(name)
        split, metric, value, target = presets.headline(name, metadata)
        print(f"- {name}: {split} {metric} {value:.4g} (target {target})")
        recipe = metadata["recipe"]
        if recipe.get("languages"):
            source = metadata["samples"][0]["source"]
            print(f"    {source!r} -> {model.translate(source)!r}")
        else:
            prompt = presets.PROMPTS[recipe["dataset"]][0]
            print(f"    {model.generate(prompt, max_length=40)!r}")


def main():
    print(
        f"keras-nlm {keras_nlm.__version__} on Keras {keras.__version__}, "
        f"backend {keras.backend.backend()} (set KERAS_BACKEND to change)"
    )
    zoo()
    print("The course's models at their papers' sizes (random weights):")
    rng = np.random.default_rng(0)
    for title, build, inputs in TOUR:
        model = build()
        outputs = model(inputs(rng))
        print(
            f"- {type(model).__name__} ({title}): {', '.join(model.EQUATION)}\n"
            f"    {model.count_params():,} parameters, logits {tuple(outputs.shape)}"
        )


if __name__ == "__main__":
    main()
