"""Generation speed of `RNNLM`: tokens per second for 1 and 32 prompts, at 16
and 256 generated tokens, on the current backend (`KERAS_BACKEND`).

The recurrent state is carried from step to step, so the cost of a token must
not grow with the length generated: `per_token_ms` at 256 should be no higher
than at 16. The first call of each shape compiles the generation loop, so each
configuration is run once to warm up, then timed `--repeats` times (the
fastest counts: the calls are short, and slower ones met other load).

    KERAS_BACKEND=jax .venv/bin/python benchmarks/generation.py --json
"""

import argparse
import json
import resource
import time

import keras
import numpy as np

from keras_nlm import models


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--vocabulary-size", type=int, default=10_000)
    parser.add_argument("--hidden-dim", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    v, h = args.vocabulary_size, args.hidden_dim
    model = models.RNNLM(v, cell="lstm", num_layers=2, hidden_dim=h, embedding_dim=h)
    rng = np.random.default_rng(0)
    runs = []
    for batch in (1, 32):
        prompts = rng.integers(0, v, (batch, 8)).tolist()
        for generated in (16, 256):
            max_length = 8 + generated
            model.generate(prompts, max_length)  # warm-up: tracing, building
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                model.generate(prompts, max_length)
                times.append(time.perf_counter() - start)
            seconds = min(times)
            runs.append(
                {
                    "prompts": batch,
                    "generated": generated,
                    "seconds": round(seconds, 3),
                    "tokens_per_s": round(batch * generated / seconds, 1),
                    "per_token_ms": round(1000 * seconds / generated, 3),
                }
            )
    result = {
        "backend": keras.backend.backend(),
        "model": f"RNNLM lstm 2x{h}, vocabulary {v}",
        "runs": runs,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['model']} on {result['backend']}")
    for run in runs:
        print(
            f"  {run['prompts']:>2} prompts, {run['generated']:>3} tokens: "
            f"{run['tokens_per_s']:>9.1f} tokens/s, {run['per_token_ms']:.2f} ms per token"
        )


if __name__ == "__main__":
    main()
