"""Manifests: one JSON Lines format for every corpus, readers into it, and an audit.

A manifest line is an utterance:
    {"audio": "clips/a.flac", "text": "hello", "speaker": "kathleen", "duration": 2.31,
     "segments": [{"start": 0.1, "end": 0.6, "label": "hello"}]}
`audio` is relative to the manifest's folder, or absolute;
`segments` (optional) label stretches of time for frame tagging.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path


from speechseq import audio
from speechseq.errors import SpeechseqError
from speechseq.files import write_text
from speechseq.text import DIGIT_WORDS, OutOfVocabularyError, Vocabulary

DURATION_TOLERANCE = 0.1  # seconds a manifest's duration may differ from the file's


class CorpusError(SpeechseqError):
    """A manifest or corpus layout that cannot be read, with where and why."""


@dataclasses.dataclass(frozen=True)
class Segment:
    """A labelled stretch of time in an utterance."""

    start: float  # seconds from the start of the file
    end: float  # seconds, > start
    label: str


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One manifest entry."""

    audio: Path  # absolute path of the audio file
    text: str = ""  # transcript ("" for tagging-only corpora)
    speaker: str = "unknown"
    duration: float | None = None  # seconds; None when the manifest does not say
    segments: tuple[Segment, ...] = ()  # labelled time for frame tagging

    def to_json(self, relative_to: Path) -> str:
        # Audio inside the manifest's folder is written relative (the two move together).
        audio_path = self.audio.relative_to(relative_to) if self.audio.is_relative_to(relative_to) else self.audio
        entry = {"audio": str(audio_path), "text": self.text, "speaker": self.speaker}
        if self.duration is not None:
            entry["duration"] = round(self.duration, 4)
        if self.segments:
            entry["segments"] = [dataclasses.asdict(s) for s in self.segments]
        return json.dumps(entry, ensure_ascii=False)


def _parse_segment(value, where: str) -> Segment:
    try:
        segment = Segment(float(value["start"]), float(value["end"]), str(value["label"]))
    except (TypeError, KeyError, ValueError):
        raise CorpusError(f"{where}: a segment needs numeric start, end and a label") from None
    if not 0 <= segment.start < segment.end < math.inf:
        raise CorpusError(f"{where}: segment {segment.start}-{segment.end} s is empty, negative or endless")
    return segment


def _positive_seconds(value, where: str) -> float | None:
    """A manifest's duration: absent, or a finite number of seconds above zero."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise CorpusError(f"{where}: 'duration' must be a positive number of seconds, got {value!r}")
    return seconds


def _parse_entry(line: str, folder: Path, where: str) -> Utterance:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as error:
        raise CorpusError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(entry, dict) or not isinstance(entry.get("audio"), str):
        raise CorpusError(f"{where}: each line must be an object with an 'audio' path")
    if isinstance(entry.get("duration"), str):
        raise CorpusError(f"{where}: 'duration' must be a number, got {entry['duration']!r}")
    duration = _positive_seconds(entry.get("duration"), where)
    text = entry.get("text", "")
    if not isinstance(text, str):
        raise CorpusError(f"{where}: 'text' must be a string")
    segments = entry.get("segments", [])
    if not isinstance(segments, list):
        raise CorpusError(f"{where}: 'segments' must be a list")
    return Utterance(
        audio=(folder / entry["audio"]).absolute(),
        text=text,
        speaker=str(entry.get("speaker", "unknown")),
        duration=duration,
        segments=tuple(_parse_segment(s, where) for s in segments),
    )


# CSV/TSV manifest columns, by the names common tools give them (DeepSpeech, Common Voice).
TABLE_COLUMNS = {
    "audio": ("audio", "path", "wav_filename", "file"),
    "text": ("text", "transcript", "sentence"),
    "speaker": ("speaker", "client_id"),
    "duration": ("duration", "seconds"),
}


def data_root() -> Path:
    """Where the shared corpora lie: `$SPEECHSEQ_DATA`, else `shared/data` beside the source
    checkout (the recipes', benchmarks' and tests' one default)."""
    configured = os.environ.get("SPEECHSEQ_DATA")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a manifest: JSON Lines, or CSV/TSV with a header row (by the extension).

    Blank lines are skipped; any bad line is an error naming the file and line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CorpusError(f"{path}: cannot read manifest ({error})") from None
    if path.suffix.lower() in (".csv", ".tsv"):
        return _read_table(text, path, "\t" if path.suffix.lower() == ".tsv" else ",")
    # JSON Lines ends lines with \n only: `splitlines` would also cut at U+0085 or
    # U+2028, which JSON strings may hold as they are.
    return [
        _parse_entry(line, path.parent, f"{path}:{number}")
        for number, line in enumerate(text.split("\n"), start=1)
        if line.strip()
    ]


def _read_table(text: str, path: Path, delimiter: str) -> list[Utterance]:
    rows = [(number, row) for number, row in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1)
            if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0][1]]
    columns = {key: next((header.index(name) for name in names if name in header), None)
               for key, names in TABLE_COLUMNS.items()}
    if columns["audio"] is None:
        raise CorpusError(f"{path}:1: the header names no audio column (one of {', '.join(TABLE_COLUMNS['audio'])})")
    utterances = []
    for number, row in rows[1:]:
        where = f"{path}:{number}"
        if len(row) != len(header):
            raise CorpusError(f"{where}: {len(row)} fields, the header has {len(header)}")
        cell = {key: row[index].strip() for key, index in columns.items() if index is not None}
        if not cell["audio"]:
            raise CorpusError(f"{where}: empty audio path")
        utterances.append(Utterance(
            audio=(path.parent / cell["audio"]).absolute(),
            text=" ".join(cell.get("text", "").split()),
            speaker=cell.get("speaker") or "unknown",
            duration=_positive_seconds(cell.get("duration"), where),
        ))
    return utterances


