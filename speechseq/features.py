"""Acoustic frames as Keras layers built on `tf.signal`.

The same layer runs in `tf.data` (`ds.map`), in a model and inside an exported
SavedModel, so training and serving compute identical features. Framing follows
librosa's `center=True` convention, and the mel filterbank is librosa's (Slaney),
built once and kept as a graph constant: `tf.signal`'s own filterbank differs from
librosa's by up to 50x in power.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from speechseq.audio import SAMPLE_RATE
from speechseq import strict
from speechseq.errors import SpeechseqError
from speechseq.files import write_text


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """How waveforms become frames."""

    sample_rate: int = SAMPLE_RATE  # Hz of the waveforms the layer receives
    window_ms: float = 25.0  # analysis window length, milliseconds
    hop_ms: float = 10.0  # step between frames, milliseconds (100 frames per second)
    n_fft: int = 512  # FFT size, samples; >= the window length
    n_mels: int = 80  # mel bands
    fmin: float = 20.0  # lowest mel band edge, Hz
    fmax: float | None = None  # highest mel band edge, Hz; None = sample_rate / 2
    log_floor: float = 1e-6  # mel power floor before the natural log
    n_mfcc: int | None = None  # MFCC coefficients kept; None = log-mel frames
    normalize: bool = True  # per-utterance mean/variance normalisation of each band

    def __post_init__(self):
        if self.sample_rate <= 0 or self.n_mels < 1 or self.n_fft < 1:
            raise SpeechseqError("sample_rate, n_mels and n_fft must be positive")
        if not all(0 < value < math.inf for value in (self.window_ms, self.hop_ms, self.log_floor)):
            raise SpeechseqError("window_ms, hop_ms and log_floor must be positive numbers")
        if not 0 <= self.fmin < (self.fmax or self.sample_rate / 2) <= self.sample_rate / 2:
            raise SpeechseqError(f"need 0 <= fmin < fmax <= sample_rate / 2, got {self.fmin}, {self.fmax}")
        if self.win_length > self.n_fft:
            raise SpeechseqError(
                f"window of {self.win_length} samples is longer than n_fft={self.n_fft}"
            )
        if self.hop_length <= 0:
            raise SpeechseqError(f"hop_ms={self.hop_ms} gives a hop of 0 samples")
        if self.n_mfcc is not None and not 0 < self.n_mfcc <= self.n_mels:
            raise SpeechseqError(f"n_mfcc must be in 1..n_mels={self.n_mels}, got {self.n_mfcc}")

    @property
    def win_length(self) -> int:
        """Window length in samples."""
        return int(round(self.sample_rate * self.window_ms / 1000))

    @property
    def hop_length(self) -> int:
        """Hop in samples."""
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def seconds_per_frame(self, subsampling: int = 1) -> float:
        """Seconds between output frames of a model that keeps every `subsampling`-th frame."""
        return subsampling * self.hop_length / self.sample_rate

    @property
    def feature_dim(self) -> int:
        """Values per frame."""
        return self.n_mfcc or self.n_mels

    def num_frames(self, num_samples):
        """Frames from `num_samples` samples (librosa `center=True`: 1 + samples // hop).

        Works on Python ints, numpy arrays and tensors alike.
        """
        return 1 + num_samples // self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeatureConfig:
        return strict.from_dict(cls, values, "feature")

    def save(self, path) -> None:
        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path) -> FeatureConfig:
        with open(path, encoding="utf-8") as file:
            return cls.from_dict(json.load(file))


def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """librosa's Slaney mel filterbank as a [n_fft // 2 + 1, n_mels] float32 matrix."""
    import librosa

    weights = librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=config.n_fft,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
    )
    return np.ascontiguousarray(weights.T, dtype=np.float32)


