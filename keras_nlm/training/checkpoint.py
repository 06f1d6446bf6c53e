import json
import math
import os
import shutil
import time

import keras
import numpy as np

from keras_nlm import presets
from keras_nlm.files import open_regular, sha256_of

_POINTER = "latest.json"
_WEIGHTS = "model.weights.h5"
_NON_TRAINABLE = "non_trainable.npz"


def _folder(epoch):
    return f"epoch-{epoch:04d}"


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def _verify_folder(folder):
    """Raises `ValueError`, naming the file, unless the checkpoint `folder` is
    whole: its files match the sha256 that were written with them."""
    manifest = os.path.join(folder, presets.MANIFEST_FILE)
    if os.path.islink(folder):
        raise ValueError(
            f"Checkpoint folder {folder} is a symbolic link: a run's "
            "checkpoints are its own folders. Refusing to resume from it."
        )
    if not os.path.isdir(folder):
        raise ValueError(f"Checkpoint folder {folder} is missing.")
    files = presets.regular_files(folder)  # refuses links, FIFOs, devices
    if presets.MANIFEST_FILE not in files:
        # Every checkpoint is saved with one: without it, nothing says the
        # weights are the ones that were saved (a zeroed file would resume).
        raise ValueError(
            f"Checkpoint manifest {manifest} is missing, so the files beside it "
            "cannot be verified. Refusing to resume from it: train from an "
            "earlier checkpoint or from the start."
        )
    expected = presets.read_manifest(manifest)
    for name in (_WEIGHTS, _NON_TRAINABLE):
        path = os.path.join(folder, name)
        if name not in files:
            raise ValueError(f"Checkpoint file {path} is missing.")
        if sha256_of(path) != expected.get(name):
            raise ValueError(
                f"Checkpoint file {path} does not match its sha256 in {manifest}: "
                "it was changed or truncated after it was saved."
            )


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

    The per-epoch logs (with each epoch's wall seconds, median training step
    seconds and backend) are kept with it, so `history` covers the whole run.
    The weights of the epoch with the best `monitor` value so far are kept
    too (`weights_of(best_epoch())`), for early stopping that survives a
    resume.

    Each folder holds a `SHA256SUMS` of its files, so a checkpoint that was
    changed or truncated afterwards is refused, naming the file, rather than
    resumed from. A loss that becomes NaN or infinite stops training at once
    with `TrainingDiverged`, naming the epoch and batch, before the epoch is
    saved: the last good checkpoint is kept.

    Args:
        directory: where the checkpoints go (one folder per run).
        monitor: the logged value whose lowest epoch is kept.
        writes: False in the processes of a data-parallel run that do not
            write its files (PyTorch's but the first): they resume from the
            checkpoint and keep the history, and write nothing.
    """

    # Checking the loss needs no ordering with the training steps.
    async_safe = True

    def __init__(self, directory, monitor="val_loss", writes=True):
        super().__init__()
        self.directory = str(directory)
        self.monitor = monitor
        self.writes = writes
        self.history = []
        self._epoch = 0

    @staticmethod
    def latest(directory):
        """`{"epoch": k, "folder": ..., "history": [...]}` of the last
        checkpoint in `directory`, or `None`."""
        path = os.path.join(directory, _POINTER)
        if not os.path.exists(path):
            return None
        try:
            # A FIFO or a device there would block or never end.
            with open_regular(path) as file:
                latest = json.load(file)
            epoch, folder, history = (
                latest["epoch"],
                latest["folder"],
                latest["history"],
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"Checkpoint pointer {path} is unreadable ({error!r}); it is "
                "written whole (write, then rename), so something else changed it."
            ) from None
        # The folder is always the epoch's own, inside `directory`: any other
        # (`../elsewhere`, another epoch's) would resume from weights this run
        # did not save, or at the wrong epoch.
        problem = None
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            problem = f"'epoch' must be a positive integer; got {epoch!r}"
        elif folder != _folder(epoch):
            problem = (
                f"'folder' must be {_folder(epoch)!r}, epoch {epoch}'s folder in "
                f"{directory}; got {folder!r}"
            )
        elif not isinstance(history, list) or not all(
            isinstance(logs, dict) for logs in history
        ):
            problem = "'history' must be a list of per-epoch logs (JSON objects)"
        if problem:
            raise ValueError(
                f"Checkpoint pointer {path} is wrong: {problem}. Refusing to "
                "resume from it."
            )
        return latest

    @classmethod
    def verify(cls, directory):
        """The `latest` checkpoint in `directory` (or `None`), once its files
        are known to be whole; raises `ValueError` naming a bad file."""
        latest = cls.latest(directory)
        if latest is not None:
            _verify_folder(os.path.join(directory, latest["folder"]))
        return latest

    def best_epoch(self):
        """The epoch with the lowest `monitor` so far, or `None`."""
        logged = [h for h in self.history if self.monitor in h]
        if not logged:
            return None
        return min(logged, key=lambda h: h[self.monitor])["epoch"]

    def weights_of(self, epoch):
        """The weights file of `epoch`, the latest or the best one."""
        folder = epoch and os.path.join(self.directory, _folder(epoch))
        if not folder or not os.path.exists(folder):
            raise ValueError(
                f"No weights of epoch {epoch} in {self.directory}: only the "
                "latest and the best epoch are kept."
            )
        _verify_folder(folder)
        return os.path.join(folder, _WEIGHTS)

    def on_train_begin(self, logs=None):
        latest = self.verify(self.directory)
        if latest is None:
            return
        folder = os.path.join(self.directory, latest["folder"])
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        path = os.path.join(folder, _WEIGHTS)
        try:
            self.model.load_weights(path)
            path = os.path.join(folder, _NON_TRAINABLE)
            # Plain arrays: never unpickle what a file holds.
            with np.load(path, allow_pickle=False) as saved:
                variables = self.model.non_trainable_variables
                if len(saved.files) != len(variables):
                    raise ValueError(
                        f"{len(saved.files)} arrays for {len(variables)} variables"
                    )
                for i, variable in enumerate(variables):
                    variable.assign(saved[f"arr_{i}"])
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(
                f"Cannot resume from checkpoint file {path}: it does not fit this "
                f"model ({error})."
            ) from None
        self.history = latest["history"]
        self.model._initial_epoch = latest["epoch"]

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_started = time.perf_counter()
        self._step_ends = []

    def on_train_batch_end(self, batch, logs=None):
        # Called once the step's logs are computed, in a thread pool when
        # callbacks run asynchronously (JAX dispatches steps ahead of their
        # computation, so the batch begins are spaced by dispatch, not work).
        self._step_ends.append(time.perf_counter())
        self._check_loss(logs, f"batch {batch + 1} of epoch {self._epoch + 1}")

    def _check_loss(self, logs, where):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        latest = self.latest(self.directory)
        kept = (
            f"the last good checkpoint, epoch {latest['epoch']} in "
            f"{os.path.join(self.directory, latest['folder'])}, is kept"
            if latest
            else "no epoch had ended, so there is no checkpoint"
        )
        raise TrainingDiverged(
            f"Training diverged: the loss is {float(loss)} at {where}. Stopped "
            f"without saving this epoch; {kept}. Lower the learning rate or clip "
            "the gradients and train again."
        )

    def on_epoch_end(self, epoch, logs=None):
        self._check_loss(logs, f"the end of epoch {epoch + 1}")
        logs = {k: float(v) for k, v in (logs or {}).items()}
        # Training time and backend survive resumes in the history (model
        # cards sum the one and name the other; a run may resume elsewhere).
        # A pause (another job ran) stretches an epoch's wall seconds, not
        # its median step.
        timing = {"seconds": round(time.perf_counter() - self._epoch_started, 1)}
        if len(self._step_ends) > 1:
            median = float(np.median(np.diff(sorted(self._step_ends))))
            timing["step_seconds"] = round(median, 4)
        self.history.append(
            {"epoch": epoch + 1, **logs, **timing, "backend": keras.backend.backend()}
        )
        if not self.writes:
            return
        name = _folder(epoch + 1)
        folder = os.path.join(self.directory, name)
        partial = f"{folder}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        self.model.save_weights(os.path.join(partial, _WEIGHTS))
        np.savez(
            os.path.join(partial, _NON_TRAINABLE),
            *[
                keras.ops.convert_to_numpy(v)
                for v in self.model.non_trainable_variables
            ],
        )
        presets.write_manifest(partial)
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
