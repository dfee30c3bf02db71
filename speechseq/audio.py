"""Read audio files: decode, mix to mono, resample, and reject bad files by name.

Every problem with a file surfaces as one `AudioError` that carries the path and a
short reason, so a caller can report it on one line and go on with the next file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import struct
from pathlib import Path

import numpy as np
import soundfile
import soxr

from speechseq.errors import SpeechseqError

SAMPLE_RATE = 16_000  # Hz: the rate every model in speechseq works at by default
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")  # what `find_audio` picks up
MIN_SAMPLE_RATE = 4_000  # Hz: below this a header is broken (no speech band survives)
MAX_SAMPLE_RATE = 768_000  # Hz: the fastest real converters; above it a header is broken

log = logging.getLogger(__name__)


class AudioError(SpeechseqError):
    """A file that cannot be used as audio, with the reason why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, checked for sense."""

    path: str
    sample_rate: int  # Hz, as stored in the file
    channels: int
    frames: int  # samples per channel
    format: str  # container, as libsndfile names it (WAV, FLAC, OGG, MP3)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def _check_is_readable_file(path: Path) -> None:
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise AudioError(path, "file not found") from None
    except OSError as error:  # a symlink loop, a name too long, ...
        raise AudioError(path, f"cannot open: {error.strerror or error}") from None
    if not path.is_file():  # a named pipe or a device would block or never end
        raise AudioError(path, "not a regular file")
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioError(path, "permission denied")


# What a file that libsndfile cannot open is not, by its extension.
_NOT_VALID = {".wav": "not a valid WAV file", ".flac": "not a valid FLAC stream", ".ogg": "not a valid Ogg stream",
              ".opus": "not a valid Ogg stream", ".mp3": "not a valid MP3 stream"}


def _soundfile_reason(error: Exception, path: str | os.PathLike) -> str:
    message = str(error)
    # libsndfile prefixes its messages with "Error opening '<path>': "; keep the cause.
    cause = message.split(": ", 1)[-1].strip() if message.startswith("Error opening") else message.strip()
    # For a regular file it could not parse, libsndfile says it does not exist or is not
    # a regular file (MP3), or that the format is not recognised: say what it is not.
    if "does not exist or is not a regular file" in cause or cause.startswith("Format not recognised"):
        cause = _NOT_VALID.get(Path(path).suffix.lower(), "not a recognised audio format")
    return f"cannot decode audio ({cause})"


def _decoding(path: str | os.PathLike):
    """Around a libsndfile call on `path`: MP3 decoding's own stderr notes held back."""
    if Path(path).suffix.lower() == ".mp3":
        from speechseq import stderr

        return stderr.held_back()
    return contextlib.nullcontext()


def info(path: str | os.PathLike, min_seconds: float = 0.0) -> AudioInfo:
    """Read and check a file's header without decoding its samples; a file shorter than
    `min_seconds` (a model's one feature frame, say) is refused as too short."""
    path = Path(path)
    _check_is_readable_file(path)
    try:
        with _decoding(path):
            header = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(path, _soundfile_reason(error, path)) from None
    except OSError as error:
        raise AudioError(path, f"cannot open: {error.strerror or error}") from None
    _check_sample_rate(path, header.samplerate)
    if header.channels <= 0:
        raise AudioError(path, f"invalid channel count {header.channels} in header")
    if header.frames <= 0:
        raise AudioError(path, "no audio samples (0 frames)")
    if header.frames < min_seconds * header.samplerate:
        raise AudioError(path, too_short(header.frames / header.samplerate, min_seconds))
    return AudioInfo(
        path=str(path),
        sample_rate=int(header.samplerate),
        channels=int(header.channels),
        frames=int(header.frames),
        format=str(header.format),
    )


def too_short(seconds: float, min_seconds: float) -> str:
    """The reason for audio under one feature frame of `min_seconds`."""
    return f"too short: {1000 * seconds:.2f} ms of audio, under one {1000 * min_seconds:g} ms feature frame"


