"""Every zoo preset, on the current backend: its manifest verifies, it loads
offline, and a small evaluation and greedy decoding reproduce what was measured
when it was published (`keras-nlm publish`, possibly under another backend)."""

import pytest

from keras_nlm import evaluation, presets
from keras_nlm.presets import TARGETS, headline
from keras_nlm.training.publish import BACKENDS, CHECK_LIMIT, equation

ZOO = presets.zoo_presets()


def test_the_zoo_holds_exactly_the_issues_presets():
    assert sorted(ZOO) == sorted(TARGETS)


@pytest.mark.parametrize("name", ZOO)
def test_published_numbers_meet_the_target_on_every_backend(name):
    metadata = presets.load_metadata(name)
    split, metric, comparison, bound = TARGETS[name]
    values = [metadata["evaluations"][b][split][metric] for b in BACKENDS]
    for value in values:
        assert value <= bound if comparison == "<=" else value >= bound
    assert max(values) / min(values) - 1 < 1e-3, values
    assert headline(name, metadata)[2] == values[0]
    card = (presets.ZOO / name / presets.CARD_FILE).read_text(encoding="utf-8")
    assert f"keras-nlm train {metadata['recipe']['name']}" in card
    assert equation(metadata["recipe"]["model"]["class"]) in card
    if metric == "bleu":  # the card says how BLEU was computed
        assert metadata["metrics"][split]["signature"] in card


@pytest.mark.parametrize("name", ZOO)
def test_loads_and_reproduces_its_published_check(name):
    model = presets.load_preset(name)
    metadata = presets.load_metadata(name)
    recipe, check = metadata["recipe"], metadata["check"]
    result = evaluation.evaluate(
        model, recipe["dataset"], "test", recipe["languages"], limit=CHECK_LIMIT
    )
    metric = "bleu" if recipe["languages"] else "perplexity"
    assert result[metric] == pytest.approx(check[metric], rel=1e-3)

    greedy = metadata["samples"][0]
    if recipe["languages"]:
        assert model.translate(greedy["source"]) == greedy["greedy"]
    else:
        assert greedy["sampler"] == "greedy"
        assert model.generate(greedy["prompt"], max_length=40) == greedy["text"]
