"""Pictures, PNG through matplotlib: what a model heard (log-mel spectrogram, then
posteriors and segments for tagging, or word spans for transcription, on one time axis),
how a training run went (loss and error rates per epoch from its log.csv), and how
transcription speed and memory grow with audio length (benchmarks/transcribe.py)."""

from __future__ import annotations

import csv
import itertools
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from speechseq import audio
from speechseq.errors import SpeechseqError
from speechseq.files import atomic_path

if TYPE_CHECKING:  # `features` imports TensorFlow: the charts below need none of it
    from speechseq.features import FeatureConfig

MAX_PLOT_SECONDS = 120.0  # longer audio is drawn up to here: a picture of an hour shows nothing


def _log_mel(path: str | os.PathLike, config: FeatureConfig) -> np.ndarray:
    from speechseq.features import FeatureConfig, feature_layer

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


def _save(figure, target: str | os.PathLike) -> Path:
    import matplotlib.pyplot as plt

    target = Path(target)
    figure.tight_layout()
    with atomic_path(target) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
    return target


def tagging(path, result, config: FeatureConfig, target) -> Path:
    """`tagging_figure`, written to `target` as a PNG."""
    return _save(tagging_figure(path, result, config), target)


def tagging_figure(path, result, config: FeatureConfig):
    """Spectrogram, each label's frame posterior, and the segments, for one `Tagging`."""
    _, figure, (top, middle, bottom) = _figure(3)
    seconds = config.seconds_per_frame()
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
    return figure


def transcription(path, result, config: FeatureConfig, target) -> Path:
    """`transcription_figure`, written to `target` as a PNG."""
    return _save(transcription_figure(path, result, config), target)


def transcription_figure(path, result, config: FeatureConfig):
    """Spectrogram with each word's span from the CTC alignment, for one `Transcript`."""
    _, figure, (top, bottom) = _figure(2)
    seconds = config.seconds_per_frame()
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
    return figure


def _read_log(path: Path) -> dict[str, np.ndarray]:
    """Columns of a Keras CSVLogger file, one value per epoch.

    Rows with a missing or unreadable value are skipped (a run still training may be
    halfway through writing its last line); a resumed run's repeated epoch keeps its
    last row.
    """
    by_epoch = {}
    with open(path, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            try:
                values = {key: float(value) for key, value in row.items() if key is not None}
            except (TypeError, ValueError):
                continue
            if "epoch" in values:
                by_epoch[int(values["epoch"])] = values
    if not by_epoch:
        raise SpeechseqError(f"no complete epoch in {path}")
    rows = [by_epoch[epoch] for epoch in sorted(by_epoch)]
    return {key: np.array([row.get(key, np.nan) for row in rows]) for key in rows[-1]}


def training_curves(runs: list[str | os.PathLike], target) -> Path:
    """Loss and val_loss per epoch of each run directory's log.csv (log scale), and
    val_wer / val_cer on a second panel when any run logged them; best WER marked."""
    logs = {Path(run).name: _read_log(Path(run) / "log.csv") for run in runs}
    rates = any("val_wer" in log or "val_cer" in log for log in logs.values())
    plt, figure, axes = _figure(2 if rates else 1)
    from matplotlib.ticker import PercentFormatter

    colors = itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])  # one colour per run
    for (name, log), color in zip(logs.items(), colors):
        epochs = log["epoch"] + 1  # Keras counts epochs from 1 in its progress lines
        axes[0].plot(epochs, log["loss"], color=color, label=f"{name} loss")
        if "val_loss" in log:
            axes[0].plot(epochs, log["val_loss"], color=color, linestyle="--", label=f"{name} val_loss")
        for key, style in (("val_wer", "-"), ("val_cer", ":")):
            if rates and key in log:
                axes[1].plot(epochs, log[key], color=color, linestyle=style, label=f"{name} {key}")
        if rates and "val_wer" in log and np.isfinite(log["val_wer"]).any():
            best = int(np.nanargmin(log["val_wer"]))
            axes[1].plot(epochs[best], log["val_wer"][best], "o", color=color)
            axes[1].annotate(f"best {log['val_wer'][best]:.1%}", (epochs[best], log["val_wer"][best]),
                             textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8, color=color)
    axes[0].set_yscale("log")  # CTC losses fall by two orders of magnitude
    axes[0].set_ylabel("loss")
    axes[0].set_title("training curves: " + ", ".join(logs))
    if rates:
        axes[1].set_ylabel("error rate")
        axes[1].set_ylim(bottom=0)
        axes[1].yaxis.set_major_formatter(PercentFormatter(1.0))
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(loc="upper right", fontsize="small", ncol=len(logs))
    axes[-1].set_xlabel("epoch")
    return _save(figure, target)


def speed_and_memory(series: dict[str, list[tuple[float, float, float]]], target, title: str = "") -> Path:
    """Real-time factor and peak RSS against audio length: `series` maps a name (e.g.
    "long files") to its (audio seconds, wall seconds, peak RSS in MB) points, each
    point labelled with its value."""
    plt, figure, (top, bottom) = _figure(2)
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for name, points in series.items():
        points = sorted(points)
        minutes = [seconds / 60 for seconds, _, _ in points]
        for axis, values, text in (
            (top, [wall / seconds for seconds, wall, _ in points], "{:.2g}"),
            (bottom, [rss for _, _, rss in points], "{:.0f} MB"),
        ):
            axis.plot(minutes, values, "o-", label=name)
            for x, y in zip(minutes, values):
                axis.annotate(text.format(y), (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    top.set_ylabel("real-time factor")
    top.set_title(title)
    bottom.set_ylabel("peak RSS (MB)")
    bottom.set_xlabel("audio (minutes)")
    bottom.set_xscale("log")  # 1 to 60 minutes: equal steps for each doubling
    bottom.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    bottom.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    bottom.xaxis.set_minor_formatter(NullFormatter())
    bottom.margins(x=0.08)
    for axis in (top, bottom):
        axis.set_ylim(0, axis.get_ylim()[1] * 1.2)  # from zero, with room for the labels
        axis.grid(alpha=0.3, which="both")
        axis.legend(loc="best", fontsize="small")
    return _save(figure, target)
