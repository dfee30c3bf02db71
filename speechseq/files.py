"""Atomic file writes: a file appears whole or not at all, never half-written.

Each write goes to a temporary file in the destination's folder (same filesystem),
is flushed to disk, then renamed over the destination in one step.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`.

    The temporary name ends with `path`'s own suffix, for writers that check it
    (Keras saves only to names ending in `.keras`).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    except OSError as error:
        raise _cannot_write(path, error) from None
    os.close(handle)
    try:
        yield Path(temporary)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp's 0600 would hide it from other users
        os.replace(temporary, path)
    except OSError as error:  # a full disk, say
        raise _cannot_write(path, error) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _cannot_write(path: Path, error: OSError) -> OSError:
    """`error` again, naming the file the user asked for rather than a temporary one."""
    return OSError(error.errno, f"cannot write {path}: {error.strerror or error}")


def current_umask() -> int:
    """The process umask (reading it means setting it: put it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
