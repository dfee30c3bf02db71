"""A corpus of malformed and unusual audio files, built from real FSDD clips.

`build(folder)` writes it and returns a `Corpus`: for every bad file the words its
one-line reason must contain, and for every good file the FSDD clip it holds (the
same speech in another encoding, rate, channel count or length), so a test can check
that each bad file is reported once with the right reason and each good one is read
as its original. Every kind of file the robustness issue lists is here, several times
over with different sizes, offsets and seeds.
"""

from __future__ import annotations

import dataclasses
import os
import random
import struct
from pathlib import Path

import numpy as np
import soundfile


@dataclasses.dataclass
class Corpus:
    bad: dict[Path, str]  # path -> words its reason contains
    good: dict[Path, Path]  # path -> the FSDD clip whose speech it holds
    empty: set[Path]  # good files with (almost) no sound: nothing to transcribe or tag
    # Good WAVs whose header promises more than they hold: read as the clip, with a warning
    # naming what was promised; not for training (audit lists them).
    truncated: set[Path] = dataclasses.field(default_factory=set)
    # Under one 25 ms feature frame: the tf.data pipeline reads them (one frame), while
    # audit, transcribe and tag report them as too short.
    too_short: set[Path] = dataclasses.field(default_factory=set)


def _riff_with_sizes(wav: bytes, riff_size: int | None = None, data_size: int | None = None) -> bytes:
    """A PCM WAV (canonical 44-byte header) with its RIFF or data chunk size rewritten."""
    out = bytearray(wav)
    assert out[36:40] == b"data", "expected the canonical header soundfile writes"
    if riff_size is not None:
        out[4:8] = struct.pack("<I", riff_size & 0xFFFFFFFF)
    if data_size is not None:
        out[40:44] = struct.pack("<I", data_size & 0xFFFFFFFF)
    return bytes(out)


