"""Tag audio with an exported frame model: a label for every frame, then segments.

    tagger = Tagger("saved_models/voice-activity")
    result = tagger.tag("meeting.flac")
    for segment in result.segments: print(segment.start, segment.end, segment.label)

Long audio goes through the model in overlapping windows read one at a time; each
frame's posterior is taken from the window in whose own part (the window minus half
the overlap at each inner edge) it lies, so memory stays flat and no frame is seen
twice. Posteriors are then smoothed into segments (`segments.SmoothingOptions`): by
the settings the export ships, tuned on dev audio (`speechseq.tuning`), unless given.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from speechseq import audio, segments
from speechseq.segments import SmoothingOptions, TaggedSegment


@dataclasses.dataclass(frozen=True)
class TaggerOptions:
    window_seconds: float = 30.0  # longest piece of audio the model sees at once
    overlap_seconds: float = 2.0  # shared by neighbouring windows
    batch_size: int = 8  # windows per model call
    smoothing: SmoothingOptions | None = None  # None: the model's own (assets/smoothing.json), else the defaults


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
        self.smoothing = options.smoothing or segments.shipped_smoothing(self.published.folder / "assets")
        self.seconds_per_frame = self.features.hop_length / self.features.sample_rate

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    def tag(self, source: str | os.PathLike | np.ndarray, sample_rate: int | None = None) -> Tagging:
        """One file, or a mono waveform (give `sample_rate` if not the model's)."""
        if isinstance(source, np.ndarray):
            waveform = audio.resample(np.asarray(source, np.float32), sample_rate or self.sample_rate, self.sample_rate)
            pieces = audio.windows(waveform, self.sample_rate, self.options.window_seconds, self.options.overlap_seconds)
            return self._tag_windows("<array>", waveform.size / self.sample_rate, pieces)
        path = Path(source)
        duration = audio.info(path, min_seconds=self.features.window_ms / 1000).duration
        windows = audio.chunks(path, self.options.window_seconds, self.options.overlap_seconds, self.sample_rate)
        return self._tag_windows(str(path), duration, windows)

    def tag_files(self, paths: Iterable[str | os.PathLike]) -> Iterator[Tagging | audio.AudioError]:
        """A result per path, in order: a `Tagging`, or the `AudioError` that stopped it."""
        for path in paths:
            try:
                yield self.tag(path)
            except audio.AudioError as error:
                yield error

    def _tag_windows(self, source: str, duration: float, windows) -> Tagging:
        pieces: list[np.ndarray] = []
        batch: list[np.ndarray] = []
        half = round(self.options.overlap_seconds / 2 / self.seconds_per_frame)
        first = True
        for _, waveform, last in windows:
            batch.append(waveform)
            if len(batch) == self.options.batch_size or last:
                pieces += self._own_frames(batch, half, first, last)
                batch, first = [], False
        probabilities = np.concatenate(pieces) if pieces else np.zeros((0, self.tags.size), np.float32)
        ids = segments.smooth(probabilities, self.tags.background_id, self.smoothing, self.seconds_per_frame)
        found = segments.tagged_segments(ids, probabilities, self.tags.labels, self.tags.background,
                                         self.seconds_per_frame)
        return Tagging(source, duration, probabilities, ids, tuple(found), self.tags.labels, self.seconds_per_frame)

    def _own_frames(self, batch: list[np.ndarray], half: int, first_batch: bool, last: bool) -> list[np.ndarray]:
        """Each window's posteriors, cut to the frames it owns."""
        padded, lengths = audio.pad_batch(batch)
        outputs = self.published.signatures["tag"](audio=padded, audio_length=lengths)
        probabilities, lengths = outputs["probabilities"].numpy(), outputs["frame_length"].numpy()
        step = round((self.options.window_seconds - self.options.overlap_seconds) / self.seconds_per_frame)
        owned = []
        for index, length in enumerate(lengths):
            is_first = first_batch and index == 0
            is_last = last and index == len(batch) - 1
            begin = 0 if is_first else half
            # Windows start `step` frames apart: a window owns up to where the next one's part begins.
            end = int(length) if is_last else min(int(length), step + half)
            owned.append(probabilities[index, begin:end])
        return owned
