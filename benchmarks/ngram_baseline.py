"""The count-based baseline on PTB: interpolated modified Kneser-Ney n-grams.

Fits `KneserNeyLM` on PTB train and prints the perplexity of valid and test
(every token, `<eos>` included, histories across lines; Mikolov et al. 2011
report 141.2 on test for KN5), the fit and scoring times in seconds and the
peak resident memory of the process. PTB comes from `keras_nlm.datasets`
(set `KERAS_NLM_DATA` to use a local mirror).

    .venv/bin/python benchmarks/ngram_baseline.py --order 5
    .venv/bin/python benchmarks/ngram_baseline.py --order 3 --json
"""

import argparse
import json
import resource
import time

from keras_nlm import datasets
from keras_nlm.baselines import KneserNeyLM


def peak_rss_mb():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, default=5, help="n of the n-grams")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    ptb = datasets.get("ptb")
    splits = {split: ptb.tokens(split) for split in ("train", "validation", "test")}
    rss_before_fit = peak_rss_mb()

    start = time.perf_counter()
    lm = KneserNeyLM(order=args.order).fit(splits["train"])
    fit_s = time.perf_counter() - start
    result = {
        "model": f"KN{args.order} (interpolated modified Kneser-Ney)",
        "order": args.order,
        "vocabulary_size": lm.vocabulary_size,
        "tokens": {split: len(tokens) for split, tokens in splits.items()},
        "fit_s": round(fit_s, 3),
    }
    for split in ("validation", "test"):
        start = time.perf_counter()
        result[f"{split}_perplexity"] = round(lm.perplexity(splits[split]), 2)
        result[f"{split}_score_s"] = round(time.perf_counter() - start, 3)
    result["peak_rss_mb_before_fit"] = round(rss_before_fit, 1)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)

    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['model']} on PTB, |V| = {result['vocabulary_size']}")
    print(f"  fit on {len(splits['train']):,} tokens: {fit_s:.2f} s")
    for split in ("validation", "test"):
        print(
            f"  {split:5} perplexity {result[f'{split}_perplexity']:8.2f}"
            f"   ({len(splits[split]):,} tokens scored in "
            f"{result[f'{split}_score_s']:.2f} s)"
        )
    print(
        f"  peak RSS {result['peak_rss_mb']:.0f} MB "
        f"({result['peak_rss_mb_before_fit']:.0f} MB before fitting)"
    )


if __name__ == "__main__":
    main()
