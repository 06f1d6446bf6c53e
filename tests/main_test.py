"""The main job, `python -m keras_nlm` (CI runs it whole; here its zoo lines
for one language model, in this process)."""

from keras_nlm import __main__ as main_job


def test_a_language_model_shows_its_greedy_line_and_a_seeded_sample(capsys):
    main_job.zoo(["char_lstm_shakespeare"])
    first = capsys.readouterr().out
    lines = [line.strip() for line in first.splitlines()]
    assert f"top-p sampling with p={main_job.TOP_P}, seed={main_job.SEED}" in lines[0]
    greedy = [line.removeprefix("greedy: ") for line in lines if "greedy: " in line]
    sampled = [line.removeprefix("top-p:  ") for line in lines if "top-p:  " in line]
    assert len(greedy) == len(sampled) == 1
    # Each a repr: its quote, then the prompt.
    assert greedy[0][1:].startswith("ROMEO:") and sampled[0][1:].startswith("ROMEO:")
    assert sampled != greedy
    # The same seed, the same sample: on each run, whatever ran before.
    main_job.zoo(["char_lstm_shakespeare"])
    assert capsys.readouterr().out == first