def _check_sample_rate(path, rate: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(path, f"implausible sample rate {rate} Hz in header")


def truncation(path: str | os.PathLike) -> str | None:
    """For a WAV file whose header promises more audio than the file holds (a recorder that
    crashed before it wrote the real size), what was promised and what is there, in
    words; None for a complete file or another format.

    libsndfile reads the samples that are there without a word, so this walks the RIFF
    chunks itself (the standard library's `wave` refuses float and extensible WAVs).
    """
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            head = file.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = rate = 0
            while len(chunk := file.read(8)) == 8:
                name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"fmt " and length >= 16:
                    _, _, rate, _, block_align = struct.unpack("<HHIIH", file.read(14))
                    file.seek(length - 14 + (length & 1), os.SEEK_CUR)
                elif name == b"data":
                    held = size - file.tell()
                    if length <= held or not (block_align and rate):
                        return None
                    return (f"truncated: the header promises {length / block_align / rate:.1f} s of audio, "
                            f"the file holds {held // block_align / rate:.3f} s")
                else:
                    file.seek(length + (length & 1), os.SEEK_CUR)
    except OSError:
        return None  # unreadable files are reported by `info` and `load`
    return None


def resample(waveform: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample a mono float32 waveform with soxr at high quality (librosa's `soxr_hq`)."""
    if orig_rate == target_rate:
        return waveform
    return soxr.resample(waveform, orig_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def load(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode `path` to a mono float32 waveform at `sample_rate`, values in [-1, 1].

    Raises `AudioError` naming the file for anything that is not usable audio.
    """
    # A few system calls first: a named pipe would block the decoder for good.
    _check_is_readable_file(Path(path))
    try:
        with _decoding(path):
            samples, file_rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    except Exception:  # noqa: BLE001 - the checks below name the real problem
        # The hot path skips the header checks; on failure they say what is wrong.
        info(path)
        try:
            with _decoding(path):
                samples, file_rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
            raise AudioError(path, _soundfile_reason(error, path)) from None
        except (OSError, MemoryError) as error:
            raise AudioError(path, f"cannot read samples: {error}") from None
    if samples.shape[0] == 0:
        raise AudioError(path, "no audio samples (0 frames)")
    _check_sample_rate(path, file_rate)
    if not np.isfinite(samples).all():
        raise AudioError(path, "contains NaN or infinite samples")
    return _mono_at_rate(path, samples, file_rate, sample_rate)


def sound_span(samples: np.ndarray, rate: int, top_db: float | None) -> tuple[int, int]:
    """First and end sample of the sound in `samples`: from the first to the last 25 ms frame
    (10 ms hop) within `top_db` of the loudest; (0, len) for silence or top_db None.

    The frames are those of the model's features, so labels built on the span land on
    them to within a frame (librosa's default 128 ms frames would reach up to ~100 ms
    into the silence around a word).
    """
    if top_db is None or not samples.any():
        return 0, len(samples)
    import librosa  # slow to import, and only labelling needs it

    frame, hop = max(1, round(0.025 * rate)), max(1, round(0.010 * rate))
    _, (start, end) = librosa.effects.trim(samples.astype(np.float32), top_db=top_db, frame_length=frame,
                                           hop_length=hop)
    return int(start), int(end)


MIN_SOUND = 0.06  # seconds: a run of sound at least this long is speech in its own right
BURST_REACH = 0.1  # seconds: a shorter run this close to a long one is part of it (a stop's release)


def sound_runs(samples: np.ndarray, rate: int, top_db: float, floor_margin_db: float,
               min_pause: float) -> list[tuple[int, int]]:
    """(start, end) sample spans of the sound in a recording that has a noise floor of its own.

    A 25 ms frame (10 ms hop, as `sound_span`) is sound when it is within `top_db` of the
    loudest AND at least `floor_margin_db` above the recording's floor (its 5th-percentile
    frame): a room's hiss at -30 dB is not speech just because it is within 35 dB of the peak.
    A run of sound shorter than `MIN_SOUND` counts only within `BURST_REACH` of a longer one
    (a stop's burst after its closure); further away it is a click, a breath or a lip smack,
    which must not stretch the speech to reach it. Runs less than `min_pause` seconds apart
    then join: stop closures and word junctions stay inside the speech, and only a pause a
    listener hears as one splits it.
    """
    import librosa  # slow to import, and only labelling needs it

    frame, hop = max(1, round(0.025 * rate)), max(1, round(0.010 * rate))
    level = librosa.feature.rms(y=samples.astype(np.float32), frame_length=frame, hop_length=hop)[0]
    if not level.any():
        return []
    decibels = 20 * np.log10(np.maximum(level, 1e-10) / level.max())
    floor = np.percentile(decibels, 5)
    sound = np.concatenate([[False], (decibels > -top_db) & (decibels > floor + floor_margin_db), [False]])
    edges = np.flatnonzero(np.diff(sound.astype(np.int8)))
    runs = [(int(a * hop), int(min(len(samples), b * hop))) for a, b in zip(edges[::2], edges[1::2])]
    long_runs = [(a, b) for a, b in runs if b - a >= MIN_SOUND * rate]
    reach = BURST_REACH * rate

    def near_a_long_run(a: int, b: int) -> bool:
        return any(a - reach <= long_end and long_start <= b + reach for long_start, long_end in long_runs)

    kept = [(a, b) for a, b in runs if b - a >= MIN_SOUND * rate or near_a_long_run(a, b)]
    joined: list[tuple[int, int]] = []
    for a, b in kept:
        if joined and a - joined[-1][1] < min_pause * rate:
            joined[-1] = (joined[-1][0], b)
        else:
            joined.append((a, b))
    return joined


def _mono_at_rate(path, samples: np.ndarray, file_rate: int, sample_rate: int) -> np.ndarray:
    """(frames, channels) samples -> the mono waveform at `sample_rate`, clipped to [-1, 1]."""
    mono = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    waveform = resample(np.ascontiguousarray(mono), file_rate, sample_rate)
    if waveform.size == 0:
        raise AudioError(path, f"too short to resample from {file_rate} Hz to {sample_rate} Hz")
    # Float files may hold values past full scale and resampling can overshoot: clip.
    return np.clip(waveform, -1.0, 1.0, out=waveform)


def find_audio(*locations: str | os.PathLike) -> list[Path]:
    """Files, folders (searched recursively) and glob patterns -> sorted audio paths.

    A named file is kept whatever its extension (so a bad one is reported, not skipped);
    folders and globs contribute files with one of `AUDIO_EXTENSIONS`.
    """
    return [path for _, found in find_audio_each(*locations) for path in found]


def find_audio_each(*locations: str | os.PathLike) -> list[tuple[str, list[Path]]]:
    """`find_audio`, location by location, so that one that gives no file can be named."""
    found: list[tuple[str, list[Path]]] = []
    for location in locations:
        path = Path(location)
        if path.is_dir():
            found.append((str(location), sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)))
        elif any(char in str(location) for char in "*?["):
            anchor = Path(path.anchor or ".")
            pattern = str(path.relative_to(anchor)) if path.is_absolute() else str(location)
            found.append((str(location), sorted(p for p in anchor.glob(pattern) if p.is_file())))
        else:
            found.append((str(location), [path]))
    return found


def nothing_found_reason(location: str) -> str:
    """Why a location of `find_audio_each` gave no file, for a report that names it."""
    if Path(location).is_dir():
        return f"{location}: a folder with no audio files ({', '.join(AUDIO_EXTENSIONS)}) in it"
    return f"{location}: no audio file matches this pattern"


def chunks(
    path: str | os.PathLike,
    seconds: float,
    overlap: float,
    sample_rate: int = SAMPLE_RATE,
):
    """Yield `(start_seconds, waveform, is_last)` windows of `seconds` that overlap by `overlap`.

    The file is read one window at a time, so memory stays flat whatever its length.
    Each window is decoded, mixed to mono and resampled like `load`. `is_last` holds
    even when the header promised more samples than the file has.
    """
    return _with_last(_file_windows(path, seconds, overlap, sample_rate))


def _file_windows(path, seconds: float, overlap: float, sample_rate: int):
    header = info(path)
    if shortfall := truncation(path):
        log.warning("%s: %s; read what is there", path, shortfall)
    window = max(int(seconds * header.sample_rate), 1)
    step = max(int((seconds - overlap) * header.sample_rate), 1)
    try:
        with _decoding(path):
            file = soundfile.SoundFile(os.fspath(path))
        with file:
            for start in range(0, header.frames, step):
                with _decoding(path):  # each read on its own: never held across a yield
                    file.seek(start)
                    samples = file.read(window, dtype="float32", always_2d=True)
                # No samples left (a header that promised more), or less than one at the
                # output rate past the first window: the file has ended.
                if samples.shape[0] == 0 or (start and samples.shape[0] * sample_rate < header.sample_rate):
                    break
                if not np.isfinite(samples).all():
                    at = start / header.sample_rate
                    raise AudioError(path, f"contains NaN or infinite samples (in the window from {at:.1f} s)")
                yield start / header.sample_rate, _mono_at_rate(path, samples, header.sample_rate, sample_rate)
                if start + window >= header.frames:
                    break
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise AudioError(path, _soundfile_reason(error, path)) from None


def windows(waveform: np.ndarray, sample_rate: int, seconds: float, overlap: float):
    """`chunks` for a waveform already in memory: `(start_seconds, piece, is_last)` windows."""
    return _with_last(_array_windows(waveform, sample_rate, seconds, overlap))


def _array_windows(waveform: np.ndarray, sample_rate: int, seconds: float, overlap: float):
    window = max(int(seconds * sample_rate), 1)
    step = max(int((seconds - overlap) * sample_rate), 1)
    for start in range(0, max(waveform.size, 1), step):
        yield start / sample_rate, waveform[start : start + window]
        if start + window >= waveform.size:
            break


def _with_last(pieces):
    """`(start, piece)` -> `(start, piece, is_last)`: knowing a piece is the last takes one more read."""
    iterator = iter(pieces)
    try:
        current = next(iterator)
    except StopIteration:
        return
    for following in iterator:
        yield (*current, False)
        current = following
    yield (*current, True)


def pad_batch(waveforms) -> tuple[np.ndarray, np.ndarray]:
    """Waveforms of any lengths -> one right-padded float32 batch and the int32 lengths."""
    lengths = np.array([w.size for w in waveforms], np.int32)
    padded = np.zeros((len(waveforms), max(int(lengths.max(initial=0)), 1)), np.float32)
    for row, waveform in enumerate(waveforms):
        padded[row, : waveform.size] = waveform
    return padded, lengths