@keras.saving.register_keras_serializable(package="speechseq")
class LogMel(keras.layers.Layer):
    """Waveforms + lengths -> log-mel frames + frame lengths.

    Call with `waveforms` [batch, samples] float32 and `lengths` [batch] int (true
    samples before right padding); returns `frames` [batch, time, n_mels] and
    `frame_lengths` [batch]. Unbatched input ([samples], scalar) is accepted too, for
    `ds.map` before batching. Samples past a length are ignored and frames past a
    frame length are zero, so padding never changes the real frames.
    """

    def __init__(self, config: FeatureConfig | dict | None = None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # features stay float32 under mixed precision
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = FeatureConfig.from_dict(config)
        self.config = config or FeatureConfig()
        self._filterbank = mel_filterbank(self.config)

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}

    def call(self, waveforms, lengths):
        waveforms = tf.convert_to_tensor(waveforms, tf.float32)
        lengths = tf.cast(lengths, tf.int32)
        unbatched = waveforms.shape.rank == 1
        if unbatched:
            waveforms, lengths = waveforms[tf.newaxis], tf.reshape(lengths, [1])
        frames, frame_lengths = self._frames(waveforms, lengths)
        if unbatched:
            return frames[0], frame_lengths[0]
        return frames, frame_lengths

    def _frames(self, waveforms, lengths):
        cfg = self.config
        in_length = tf.sequence_mask(lengths, tf.shape(waveforms)[1], dtype=waveforms.dtype)
        waveforms = waveforms * in_length
        # librosa centres windows on t * hop: half a window of zeros goes on the left;
        # the right gets the rest of a window so there are exactly 1 + samples // hop frames.
        left = cfg.win_length // 2
        padded = tf.pad(waveforms, [[0, 0], [left, cfg.win_length - left]])
        spectrum = tf.signal.stft(
            padded,
            frame_length=cfg.win_length,
            frame_step=cfg.hop_length,
            fft_length=cfg.n_fft,
            window_fn=tf.signal.hann_window,
            pad_end=False,
        )
        power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))
        mel = tf.tensordot(power, tf.constant(self._filterbank), axes=1)
        frames = self._finish(tf.math.log(tf.maximum(mel, cfg.log_floor)))
        frame_lengths = cfg.num_frames(lengths)
        in_frames = tf.sequence_mask(frame_lengths, tf.shape(frames)[1], dtype=frames.dtype)
        mask = in_frames[:, :, tf.newaxis]
        if cfg.normalize:
            frames = _normalize(frames, mask, frame_lengths)
        return frames * mask, frame_lengths

    def _finish(self, log_mel):
        """Hook for subclasses: turn log-mel frames into the final features."""
        return log_mel


@keras.saving.register_keras_serializable(package="speechseq")
class MFCC(LogMel):
    """Waveforms + lengths -> MFCC frames (orthonormal DCT-II of the log-mel bands)."""

    def __init__(self, config: FeatureConfig | dict | None = None, **kwargs):
        super().__init__(config, **kwargs)
        if self.config.n_mfcc is None:
            raise SpeechseqError("MFCC needs FeatureConfig.n_mfcc to be set")

    def _finish(self, log_mel):
        return tf.signal.dct(log_mel, type=2, norm="ortho")[..., : self.config.n_mfcc]


def _normalize(frames, mask, frame_lengths):
    """Zero mean, unit variance per band over each utterance's real frames."""
    count = tf.maximum(tf.cast(frame_lengths, frames.dtype), 1.0)[:, tf.newaxis, tf.newaxis]
    mean = tf.reduce_sum(frames * mask, axis=1, keepdims=True) / count
    centred = (frames - mean) * mask
    variance = tf.reduce_sum(tf.square(centred), axis=1, keepdims=True) / count
    # A band that never leaves the log floor has no variance: do not blow up its rounding noise.
    return centred * tf.math.rsqrt(tf.maximum(variance, 1e-4))


def feature_layer(config: FeatureConfig, **kwargs) -> LogMel:
    """The layer `config` asks for: `MFCC` when `n_mfcc` is set, else `LogMel`."""
    return MFCC(config, **kwargs) if config.n_mfcc else LogMel(config, **kwargs)
