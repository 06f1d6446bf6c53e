"""Generation speed of `RNNLM` against the same model in native PyTorch:
tokens per second for 1 and 32 prompts, at 16 and 256 generated tokens, on
the current backend (`KERAS_BACKEND`).

The recurrent state is carried from step to step, so the cost of a token must
not grow with the length generated: `per_token_ms` at 256 should be no higher
than at 16. The first call of each shape compiles the generation loop, so each
configuration is run once to warm up, then keras-nlm and native PyTorch
(`torch.nn.LSTM`, greedy, under `torch.no_grad()`) alternate `--repeats` times;
the fastest call of each counts (the calls are short, and slower ones met
other load), and `ratio` is keras tokens/s over native tokens/s.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/generation.py --json
"""

import argparse
import functools
import json
import os
import time

import keras
import numpy as np
import torch

# Run as a script, this folder is on the path.
from training import (
    DEVICE,
    TorchRNNLM,
    on_device,
    peak_rss_mb,
    set_threads,
    synchronized,
)

from keras_nlm import models

PROMPT_LENGTH = 8


def native_generate(model, prompts, generated):
    """Greedy continuation: the prompt in one pass, then one step per token."""
    with torch.no_grad():
        logits, state = model(prompts, None)
        tokens = [logits[:, -1].argmax(-1, keepdim=True)]
        for _ in range(generated - 1):
            logits, state = model(tokens[-1], state)
            tokens.append(logits[:, -1].argmax(-1, keepdim=True))
    return torch.cat([prompts, *tokens], 1)


def seconds(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--vocabulary-size", type=int, default=10_000)
    parser.add_argument("--hidden-dim", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    set_threads(args.threads)
    v, h = args.vocabulary_size, args.hidden_dim
    model = models.RNNLM(v, cell="lstm", num_layers=2, hidden_dim=h, embedding_dim=h)
    native = TorchRNNLM("lstm", v, h).to(DEVICE).eval()
    rng = np.random.default_rng(0)
    runs = []
    for batch in (1, 32):
        prompts = rng.integers(0, v, (batch, PROMPT_LENGTH))
        native_prompts = on_device(prompts)
        for generated in (16, 256):
            keras_run = functools.partial(
                model.generate, prompts.tolist(), PROMPT_LENGTH + generated
            )
            native_run = synchronized(
                functools.partial(native_generate, native, native_prompts, generated)
            )
            keras_run(), native_run()  # warm-up: tracing, building
            keras_times, native_times = [], []
            for _ in range(args.repeats):
                keras_times.append(seconds(keras_run))
                native_times.append(seconds(native_run))
            keras_seconds, native_seconds = min(keras_times), min(native_times)
            runs.append(
                {
                    "prompts": batch,
                    "generated": generated,
                    "keras_tokens_per_s": round(batch * generated / keras_seconds, 1),
                    "native_tokens_per_s": round(batch * generated / native_seconds, 1),
                    "keras_per_token_ms": round(1000 * keras_seconds / generated, 3),
                    "native_per_token_ms": round(1000 * native_seconds / generated, 3),
                    "ratio": round(native_seconds / keras_seconds, 3),
                }
            )
    result = {
        "backend": keras.backend.backend(),
        "model": f"RNNLM lstm 2x{h}, vocabulary {v}",
        "threads": args.threads,
        "runs": runs,
        "peak_rss_mb": round(peak_rss_mb()),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['model']} on {result['backend']}, {args.threads} threads")
    for run in runs:
        print(
            f"  {run['prompts']:>2} prompts, {run['generated']:>3} tokens: "
            f"ratio {run['ratio']:5.2f}, {run['keras_per_token_ms']:.2f} ms per token "
            f"(native {run['native_per_token_ms']:.2f})"
        )


if __name__ == "__main__":
    main()
