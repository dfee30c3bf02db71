"""Rooms a talker may be heard in: the impulse response of a random shoebox room from
pyroomacoustics' image-source model (the `rooms` extra), and a waveform heard through one.

    response = impulse_response(rng, (0.2, 0.7))     # direct sound at gain 1
    reverberant = heard_in_room(samples, rng)         # same length, time-aligned to the direct sound

Used by voice-activity scenes (`scenes.SceneOptions.reverb`) and by reverberant copies of
training utterances (`derived.in_rooms`).
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from speechseq import audio
from speechseq.errors import SpeechseqError

RT60 = (0.2, 0.7)  # seconds: reverberation times drawn uniformly, a small office to a large room


def impulse_response(rng: np.random.Generator, rt60_range: tuple[float, float] = RT60,
                     rate: int = audio.SAMPLE_RATE) -> np.ndarray:
    """The impulse response from a talker to a microphone in a random shoebox room
    (3-8 x 3-6 x 2.5-3.5 m) of a random reverberation time, its direct sound at gain 1."""
    try:
        import pyroomacoustics
    except ImportError as error:
        raise SpeechseqError("reverberant audio needs pyroomacoustics: pip install -e '.[rooms]'") from error
    size = rng.uniform([3.0, 3.0, 2.5], [8.0, 6.0, 3.5])
    absorption, max_order = pyroomacoustics.inverse_sabine(float(rng.uniform(*rt60_range)), size)
    room = pyroomacoustics.ShoeBox(size, fs=rate, materials=pyroomacoustics.Material(absorption),
                                   max_order=min(max_order, 17))  # image sources up to 17th order: the tail beyond is faint
    margin = 0.5  # metres from any wall
    room.add_source(rng.uniform(margin, size - margin))
    room.add_microphone(rng.uniform(margin, size - margin))
    room.compute_rir()
    response = np.asarray(room.rir[0][0], np.float64)
    return response / np.abs(response).max()


def heard_in_room(samples: np.ndarray, rng: np.random.Generator, rt60_range: tuple[float, float] = RT60,
                  rate: int = audio.SAMPLE_RATE) -> np.ndarray:
    """`samples` as a microphone in a random room hears them: the same length, the direct
    sound where it was (the response is cut to start at its direct path), no clipping."""
    response = impulse_response(rng, rt60_range, rate)
    response = response[int(np.argmax(np.abs(response))):]  # the propagation delay would shift every label
    heard = scipy.signal.fftconvolve(np.asarray(samples, np.float64), response)[: len(samples)]
    return (heard / max(1.0, float(np.abs(heard).max()) / 0.99)).astype(np.float32)
