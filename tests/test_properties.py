"""Property-based tests (hypothesis): whatever the input, each reader either returns sound
values or raises its own one-line error, never another exception."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speechseq import audio, corpora, runfile, segments
from speechseq.corpora import CorpusError, Segment, Utterance
from speechseq.runfile import RunFileError
from speechseq.segments import SegmentFileError

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _written(content: bytes | str, suffix: str) -> Path:
    """`content` in a fresh file (hypothesis runs many examples per test function)."""
    folder = Path(tempfile.mkdtemp(prefix="prop-"))
    path = folder / f"input{suffix}"
    path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    return path


def _read_or_refused(read, path: Path, error_type: type[Exception]) -> list:
    """`read(path)`'s items, or [] when it refused the file with `error_type` naming it."""
    try:
        return read(path)
    except error_type as error:
        assert str(error).startswith(f"{path}") and "Traceback" not in str(error)
        return []


def _sound_segment(segment) -> None:
    assert math.isfinite(segment.end) and 0 <= segment.start < segment.end and segment.label


def _check_waveform(waveform: np.ndarray) -> None:
    assert waveform.dtype == np.float32 and waveform.ndim == 1 and waveform.size > 0
    assert np.isfinite(waveform).all() and np.abs(waveform).max() <= 1.0


# ---- audio ---------------------------------------------------------------------------------

WAV_HEADER_OF_ONE_SAMPLE = b"RIFF" + (38).to_bytes(4, "little") + b"WAVEfmt " + bytes.fromhex(
    "10000000 0100 0100 401f0000 803e0000 0200 1000") + b"data" + (2).to_bytes(4, "little") + b"\x00\x10"


@SETTINGS
@given(content=st.binary(max_size=3000), suffix=st.sampled_from([".wav", ".flac", ".ogg", ".mp3", ".bin"]))
def test_any_bytes_load_as_clean_audio_or_fail_naming_the_file(content, suffix):
    path = _written(content, suffix)
    try:
        waveform = audio.load(path)
    except audio.AudioError as error:
        assert str(error).startswith(f"{path}: ") and "\n" not in str(error)
    else:
        _check_waveform(waveform)


@SETTINGS
@given(position=st.integers(0, len(WAV_HEADER_OF_ONE_SAMPLE) - 1), value=st.integers(0, 255))
def test_a_wav_header_with_any_byte_changed_loads_or_fails_naming_the_file(position, value):
    content = bytearray(WAV_HEADER_OF_ONE_SAMPLE)
    content[position] = value
    path = _written(bytes(content), ".wav")
    try:
        _check_waveform(audio.load(path))
    except audio.AudioError as error:
        assert str(error).startswith(f"{path}: ")


