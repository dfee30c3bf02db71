"""Labelled stretches of time: frame tags <-> segments, smoothing, and the file formats.

Frame t of a model is centred on t * hop seconds (librosa `center=True`), and a
segment [start, end) holds the frames whose centres it covers (`data.frame_labels`).
So frames a..b-1 with one label come back as the segment [a * hop, b * hop), and a
segment whose edges lie on frame centres survives segments -> frames -> segments
exactly.

Formats: CSV/TSV (`start,end,label`, header optional; other columns ignored), RTTM (NIST; `SPEAKER` lines,
the label in the speaker field), Praat TextGrid (interval tiers, through praatio) and
JSON (`{"file", "segments": [{"start", "end", "label", "confidence"}]}`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.ndimage import median_filter

from speechseq.corpora import Segment
from speechseq import strict
from speechseq.errors import SpeechseqError

FORMATS = ("json", "csv", "rttm", "textgrid")
SMOOTHING_FILE = "smoothing.json"  # an export's own smoothing, in its assets/ (`speechseq.tuning`)


@dataclasses.dataclass(frozen=True)
class TaggedSegment:
    """A labelled stretch of audio from a tagger, with how sure it was."""

    start: float  # seconds
    end: float  # seconds
    label: str
    confidence: float  # mean posterior of the label over the segment's frames


@dataclasses.dataclass(frozen=True)
class SmoothingOptions:
    """Frame posteriors -> segments."""

    median_frames: int = 5  # median filter over each label's posterior; 1 = none
    onset: float = 0.5  # two labels: speech starts when its posterior rises above this...
    offset: float = 0.35  # ...and ends when it falls below this (hysteresis)
    min_segment: float = 0.05  # seconds: shorter segments go back to the background
    min_gap: float = 0.1  # seconds: shorter background gaps between one label are filled

    def __post_init__(self):
        if self.median_frames < 1 or not 0 <= self.offset <= self.onset <= 1:
            raise SpeechseqError(f"smoothing needs median_frames >= 1 and 0 <= offset <= onset <= 1, got {self}")
        if self.min_segment < 0 or self.min_gap < 0:
            raise SpeechseqError(f"smoothing durations must be >= 0, got {self}")

    @classmethod
    def from_dict(cls, values: dict) -> SmoothingOptions:
        return strict.from_dict(cls, values, "smoothing")


def shipped_smoothing(assets: str | os.PathLike) -> SmoothingOptions:
    """The smoothing an export ships in `assets/smoothing.json`, or the defaults if none."""
    path = Path(assets) / SMOOTHING_FILE
    if not path.exists():
        return SmoothingOptions()
    try:
        return SmoothingOptions.from_dict(json.loads(path.read_text())["options"])
    except (ValueError, KeyError, TypeError) as error:
        raise SpeechseqError(f"{path}: not a smoothing file ({error})") from None


def frames_to_runs(ids: Sequence[int]) -> list[tuple[int, int, int]]:
    """Frame ids -> (first frame, end frame, id) for each run of one id."""
    ids = np.asarray(ids)
    if ids.size == 0:
        return []
    edges = np.flatnonzero(np.diff(ids)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [ids.size]])
    return [(int(a), int(b), int(ids[a])) for a, b in zip(starts, ends)]


def from_frames(ids: Sequence[int], labels: Sequence[str], seconds_per_frame: float,
                background: str | None = None) -> list[Segment]:
    """Frame ids -> segments [a * hop, b * hop); background runs are left out."""
    return [
        Segment(round(a * seconds_per_frame, 6), round(b * seconds_per_frame, 6), labels[i])
        for a, b, i in frames_to_runs(ids)
        if labels[i] != background
    ]


def smooth(probabilities: np.ndarray, background_id: int, options: SmoothingOptions,
           seconds_per_frame: float) -> np.ndarray:
    """Frame posteriors [frames, labels] -> one id per frame, smoothed.

    Median-filters each posterior, then picks labels: with two labels by hysteresis
    on the foreground's posterior, otherwise by arg-max; then fills short gaps and
    drops short segments.
    """
    probabilities = np.asarray(probabilities, np.float32)
    if options.median_frames > 1 and len(probabilities):
        probabilities = median_filter(probabilities, size=(options.median_frames, 1), mode="nearest")
    if probabilities.shape[1] == 2:
        foreground = 1 - background_id
        ids = np.where(_hysteresis(probabilities[:, foreground], options.onset, options.offset),
                       foreground, background_id)
    else:
        ids = probabilities.argmax(axis=1)
    ids = _fill_gaps(ids, background_id, round(options.min_gap / seconds_per_frame))
    return _drop_short(ids, background_id, round(options.min_segment / seconds_per_frame))


def _hysteresis(posterior: np.ndarray, onset: float, offset: float) -> np.ndarray:
    """Frames that are on: a run of frames at or above `offset`, from the first frame in it
    at or above `onset` to its end (vectorised: the tuning grid smooths thousands of times)."""
    posterior = np.asarray(posterior, np.float64)  # thresholds compare as written, not rounded to float32
    frames = np.arange(len(posterior))
    low, high = posterior >= offset, posterior >= onset
    run_start = np.maximum.accumulate(np.where(low, 0, frames + 1))  # where the current run of `low` began
    last_high = np.maximum.accumulate(np.where(high, frames, -1))
    return low & (last_high >= run_start)


def _fill_gaps(ids: np.ndarray, background_id: int, frames: int) -> np.ndarray:
    ids = ids.copy()
    runs = frames_to_runs(ids)
    for before, gap, after in zip(runs, runs[1:], runs[2:]):
        if gap[2] == background_id and gap[1] - gap[0] < frames and before[2] == after[2] != background_id:
            ids[gap[0] : gap[1]] = before[2]
    return ids


def _drop_short(ids: np.ndarray, background_id: int, frames: int) -> np.ndarray:
    ids = ids.copy()
    for a, b, label in frames_to_runs(ids):
        if label != background_id and b - a < frames:
            ids[a:b] = background_id
    return ids


def tagged_segments(ids: np.ndarray, probabilities: np.ndarray, labels: Sequence[str], background: str,
                    seconds_per_frame: float) -> list[TaggedSegment]:
    """Smoothed frame ids + posteriors -> segments with confidences (background left out)."""
    return [
        TaggedSegment(round(a * seconds_per_frame, 4), round(b * seconds_per_frame, 4), labels[i],
                      float(np.mean(probabilities[a:b, i])))
        for a, b, i in frames_to_runs(ids)
        if labels[i] != background
    ]


# ---- reading -----------------------------------------------------------------------------


class SegmentFileError(SpeechseqError):
    """A segment file that cannot be read, with the place and the reason."""


def read(path: str | os.PathLike, tier: str | None = None) -> list[Segment]:
    """Segments from a .csv/.tsv, .rttm or .TextGrid file (by its extension)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return read_table(path, delimiter="\t" if suffix == ".tsv" else ",")
    if suffix == ".rttm":
        return read_rttm(path)
    if suffix == ".textgrid":
        return read_textgrid(path, tier)
    raise SegmentFileError(f"{path}: unknown segment format (expected .csv, .tsv, .rttm or .TextGrid)")


