"""What C libraries print on their own stderr, kept off the user's terminal.

TensorFlow's start-up lines and libmpg123's "Note: Illegal Audio-MPEG-Header" notes are
written to file descriptor 2 by C code, so Python's `sys.stderr` cannot catch them: the
descriptor itself points at a temporary file while such code runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

# One holder at a time: two threads swapping descriptor 2 could each restore the other's.
_HOLDING = threading.RLock()


@contextlib.contextmanager
def held_back() -> Iterator[tempfile.SpooledTemporaryFile]:
    """Point descriptor 2 at a temporary file for the block; yields that file (rewind and
    read it to show what was held back)."""
    with _HOLDING, tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield held
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _writes_to_descriptor_2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # pytest's capture, a StringIO: not the descriptor
        return False


@contextlib.contextmanager
def native_output_held_back() -> Iterator[tempfile.SpooledTemporaryFile]:
    """For a whole command: descriptor 2 points at a temporary file, so what C and C++
    code prints at any time (TensorFlow logs a oneDNN note at its first model call on
    some CPUs) stays off the terminal, while Python's `sys.stderr` (our messages, tqdm)
    keeps writing to where descriptor 2 pointed before. Yields the file.

    Unlike `held_back` it takes no lock (a command's worker threads may hold back MP3
    notes inside it); it is meant to wrap a whole command, from one thread."""
    with tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        python_stderr, saved = sys.stderr, os.dup(2)
        terminal = None
        if _writes_to_descriptor_2(python_stderr):
            terminal = open(os.dup(saved), "w", encoding=python_stderr.encoding, errors="backslashreplace",
                            buffering=1)
            sys.stderr = terminal
        os.dup2(held.fileno(), 2)
        try:
            yield held
        finally:
            sys.stderr.flush()
            sys.stderr = python_stderr
            if terminal is not None:
                terminal.close()
            os.dup2(saved, 2)
            os.close(saved)
