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


def skip_graph_optimization() -> None:
    """For a command that loads an export and runs it on a few files: no Grappler pass
    over the graph before its first call. Measured on the digits export (2 cores): the
    first call takes 0.39 s instead of 0.68 s, and later calls on 158 s of audio take
    as long either way (0.15-0.17 s), so one short clip is transcribed 0.3 s sooner."""
    import tensorflow as tf

    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
