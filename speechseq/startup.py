"""Start TensorFlow without its C++ start-up lines on the user's terminal.

TensorFlow 2.21 prints half a dozen lines while it loads and probes for GPUs (the CUDA
stub, CPU features, `E0000 ... failed call to cuInit`), and TF_CPP_MIN_LOG_LEVEL no
longer hides them all (tensorflow/tensorflow#100442); on a command line they read like
a failure. They are written to file descriptor 2 by C++ code, so Python's `sys.stderr`
cannot catch them: the descriptor itself points elsewhere while TensorFlow starts.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def _descriptor_2_to(file) -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def start_tensorflow_quietly() -> None:
    """Import TensorFlow and let it find its devices with its start-up output held back;
    if starting fails, what it printed is shown after all, with the error."""
    with tempfile.TemporaryFile() as held:
        try:
            with _descriptor_2_to(held):
                import tensorflow as tf

                tf.config.list_physical_devices()  # the device probe prints the cuInit line
        except BaseException:
            held.seek(0)
            sys.stderr.buffer.write(held.read())
            sys.stderr.flush()
            raise
