"""Synthetic speakers: eSpeak NG (from the PyPI package `espeakng-loader`) through ctypes.

A `Voice` is a voice name plus a variant, rate and pitch; many voices make many
"speakers" for training data and for tests of robustness to unheard voices. The
eSpeak NG library keeps one synthesizer per process, so `Synthesizer` serialises
its use with a lock and is safe to share between threads.
"""

from __future__ import annotations

import ctypes
import dataclasses
import threading

import espeakng_loader
import numpy as np

from speechseq.errors import SpeechseqError

AUDIO_OUTPUT_RETRIEVAL = 1  # espeak_AUDIO_OUTPUT: hand samples to our callback
POS_CHARACTER = 1  # espeak_POSITION_TYPE
CHARS_UTF8 = 1  # espeakCHARS_UTF8
RATE, VOLUME, PITCH, RANGE = 1, 2, 3, 4  # espeak_PARAMETER ids
EE_OK = 0

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

# English voices of eSpeak NG and the variants that change its timbre.
ENGLISH_VOICES = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2")


@dataclasses.dataclass(frozen=True)
class Voice:
    """One synthetic speaker."""

    name: str = "en-us"  # eSpeak NG voice
    variant: str = ""  # timbre variant ("m3", "f2", "klatt", ...); "" = the voice's own
    rate: int = 160  # words per minute (80-450)
    pitch: int = 50  # base pitch, 0-100
    pitch_range: int = 50  # intonation range, 0-100

    @property
    def speaker(self) -> str:
        """A speaker id for manifests."""
        variant = f"+{self.variant}" if self.variant else ""
        return f"espeak-{self.name}{variant}-r{self.rate}-p{self.pitch}"


def voices(count: int, seed: int = 0) -> list[Voice]:
    """`count` distinct English voices with random variants, rates and pitches."""
    rng = np.random.default_rng(seed)
    chosen, seen = [], set()
    while len(chosen) < count:
        voice = Voice(
            name=str(rng.choice(ENGLISH_VOICES)),
            variant=str(rng.choice(VARIANTS)),
            rate=int(rng.integers(130, 200)),
            pitch=int(rng.integers(25, 75)),
            pitch_range=int(rng.integers(30, 80)),
        )
        if voice.speaker not in seen:
            seen.add(voice.speaker)
            chosen.append(voice)
    return chosen


class Synthesizer:
    """Text -> float32 mono speech at `sample_rate` (eSpeak NG's own, 22,050 Hz)."""

    _lock = threading.Lock()  # the C library holds one synthesizer per process
    # espeak_Initialize may run once per process: a second call hangs the next synthesis
    # (measured), so every Synthesizer after the first reuses the first one's rate.
    _started_rate: int | None = None

    def __init__(self):
        self._library = ctypes.CDLL(espeakng_loader.get_library_path())
        self._library.espeak_Initialize.restype = ctypes.c_int
        self._library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._library.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept alive as long as the synthesizer
        with self._lock:
            if Synthesizer._started_rate is None:
                data = espeakng_loader.get_data_path().encode()
                rate = self._library.espeak_Initialize(AUDIO_OUTPUT_RETRIEVAL, 0, data, 0)
                if rate <= 0:
                    raise RuntimeError(f"eSpeak NG failed to start (data at {data.decode()})")
                Synthesizer._started_rate = rate
            self.sample_rate = Synthesizer._started_rate

    def _collect(self, samples, count, events):
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0 = go on synthesising

    def speak(self, text: str, voice: Voice = Voice()) -> np.ndarray:
        """Synthesise `text` with `voice`; float32 samples in [-1, 1]."""
        name = f"{voice.name}+{voice.variant}" if voice.variant else voice.name
        encoded = text.encode("utf-8") + b"\0"
        with self._lock:
            self._library.espeak_SetSynthCallback(self._callback)
            if self._library.espeak_SetVoiceByName(name.encode()) != EE_OK:
                raise SpeechseqError(f"eSpeak NG has no voice {name!r}")
            for parameter, value in [(RATE, voice.rate), (PITCH, voice.pitch), (RANGE, voice.pitch_range)]:
                self._library.espeak_SetParameter(parameter, value, 0)
            self._chunks = []
            status = self._library.espeak_Synth(encoded, len(encoded), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
            self._library.espeak_Synchronize()
            if status != EE_OK:
                raise RuntimeError(f"eSpeak NG could not synthesise {text!r} (status {status})")
            chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, np.float32)
        return (np.concatenate(chunks).astype(np.float32) / 32768.0).clip(-1.0, 1.0)


