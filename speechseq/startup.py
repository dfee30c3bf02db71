"""Start TensorFlow without its C++ start-up lines on the user's terminal.

TensorFlow 2.21 prints half a dozen lines while it loads and probes for GPUs (the CUDA
stub, CPU features, `E0000 ... failed call to cuInit`), and TF_CPP_MIN_LOG_LEVEL no
longer hides them all (tensorflow/tensorflow#100442); on a command line they read like
a failure.
"""

from __future__ import annotations

import sys

from speechseq import stderr


def start_tensorflow_quietly() -> None:
    """Import TensorFlow and let it find its devices with its start-up output held back;
    if starting fails, what it printed is shown after all, with the error."""
    failure, printed = None, b""
    with stderr.held_back() as held:
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the device probe prints the cuInit line
        except BaseException as error:  # noqa: BLE001 - raised again below, once stderr is back
            failure = error
            held.seek(0)
            printed = held.read()
    if failure is not None:
        sys.stderr.buffer.write(printed)
        sys.stderr.flush()
        raise failure
