"""Corpora made from other corpora: connected digit strings joined from FSDD's single-digit
clips, speed-perturbed copies of any utterances, copies cut tight to their sound, and copies
heard through a transmission channel or in a simulated room. Each writes audio and returns manifest entries."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile

from speechseq import audio, channels, rooms
from speechseq.corpora import CorpusError, DigitClip, Segment, Utterance, fsdd_clips, write_manifest
from speechseq.files import atomic_path


# ---- connected digits ----------------------------------------------------------------

FSDD_SPLITS = {"test": range(0, 5), "dev": range(5, 10), "train": range(10, 50)}  # takes


@dataclasses.dataclass(frozen=True)
class DigitSequenceOptions:
    """How `connected_digits` strings FSDD clips into utterances."""

    min_digits: int = 1  # digits per utterance, at least
    max_digits: int = 7  # digits per utterance, at most
    min_gap: float = 0.05  # seconds of silence between digits, at least
    max_gap: float = 0.30  # seconds of silence between digits, at most
    edge: float = 0.10  # seconds of silence before the first and after the last digit
    max_edge: float | None = None  # if set, each edge is drawn from edge..max_edge seconds instead
    noise_share: float = 0.0  # share of utterances given a white noise floor under everything
    noise_below_peak_db: tuple[float, float] = (40.0, 65.0)  # its RMS, dB under the utterance's peak
    # ^ why: real isolated words come with room around them, not FSDD's digital zeros; a model that
    #   only heard zeros reads a clip padded with faint noise much worse (benchmarks/RESULTS.md)
    passes: Sequence[tuple[str, int]] = (("train", 4), ("dev", 1), ("test", 2))
    # ^ how many times each split's clips are each used (in fresh random orders)
    held_out_speaker: str | None = None  # all of this speaker's clips -> split "held_out"
    trim_db: float | None = 35.0  # a digit's segment spans its clip's sound: from the first to the last
    # 25 ms frame within this many dB of the clip's loudest (None: the whole clip, silence and all)
    seed: int = 0


def _group_clips(clips: Sequence[DigitClip], options: DigitSequenceOptions):
    """(split, speaker) -> clips, by take number; a held-out speaker gets its own split."""
    groups: dict[tuple[str, str], list[DigitClip]] = {}
    for clip in clips:
        if clip.speaker == options.held_out_speaker:
            split = "held_out"
        else:
            split = next((s for s, takes in FSDD_SPLITS.items() if clip.take in takes), None)
            if split is None:
                continue
        groups.setdefault((split, clip.speaker), []).append(clip)
    return groups


def _chunks(items: list, rng: random.Random, low: int, high: int):
    start = 0
    while start < len(items):
        size = rng.randint(low, high)
        yield items[start : start + size]
        start += size


def _join_clips(chunk: Sequence[DigitClip], rng: random.Random, options) -> tuple:
    rate = None
    # Random draws only for the options in use, so the default options give the files they always gave.
    lead, tail = (rng.uniform(options.edge, options.max_edge) for _ in range(2)) if options.max_edge else (
        options.edge, options.edge)
    pieces, segments, cursor = [], [], lead
    for index, clip in enumerate(chunk):
        samples, clip_rate = soundfile.read(clip.path, dtype="int16")
        if rate is None:
            rate = clip_rate
            pieces.append(np.zeros(int(lead * rate), np.int16))
        elif clip_rate != rate:
            raise CorpusError(f"{clip.path}: {clip_rate} Hz, other clips are {rate} Hz")
        if index:
            gap = rng.uniform(options.min_gap, options.max_gap)
            pieces.append(np.zeros(int(gap * rate), np.int16))
            cursor += len(pieces[-1]) / rate
        pieces.append(samples)
        start, end = audio.sound_span(samples, rate, options.trim_db)
        segments.append(Segment(round(cursor + start / rate, 4), round(cursor + end / rate, 4), clip.word))
        cursor += len(samples) / rate
    pieces.append(np.zeros(int(tail * rate), np.int16))
    joined = np.concatenate(pieces)
    if options.noise_share and rng.random() < options.noise_share:
        below = rng.uniform(*options.noise_below_peak_db)
        level = float(np.abs(joined).max()) * 10 ** (-below / 20)
        noise = np.random.default_rng(rng.getrandbits(32)).standard_normal(joined.size) * level
        joined = np.clip(np.rint(joined + noise), -32768, 32767).astype(np.int16)
    return joined, rate, tuple(segments)


def speed_perturbed(utterances: Sequence[Utterance], factors: Sequence[float], out_dir: str | os.PathLike,
                    sample_rate: int = audio.SAMPLE_RATE) -> list[Utterance]:
    """Copies of `utterances` played `factor` times as fast (tempo and pitch together, as
    Kaldi's speed perturbation), as 16-bit WAVs under `out_dir/sp{factor}/`.

    Times scale by 1/factor: durations and segments follow. Files that exist already are
    kept, so a rebuild only adds what is missing. Returns the copies' entries.
    """
    out_dir = Path(out_dir)
    copies = []
    for factor in factors:
        if not 0.5 <= factor <= 2.0:
            raise CorpusError(f"speed factor {factor} is outside 0.5-2.0")
        folder = out_dir / f"sp{factor:g}"
        for utterance in utterances:
            target = _copy_path(utterance, folder)
            if not target.exists():
                waveform = audio.load(utterance.audio, sample_rate)
                # Read as if recorded at factor x the rate, then resampled back: factor x as fast.
                faster = audio.resample(waveform, round(sample_rate * factor), sample_rate)
                _write_wav(target, faster, sample_rate)
            copies.append(dataclasses.replace(
                utterance,
                audio=target.absolute(),
                duration=None if utterance.duration is None else utterance.duration / factor,
                segments=tuple(Segment(s.start / factor, s.end / factor, s.label) for s in utterance.segments),
            ))
    return copies


def _source_key(utterance: Utterance) -> str:
    # The source's path: clips in different folders may share a stem, and another call
    # (another manifest's order) must not reuse other audio.
    return hashlib.sha1(str(utterance.audio).encode("utf-8")).hexdigest()[:12]


def _copy_path(utterance: Utterance, folder: Path) -> Path:
    return folder / f"{utterance.audio.stem}_{_source_key(utterance)}.wav"


def _source_rng(utterance: Utterance) -> np.random.Generator:
    """Random draws fixed by the source file, so a rebuild makes the same copy of it."""
    return np.random.default_rng(int(_source_key(utterance), 16))


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """A 16-bit WAV, written atomically (its folder made if need be)."""
    with atomic_path(path) as temporary:
        soundfile.write(temporary, samples, rate, subtype="PCM_16", format="WAV")


def cut_to_sound(utterances: Sequence[Utterance], out_dir: str | os.PathLike, max_margin: float = 0.05,
                 top_db: float = 35.0, floor_margin_db: float = 10.0,
                 sample_rate: int = audio.SAMPLE_RATE) -> list[Utterance]:
    """Copies of `utterances` cut to their sound, as 16-bit WAVs under `out_dir`: from the first
    to the last run of sound (`audio.sound_runs`), keeping a margin drawn from 0-`max_margin`
    seconds on each side (fixed per source file, so a rebuild writes the same copies).

    Why: corpora whose every utterance starts with some silence teach a model that speech
    never starts at the first sample, and it then misreads clips cut tight to the word (FSDD's).
    Segments move with the cut and are clipped to it. Files that exist already are kept.
    """
    folder = Path(out_dir)
    copies = []
    for utterance in utterances:
        target = _copy_path(utterance, folder)
        lead, tail = _source_rng(utterance).uniform(0.0, max_margin, size=2)
        waveform = audio.load(utterance.audio, sample_rate)
        runs = audio.sound_runs(waveform, sample_rate, top_db, floor_margin_db, min_pause=float("inf"))
        if not runs:  # silence: nothing to cut to
            start, end = 0, len(waveform)
        else:
            start = max(0, runs[0][0] - round(lead * sample_rate))
            end = min(len(waveform), runs[-1][1] + round(tail * sample_rate))
        if not target.exists():
            _write_wav(target, waveform[start:end], sample_rate)
        offset, length = start / sample_rate, (end - start) / sample_rate
        segments = tuple(Segment(max(0.0, s.start - offset), min(length, s.end - offset), s.label)
                         for s in utterance.segments if s.end > offset and s.start < offset + length)
        copies.append(dataclasses.replace(utterance, audio=target.absolute(), duration=length, segments=segments))
    return copies


def connected_digits(
    fsdd_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: DigitSequenceOptions = DigitSequenceOptions(),
    more_clips: Sequence[DigitClip] = (),
) -> dict[str, Path]:
    """Build connected-digit utterances from FSDD and write one manifest per split.

    Each utterance joins 1-7 clips of one speaker and one split, with short random
    silences between them; its transcript reads "three one four" and its segments
    give each digit's time (the sound of its clip, `trim_db`). Splits follow the takes (0-4 test, 5-9 dev, 10-49 train);
    `held_out_speaker` moves all of one speaker's clips to a `held_out` split.
    `more_clips` join FSDD's by the same rules (`synth.digit_clips`: synthetic speakers).
    Same options and seed, same files. Returns split -> manifest path.
    """
    out_dir = Path(out_dir)
    groups = _group_clips(fsdd_clips(fsdd_root) + list(more_clips), options)
    passes = dict(options.passes) | {"held_out": 1}
    rng = random.Random(options.seed)
    manifests: dict[str, list[Utterance]] = {}
    for (split, speaker), clips in sorted(groups.items()):
        for repeat in range(passes.get(split, 0)):
            order = list(clips)
            rng.shuffle(order)
            for number, chunk in enumerate(
                _chunks(order, rng, options.min_digits, options.max_digits)
            ):
                samples, rate, segments = _join_clips(chunk, rng, options)
                path = out_dir / "audio" / split / f"{speaker}_{repeat}_{number:04d}.wav"
                _write_wav(path, samples, rate)
                text = " ".join(s.label for s in segments)
                manifests.setdefault(split, []).append(
                    Utterance(path.absolute(), text, speaker, len(samples) / rate, segments)
                )
    return {
        split: write_manifest(utterances, out_dir / f"{split}.jsonl")
        for split, utterances in manifests.items()
    }


def through_channels(utterances: Sequence[Utterance], out_dir: str | os.PathLike,
                     kinds: Sequence[str] = channels.CHANNELS, sample_rate: int = audio.SAMPLE_RATE) -> list[Utterance]:
    """Copies of `utterances` heard through a transmission channel (`speechseq.channels`), one
    drawn from `kinds` per source file (fixed by its path, so a rebuild writes the same copies),
    as 16-bit WAVs under `out_dir/<channel>/`. Times are unchanged (the channels keep them).

    Why: a model that only heard wideband microphone speech loses 6-21 CER points on a phone
    line or a low-rate codec (benchmarks/RESULTS.md: "Held-out speakers through transmission
    channels"). Files that exist already are kept."""
    out_dir = Path(out_dir)
    copies = []
    for utterance in utterances:
        kind = channels.draw(_source_rng(utterance), kinds)
        target = _copy_path(utterance, out_dir / kind)
        if not target.exists():
            _write_wav(target, channels.through(audio.load(utterance.audio, sample_rate), kind, sample_rate), sample_rate)
        copies.append(dataclasses.replace(utterance, audio=target.absolute()))
    return copies


def in_rooms(utterances: Sequence[Utterance], out_dir: str | os.PathLike,
             rt60_range: tuple[float, float] = rooms.RT60, sample_rate: int = audio.SAMPLE_RATE) -> list[Utterance]:
    """Copies of `utterances` heard in a simulated room (`rooms.heard_in_room`: a random
    shoebox and reverberation time, fixed by the source's path), as 16-bit WAVs under
    `out_dir`. Times are unchanged (the direct sound stays where it was). Files that exist
    already are kept. Needs the `rooms` extra (pyroomacoustics)."""
    out_dir = Path(out_dir)
    copies = []
    for utterance in utterances:
        target = _copy_path(utterance, out_dir)
        if not target.exists():
            heard = rooms.heard_in_room(audio.load(utterance.audio, sample_rate), _source_rng(utterance), rt60_range,
                                        sample_rate)
            _write_wav(target, heard, sample_rate)
        copies.append(dataclasses.replace(utterance, audio=target.absolute()))
    return copies
