"""Voice-activity scenes: real speech clips placed at random in longer stretches of noise.

Each scene is `seconds` long and holds 1 to `max_clips` clips of one speaker at random,
non-overlapping places, over noise at a signal-to-noise ratio drawn from `snrs` (the
ratio of the speech's mean power to the noise's). Its `segments` label the speech; the
rest is the background ("silence", maybe noise). Two ways to label a clip:
- short clips (FSDD digits; `min_pause` None): trimmed to their sound, from the first to
  the last 25 ms frame within `trim_db` of the clip's peak, as one segment;
- recordings with pauses and a noise floor of their own (read sentences; `min_pause` set):
  placed whole, with a segment for each run of sound (`audio.sound_runs`): a pause of
  `min_pause` seconds or more inside them is non-speech, a shorter one stays speech.
Noise is drawn per scene from `noises`: white; brown (integrated white noise, most of its
energy low, like rumble); babble (4 to 8 other speakers of the corpus talking at once);
tones (music-like: notes of one to three harmonic voices with plucked decays); hum
(mains at 50 or 60 Hz with its harmonics). With `reverb`, that share of scenes is heard in
a simulated room (pyroomacoustics' image sources in a random shoebox) before the noise is
added. With `channel_share`, that share of scenes comes through a transmission channel drawn from
`channel_kinds` (`speechseq.channels`: 8 kHz, telephone, GSM, low-rate Opus or MP3): half of
them the talker's speech alone before the noise is added (a narrowband recording mixed with
noise here), half the whole mix (a call from a noisy place). Labels stay those of the clean
clips. Same options and seed, same files.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile

from speechseq import audio, channels
from speechseq.rooms import impulse_response as room_impulse_response
from speechseq.corpora import Segment, Utterance, fsdd_clips, write_manifest
from speechseq.errors import SpeechseqError
from speechseq.files import atomic_path

SPEECH = "speech"
NOISES = ("white", "brown")  # what scenes drew from before the other kinds came (same seeds, same files)
ALL_NOISES = ("white", "brown", "babble", "tones", "hum")


@dataclasses.dataclass(frozen=True)
class SceneOptions:
    seconds: float = 6.0  # length of every scene
    max_clips: int = 3  # clips per scene, 1 to this many
    snrs: Sequence[float | None] = (0.0, 5.0, 10.0, 20.0, None)  # dB; None = no noise
    scenes_per_speaker: int = 40
    trim_db: float = 35.0  # a clip's speech ends where it stays this far below its peak (`audio.sound_span`)
    seed: int = 0
    noises: Sequence[str] = NOISES
    min_pause: float | None = None  # seconds; None: trim each clip to one segment (see the module)
    floor_margin_db: float = 10.0  # with min_pause: sound is this far above the clip's floor
    reverb: float = 0.0  # share of scenes heard in a simulated room (pyroomacoustics: the `rooms` extra)
    rt60: tuple[float, float] = (0.2, 0.7)  # seconds: the rooms' reverberation times, drawn uniformly
    channel_share: float = 0.0  # share of scenes heard through a transmission channel (see the module)
    channel_kinds: Sequence[str] = channels.CHANNELS  # drawn uniformly

    def __post_init__(self):
        unknown = sorted(set(self.noises) - set(ALL_NOISES))
        if unknown or not self.noises:
            raise SpeechseqError(f"unknown noise kinds {unknown or '(none given)'}: use some of {', '.join(ALL_NOISES)}")
        if not 0.0 <= self.channel_share <= 1.0:
            raise SpeechseqError(f"channel_share is a share of scenes, 0 to 1: got {self.channel_share}")
        channels.check_kinds(self.channel_kinds)


def _clip(path: Path, options: SceneOptions) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A clip's samples and its speech spans (samples) within them, labelled as `options` say."""
    samples = audio.load(path)
    if options.min_pause is None:
        start, end = audio.sound_span(samples, audio.SAMPLE_RATE, options.trim_db)
        return samples[start:end], [(0, end - start)]
    return samples, audio.sound_runs(samples, audio.SAMPLE_RATE, options.trim_db, options.floor_margin_db,
                                     options.min_pause)


