"""One windowing engine for running an export over audio of any length: `Transcriber` and
`Tagger` both use it, each with its own stitching.

Every source (a file or a waveform) is cut into overlapping windows (`audio.chunks` reads a
file one window at a time, so memory stays flat); windows of consecutive sources share
batches, so a folder of short files costs one model call per `batch_size` windows, not one
per file. A source's result is handed back, in input order, once all its windows have come
back. A window owns its span minus half the overlap at each inner edge: what the model says
there is kept, the rest is left to the neighbour that sees it with more context.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from speechseq import audio
from speechseq.errors import SpeechseqError


@dataclasses.dataclass(frozen=True)
class WindowOptions:
    """How long audio is cut and batched."""

    window_seconds: float = 30.0  # longest piece of audio the model sees at once
    overlap_seconds: float = 4.0  # shared by neighbouring windows
    batch_size: int = 8  # windows per model call

    def __post_init__(self):
        if not 0 <= 2 * self.overlap_seconds < self.window_seconds:
            raise SpeechseqError("overlap_seconds must be under half of window_seconds")
        if self.batch_size < 1:
            raise SpeechseqError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclasses.dataclass
class Pending:
    """A source in flight: its windows go out, their parts come back (`parts`, in order)."""

    source: str
    duration: float
    sent: int = 0  # windows handed to the model
    returned: int = 0  # windows whose parts came back
    all_sent: bool = False  # the source has no more windows
    parts: list = dataclasses.field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.all_sent and self.returned == self.sent


@dataclasses.dataclass(frozen=True)
class Window:
    pending: Pending
    start: float  # seconds into the source
    first: bool
    last: bool
    waveform: np.ndarray

    def owned(self, options: WindowOptions, sample_rate: int) -> tuple[float, float]:
        """(start, end) in seconds of the source that this window owns."""
        half = options.overlap_seconds / 2
        return (self.start + (0.0 if self.first else half),
                self.start + self.waveform.size / sample_rate - (0.0 if self.last else half))


def file_sources(paths: Iterable[str | os.PathLike], options: WindowOptions, sample_rate: int, min_seconds: float):
    """(source, duration or the `AudioError` that stops it, windows) per file."""
    for path in paths:
        try:
            duration = audio.info(path, min_seconds=min_seconds).duration
        except audio.AudioError as error:
            yield str(path), error, None
            continue
        yield str(path), duration, audio.chunks(path, options.window_seconds, options.overlap_seconds, sample_rate)


def array_sources(waveforms: Iterable[np.ndarray], options: WindowOptions, sample_rate: int,
                  given_rate: int | None = None, names: Callable[[int], str] = lambda i: f"<array {i}>"):
    """(source, duration, windows) per mono float waveform at `given_rate` (default `sample_rate`)."""
    for index, waveform in enumerate(waveforms):
        waveform = np.asarray(waveform, np.float32)
        if waveform.ndim != 1:
            raise SpeechseqError(f"expected a mono waveform, got shape {waveform.shape}")
        waveform = audio.resample(waveform, given_rate or sample_rate, sample_rate)
        pieces = audio.windows(waveform, sample_rate, options.window_seconds, options.overlap_seconds)
        yield names(index), waveform.size / sample_rate, pieces


def run(sources, batch_size: int, run_batch: Callable[[list[Window]], None],
        result: Callable[[Pending], object]) -> Iterator:
    """Batch every source's windows across sources, yield `result(pending)` (or the source's
    `AudioError`) per source in order. `run_batch(windows)` runs the model on one batch and
    appends each window's part to `window.pending.parts`."""
    pending: list[Pending | audio.AudioError] = []
    batch: list[Window] = []

    def flush():
        run_batch(batch)
        for window in batch:
            window.pending.returned += 1
        batch.clear()

    def finished():
        while pending and (isinstance(pending[0], audio.AudioError) or pending[0].finished):
            item = pending.pop(0)
            yield item if isinstance(item, audio.AudioError) else result(item)

    for source, duration, windows in sources:
        if isinstance(duration, audio.AudioError):
            pending.append(duration)
            yield from finished()
            continue
        item = Pending(source, duration)
        pending.append(item)
        try:
            for start, waveform, last in windows:
                batch.append(Window(item, start, item.sent == 0, last, waveform))
                item.sent += 1
                if len(batch) == batch_size:
                    flush()
                    yield from finished()
            item.all_sent = True
        except audio.AudioError as error:  # a file that breaks half-way: report it, go on
            batch[:] = [window for window in batch if window.pending is not item]
            pending[pending.index(item)] = error
        yield from finished()
    if batch:
        flush()
    yield from finished()
