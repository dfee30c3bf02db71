"""Transcripts as files: plain text, JSON, SubRip (.srt) and WebVTT (.vtt) subtitles."""

from __future__ import annotations

import json
from collections.abc import Sequence

from speechseq.decoding import Word
from speechseq.errors import SpeechseqError

FORMATS = ("txt", "json", "srt", "vtt")

# Subtitle cues: short enough to read, split where the speaker pauses.
CUE_MAX_SECONDS = 6.0
CUE_MAX_CHARACTERS = 42
CUE_SPLIT_AT_PAUSE = 1.0  # seconds of silence between words that always start a new cue


def cues(words: Sequence[Word]) -> list[tuple[float, float, str]]:
    """Group words into subtitle cues: (start, end, text)."""
    groups: list[list[Word]] = []
    for word in words:
        current = groups[-1] if groups else None
        if (
            current is None
            or word.start - current[-1].end >= CUE_SPLIT_AT_PAUSE
            or word.end - current[0].start > CUE_MAX_SECONDS
            or len(" ".join(w.text for w in current)) + 1 + len(word.text) > CUE_MAX_CHARACTERS
        ):
            groups.append([word])
        else:
            current.append(word)
    return [(g[0].start, max(g[-1].end, g[0].start + 0.001), " ".join(w.text for w in g)) for g in groups]


def _timestamp(seconds: float, separator: str) -> str:
    milliseconds = max(int(round(seconds * 1000)), 0)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    whole, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{separator}{milliseconds:03d}"


def srt(words: Sequence[Word]) -> str:
    blocks = [
        f"{index}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{text}\n"
        for index, (start, end, text) in enumerate(cues(words), start=1)
    ]
    return "\n".join(blocks)


def vtt(words: Sequence[Word]) -> str:
    blocks = [f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{text}\n" for start, end, text in cues(words)]
    return "WEBVTT\n\n" + "\n".join(blocks)


def render(transcript, format: str) -> str:
    """A `transcribe.Transcript` in one of `FORMATS`."""
    if format == "txt":
        return transcript.text + "\n"
    if format == "json":
        return json.dumps(transcript.to_dict(), ensure_ascii=False) + "\n"
    if format == "srt":
        return srt(transcript.words)
    if format == "vtt":
        return vtt(transcript.words)
    raise SpeechseqError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