def _noise(kind: str, size: int, rng: np.random.Generator, babble: "_Babble | None" = None,
           speaker: str = "") -> np.ndarray:
    """`size` samples of noise of `kind`, unit standard deviation (babble: without `speaker`)."""
    white = rng.standard_normal(size).astype(np.float32)
    if kind == "white":
        return white
    if kind == "brown":
        brown = np.cumsum(white)
        brown -= np.convolve(brown, np.ones(1600) / 1600, mode="same")  # keep it from drifting away
        noise = brown
    elif kind == "babble":
        if babble is None:
            raise SpeechseqError("babble noise needs clips of other speakers to mix (scenes.build's babble)")
        noise = babble.mix(size, rng, speaker)
    elif kind == "tones":
        noise = _tones(size, rng)
    elif kind == "hum":
        noise = _hum(size, rng) + 0.05 * white
    else:
        raise SpeechseqError(f"unknown noise {kind!r}: use one of {', '.join(ALL_NOISES)}")
    return (noise / (noise.std() + 1e-9)).astype(np.float32)


def _tones(size: int, rng: np.random.Generator) -> np.ndarray:
    """Music-like sound: notes of 120-500 ms, each 1-3 voices of a 3-octave chromatic range
    with five harmonics, decaying as a plucked string does."""
    rate, out, cursor = audio.SAMPLE_RATE, np.zeros(size), 0
    while cursor < size:
        length = min(int(rng.uniform(0.12, 0.5) * rate), size - cursor)
        time = np.arange(length) / rate
        note = np.zeros(length)
        for pitch in 110.0 * 2 ** (rng.integers(0, 36, int(rng.integers(1, 4))) / 12):
            note += sum(np.sin(2 * np.pi * k * pitch * time + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
        out[cursor:cursor + length] = note * np.exp(-time * rng.uniform(2.0, 8.0))
        cursor += length
    return out


def _hum(size: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and its first 12 harmonics at random strengths and phases."""
    time = np.arange(size) / audio.SAMPLE_RATE
    mains = float(rng.choice([50.0, 60.0]))
    return sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * k * mains * time + rng.uniform(0, 2 * np.pi))
               for k in range(1, 13))


class _Babble:
    """Babble from a corpus: 4-8 of its other speakers, each reading clips back to back."""

    def __init__(self, clips_by_speaker: dict[str, list[Path]]):
        self.clips_by_speaker = {speaker: list(paths) for speaker, paths in sorted(clips_by_speaker.items()) if paths}
        self.loaded: dict[Path, np.ndarray] = {}  # a corpus is read once per build

    def _samples(self, path: Path) -> np.ndarray:
        if path not in self.loaded:
            self.loaded[path] = audio.load(path)
        return self.loaded[path]

    def mix(self, size: int, rng: np.random.Generator, speaker: str) -> np.ndarray:
        others = [name for name in self.clips_by_speaker if name != speaker]
        if len(others) < 4:
            raise SpeechseqError(f"babble needs at least 4 other speakers; the corpus has {len(others)}")
        out = np.zeros(size)
        for voice in rng.choice(others, min(len(others), int(rng.integers(4, 9))), replace=False):
            clips = self.clips_by_speaker[str(voice)]
            stream = [np.zeros(int(rng.integers(0, audio.SAMPLE_RATE)), np.float32)]  # voices start apart
            while sum(part.size for part in stream) < size:
                stream.append(self._samples(clips[int(rng.integers(len(clips)))]))
            joined = np.concatenate(stream)[:size]
            out += joined / (joined.std() + 1e-9)
        return out


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


def build(
    clips_by_speaker: dict[str, list[Path]],
    out_dir: str | os.PathLike,
    options: SceneOptions = SceneOptions(),
    name: str = "scenes",
    babble: dict[str, list[Path]] | None = None,
) -> Path:
    """Write scenes of each speaker's clips as 16 kHz WAVs under `out_dir/audio/name/`
    and their manifest as `out_dir/name.jsonl`. Babble noise mixes other speakers of
    `babble` (default: of `clips_by_speaker` itself)."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(options.seed)
    picker = random.Random(options.seed)
    rooms = np.random.default_rng([options.seed, 1])  # its own stream: the same scenes with or without rooms
    lines = np.random.default_rng([options.seed, 2])  # so are channels
    rate = audio.SAMPLE_RATE
    utterances = []
    babble_source = _Babble(clips_by_speaker if babble is None else babble) if "babble" in options.noises else None
    for speaker, clips in clips_by_speaker.items():
        for index in range(options.scenes_per_speaker):
            length = int(options.seconds * rate)
            speech = np.zeros(length, np.float32)
            segments = []
            chosen = [_clip(c, options) for c in picker.sample(clips, picker.randint(1, options.max_clips))]
            slots = np.sort(rng.choice(np.arange(len(chosen) + 1) / (len(chosen) + 1), len(chosen), replace=False))
            cursor = 0
            for (clip, spans), slot in zip(chosen, slots):
                if clip.size > length:
                    raise SpeechseqError(f"a clip of speaker {speaker!r} is {clip.size / rate:.1f} s long: "
                                         f"longer than the {options.seconds:g} s scenes")
                start = max(cursor, int(slot * length))
                start = min(start, length - clip.size)
                if start < cursor:
                    break  # no room left for this clip
                speech[start : start + clip.size] = clip
                segments.extend(Segment(round((start + first) / rate, 4), round((start + last) / rate, 4), SPEECH)
                                for first, last in spans)
                cursor = start + clip.size + int(0.2 * rate)
            if options.reverb and rooms.random() < options.reverb:
                # The talker in a room; labels stay those of the dry sound (its tail is not speech).
                speech = np.convolve(speech, room_impulse_response(rooms, options.rt60))[:length].astype(np.float32)
            channel, channel_after_noise = None, False
            if options.channel_share and lines.random() < options.channel_share:
                channel, channel_after_noise = channels.draw(lines, options.channel_kinds), lines.random() < 0.5
                if not channel_after_noise:
                    speech = channels.through(speech, channel)
            snr = options.snrs[int(rng.integers(len(options.snrs)))]
            mixed, kind = speech, "clean"
            if snr is not None:
                voiced = np.concatenate([speech[int(s.start * rate) : int(s.end * rate)] for s in segments]
                                        or [speech])  # a clip with no sound: the noise is set by the scene
                kind = str(rng.choice(list(options.noises)))
                noise = _noise(kind, length, rng, babble_source, speaker)
                noise *= np.sqrt(np.mean(voiced**2) / 10 ** (snr / 10)) / (noise.std() + 1e-9)
                mixed = speech + noise
            mixed = mixed / max(1.0, float(np.abs(mixed).max()) / 0.99)  # no clipping
            if channel_after_noise:
                mixed = channels.through(mixed, channel)
            # The name tells the noise: "george_0003_brown_snr10.wav", "george_0004_snrclean.wav",
            # and the channel where there is one: "george_0005_white_snr5_gsm.wav".
            label = "snrclean" if snr is None else f"{kind}_snr{int(snr)}"
            label += f"_{channel}" if channel else ""
            path = out_dir / "audio" / name / speaker / f"{speaker}_{index:04d}_{label}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as temporary:
                soundfile.write(temporary, mixed, rate, format="WAV", subtype="PCM_16")
            utterances.append(Utterance(path.absolute(), "", speaker, options.seconds, tuple(segments)))
    return write_manifest(utterances, out_dir / f"{name}.jsonl")
