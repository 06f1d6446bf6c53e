"""Reading and writing files safely: the small utilities every module that
touches files shares (corpora, presets, checkpoints, tokenizers, publishing).

Reads refuse anything but a regular file (a FIFO or a device would block or
never end); writes go to a partial file, then rename it, so that a reader (or a
kill) never sees half a file.
"""

import hashlib
import json
import os
import stat


def open_regular(path):
    """`path` opened for reading in binary, refusing (`ValueError`, naming it)
    anything but a regular file once links are followed: reading a FIFO or a
    device such as `/dev/zero` would block or never end."""
    try:
        # Non-blocking, so that opening a FIFO returns instead of waiting for
        # a writer; it changes nothing for regular files.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise
    except OSError as error:  # e.g. no permission
        raise ValueError(f"Cannot read {path}: {error.strerror}.") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise ValueError(
            f"Refusing {path}: it is {kind} (links followed); only regular files "
            "are read."
        )
    return os.fdopen(descriptor, "rb")


def sha256_of_file(file):
    """The sha256 of an open binary file, read to its end."""
    digest = hashlib.sha256()
    for block in iter(lambda: file.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_of(path):
    """The sha256 of the regular file at `path` (else `ValueError`)."""
    with open_regular(path) as file:
        return sha256_of_file(file)


def write_text(path, text):
    """Writes `text` (UTF-8) to `path`: write, then rename."""
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(partial, path)


def write_json(path, value):
    write_text(path, json.dumps(value, indent=2, ensure_ascii=False))
