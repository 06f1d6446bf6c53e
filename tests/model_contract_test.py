"""What every model promises, checked for every variant on the current backend."""

import inspect
import pathlib

import keras
import numpy as np
import pytest

from keras_nlm import models, tokenizers  # noqa: F401 (registers them all)
from keras_nlm.testing import example_models

EXAMPLES = {name: (model, x, y) for name, model, x, y in example_models()}


@pytest.fixture(params=sorted(EXAMPLES))
def example(request):
    return EXAMPLES[request.param]


# One test, so that each backend compiles one training step per model (the
# loaded model's is the same program: JAX's compilation cache has it).
def test_fit_lowers_the_loss_and_the_saved_model_goes_on_training(example, tmp_path):
    model, x, y = example
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    history = model.fit(x, y, epochs=15, batch_size=len(y), verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0], losses

    before = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, atol=1e-6)
    # compile() is restored too, with the optimizer's state, so training goes
    # on after loading.
    assert loaded.compiled
    iterations = [int(m.optimizer.iterations.numpy()) for m in (model, loaded)]
    assert iterations == [15, 15]
    loaded.fit(x, y, epochs=1, batch_size=len(y), verbose=0)


def test_config_rebuilds_an_equal_model(example):
    model, _, _ = example
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()


# Values for the arguments that have no default, by name.
REQUIRED = {
    "units": 3,
    "vocabulary_size": 5,
    "source_vocabulary_size": 5,
    "target_vocabulary_size": 5,
    "embedding_dim": 2,
    "num_classes": 2,
    "batch_size": 2,
}
# Those with a constructor of their own (the fused LSTM and GRU keep Keras's).
REGISTERED = {
    name: cls
    for name, cls in keras.saving.get_custom_objects().items()
    if name.startswith("keras_nlm>") and cls.__init__.__module__.startswith("keras_nlm")
}


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_get_config_holds_every_constructor_argument(name):
    # A round trip through the config cannot see an argument left out of it:
    # both sides would fall back to the same default.
    cls = REGISTERED[name]
    arguments = [
        p
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.kind is not p.VAR_KEYWORD
    ]
    values = {**REQUIRED, "language_model": models.RNNLM(5, num_layers=1)}
    required = {p.name: values[p.name] for p in arguments if p.default is p.empty}
    config = cls(**required).get_config()
    # A tokenizer's vocabulary is saved as an asset (`save_assets`), not config.
    missing = {p.name for p in arguments} - set(config) - {"vocabulary"}
    assert not missing, sorted(missing)


def test_out_of_range_ids_raise_the_same_error_everywhere(example):
    model, x, y = example
    model.compile()
    before = model.predict(x, verbose=0)
    bad = {k: v.copy() for k, v in x.items()} if isinstance(x, dict) else x.copy()
    column = bad["target"] if isinstance(bad, dict) else bad
    column[0, 0] = 10_000
    expected = r"token id 10000, outside the allowed range \[0, \d+\)"
    with pytest.raises(ValueError, match=expected):  # eager call
        model(bad)
    with pytest.raises(ValueError, match=expected):  # compiled predict step
        model.predict(bad, verbose=0)
    with pytest.raises(ValueError, match=expected):  # compiled train step
        model.fit(bad, y, verbose=0)
    column[0, 0] = -1
    with pytest.raises(ValueError, match="token id -1"):
        model.evaluate(bad, y, verbose=0)
    # The failed steps left the weights untouched.
    np.testing.assert_allclose(model.predict(x, verbose=0), before, atol=1e-6)


FAMILIES = sorted(
    {type(model) for model, _, _ in EXAMPLES.values()} - {models.CarriedState},
    key=lambda cls: cls.__name__,
)
README = (pathlib.Path(__file__).parents[1] / "README.md").read_text("utf-8")


def _words(text):
    return " ".join(text.split())


@pytest.mark.parametrize("cls", FAMILIES, ids=lambda cls: cls.__name__)
def test_one_equation_is_what_the_docstring_and_the_readme_say(cls):
    """`EQUATION` is the one source of what a model computes: the model
    cards and the tour print it, the docstring and the README say it."""
    assert cls.EQUATION and cls.PAPERS, cls.__name__
    docstrings = _words(" ".join(c.__doc__ or "" for c in cls.__mro__))
    for part in cls.EQUATION:
        assert _words(part) in docstrings, (cls.__name__, part)
        assert f"`{_words(part)}`" in _words(README), (cls.__name__, part)