def _text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SegmentFileError(f"{path}: cannot read ({error})") from None


def _segment(start, end, label, where: str) -> Segment:
    try:
        start, end = float(start), float(end)
    except ValueError:
        raise SegmentFileError(f"{where}: start and end must be numbers, got {start!r}, {end!r}") from None
    if not 0 <= start < end < math.inf:
        raise SegmentFileError(f"{where}: needs 0 <= start < end, both finite, got {start}, {end}")
    if not str(label).strip():
        raise SegmentFileError(f"{where}: empty label")
    return Segment(start, end, str(label).strip())


def read_table(path: Path, delimiter: str = ",") -> list[Segment]:
    """`start,end,label` rows; a first row that is not numbers is taken as the header."""
    rows = [row for row in csv.reader(io.StringIO(_text(path)), delimiter=delimiter)
            if row and any(cell.strip() for cell in row)]
    if rows and not _is_number(rows[0][0]):
        header = [cell.strip().lower() for cell in rows[0]]
        missing = {"start", "end", "label"} - set(header)
        if missing:
            raise SegmentFileError(f"{path}: header lacks {', '.join(sorted(missing))}")
        columns = [header.index(name) for name in ("start", "end", "label")]
        short = next((number for number, row in enumerate(rows[1:], start=2) if len(row) <= max(columns)), None)
        if short is not None:
            raise SegmentFileError(f"{path}:{short}: fewer fields than the header's start, end and label need")
        rows = [[row[i] for i in columns] for row in rows[1:]]
        first_line = 2
    else:
        first_line = 1
    segments = []
    for number, row in enumerate(rows, start=first_line):
        if len(row) < 3:
            raise SegmentFileError(f"{path}:{number}: expected start, end, label")
        segments.append(_segment(row[0], row[1], row[2], f"{path}:{number}"))
    return segments


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_rttm(path: Path) -> list[Segment]:
    """RTTM `SPEAKER <file> <channel> <onset> <duration> <NA> <NA> <label> ...` lines."""
    segments = []
    for number, line in enumerate(_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith(";"):
            continue
        if len(fields) < 8:
            raise SegmentFileError(f"{path}:{number}: an RTTM line has at least 8 fields, got {len(fields)}")
        if fields[0] != "SPEAKER":
            continue
        try:
            onset, duration = float(fields[3]), float(fields[4])
        except ValueError:
            raise SegmentFileError(f"{path}:{number}: onset and duration must be numbers") from None
        segments.append(_segment(onset, onset + duration, fields[7], f"{path}:{number}"))
    return segments


def read_textgrid(path: Path, tier: str | None = None) -> list[Segment]:
    """The labelled intervals of one interval tier (the first, unless `tier` names one)."""
    from praatio import textgrid

    try:
        grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    except Exception as error:  # noqa: BLE001 - praatio raises many kinds
        raise SegmentFileError(f"{path}: not a readable TextGrid ({error})") from None
    names = [name for name in grid.tierNames if grid.getTier(name).tierType == textgrid.INTERVAL_TIER]
    if not names:
        raise SegmentFileError(f"{path}: no interval tier")
    if tier is not None and tier not in names:
        raise SegmentFileError(f"{path}: no interval tier {tier!r}; tiers: {', '.join(names)}")
    chosen = grid.getTier(tier or names[0])
    return [_segment(start, end, label, f"{path} tier {chosen.name}")
            for start, end, label in chosen.entries if label.strip()]


# ---- writing -----------------------------------------------------------------------------


def render(segments: Sequence[TaggedSegment], format: str, file: str, duration: float) -> str:
    """Tagger output in one of `FORMATS`."""
    if format == "json":
        return json.dumps({"file": file, "duration": round(duration, 3),
                           "segments": [dataclasses.asdict(s) | {"confidence": round(s.confidence, 4)}
                                        for s in segments]}) + "\n"
    if format == "csv":
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator="\n")
        writer.writerow(["file", "start", "end", "label", "confidence"])
        writer.writerows([file, f"{s.start:.3f}", f"{s.end:.3f}", s.label, f"{s.confidence:.4f}"] for s in segments)
        return rows.getvalue()
    if format == "rttm":
        name = Path(file).stem
        return "".join(
            f"SPEAKER {name} 1 {s.start:.3f} {s.end - s.start:.3f} <NA> <NA> {s.label} <NA> <NA>\n" for s in segments)
    if format == "textgrid":
        return _textgrid(segments, duration)
    raise SpeechseqError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")


def _textgrid(segments: Sequence[TaggedSegment], duration: float) -> str:
    from praatio import textgrid
    from praatio.utilities.constants import Interval

    end = max([duration, *(s.end for s in segments)])
    grid = textgrid.Textgrid()
    grid.addTier(textgrid.IntervalTier("tags", [Interval(s.start, s.end, s.label) for s in segments], 0, end))
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "tags.TextGrid"
        grid.save(str(target), format="long_textgrid", includeBlankSpaces=True)
        return target.read_text(encoding="utf-8")


def segment_frames(segments: Sequence[Segment], count: int, tags, features) -> np.ndarray:
    """The tag id of each of `count` feature frames under labelled `segments` (background
    elsewhere): the frame labels training uses (`data.frame_labels`)."""
    from speechseq import data  # TensorFlow's pipeline ops: only scoring and tuning need them

    return data.frame_labels([s.start for s in segments], [s.end for s in segments],
                             [tags.id(s.label) for s in segments], count, features, tags.background_id).numpy()
