import json
import os
import shutil
import time

import keras
import numpy as np

_POINTER = "latest.json"


def _folder(epoch):
    return f"epoch-{epoch:04d}"


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the whole training state after every epoch; `fit` resumes from it.

    Like `keras.callbacks.BackupAndRestore` (its `_initial_epoch` hook is how
    `fit` learns where to resume), with two differences that make a resumed
    run end exactly where an uninterrupted one would, and a kill harmless:

    - the state includes the non-trainable variables that `save_weights`
      leaves out, such as the dropout layers' random-generator states;
    - each epoch is written to a new folder, and only then does `latest.json`
      point at it (write, then rename), so a kill during a save leaves the
      previous checkpoint whole.

    The per-epoch logs (and each epoch's seconds) are kept with it, so
    `history` covers the whole run. The weights of the epoch with the best
    `monitor` value so far are kept too (`weights_of(best_epoch())`), for
    early stopping that survives a resume.

    Args:
        directory: where the checkpoints go (one folder per run).
        monitor: the logged value whose lowest epoch is kept.
    """

    def __init__(self, directory, monitor="val_loss"):
        super().__init__()
        self.directory = str(directory)
        self.monitor = monitor
        self.history = []

    @staticmethod
    def latest(directory):
        """`{"epoch": k, "folder": ..., "history": [...]}` of the last
        checkpoint in `directory`, or `None`."""
        path = os.path.join(directory, _POINTER)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as file:
            return json.load(file)

    def best_epoch(self):
        """The epoch with the lowest `monitor` so far, or `None`."""
        logged = [h for h in self.history if self.monitor in h]
        if not logged:
            return None
        return min(logged, key=lambda h: h[self.monitor])["epoch"]

    def weights_of(self, epoch):
        """The weights file of `epoch`, the latest or the best one."""
        path = epoch and os.path.join(
            self.directory, _folder(epoch), "model.weights.h5"
        )
        if not path or not os.path.exists(path):
            raise ValueError(
                f"No weights of epoch {epoch} in {self.directory}: only the "
                "latest and the best epoch are kept."
            )
        return path

    def on_train_begin(self, logs=None):
        latest = self.latest(self.directory)
        if latest is None:
            return
        folder = os.path.join(self.directory, latest["folder"])
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(folder, "model.weights.h5"))
        with np.load(os.path.join(folder, "non_trainable.npz")) as saved:
            for i, variable in enumerate(self.model.non_trainable_variables):
                variable.assign(saved[f"arr_{i}"])
        self.history = latest["history"]
        self.model._initial_epoch = latest["epoch"]

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        # Training time survives resumes in the history (model cards sum it).
        seconds = round(time.perf_counter() - self._epoch_started, 1)
        self.history.append({"epoch": epoch + 1, **logs, "seconds": seconds})
        name = _folder(epoch + 1)
        folder = os.path.join(self.directory, name)
        partial = f"{folder}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        self.model.save_weights(os.path.join(partial, "model.weights.h5"))
        np.savez(
            os.path.join(partial, "non_trainable.npz"),
            *[
                keras.ops.convert_to_numpy(v)
                for v in self.model.non_trainable_variables
            ],
        )
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
        pointer = os.path.join(self.directory, _POINTER)
        with open(f"{pointer}.partial", "w", encoding="utf-8") as file:
            json.dump(
                {"epoch": epoch + 1, "folder": name, "history": self.history}, file
            )
        os.replace(f"{pointer}.partial", pointer)
        keep = {name, _folder(self.best_epoch() or epoch + 1)}
        for old in os.listdir(self.directory):
            if old.startswith("epoch-") and old not in keep:
                shutil.rmtree(os.path.join(self.directory, old), ignore_errors=True)

    def on_train_end(self, logs=None):
        self.model._initial_epoch = None
