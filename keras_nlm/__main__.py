"""`python -m keras_nlm`: the zoo and a tour of the course's models, on the
current backend, offline.

Loads every pretrained zoo preset (its sha256 manifest verified), prints its
measured headline metric and lets it translate (greedily) or continue a prompt,
greedily and by top-p sampling with a fixed seed (the same sample on each run
of a backend; the backends draw their random numbers each its own way); then
builds each model at the sizes of its paper, runs it on a batch of random ids
and prints what it computes, its parameter count and its output shape.
"""

import keras
import numpy as np

import keras_nlm
from keras_nlm import models, presets
from keras_nlm.generation import import_keras_hub

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


# Greedy continuations of the word models end in loops (of `<unk>`, often):
# a sample shows better what they learnt.
TOP_P, SEED = 0.9, 0


def zoo(names=None):
    """Prints each zoo preset's headline metric and samples (`names`: all)."""
    names = presets.zoo_presets() if names is None else names
    print(
        f"The zoo ({len(names)} pretrained presets, greedy decoding; top-p "
        f"sampling with p={TOP_P}, seed={SEED}):"
    )
    for name in names:
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
            # A sampler per model: each line is the same whichever ran before.
            sampler = import_keras_hub().samplers.TopPSampler(p=TOP_P, seed=SEED)
            greedy = model.generate(prompt, max_length=40)
            sampled = model.generate(prompt, max_length=40, sampler=sampler)
            print(f"    greedy: {greedy!r}\n    top-p:  {sampled!r}")


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
