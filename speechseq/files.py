"""Where outputs go, and atomic writes: a file appears whole or not at all.

Each write goes to a temporary file in the destination's folder (same filesystem),
is flushed to disk, then renamed over the destination in one step. `output_paths`
names one output per input so that no two inputs ever share one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from speechseq.errors import SpeechseqError


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


def update_json_entries(path: str | os.PathLike, entries: dict | None = None, drop: Sequence[str] = ()) -> None:
    """Set `entries` in the JSON object in `path` and remove the keys in `drop`, writing it
    atomically; a file that is not there stays absent (an export without a model card)."""
    path = Path(path)
    if not path.exists():
        return
    values = json.loads(path.read_text(encoding="utf-8"))
    updated = {key: value for key, value in values.items() if key not in drop} | (entries or {})
    if updated != values:
        write_text(path, json.dumps(updated, indent=2) + "\n")


def read_user_text(path: Path) -> str:
    """A text file the user named, as UTF-8; one that is not is a `SpeechseqError` naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpeechseqError(f"{path}: not a UTF-8 text file") from None


def read_json_object(path: Path, what: str) -> dict:
    """A JSON object the user named (`what` it should be, for the message), read and checked."""
    path = Path(path)
    if not path.is_file():
        raise SpeechseqError(f"{path}: no such file")
    try:
        values = json.loads(read_user_text(path))
    except json.JSONDecodeError as error:
        raise SpeechseqError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(values, dict):
        raise SpeechseqError(f"{path}: {what} is a JSON object")
    return values


def output_paths(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, suffix: str) -> list[Path]:
    """Each input's output under `out`: the input's folder relative to the inputs' common
    folder, mirrored, and the input's stem + `suffix`. Inputs in one folder get flat names
    (`out/x.txt`); `a/x.wav` and `b/x.wav` get `out/a/x.txt` and `out/b/x.txt`; `x.wav`
    and `x.flac` in one folder keep their whole names (`x.wav.txt`, `x.flac.txt`).

    Two inputs that would still share an output are refused, naming both, before any
    work is done.
    """
    absolute = [Path(os.path.abspath(p)) for p in inputs]  # not resolve(): links are named as given
    if not absolute:
        return []
    common = Path(os.path.commonpath([p.parent for p in absolute]))
    stems = Counter((p.parent, p.stem) for p in set(absolute))
    targets = [Path(out) / p.parent.relative_to(common) / ((p.stem if stems[p.parent, p.stem] == 1 else p.name) + suffix)
               for p in absolute]
    claimed: dict[Path, tuple[Path, Path]] = {}
    for given, source, target in zip(inputs, absolute, targets):
        earlier = claimed.setdefault(target, (source, Path(given)))
        if earlier[0] != source:
            raise SpeechseqError(f"{earlier[1]} and {given} would both be written to {target}: "
                             "rename one, or run them with different --out folders")
    return targets
