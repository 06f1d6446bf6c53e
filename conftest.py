import os
import pathlib

import keras
import numpy as np
import pytest

# Tests read the corpora from the shared mirror unless told otherwise.
os.environ.setdefault(
    "KERAS_NLM_DATA", str(pathlib.Path(__file__).parent.parent / "shared" / "data")
)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
