"""Transmission channels (speechseq.channels) on a real wideband recording: each takes away
what its channel takes away, keeps the speech where it was in time, and keeps its length."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import kathleen_clip
from speechseq import audio, channels
from speechseq.errors import SpeechseqError

RATE = audio.SAMPLE_RATE


@pytest.fixture(scope="module")
def sentence() -> np.ndarray:
    return audio.load(kathleen_clip("for the twentieth time that evening the two men shook hands"))


def _band_share(samples: np.ndarray, low: float, high: float) -> float:
    """Share of the signal's energy between `low` and `high` Hz."""
    power = np.abs(np.fft.rfft(samples)) ** 2
    frequencies = np.fft.rfftfreq(samples.size, 1 / RATE)
    return float(power[(frequencies >= low) & (frequencies < high)].sum() / power.sum())


def _frame_energy(samples: np.ndarray) -> np.ndarray:
    """log10 power of 10 ms frames, floored 40 dB under the loudest (the codecs' own floors differ)."""
    frames = samples[: samples.size // 160 * 160].reshape(-1, 160)
    power = np.log10(np.mean(frames**2, axis=1) + 1e-10)
    return np.maximum(power, power.max() - 4)


@pytest.mark.parametrize("kind", channels.CHANNELS)
def test_a_channel_keeps_the_speech_in_place_and_the_length(sentence, kind):
    heard = channels.through(sentence, kind)
    assert heard.dtype == np.float32 and heard.shape == sentence.shape
    before, after = _frame_energy(sentence), _frame_energy(heard)
    # The 10 ms energy contours line up best with no shift: labels in time still hold.
    shifts = range(-5, 6)
    agreement = [np.corrcoef(np.roll(after, shift)[10:-10], before[10:-10])[0, 1] for shift in shifts]
    assert shifts[int(np.argmax(agreement))] == 0 and max(agreement) > 0.85, (kind, agreement)


def test_each_channel_takes_away_what_its_line_does(sentence):
    assert _band_share(sentence, 4000, 8000) > 0.005  # the clip has sound above 4 kHz to lose
    assert _band_share(sentence, 0, 250) > 0.05  # and below the telephone band
    heard = {kind: channels.through(sentence, kind) for kind in channels.CHANNELS}
    for kind in ("narrowband", "telephone", "gsm"):  # 8 kHz: nothing above 4 kHz
        assert _band_share(heard[kind], 4000, 8000) < 0.0005, kind
    for kind in ("telephone", "gsm"):  # and the telephone band's low edge
        assert _band_share(heard[kind], 0, 250) < 0.1 * _band_share(sentence, 0, 250), kind
    assert _band_share(heard["narrowband"], 0, 250) > 0.5 * _band_share(sentence, 0, 250)  # an 8 kHz microphone keeps it
    for kind in ("telephone", "gsm", "opus", "mp3"):  # codecs: not the same samples any more
        error = heard[kind] - sentence
        assert 10 * np.log10(np.sum(sentence**2) / np.sum(error**2)) < 25, kind


def test_unknown_channels_are_refused_by_name(sentence):
    with pytest.raises(SpeechseqError, match="unknown channel 'radio'"):
        channels.through(sentence, "radio")
    with pytest.raises(SpeechseqError, match="radio"):
        channels.draw(np.random.default_rng(0), ["gsm", "radio"])
    assert channels.draw(np.random.default_rng(0), ["gsm"]) == "gsm"
