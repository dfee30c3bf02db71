"""`log.csv`: one row per epoch of a run, however often it was interrupted and resumed."""

from __future__ import annotations

import logging
from pathlib import Path

import keras

from speechseq.files import write_text

log = logging.getLogger(__name__)


class EpochLog(keras.callbacks.CSVLogger):
    """Keras' CSVLogger (appending across resumes) that first forgets the rows of the
    epochs a resumed run is about to train again.

    A run killed after an epoch's row was written but before its backup trains that
    epoch again on resume; plain appending would log it twice. It must run before
    `BackupAndRestore` at each epoch's end, so that no backed-up epoch lacks its row.
    """

    def on_train_begin(self, logs=None):
        self._resumed_at = None
        super().on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None):
        if self._resumed_at is None:  # the first epoch of this fit: a fresh run or a resume
            self._resumed_at = epoch
            if epoch:
                log.info("%s: resuming at epoch %d", Path(self.filename).parent, epoch)
            self._forget_from(epoch)

    def _forget_from(self, epoch: int) -> None:
        path = Path(self.filename)
        if not path.exists():
            return
        header, *rows = path.read_text().splitlines(keepends=True) or [""]
        kept = [row for row in rows if row.strip() and int(row.split(self.sep, 1)[0]) < epoch]
        if len(kept) == len(rows):
            return
        self.csv_file.close()
        write_text(path, header + "".join(kept))
        self.csv_file = open(path, "a", newline="")
        self.writer, self.keys = None, None
        self.append_header = not header
