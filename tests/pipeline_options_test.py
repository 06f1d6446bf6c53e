"""TensorFlow pipelines keras-nlm builds run without `tf.data`'s autotuning,
which ran about one `fit` in seven at half speed on 2 cores; a user's own
`tf.data.Dataset` keeps its options."""

import keras
import numpy as np
import pytest
from keras.src.trainers.data_adapters import get_data_adapter

from keras_nlm.validation import CheckedData

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.data's options"
)


def _autotune(adapter, check=None):
    return CheckedData(adapter, check).get_tf_dataset().options().autotune.enabled


def test_keras_built_pipelines_run_without_autotuning():
    x, y = np.zeros((8, 3), "int32"), np.zeros((8,), "int32")
    assert _autotune(get_data_adapter(x, y, batch_size=4)) is False

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return x[:4], y[:4]

    assert _autotune(get_data_adapter(Batches()), lambda x, y: None) is False


def test_a_users_dataset_keeps_its_options():
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((np.zeros((8, 3)), np.zeros(8)))
    assert _autotune(get_data_adapter(dataset.batch(4))) is not False