def synthetic_corpus(texts, voice_list, out_dir, synthesizer: Synthesizer | None = None):
    """Every text read by every voice, as 16-bit WAVs under `out_dir`: manifest entries.

    Files are named by a hash of their text, so calls with other texts into the same
    folder never reuse each other's audio, and files that exist already are kept (a
    rebuild only adds what is missing).
    """
    import hashlib
    from pathlib import Path

    import soundfile

    from speechseq.corpora import Utterance
    from speechseq.files import atomic_path

    synthesizer = synthesizer or Synthesizer()
    out_dir = Path(out_dir)
    utterances = []
    for voice in voice_list:
        folder = out_dir / voice.speaker
        folder.mkdir(parents=True, exist_ok=True)
        for text in texts:
            path = folder / f"{hashlib.sha1(text.encode('utf-8')).hexdigest()[:16]}.wav"
            if not path.exists():
                samples = synthesizer.speak(text, voice)
                with atomic_path(path) as temporary:
                    soundfile.write(temporary, samples, synthesizer.sample_rate, format="WAV", subtype="PCM_16")
            frames = soundfile.info(path).frames
            utterances.append(Utterance(path.absolute(), text, voice.speaker, frames / synthesizer.sample_rate))
    return utterances


def digit_clips(voice_list, out_dir, takes, sample_rate: int = 8000, synthesizer: Synthesizer | None = None):
    """Each voice saying each digit word alone, once per take, written FSDD-style as
    `out_dir/{digit}_{speaker}_{take}.wav` at `sample_rate` (FSDD's 8 kHz), trimmed of
    silence at 40 dB below the peak: clips `derived.connected_digits` can join like
    FSDD's, so each digit's segment is known exactly. FSDD names allow letters only in
    the speaker, so each voice gets a letters-only name (`out_dir/voices.json` maps
    them back). Each take nudges the rate and pitch, so no two takes are the same sound.
    Files that exist already are kept. Returns their `corpora.DigitClip`s.
    """
    import hashlib
    import json
    from pathlib import Path

    import librosa
    import soundfile

    from speechseq import audio
    from speechseq.corpora import DigitClip
    from speechseq.files import atomic_path, write_text
    from speechseq.text import DIGIT_WORDS

    synthesizer = synthesizer or Synthesizer()
    out_dir = Path(out_dir)
    names, clips = {}, []
    for voice in voice_list:
        digest = hashlib.sha1(voice.speaker.encode()).hexdigest()
        name = "espeak" + "".join(chr(ord("a") + int(c, 16)) for c in digest[:8])
        names[name] = voice.speaker
        rng = np.random.default_rng(int(digest[:8], 16))
        for take in takes:
            nudged = dataclasses.replace(voice, rate=int(voice.rate + rng.integers(-20, 21)),
                                         pitch=int(np.clip(voice.pitch + rng.integers(-8, 9), 0, 100)))
            for digit, word in enumerate(DIGIT_WORDS):
                path = out_dir / f"{digit}_{name}_{take}.wav"
                if not path.exists():
                    speech = audio.resample(synthesizer.speak(word, nudged), synthesizer.sample_rate, sample_rate)
                    speech, _ = librosa.effects.trim(speech, top_db=40, frame_length=256, hop_length=64)
                    with atomic_path(path) as temporary:
                        soundfile.write(temporary, speech, sample_rate, format="WAV", subtype="PCM_16")
                clips.append(DigitClip(path.absolute(), digit, name, take))
    write_text(out_dir / "voices.json", json.dumps(names, indent=2) + "\n")
    return clips
