"""Transmission channels a recording may have come through, applied to a waveform: what a
model trained on wideband microphone speech has not heard.

    narrowband   recorded at 8 kHz: nothing above 4 kHz (FSDD's clips are such)
    telephone    a landline: the 300-3400 Hz voice band at 8 kHz, G.711 mu-law
    gsm          a mobile call: the same band through GSM 06.10, a 13 kbit/s speech codec
    opus, mp3    a lossy codec at a low bit rate (voice calls over the internet, podcasts)

Codecs are libsndfile's (through soundfile), resampling is soxr's (`audio.resample`), the
band-pass scipy's. Each channel returns a waveform of the input's rate and length, aligned
with it (a test checks that a click stays where it was), so labels in time still hold.
`through(samples, kind)` applies one; `draw(rng, kinds)` picks one at random.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import scipy.signal
import soundfile

from speechseq import audio
from speechseq.errors import SpeechseqError

CHANNELS = ("narrowband", "telephone", "gsm", "opus", "mp3")
PHONE_RATE = 8000  # Hz: narrowband and telephone audio
VOICE_BAND = (300.0, 3400.0)  # Hz: the telephone band (ITU-T G.712)
# libsndfile's compression level (1 = the lowest bit rate it allows) and what it gives on 16 kHz speech:
LOSSY = {"opus": ("OGG", "OPUS", 1.0),  # about 12 kbit/s
         "mp3": ("MP3", "MPEG_LAYER_III", 0.99)}  # about 30 kbit/s (1.0 is refused for mp3)

# 4th-order Butterworth band-pass at 8 kHz, run forwards and backwards (no delay).
_VOICE_FILTER = scipy.signal.butter(4, VOICE_BAND, btype="bandpass", fs=PHONE_RATE, output="sos")


def through(samples: np.ndarray, kind: str, rate: int = audio.SAMPLE_RATE) -> np.ndarray:
    """`samples` (float32 mono at `rate`) as heard through the channel `kind`."""
    if kind not in CHANNELS:
        raise SpeechseqError(f"unknown channel {kind!r}: use one of {', '.join(CHANNELS)}")
    samples = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)  # what a 16-bit file can hold
    if kind == "narrowband":
        heard, heard_rate = audio.resample(samples, rate, PHONE_RATE), PHONE_RATE
    elif kind in ("telephone", "gsm"):
        band = scipy.signal.sosfiltfilt(_VOICE_FILTER, audio.resample(samples, rate, PHONE_RATE))
        codec = "ULAW" if kind == "telephone" else "GSM610"
        heard, heard_rate = _round_trip(band, PHONE_RATE, "WAV", codec), PHONE_RATE
    else:
        heard, heard_rate = _round_trip(samples, rate, *LOSSY[kind]), rate
    if heard_rate != rate:
        heard = audio.resample(heard, heard_rate, rate)
    return _same_length(heard, samples.size)


def draw(rng: np.random.Generator, kinds: Sequence[str] = CHANNELS) -> str:
    """One of `kinds`, uniformly."""
    check_kinds(kinds)
    return str(kinds[int(rng.integers(len(kinds)))])


def check_kinds(kinds: Sequence[str]) -> None:
    """Refuse an empty list or a name that is not a channel."""
    if not kinds or set(kinds) - set(CHANNELS):
        raise SpeechseqError(f"unknown channels {sorted(set(kinds) - set(CHANNELS)) or '(none given)'}: "
                             f"use some of {', '.join(CHANNELS)}")


def _round_trip(samples: np.ndarray, rate: int, container: str, codec: str,
                compression: float | None = None) -> np.ndarray:
    """Encode with libsndfile and decode again, in memory."""
    encoded = io.BytesIO()
    extra = {} if compression is None else {"compression_level": compression}
    soundfile.write(encoded, np.clip(samples, -1.0, 1.0), rate, format=container, subtype=codec, **extra)
    encoded.seek(0)
    decoded, decoded_rate = soundfile.read(encoded, dtype="float32")
    if decoded_rate != rate:  # libsndfile keeps the rate; a codec that did not would shift every label
        raise SpeechseqError(f"{container}/{codec} came back at {decoded_rate} Hz, not {rate} Hz")
    return decoded


def _same_length(samples: np.ndarray, size: int) -> np.ndarray:
    """Cut or zero-pad to `size` samples (resampling and codec frames round lengths)."""
    samples = np.asarray(samples, np.float32)[:size]
    return np.pad(samples, (0, size - samples.size)) if samples.size < size else samples