@SETTINGS
@given(
    samples=st.integers(1, 4000),
    channels=st.integers(1, 8),
    rate=st.sampled_from([4000, 8000, 11025, 16000, 22050, 44100, 48000, 96000, 384000]),
    subtype=st.sampled_from(["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_valid_wavs_of_any_shape_load_at_16k(samples, channels, rate, subtype, seed):
    signal = np.random.default_rng(seed).uniform(-1.5, 1.5, (samples, channels))
    path = _written(b"", ".wav")
    soundfile.write(path, signal, rate, subtype=subtype)
    try:
        waveform = audio.load(path)
    except audio.AudioError as error:
        # Only a file shorter than one sample at 16 kHz may be refused, and it says so.
        assert samples * 16000 < rate and "too short" in error.reason
        return
    _check_waveform(waveform)
    assert abs(waveform.size - samples * 16000 / rate) <= 2


# ---- manifests -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
entries = st.fixed_dictionaries(
    {"audio": st.text(min_size=1, max_size=20) | json_values},
    optional={"text": json_values, "speaker": json_values, "duration": json_values,
              "segments": st.lists(st.dictionaries(st.sampled_from(["start", "end", "label"]), json_values), max_size=2)
              | json_values},
)


def _sound_utterance(utterance: Utterance) -> None:
    assert isinstance(utterance.text, str) and isinstance(utterance.speaker, str)
    assert utterance.duration is None or (math.isfinite(utterance.duration) and utterance.duration > 0)
    for segment in utterance.segments:
        _sound_segment(segment)


@SETTINGS
@given(lines=st.lists(entries.map(json.dumps) | st.text(max_size=40), max_size=5))
def test_any_jsonl_manifest_reads_as_sound_entries_or_names_the_bad_line(lines):
    path = _written("\n".join(lines), ".jsonl")
    for utterance in _read_or_refused(corpora.read_manifest, path, CorpusError):
        _sound_utterance(utterance)


@SETTINGS
@given(rows=st.lists(st.lists(st.text(max_size=12), max_size=5), max_size=5),
       header=st.sampled_from(["audio,text,speaker,duration", "wav_filename,wav_filesize,transcript", "text", ""]))
def test_any_csv_manifest_reads_as_sound_entries_or_names_the_bad_row(rows, header):
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    path = _written(f"{header}\n{buffer.getvalue()}", ".csv")
    for utterance in _read_or_refused(corpora.read_manifest, path, CorpusError):
        _sound_utterance(utterance)


utterances = st.builds(
    Utterance,
    audio=st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=12).map(
        lambda name: Path("/data") / name),
    text=st.text(max_size=30),
    speaker=st.text(min_size=1, max_size=10),
    duration=st.none() | st.floats(0.01, 1e5),
    segments=st.lists(st.tuples(st.floats(0, 100), st.floats(0.001, 10), st.text(min_size=1, max_size=6).filter(str.strip))
                      .map(lambda t: Segment(t[0], t[0] + t[1], t[2].strip())), max_size=3).map(tuple),
)


@SETTINGS
@given(items=st.lists(utterances, max_size=4))
def test_manifests_read_back_what_was_written(items):
    path = corpora.write_manifest(items, _written("", ".jsonl"))
    read = corpora.read_manifest(path)
    assert [(u.audio, u.text, u.speaker) for u in read] == [(u.audio, u.text, u.speaker) for u in items]
    for before, after in zip(items, read):
        assert after.duration == (None if before.duration is None else round(before.duration, 4))
        assert after.segments == before.segments


# ---- segment files -------------------------------------------------------------------------


@SETTINGS
@given(content=st.text(max_size=200) | st.binary(max_size=200),
       suffix=st.sampled_from([".csv", ".tsv", ".rttm", ".TextGrid"]))
def test_any_segment_file_reads_as_sound_segments_or_names_the_problem(content, suffix):
    path = _written(content, suffix)
    for segment in _read_or_refused(segments.read, path, SegmentFileError):
        _sound_segment(segment)


@SETTINGS
@given(rows=st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5),
                               st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5),
                               st.text(max_size=5)), max_size=4),
       header=st.booleans())
def test_segment_tables_with_any_values_are_read_or_refused(rows, header):
    lines = (["start,end,label"] if header else []) + [",".join(map(str, row)) for row in rows]
    path = _written("\n".join(lines), ".csv")
    for segment in _read_or_refused(segments.read, path, SegmentFileError):
        _sound_segment(segment)


# ---- run settings --------------------------------------------------------------------------

KEYS = ["train.epochs", "train.learning_rate", "train.clipnorm", "model.cell", "model.layers", "model.units",
        "model.dropout", "features.n_mels", "features.sample_rate", "features.n_mfcc", "data.train", "nope.key",
        "train.nope", "train", ""]


@SETTINGS
@given(overrides=st.lists(st.tuples(st.sampled_from(KEYS), st.text(max_size=10) | st.integers(-5, 500).map(str)
                                    | st.sampled_from(["none", "true", "nan", "inf", "-1", "0", "1e-3", "lstm"])),
                          max_size=4))
def test_any_overrides_give_valid_settings_or_a_clear_error(overrides):
    texts = ["data.train=train.jsonl", *(f"{key}={value}" for key, value in overrides)]
    try:
        run = runfile.load(None, texts)
    except RunFileError as error:
        assert "\n" not in str(error)
        return
    assert run.train.epochs >= 1 and run.encoder.layers >= 1 and run.encoder.units >= 1
    assert math.isfinite(run.train.learning_rate) and run.train.learning_rate > 0
    assert math.isfinite(run.train.clipnorm) and run.train.clipnorm >= 0
    assert run.encoder.cell in ("lstm", "gru") and 0 <= run.encoder.dropout < 1
    assert run.features.sample_rate > 0 and run.features.n_mels > 0
