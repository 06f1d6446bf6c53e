import numpy as np

from keras_nlm.models import RNNLM
from keras_nlm.training.publish import (
    _backends,
    _training_time,
    store_weights_as_float16,
)


def test_float16_weights_load_as_the_rounded_float32_weights(tmp_path):
    model = RNNLM(500, num_layers=2, hidden_dim=16)
    model(np.array([[1, 2]]))
    path = tmp_path / "model.weights.h5"
    model.save_weights(path)
    size = path.stat().st_size
    store_weights_as_float16(path)
    assert path.stat().st_size < 0.6 * size
    loaded = RNNLM(500, num_layers=2, hidden_dim=16)
    loaded(np.array([[1, 2]]))
    loaded.load_weights(path)
    for saved, restored in zip(model.get_weights(), loaded.get_weights()):
        assert restored.dtype == np.float32
        np.testing.assert_array_equal(saved.astype(np.float16), restored)


def test_the_card_names_each_backend_a_resumed_run_trained_under():
    epochs = [(1, "jax"), (2, "jax"), (3, "torch")]
    history = [{"epoch": epoch, "backend": backend} for epoch, backend in epochs]
    assert _backends({"backend": "torch", "history": history}) == (
        "the jax backend (epochs 1-2), then the torch backend (epoch 3)"
    )
    # Epochs logged before backends were: the saving backend's.
    older = [{"epoch": 1}, {"epoch": 2, "backend": "jax"}]
    assert _backends({"backend": "jax", "history": older}) == "the jax backend"
    assert _backends({"backend": "tensorflow"}) == "the tensorflow backend"


def test_the_card_gives_wall_time_and_each_backends_median_step():
    history = [
        {"epoch": 1, "seconds": 6000.0, "backend": "jax"},  # logged before steps were
        {"epoch": 2, "seconds": 3000.0, "step_seconds": 1.1, "backend": "jax"},
        {"epoch": 3, "seconds": 1200.0, "step_seconds": 0.8, "backend": "torch"},
        {"epoch": 4, "seconds": 9000.0, "step_seconds": 0.9, "backend": "torch"},
        {"epoch": 5, "seconds": 1200.0, "step_seconds": 0.7, "backend": "torch"},
    ]
    metadata = {"backend": "torch", "history": history, "recipe": {"batch_size": 20}}
    assert _training_time(metadata) == (
        " in 5.7 hours of wall time; a training step of batch 20 took a median "
        "1.1 s under jax and 0.8 s under torch."
    )
    short = {"backend": "jax", "history": [{"epoch": 1, "seconds": 150.0}]}
    assert _training_time(short) == " in 2 minutes of wall time."
    assert _training_time({"backend": "jax"}) == "."
