"""Transcription with the shipped model: batches, long files, formats, bad files, beam search."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import srt
import webvtt

from conftest import fsdd_clip
from speechseq import audio, cli, corpora, metrics, writers
from speechseq.corpora import DigitSequenceOptions
from speechseq.decoding import BeamOptions
from speechseq.text import DIGIT_WORDS
from speechseq.transcribe import Transcriber, TranscriberOptions

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "saved_models" / "digits"
TRAINING_SPEAKERS = ("george", "jackson", "nicolas", "yweweler")


@pytest.fixture(scope="module")
def transcriber():
    return Transcriber(SHIPPED)


@pytest.fixture(scope="module")
def test_takes(fsdd_dir, tmp_path_factory) -> list[corpora.Utterance]:
    """Connected digits from the test takes (0-4) of the speakers the model was trained on."""
    folder = tmp_path_factory.mktemp("digits")
    manifest = corpora.connected_digits(fsdd_dir, folder, DigitSequenceOptions(passes=(("test", 1),)))["test"]
    return [u for u in corpora.read_manifest(manifest) if u.speaker in TRAINING_SPEAKERS]


def test_connected_digits_of_known_speakers_are_transcribed(transcriber, test_takes):
    results = list(transcriber.transcribe_files(u.audio for u in test_takes))
    hypotheses = [r.text for r in results]
    wer = metrics.word_error_rate([u.text for u in test_takes], hypotheses)
    assert len(test_takes) > 40 and wer < 0.10, wer
    for utterance, result in zip(test_takes, results):
        assert result.source == str(utterance.audio) and result.model == "digits" and result.version >= 1
        assert all(0 <= w.start < w.end <= result.duration + 0.05 for w in result.words)


def test_word_times_land_on_the_digits_they_name(transcriber, test_takes):
    checked = 0
    for utterance, result in zip(test_takes, transcriber.transcribe_files(u.audio for u in test_takes[:20])):
        if result.text != utterance.text:
            continue
        for word, segment in zip(result.words, utterance.segments):
            assert segment.start - 0.1 <= word.start <= segment.end, (word, segment)
            checked += 1
    assert checked > 30


def test_a_waveform_at_another_rate_gives_the_file_s_transcript(transcriber):
    clip = fsdd_clip(5, "nicolas", 2)
    samples, rate = soundfile.read(clip, dtype="float32")
    assert rate == 8000
    assert transcriber.transcribe(samples, sample_rate=rate).text == transcriber.transcribe(clip).text == "five"


def test_a_ten_minute_file_gives_the_words_of_its_clips_one_by_one(transcriber, test_takes, tmp_path):
    gap = np.zeros(int(0.6 * 16000), np.float32)
    pieces, expected, seconds = [], [], 0.0
    one_by_one = {u.audio: r.text for u, r in zip(test_takes, transcriber.transcribe_files(u.audio for u in test_takes))}
    while seconds < 600:
        for utterance in test_takes:
            pieces += [audio.load(utterance.audio), gap]
            expected += one_by_one[utterance.audio].split()
            seconds += (pieces[-2].size + gap.size) / 16000
    long_file = tmp_path / "long.flac"
    soundfile.write(long_file, np.concatenate(pieces), 16000, format="FLAC")
    result = transcriber.transcribe(long_file)
    assert result.duration > 600
    words = result.text.split()
    assert len(words) == len(expected), "a word was cut or doubled at a window boundary"
    assert words == expected
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and starts[-1] > 590


def test_srt_and_vtt_parse_with_real_subtitle_parsers(transcriber, test_takes, tmp_path):
    pieces = [audio.load(u.audio) for u in test_takes[:12]]
    path = tmp_path / "digits.wav"
    soundfile.write(path, np.concatenate(pieces), 16000)
    result = transcriber.transcribe(path)
    subtitles = list(srt.parse(writers.render(result, "srt")))
    assert " ".join(s.content for s in subtitles) == result.text
    assert all(s.start < s.end for s in subtitles)
    assert [s.start for s in subtitles] == sorted(s.start for s in subtitles)
    captions = webvtt.from_buffer(io.StringIO(writers.render(result, "vtt")))
    assert " ".join(c.text for c in captions) == result.text

    def seconds(stamp: str) -> float:
        hours, minutes, rest = stamp.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(rest)

    assert seconds(captions[0].start) == pytest.approx(result.words[0].start, abs=0.002)
    assert all(seconds(c.end) - seconds(c.start) <= writers.CUE_MAX_SECONDS + 0.01 for c in captions)


def test_cli_reports_bad_files_and_transcribes_the_rest(tmp_path, capsys):
    good = [fsdd_clip(2, "george", 3), fsdd_clip(8, "jackson", 4)]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    code = cli.main(["transcribe", str(good[0]), str(corrupt), str(empty), str(good[1]),
                     "--model", str(SHIPPED), "--format", "json", "--out", str(out)])
    assert code == 1
    errors = capsys.readouterr().err
    assert f"{corrupt}: cannot decode audio" in errors and f"{empty}: empty file" in errors
    assert sorted(p.name for p in out.iterdir()) == ["2_george_3.json", "8_jackson_4.json"]
    result = json.loads((out / "2_george_3.json").read_text())
    assert result["text"] == "two" and result["file"] == str(good[0]) and result["model"] == "digits"
    assert set(result["words"][0]) == {"text", "start", "end", "confidence"}
    assert 0 < result["duration"] < 1.5


def test_cli_prints_text_with_word_times(capsys):
    assert cli.main(["transcribe", str(fsdd_clip(6, "yweweler", 1)), "--model", str(SHIPPED), "--words"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "six" and lines[1].strip().startswith("six@0.")


def _unigram_arpa(path: Path, weights: dict[str, float]) -> Path:
    """A unigram ARPA model: log10 probabilities of the given words."""
    entries = {"<s>": -99.0, "</s>": -1.0, "<unk>": -6.0} | weights
    lines = ["\\data\\", f"ngram 1={len(entries)}", "", "\\1-grams:"]
    lines += [f"{logp:.4f}\t{word}" for word, logp in entries.items()]
    path.write_text("\n".join(lines + ["", "\\end\\", ""]))
    return path


def test_beam_search_with_a_language_model(test_takes, tmp_path):
    digits_lm = _unigram_arpa(tmp_path / "digits.arpa", {w: -1.0 for w in DIGIT_WORDS})
    greedy = Transcriber(SHIPPED)
    files = [u.audio for u in test_takes[:12]]
    expected = [r.text for r in greedy.transcribe_files(files)]
    references = [u.text for u in test_takes[:12]]
    plain_beam = Transcriber(SHIPPED, TranscriberOptions(beam=BeamOptions(beam_width=16)))
    beam_wer = metrics.word_error_rate(references, [r.text for r in plain_beam.transcribe_files(files)])
    assert beam_wer <= metrics.word_error_rate(references, expected) + 0.02
    with_lm = Transcriber(SHIPPED, TranscriberOptions(beam=BeamOptions(beam_width=16, lm=str(digits_lm), alpha=0.5)))
    results = list(with_lm.transcribe_files(files))
    assert metrics.word_error_rate(references, [r.text for r in results]) <= beam_wer
    assert all(w.text in DIGIT_WORDS for r in results for w in r.words)
    # An LM that knows only "oh" and weighs heavily pulls every digit towards it: it is really used.
    odd_lm = _unigram_arpa(tmp_path / "oh.arpa", {"oh": -0.01})
    biased = Transcriber(SHIPPED, TranscriberOptions(beam=BeamOptions(beam_width=16, lm=str(odd_lm), alpha=5.0)))
    assert [r.text for r in biased.transcribe_files(files)] != expected


def test_evaluate_cli_reports_totals_speakers_and_worst(test_takes, tmp_path, capsys):
    manifest = corpora.write_manifest(test_takes[:16], tmp_path / "few.jsonl")
    assert cli.main(["evaluate", "--model", str(SHIPPED), "--manifest", str(manifest), "--json"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert values["n"] == 16 and 0 <= values["wer"] < 0.2 and values["cer"] <= values["wer"] + 0.1
    assert set(values["per_speaker"]) <= set(TRAINING_SPEAKERS)
    assert sum(row["n"] for row in values["per_speaker"].values()) == 16
    assert cli.main(["evaluate", "--model", str(SHIPPED), "--manifest", str(manifest)]) == 0
    assert "speaker" in capsys.readouterr().out
