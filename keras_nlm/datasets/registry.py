"""Where each corpus file comes from, its sha256, and how to get it verified.

A file is read from, in order: a local mirror laid out like the project's
`shared/data` folder (`data_dir=` or the `KERAS_NLM_DATA` environment
variable), else the Keras cache (`~/.keras/datasets/keras_nlm/...`), else
downloaded there from its canonical origin with `keras.utils.get_file`. Every
file's size and sha256 are checked before use; a mismatch is refused, never
read, and so is anything but a regular file (a FIFO or a link to a device
would never end).
"""

import dataclasses
import gzip
import os
import pathlib
import shutil
import zipfile

import keras

from keras_nlm.files import open_regular, sha256_of_file

MIRROR_VARIABLE = "KERAS_NLM_DATA"
CACHE_SUBDIR = "keras_nlm"


@dataclasses.dataclass(frozen=True)
class CorpusFile:
    """One verified file of a corpus.

    Args:
        path: the file's path inside the corpus folder, e.g. `"ptb/ptb.train.txt"`.
        sha256: the sha256 of the file's bytes.
        origin: the URL it is downloaded from; `None` for one's own file,
            whose `path` is then where it is (see `datasets.from_files`).
        member: when `origin` is a zip archive, the file's path inside it;
            when `"gunzip"`, `origin` is the gzip-compressed file.
        size: the file's size in bytes, checked before it is read.
    """

    path: str
    sha256: str
    origin: str
    member: str = None
    size: int = None


def verify(path, expected_sha256, expected_size=None):
    """Raises `ValueError` unless the file at `path` is a regular file of
    `expected_size` bytes (when given) with `expected_sha256`."""
    with open_regular(path) as file:
        size = os.fstat(file.fileno()).st_size
        if expected_size is not None and size != expected_size:
            # Refused before reading: a wrong size is enough, and a huge file
            # would take long to hash.
            raise ValueError(
                f"Refusing {path}: it has {size:,} bytes, expected "
                f"{expected_size:,} (sha256 {expected_sha256}). The file is "
                "truncated or a different version; delete it (or fix the mirror) "
                "and load again."
            )
        actual = sha256_of_file(file)
    if actual != expected_sha256:
        raise ValueError(
            f"Refusing {path}: its sha256 is {actual}, expected "
            f"{expected_sha256}. The file is corrupted, truncated or a different "
            "version; delete it (or fix the mirror) and load again."
        )
    return path


def _mirror(data_dir):
    data_dir = data_dir or os.environ.get(MIRROR_VARIABLE)
    return pathlib.Path(data_dir).expanduser() if data_dir else None


def _cache_root():
    home = os.environ.get("KERAS_HOME", "~/.keras")
    return pathlib.Path(home).expanduser() / "datasets" / CACHE_SUBDIR


def _download(file):
    """Fetches `file` from its origin with `keras.utils.get_file` (progress
    shown) and unpacks it; returns the path of the unverified result."""
    name = pathlib.PurePosixPath(file.origin).name
    corpus = pathlib.PurePosixPath(file.path).parts[0]
    downloaded = keras.utils.get_file(
        fname=f"{corpus}-{name}",
        origin=file.origin,
        cache_dir=str(_cache_root()),
        cache_subdir="downloads",
    )
    unpacked = _cache_root() / (file.path + ".partial")
    unpacked.parent.mkdir(parents=True, exist_ok=True)
    if file.member == "gunzip":
        with gzip.open(downloaded) as source, open(unpacked, "wb") as sink:
            shutil.copyfileobj(source, sink)
    elif file.member:
        with zipfile.ZipFile(downloaded) as archive, open(unpacked, "wb") as sink:
            shutil.copyfileobj(archive.open(file.member), sink)
    else:
        shutil.copyfile(downloaded, unpacked)
    return unpacked


def _own(file):
    """One's own file, checked to be the one the corpus was made from."""
    try:
        return verify(file.path, file.sha256, file.size)
    except FileNotFoundError:
        raise FileNotFoundError(f"{file.path} does not exist (any more).") from None
    except ValueError as error:
        if "Refusing" not in str(error) or "regular file" in str(error):
            raise
        raise ValueError(
            f"{file.path} changed since the corpus was made from it (a run's "
            f"recipe records its sha256 {file.sha256} and its size): {error}"
        ) from None


def fetch(file, data_dir=None):
    """Returns the local path of a verified copy of `file` (a `CorpusFile`)."""
    if file.origin is None:
        return _own(file)
    mirror = _mirror(data_dir)
    if mirror is not None:
        if mirror.exists() and not mirror.is_dir():
            raise ValueError(
                f"The data mirror {mirror} (set by `data_dir` or "
                f"{MIRROR_VARIABLE}) is not a folder."
            )
        path = mirror / file.path
        if not path.exists():
            raise FileNotFoundError(
                f"{file.path} is not in the data mirror {mirror} (set by "
                f"`data_dir` or {MIRROR_VARIABLE}). Put the file there, laid "
                f"out like the project's shared/data folder, or unset "
                f"{MIRROR_VARIABLE} to download it from {file.origin}."
            )
        return verify(path, file.sha256, file.size)
    path = _cache_root() / file.path
    if not path.exists():
        try:
            unpacked = _download(file)
        except Exception as error:
            raise FileNotFoundError(
                f"{file.path} is not in the Keras cache ({path}) and could not be "
                f"downloaded from {file.origin} ({error}). Download it there "
                f"yourself, or set {MIRROR_VARIABLE} to a folder laid out like "
                "the project's shared/data folder."
            ) from None
        verify(unpacked, file.sha256, file.size)
        unpacked.replace(path)  # only a verified file gets the real name
    return verify(path, file.sha256, file.size)