def write_manifest(utterances: Iterable[Utterance], path: str | os.PathLike) -> Path:
    """Write a manifest atomically, audio paths relative to its folder."""
    path = Path(path).absolute()
    lines = [u.to_json(path.parent) for u in utterances]
    write_text(path, "".join(line + "\n" for line in lines))
    return path


# ---- readers: corpus layouts -> utterances -------------------------------------------


def _duration(path: Path) -> float | None:
    try:
        return audio.info(path).duration
    except audio.AudioError:
        return None  # left for the audit to report


def librispeech(root: str | os.PathLike) -> list[Utterance]:
    """A LibriSpeech tree (`speaker/chapter/speaker-chapter.trans.txt` beside `*.flac`)."""
    root = Path(root)
    transcripts = sorted(root.rglob("*.trans.txt"))
    if not transcripts:
        raise CorpusError(f"{root}: no *.trans.txt files: not a LibriSpeech tree")
    utterances = []
    for transcript in transcripts:
        for number, line in enumerate(transcript.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utterance_id, _, text = line.strip().partition(" ")
            if not text:
                raise CorpusError(f"{transcript}:{number}: expected '<utterance-id> <text>'")
            path = transcript.parent / f"{utterance_id}.flac"
            utterances.append(
                Utterance(path.absolute(), text, utterance_id.split("-")[0], _duration(path))
            )
    return utterances


def common_voice(tsv: str | os.PathLike, clips: str | os.PathLike | None = None) -> list[Utterance]:
    """A Common Voice split TSV (`client_id`, `path`, `sentence`, ...); clips in `clips/`."""
    tsv = Path(tsv)
    clips = Path(clips) if clips else tsv.parent / "clips"
    with open(tsv, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"client_id", "path", "sentence"} - set(reader.fieldnames or ())
        if missing:
            raise CorpusError(f"{tsv}: not a Common Voice TSV (no column {', '.join(sorted(missing))})")
        rows = list(reader)
    return [
        Utterance(
            (clips / row["path"]).absolute(),
            row["sentence"] or "",
            row["client_id"],
            _duration(clips / row["path"]),
        )
        for row in rows
    ]


def transcribed_folder(root: str | os.PathLike, speaker: str | None = None) -> list[Utterance]:
    """Audio files each with a `.txt` transcript beside it (the Kathleen layout)."""
    root = Path(root)
    utterances = []
    for path in audio.find_audio(root):
        transcript = path.with_suffix(".txt")
        if not transcript.is_file():
            raise CorpusError(f"{path}: no transcript {transcript.name} beside it")
        text = " ".join(transcript.read_text(encoding="utf-8").split())
        utterances.append(Utterance(path.absolute(), text, speaker or root.name, _duration(path)))
    if not utterances:
        raise CorpusError(f"{root}: no audio files with transcripts")
    return utterances


FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)$")


@dataclasses.dataclass(frozen=True)
class DigitClip:
    """One FSDD recording: `{digit}_{speaker}_{take}.wav`."""

    path: Path
    digit: int
    speaker: str
    take: int

    @property
    def word(self) -> str:
        return DIGIT_WORDS[self.digit]


def fsdd_clips(root: str | os.PathLike) -> list[DigitClip]:
    """The clips of a Free Spoken Digit Dataset folder (or its `recordings/`)."""
    root = Path(root)
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    clips = []
    for path in sorted(folder.glob("*.wav")):
        match = FSDD_NAME.match(path.stem)
        if match:
            digit, speaker, take = match.groups()
            clips.append(DigitClip(path.absolute(), int(digit), speaker, int(take)))
    if not clips:
        raise CorpusError(f"{folder}: no FSDD recordings named digit_speaker_take.wav")
    return clips


def fsdd(root: str | os.PathLike) -> list[Utterance]:
    """One utterance per FSDD clip, its transcript the digit's word."""
    return [Utterance(c.path, c.word, c.speaker, _duration(c.path)) for c in fsdd_clips(root)]


# ---- splits --------------------------------------------------------------------------


def prompt_of_take(utterance: Utterance) -> str:
    """A recording's prompt, from a file named PROMPT_TAKE (`arctic_a0001_1592748574.flac`
    -> `arctic_a0001`): every take of one prompt shares it."""
    return re.sub(r"_\d+$", "", utterance.audio.stem)


