"""Tag audio with an exported frame model: a label for every frame, then segments.

    tagger = Tagger("saved_models/voice-activity")
    result = tagger.tag("meeting.flac")
    for segment in result.segments: print(segment.start, segment.end, segment.label)

Audio goes through the model in overlapping windows (`windowing`, the engine `Transcriber`
uses too: windows of short files share batches); each frame's posterior is taken from the
window in whose own part (the window minus half the overlap at each inner edge) it lies,
so memory stays flat and no frame is counted twice. Posteriors are then smoothed into segments (`segments.SmoothingOptions`): by
the settings the export ships, tuned on dev audio (`speechseq.tuning`), unless given.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator

import numpy as np

from speechseq import audio, segments, windowing
from speechseq.segments import SmoothingOptions, TaggedSegment
from speechseq.windowing import WindowOptions


@dataclasses.dataclass(frozen=True)
class TaggerOptions:
    window_seconds: float = 30.0  # longest piece of audio the model sees at once
    overlap_seconds: float = 2.0  # shared by neighbouring windows
    batch_size: int = 8  # windows per model call
    smoothing: SmoothingOptions | None = None  # None: the model's own (assets/smoothing.json), else the defaults

    def windows(self) -> WindowOptions:
        return WindowOptions(self.window_seconds, self.overlap_seconds, self.batch_size)

    def __post_init__(self):
        self.windows()  # checks the windowing settings


@dataclasses.dataclass(frozen=True)
class Tagging:
    """One file's frame posteriors and the segments made from them."""

    source: str
    duration: float  # seconds
    probabilities: np.ndarray  # [frames, labels]
    frame_ids: np.ndarray  # [frames], smoothed
    segments: tuple[TaggedSegment, ...]
    labels: tuple[str, ...]
    seconds_per_frame: float


class Tagger:
    """An exported frame-tagging model, ready to tag files or waveforms."""

    def __init__(self, model: str | os.PathLike, options: TaggerOptions = TaggerOptions()):
        from speechseq.published import ExportError, open_published

        self.published = open_published(model)
        if self.published.task != "frames":
            raise ExportError(f"{self.published.folder} is not a tagging model (no tags.json)")
        self.tags = self.published.classes
        self.features = self.published.features
        self.options = options
        self.windows = options.windows()  # how audio is cut and batched (checked once)
        self.smoothing = options.smoothing or segments.shipped_smoothing(self.published.folder / "assets")
        self.seconds_per_frame = self.features.seconds_per_frame()
        self._tag_signature = self.published.signatures["tag"]  # the one model call (a test counts them)

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    def tag(self, source: str | os.PathLike | np.ndarray, sample_rate: int | None = None) -> Tagging:
        """One file, or a mono waveform (give `sample_rate` if not the model's)."""
        if isinstance(source, np.ndarray):
            sources = windowing.array_sources([source], self.windows, self.sample_rate, sample_rate,
                                              names=lambda _: "<array>")
            return next(windowing.run(sources, self.options.batch_size, self._tag_batch, self._result))
        result = next(self.tag_files([source]))
        if isinstance(result, audio.AudioError):
            raise result
        return result

    def tag_files(self, paths: Iterable[str | os.PathLike]) -> Iterator[Tagging | audio.AudioError]:
        """A result per path, in order: a `Tagging`, or the `AudioError` that stopped it."""
        sources = windowing.file_sources(paths, self.windows, self.sample_rate,
                                         self.features.window_ms / 1000)
        yield from windowing.run(sources, self.options.batch_size, self._tag_batch, self._result)

    def _tag_batch(self, batch: list[windowing.Window]) -> None:
        """One model call; each window keeps the posteriors of the frames it owns."""
        padded, lengths = audio.pad_batch([window.waveform for window in batch])
        outputs = self._tag_signature(audio=padded, audio_length=lengths)
        probabilities, lengths = outputs["probabilities"].numpy(), outputs["frame_length"].numpy()
        half = round(self.options.overlap_seconds / 2 / self.seconds_per_frame)
        step = round((self.options.window_seconds - self.options.overlap_seconds) / self.seconds_per_frame)
        for index, (window, length) in enumerate(zip(batch, lengths)):
            begin = 0 if window.first else half
            # Windows start `step` frames apart: a window owns up to where the next one's part begins.
            end = int(length) if window.last else min(int(length), step + half)
            window.pending.parts.append(probabilities[index, begin:end])

    def _result(self, item: windowing.Pending) -> Tagging:
        probabilities = np.concatenate(item.parts) if item.parts else np.zeros((0, self.tags.size), np.float32)
        ids = segments.smooth(probabilities, self.tags.background_id, self.smoothing, self.seconds_per_frame)
        found = segments.tagged_segments(ids, probabilities, self.tags.labels, self.tags.background,
                                         self.seconds_per_frame)
        return Tagging(item.source, item.duration, probabilities, ids, tuple(found), self.tags.labels,
                       self.seconds_per_frame)
