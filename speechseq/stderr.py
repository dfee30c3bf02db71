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