def split_by_group(utterances: Sequence[Utterance], group_of: Callable[[Utterance], str]) -> dict[str, list[Utterance]]:
    """train / dev / test with each group (a prompt, a speaker) on one side only: of the
    groups in sorted order, every 10th is test and the 5th of each ten dev."""
    groups = sorted({group_of(u) for u in utterances})
    side = {g: "test" if i % 10 == 0 else "dev" if i % 10 == 5 else "train" for i, g in enumerate(groups)}
    splits: dict[str, list[Utterance]] = {"train": [], "dev": [], "test": []}
    for utterance in utterances:
        splits[side[group_of(utterance)]].append(utterance)
    return splits


# ---- audit ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Problem:
    """Why one manifest entry cannot be used."""

    index: int  # position in the manifest, from 0
    audio: str
    reason: str


@dataclasses.dataclass(frozen=True)
class AuditReport:
    """Every entry checked; `good` may be trained on, `problems` say why the rest may not."""

    good: tuple[Utterance, ...]
    problems: tuple[Problem, ...]
    seconds: float  # total duration of the good entries
    speakers: int  # distinct speakers among the good entries

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {
            "entries": len(self.good) + len(self.problems),
            "good": len(self.good),
            "bad": len(self.problems),
            "hours": round(self.seconds / 3600, 4),
            "speakers": self.speakers,
            "problems": [dataclasses.asdict(p) for p in self.problems],
        }

    def format(self) -> str:
        lines = [
            f"{len(self.good) + len(self.problems)} entries: {len(self.good)} good, "
            f"{len(self.problems)} bad; {self.seconds / 3600:.3f} h of audio from "
            f"{self.speakers} speakers"
        ]
        lines += [f"  bad entry {p.index}: {p.audio}: {p.reason}" for p in self.problems]
        return "\n".join(lines)


def ctc_frames_needed(ids: Sequence[int]) -> int:
    """Output frames a CTC alignment of `ids` needs: one per label, plus a blank between repeats."""
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:]) if a == b)


# Shorter audio than one analysis window (features.FeatureConfig's default 25 ms) gives a
# model nothing to read.
ONE_FRAME_SECONDS = 0.025


def _check(utterance: Utterance, vocabulary, frames_per_second, subsampling, max_seconds, sample_rate,
           min_seconds):
    """The reason `utterance` is unusable, or None; also returns its duration."""
    try:
        samples = audio.load(utterance.audio, sample_rate=sample_rate)
    except audio.AudioError as error:
        return error.reason, 0.0
    seconds = samples.size / sample_rate
    if seconds < min_seconds:
        return audio.too_short(seconds, min_seconds), seconds
    if shortfall := audio.truncation(utterance.audio):  # usable audio, but not what was recorded
        return shortfall, seconds
    if utterance.duration is not None and abs(utterance.duration - seconds) > DURATION_TOLERANCE:
        return f"manifest says {utterance.duration:.2f} s, the file holds {seconds:.2f} s", seconds
    if max_seconds is not None and seconds > max_seconds:
        return f"{seconds:.1f} s is longer than the {max_seconds:.1f} s allowed", seconds
    for segment in utterance.segments:
        if segment.end > seconds + DURATION_TOLERANCE:
            return f"segment {segment.label!r} ends at {segment.end} s, after the audio", seconds
    if vocabulary is None:
        return None, seconds
    if not vocabulary.normalize(utterance.text):
        return "empty transcript", seconds
    try:
        ids = vocabulary.encode(utterance.text)
    except OutOfVocabularyError as error:
        return str(error), seconds
    frames = int(frames_per_second * seconds) + 1
    available = -(-frames // subsampling)
    needed = ctc_frames_needed(ids)
    if needed > available:
        return (
            f"transcript needs {needed} CTC frames, the audio gives {available} "
            f"({seconds:.2f} s at {frames_per_second:g} frames/s, subsampling {subsampling})"
        ), seconds
    return None, seconds


def audit(
    utterances: Sequence[Utterance],
    vocabulary: Vocabulary | None = None,
    frames_per_second: float = 100.0,
    subsampling: int = 1,
    max_seconds: float | None = None,
    sample_rate: int = audio.SAMPLE_RATE,
    min_seconds: float = ONE_FRAME_SECONDS,
) -> AuditReport:
    """Decode every entry at `sample_rate`, as training will, and check it for training.

    Checks the audio (readable, non-empty, finite, plausible sample rate, at least
    `min_seconds` long, a WAV holding all its header promised, duration as stated)
    and, when a `vocabulary` is given, the transcript (not empty, no
    out-of-vocabulary characters, short enough for CTC at `frames_per_second` after
    `subsampling`).
    """
    good, problems, seconds = [], [], 0.0
    for index, utterance in enumerate(utterances):
        reason, duration = _check(utterance, vocabulary, frames_per_second, subsampling, max_seconds, sample_rate,
                                  min_seconds)
        if reason is None:
            good.append(utterance)
            seconds += duration
        else:
            problems.append(Problem(index, str(utterance.audio), reason))
    return AuditReport(tuple(good), tuple(problems), seconds, len({u.speaker for u in good}))