def _with_fmt_field(wav: bytes, offset: int, fmt: str, value: int) -> bytes:
    """Rewrite one field of the fmt chunk (channels at 22, rate at 24, bits at 34)."""
    out = bytearray(wav)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def build(folder: Path, clips: list[Path], seed: int = 0) -> Corpus:
    """Write the corpus under `folder` from the FSDD `clips` (8 kHz, 16-bit mono)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    corpus = Corpus({}, {}, set())

    def write(name: str, content: bytes) -> Path:
        path = folder / name
        path.write_bytes(content)
        return path

    def bad(name: str, content: bytes, reason: str) -> None:
        corpus.bad[write(name, content)] = reason

    sources = [soundfile.read(clip, dtype="float32") for clip in clips]
    canonical = folder / "_canonical.wav"
    first, rate = sources[0]
    soundfile.write(canonical, first, rate, subtype="PCM_16")
    wav = canonical.read_bytes()
    canonical.unlink()

    # Good: the same speech in every PCM width, float, other rates and channel counts.
    conversions = [
        ("u8", dict(subtype="PCM_U8"), 1, None),
        ("s24", dict(subtype="PCM_24"), 1, None),
        ("s32", dict(subtype="PCM_32"), 1, None),
        ("f32", dict(subtype="FLOAT"), 1, None),
        ("f64", dict(subtype="DOUBLE"), 1, None),
        ("ch8", dict(subtype="PCM_16"), 8, None),
        ("384k", dict(subtype="PCM_16"), 1, 384_000),
        ("44k", dict(subtype="PCM_24", format="FLAC"), 1, 44_100),
    ]
    for index, (clip, (samples, rate)) in enumerate(zip(clips, sources)):
        for label, options, channels, new_rate in conversions:
            out_rate = new_rate or rate
            signal = samples
            if new_rate:
                import soxr

                signal = soxr.resample(samples, rate, new_rate, quality="HQ")
            if channels > 1:
                signal = np.stack([signal * (1 - 0.05 * c) for c in range(channels)], axis=1)
            suffix = ".flac" if options.get("format") == "FLAC" else ".wav"
            path = folder / f"good_{index}_{label}{suffix}"
            soundfile.write(path, signal, out_rate, **options)
            corpus.good[path] = clip
        # Wrong sizes in the header: libsndfile reads the samples the file really holds.
        clip_wav = folder / "_clip.wav"
        soundfile.write(clip_wav, samples, rate, subtype="PCM_16")
        clip_bytes = clip_wav.read_bytes()
        clip_wav.unlink()
        for label, sizes in [
            ("riff_too_big", dict(riff_size=len(clip_bytes) * 3)),
            ("riff_too_small", dict(riff_size=100)),
            ("riff_max", dict(riff_size=0xFFFFFFFF)),
            ("data_too_big", dict(data_size=(len(clip_bytes) - 44) * 7)),
            ("data_max", dict(data_size=0xFFFFFFFF)),
        ]:
            path = write(f"good_{index}_{label}.wav", _riff_with_sizes(clip_bytes, **sizes))
            corpus.good[path] = clip
            if label.startswith("data_"):  # the RIFF size is not a promise of audio; the data size is
                corpus.truncated.add(path)

    # One-sample files: under one feature frame. One sample at 44.1 kHz is less than one
    # at 16 kHz: that one cannot even be resampled. Then long silence: good, but silent.
    for index, (rate, subtype) in enumerate([(8000, "PCM_16"), (16000, "PCM_24"), (16000, "PCM_U8"), (44100, "FLOAT")]):
        path = folder / f"one_sample_{index}.wav"
        soundfile.write(path, np.array([0.25], np.float32), rate, subtype=subtype)
        if rate > 16000:
            corpus.bad[path] = "too short"
        else:
            corpus.too_short.add(path)
    for index, minutes in enumerate([2, 3]):
        path = folder / f"silence_{minutes}min.flac"
        soundfile.write(path, np.zeros(int(minutes * 60 * 16000), np.int16), 16000, subtype="PCM_16")
        corpus.empty.add(path)

    # Truncated headers: every cut inside the 44-byte WAV header.
    for cut in range(1, 44):  # the last cuts keep the whole fmt chunk: no samples left
        reason = "no audio samples" if cut > 40 else "cannot decode"
        bad(f"truncated_header_{cut:02d}.wav", wav[:cut], reason)
    flac = folder / "_clip.flac"
    soundfile.write(flac, first, 8000, format="FLAC")
    flac_bytes = flac.read_bytes()
    flac.unlink()
    for cut in range(1, 42, 2):
        bad(f"truncated_header_{cut:02d}.flac", flac_bytes[:cut], "cannot decode")

    # Header fields that make no sense.
    for value in (0, 0xFFFFFFFF):  # libsndfile itself refuses these (as 0 and -1)
        bad(f"rate_{value}hz.wav", _with_fmt_field(wav, 24, "<I", value), "cannot decode")
    for value in (1, 2, 8, 100, 1000, 2000, 3999, 800_000):
        bad(f"rate_{value}hz.wav", _with_fmt_field(wav, 24, "<I", value), "sample rate")
    for value in (0, 33, 65, 255):
        bad(f"bits_{value}.wav", _with_fmt_field(wav, 34, "<H", value), "cannot decode")
    bad("channels_0.wav", _with_fmt_field(wav, 22, "<H", 0), "cannot decode")
    bad("data_size_0.wav", _riff_with_sizes(wav, data_size=0), "no audio samples")

    # Zero frames in every container and width.
    for container, subtype in [("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"), ("WAV", "PCM_U8")]:
        path = folder / f"zero_frames_{subtype.lower()}.{container.lower()}"
        soundfile.write(path, np.zeros(0, np.float32), 16000, format=container, subtype=subtype)
        # FLAC writes nothing at all for no frames.
        corpus.bad[path] = "empty file" if container == "FLAC" else "no audio samples"

    # Not finite: NaN and infinities at the start, middle and end, in float and double.
    for subtype in ("FLOAT", "DOUBLE"):
        for value_name, value in [("nan", np.nan), ("posinf", np.inf), ("neginf", -np.inf)]:
            for where in ("start", "middle", "end"):
                samples = first.astype(np.float64).copy()
                samples[{"start": 0, "middle": samples.size // 2, "end": -1}[where]] = value
                path = folder / f"{value_name}_{where}_{subtype.lower()}.wav"
                soundfile.write(path, samples, 8000, subtype=subtype)
                corpus.bad[path] = "NaN or infinite"

    # Random bytes, and text, behind audio extensions.
    for index in range(90):
        extension = (".wav", ".flac", ".ogg", ".mp3")[index % 4]
        size = rng.choice([1, 2, 3, 7, 44, 100, 1000, 4096, 20000])
        bad(f"random_{index:02d}{extension}", rng.randbytes(size), "cannot decode")
    for extension in (".wav", ".flac", ".ogg", ".mp3"):
        bad(f"text{extension}", b"<html><body>404 Not Found</body></html>\n", "cannot decode")
        bad(f"empty{extension}", b"", "empty file")
        bad(f"riff_then_noise{extension}", b"RIFF\x24\x00\x00\x00WAVE" + rng.randbytes(500), "cannot decode")

    # Things that are not regular, readable files.
    for index in range(3):
        loop = folder / f"symlink_loop_{index}.wav"
        loop.symlink_to(loop)
        corpus.bad[loop] = "cannot open"
    (folder / "cycle_a.wav").symlink_to(folder / "cycle_b.wav")
    (folder / "cycle_b.wav").symlink_to(folder / "cycle_a.wav")
    corpus.bad[folder / "cycle_a.wav"] = corpus.bad[folder / "cycle_b.wav"] = "cannot open"
    (folder / "dangling.wav").symlink_to(folder / "nowhere.wav")
    corpus.bad[folder / "dangling.wav"] = "not found"
    directory = folder / "directory.wav"
    directory.mkdir()
    corpus.bad[directory] = "directory"
    fifo = folder / "named_pipe.wav"
    os.mkfifo(fifo)
    corpus.bad[fifo] = "not a regular file"
    if os.geteuid() != 0:  # root reads anything, so only others can try this
        for index in range(3):
            locked = write(f"unreadable_{index}.wav", wav)
            locked.chmod(0)
            corpus.bad[locked] = "permission denied"
    return corpus
