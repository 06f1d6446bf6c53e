"""The `keras-nlm` command line.

    keras-nlm data NAME [--json]                   a corpus's statistics per split
    keras-nlm ngram --dataset NAME [--order N] [--split test] [--json]
                                                   the Kneser-Ney baseline's perplexity

`--json` prints one JSON object. Errors exit non-zero with one clear line.
"""

import argparse
import json
import sys
import time


def _data(args):
    from keras_nlm import datasets

    corpus = datasets.get(args.name)
    stats = corpus.statistics(args.data_dir)
    if args.json:
        return {"dataset": corpus.name, "splits": stats}
    print(f"{corpus.name}: {corpus.description}")
    for split, values in stats.items():
        print(f"  {split:<10} " + ", ".join(f"{k} {v:,}" for k, v in values.items()))
    return None


def _ngram(args):
    from keras_nlm import datasets
    from keras_nlm.baselines import KneserNeyLM
    from keras_nlm.datasets.corpora import WordCorpus

    corpus = datasets.get(args.dataset)
    if not isinstance(corpus, WordCorpus):
        word_corpora = [
            n for n, c in datasets.CORPORA.items() if isinstance(c, WordCorpus)
        ]
        raise ValueError(
            f"--dataset must be a word-level corpus ({', '.join(word_corpora)}); "
            f"got {args.dataset!r}."
        )
    start = time.perf_counter()
    model = KneserNeyLM(order=args.order).fit(corpus.tokens("train", args.data_dir))
    fitted = time.perf_counter()
    perplexity = model.perplexity(corpus.tokens(args.split, args.data_dir))
    result = {
        "dataset": corpus.name,
        "split": args.split,
        "order": args.order,
        "perplexity": perplexity,
        "fit_seconds": round(fitted - start, 2),
        "score_seconds": round(time.perf_counter() - fitted, 2),
    }
    if args.json:
        return result
    print(
        f"Kneser-Ney {args.order}-gram on {corpus.name} {args.split}: "
        f"perplexity {perplexity:.1f} (fit {result['fit_seconds']} s, "
        f"scoring {result['score_seconds']} s)"
    )
    return None


def parser():
    parser = argparse.ArgumentParser(
        prog="keras-nlm", description="Classic neural language models for Keras 3."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="a corpus's statistics per split")
    data.add_argument("name")
    data.set_defaults(run=_data)
    ngram = commands.add_parser("ngram", help="the Kneser-Ney n-gram baseline")
    ngram.add_argument("--dataset", required=True)
    ngram.add_argument("--order", type=int, default=5)
    ngram.add_argument("--split", default="test")
    ngram.set_defaults(run=_ngram)
    for command in (data, ngram):
        command.add_argument(
            "--json", action="store_true", help="print one JSON object"
        )
        command.add_argument(
            "--data-dir",
            help="a local mirror of the corpora (default: $KERAS_NLM_DATA)",
        )
    return parser


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        result = args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"keras-nlm: error: {error}", file=sys.stderr)
        return 2
    if result is not None:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
