"""Pictures of what a model heard: log-mel spectrogram, then posteriors and segments
(tagging) or word spans (transcription) on the same time axis. PNG through matplotlib."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from speechseq import audio
from speechseq.features import FeatureConfig, feature_layer
from speechseq.files import atomic_path

MAX_PLOT_SECONDS = 120.0  # longer audio is drawn up to here: a picture of an hour shows nothing


def _log_mel(path: str | os.PathLike, config: FeatureConfig) -> np.ndarray:
    waveform = audio.load(path, config.sample_rate)[: int(MAX_PLOT_SECONDS * config.sample_rate)]
    unnormalised = FeatureConfig(**(config.to_dict() | {"normalize": False, "n_mfcc": None}))
    frames, _ = feature_layer(unnormalised)(waveform[np.newaxis], np.array([waveform.size]))
    return np.asarray(frames[0]).T


def _figure(rows: int):
    import matplotlib

    matplotlib.use("Agg")  # files only: no screen needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(rows, 1, figsize=(12, 2.2 * rows + 1), sharex=True, squeeze=False)
    return plt, figure, axes[:, 0]


def _save(plt, figure, target: str | os.PathLike) -> Path:
    target = Path(target)
    figure.tight_layout()
    with atomic_path(target) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
    return target


def tagging(path, result, config: FeatureConfig, target) -> Path:
    """Spectrogram, each label's frame posterior, and the segments, for one `Tagging`."""
    plt, figure, (top, middle, bottom) = _figure(3)
    seconds = config.hop_length / config.sample_rate
    mel = _log_mel(path, config)
    top.imshow(mel, origin="lower", aspect="auto", extent=(0, mel.shape[1] * seconds, 0, mel.shape[0]))
    top.set_ylabel("mel band")
    top.set_title(str(path))
    times = np.arange(len(result.probabilities)) * result.seconds_per_frame
    for index, label in enumerate(result.labels):
        middle.plot(times, result.probabilities[:, index], label=label, linewidth=1)
    middle.set_ylabel("posterior")
    middle.set_ylim(0, 1.02)
    middle.legend(loc="upper right", fontsize="small", ncol=min(len(result.labels), 6))
    for segment in result.segments:
        bottom.axvspan(segment.start, segment.end, alpha=0.3)
        bottom.text((segment.start + segment.end) / 2, 0.5, segment.label, ha="center", va="center", fontsize=8)
    bottom.set_yticks([])
    bottom.set_xlabel("seconds")
    bottom.set_xlim(0, min(result.duration, MAX_PLOT_SECONDS))
    return _save(plt, figure, target)


def transcription(path, result, config: FeatureConfig, target) -> Path:
    """Spectrogram with each word's span from the CTC alignment, for one `Transcript`."""
    plt, figure, (top, bottom) = _figure(2)
    seconds = config.hop_length / config.sample_rate
    mel = _log_mel(path, config)
    top.imshow(mel, origin="lower", aspect="auto", extent=(0, mel.shape[1] * seconds, 0, mel.shape[0]))
    top.set_ylabel("mel band")
    top.set_title(str(path))
    for word in result.words:
        bottom.axvspan(word.start, word.end, alpha=0.25 + 0.5 * word.confidence)
        bottom.text((word.start + word.end) / 2, 0.5, word.text, ha="center", va="center", fontsize=8, rotation=90)
    bottom.set_yticks([])
    bottom.set_xlabel("seconds")
    bottom.set_xlim(0, min(result.duration, MAX_PLOT_SECONDS))
    return _save(plt, figure, target)
