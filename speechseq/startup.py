"""Start TensorFlow without its C++ start-up lines on the user's terminal.

TensorFlow 2.21 prints half a dozen lines while it loads and probes for GPUs (the CUDA
stub, CPU features, `E0000 ... failed call to cuInit`), and TF_CPP_MIN_LOG_LEVEL no
longer hides them all (tensorflow/tensorflow#100442); on a command line they read like
a failure. Some CPUs add a oneDNN note at the first model call, so the whole command
runs with native output held back.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from speechseq import stderr
from speechseq.errors import SpeechseqError


@contextlib.contextmanager
def quiet_tensorflow() -> Iterator[None]:
    """For a command's whole run: import TensorFlow, let it find its devices, and run the
    command with native output held back (`stderr.native_output_held_back`). If the block
    fails with anything but a user error (`SpeechseqError`, `OSError`: one line, no
    traceback), what the C++ side printed is shown after all, before the traceback."""
    failure = None
    with stderr.native_output_held_back() as held:
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the device probe prints the cuInit line
            yield
        except (SpeechseqError, OSError):
            raise
        except BaseException as error:  # noqa: BLE001 - raised again below, once stderr is back
            failure = error
            held.seek(0)
            printed = held.read()
    if failure is not None:
        sys.stderr.write(printed.decode(errors="replace"))
        sys.stderr.flush()
        raise failure
