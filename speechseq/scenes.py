"""Voice-activity scenes: real FSDD clips placed at random in longer stretches of noise.

Each scene is `seconds` long and holds 1 to `max_clips` clips of one speaker at random,
non-overlapping places, over noise at a signal-to-noise ratio drawn from `snrs` (the
ratio of the clips' mean power to the noise's). Its `segments` label each clip
"speech" from its first to its last sound (leading and trailing silence trimmed at
`trim_db` below the clip's peak, on the features' 25 ms frames); the rest is the
background ("silence", maybe noise).
Clips come from FSDD (`fsdd_speakers`) or from any recordings, synthetic voices included.
Noise is white or brown (integrated white noise, most of its energy low, like hum and
rumble), drawn per scene. Same options and seed, same files.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile

from speechseq import audio
from speechseq.corpora import Segment, Utterance, fsdd_clips, write_manifest
from speechseq.errors import SpeechseqError
from speechseq.files import atomic_path

SPEECH = "speech"


@dataclasses.dataclass(frozen=True)
class SceneOptions:
    seconds: float = 6.0  # length of every scene
    max_clips: int = 3  # clips per scene, 1 to this many
    snrs: Sequence[float | None] = (0.0, 5.0, 10.0, 20.0, None)  # dB; None = no noise
    scenes_per_speaker: int = 40
    trim_db: float = 35.0  # a clip's speech ends where it stays this far below its peak (`audio.sound_span`)
    seed: int = 0


def _noise(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(size).astype(np.float32)
    if kind == "white":
        return white
    brown = np.cumsum(white)
    brown -= np.convolve(brown, np.ones(1600) / 1600, mode="same")  # keep it from drifting away
    return (brown / (brown.std() + 1e-9)).astype(np.float32)


def fsdd_speakers(fsdd_root: str | os.PathLike, speakers: Sequence[str], takes: Sequence[int]) -> dict[str, list[Path]]:
    """speaker -> their FSDD clips among `takes`."""
    by_speaker: dict[str, list[Path]] = {speaker: [] for speaker in speakers}
    for clip in fsdd_clips(fsdd_root):
        if clip.speaker in by_speaker and clip.take in takes:
            by_speaker[clip.speaker].append(clip.path)
    for speaker, paths in by_speaker.items():
        if not paths:
            raise SpeechseqError(f"no FSDD clips of speaker {speaker!r} in {fsdd_root}")
    return by_speaker


def _trimmed(path: Path, top_db: float) -> np.ndarray:
    samples = audio.load(path)
    start, end = audio.sound_span(samples, audio.SAMPLE_RATE, top_db)
    return samples[start:end]


def build(
    clips_by_speaker: dict[str, list[Path]],
    out_dir: str | os.PathLike,
    options: SceneOptions = SceneOptions(),
    name: str = "scenes",
) -> Path:
    """Write scenes of each speaker's clips as 16 kHz WAVs under `out_dir/audio/name/`
    and their manifest as `out_dir/name.jsonl`."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(options.seed)
    picker = random.Random(options.seed)
    rate = audio.SAMPLE_RATE
    utterances = []
    for speaker, clips in clips_by_speaker.items():
        for index in range(options.scenes_per_speaker):
            length = int(options.seconds * rate)
            speech = np.zeros(length, np.float32)
            segments = []
            chosen = [_trimmed(c, options.trim_db) for c in picker.sample(clips, picker.randint(1, options.max_clips))]
            slots = np.sort(rng.choice(np.arange(len(chosen) + 1) / (len(chosen) + 1), len(chosen), replace=False))
            cursor = 0
            for clip, slot in zip(chosen, slots):
                start = max(cursor, int(slot * length))
                start = min(start, length - clip.size)
                if start < cursor:
                    break  # no room left for this clip
                speech[start : start + clip.size] = clip
                segments.append(Segment(round(start / rate, 4), round((start + clip.size) / rate, 4), SPEECH))
                cursor = start + clip.size + int(0.2 * rate)
            snr = options.snrs[int(rng.integers(len(options.snrs)))]
            mixed = speech
            if snr is not None:
                voiced = np.concatenate([speech[int(s.start * rate) : int(s.end * rate)] for s in segments])
                noise = _noise(str(rng.choice(["white", "brown"])), length, rng)
                noise *= np.sqrt(np.mean(voiced**2) / 10 ** (snr / 10)) / (noise.std() + 1e-9)
                mixed = speech + noise
            mixed = mixed / max(1.0, float(np.abs(mixed).max()) / 0.99)  # no clipping
            path = out_dir / "audio" / name / speaker / f"{speaker}_{index:04d}_snr{'clean' if snr is None else int(snr)}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as temporary:
                soundfile.write(temporary, mixed, rate, format="WAV", subtype="PCM_16")
            utterances.append(Utterance(path.absolute(), "", speaker, options.seconds, tuple(segments)))
    return write_manifest(utterances, out_dir / f"{name}.jsonl")
