"""A run's `backup/` folder: Keras' BackupAndRestore state, and the one cut-off state it
cannot resume from."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import h5py
import keras

log = logging.getLogger(__name__)

WEIGHTS = "latest.weights.h5"  # what BackupAndRestore names its files
PREVIOUS = WEIGHTS + ".bkp"


def backup_and_restore(folder: Path) -> keras.callbacks.BackupAndRestore:
    """Keras' callback, which keeps the previous backup beside the latest
    (`double_checkpoint`) and falls back to it when the latest cannot be read."""
    _drop_a_cut_off_first_backup(folder)
    return keras.callbacks.BackupAndRestore(str(folder), double_checkpoint=True)


def _drop_a_cut_off_first_backup(folder: Path) -> None:
    """A run killed while it wrote its first backup has no previous one to fall back to,
    and Keras then refuses to start ("Unable to synchronously open file (truncated
    file ...)"). Such a backup holds no finished epoch: it goes, and the run starts again
    from its first epoch."""
    weights = folder / WEIGHTS
    if not weights.exists() or (folder / PREVIOUS).exists() or _readable(weights):
        return
    log.warning("%s: the first backup was cut off by an interruption; training starts again from epoch 1", folder)
    shutil.rmtree(folder)


def _readable(weights: Path) -> bool:
    try:
        with h5py.File(weights, "r") as file:
            file.visititems(lambda _, item: item[()] if isinstance(item, h5py.Dataset) else None)
        return True
    except (OSError, RuntimeError, KeyError):
        return False


class _RestoreOnly(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that resumes from a backup but never writes or removes one."""

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


def restore_only(folder: Path) -> keras.callbacks.BackupAndRestore:
    """A multi-worker run's other workers: they resume from the chief's backup in `folder`
    (one shared run directory) and leave writing it to the chief. Their model's weights
    equal the chief's after every step, so they have nothing of their own to keep."""
    return _RestoreOnly(str(folder), double_checkpoint=True)
