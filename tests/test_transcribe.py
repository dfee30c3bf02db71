"""Transcription with the shipped model: batches, long files, formats, bad files, beam search."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile
import srt
import webvtt

from conftest import fsdd_clip
from speechseq import audio, cli, corpora, derived, metrics, writers
from speechseq.derived import DigitSequenceOptions
from speechseq.decoding import BeamOptions
from speechseq.errors import SpeechseqError
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
    manifest = derived.connected_digits(fsdd_dir, folder, DigitSequenceOptions(passes=(("test", 1),)))["test"]
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
    clip = fsdd_clip(5, "yweweler", 2)
    samples, rate = soundfile.read(clip, dtype="float32")
    assert rate == 8000
    assert transcriber.transcribe(samples, sample_rate=rate).text == transcriber.transcribe(clip).text == "five"


def test_a_ten_minute_file_is_transcribed_as_well_as_its_clips_one_by_one(transcriber, test_takes, tmp_path):
    # Inside a long file the encoder hears each clip's neighbours and normalises over a
    # whole window, so some words differ from the clip alone: measured WER against the
    # truth 5.0% one by one and 8.5% in the long file, the differences spread evenly,
    # not at window boundaries (the shipped model was trained on single utterances).
    # What must hold: no word doubled, cut or lost at a boundary, and no big loss.
    gap = np.zeros(int(0.6 * 16000), np.float32)
    pieces, spans, truth, one_by_one, seconds = [], [], [], [], 0.0
    alone = {u.audio: r.text for u, r in zip(test_takes, transcriber.transcribe_files(u.audio for u in test_takes))}
    while seconds < 600:
        for utterance in test_takes:
            waveform = audio.load(utterance.audio)
            pieces += [waveform, gap]
            spans.append((seconds, seconds + waveform.size / 16000, utterance.text))
            truth.append(utterance.text)
            one_by_one.append(alone[utterance.audio])
            seconds += (waveform.size + gap.size) / 16000
    long_file = tmp_path / "long.flac"
    soundfile.write(long_file, np.concatenate(pieces), 16000, format="FLAC")
    result = transcriber.transcribe(long_file)
    assert result.duration > 600
    by_span = [[] for _ in spans]
    for word in result.words:
        middle = (word.start + word.end) / 2
        index = next((i for i, (a, b, _) in enumerate(spans) if a - 0.3 <= middle <= b + 0.3), None)
        assert index is not None, f"{word} lies in silence between clips"
        by_span[index].append(word.text)
    found = [" ".join(words) for words in by_span]
    assert metrics.word_error_rate(one_by_one, found) < 0.12
    assert metrics.word_error_rate(truth, found) <= metrics.word_error_rate(truth, one_by_one) + 0.05
    window = TranscriberOptions().window_seconds - TranscriberOptions().overlap_seconds
    boundaries = np.arange(window, result.duration, window)
    near = [i for i, (a, b, _) in enumerate(spans) if any(a - 2 <= t <= b + 2 for t in boundaries)]
    assert len(near) > 15
    assert sum(len(found[i].split()) == len(one_by_one[i].split()) for i in near) >= 0.9 * len(near)
    ends = [(w.start, w.end) for w in result.words]
    assert all(later[0] >= earlier[1] - 1e-6 for earlier, later in zip(ends, ends[1:])), "overlapping words"


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
    # The inputs are in two folders: their outputs mirror those folders under --out.
    mirrored = out / good[0].parent.relative_to(os.path.commonpath([good[0].parent, tmp_path]))
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        str((mirrored / name).relative_to(out)) for name in ("2_george_3.json", "8_jackson_4.json")]
    result = json.loads((mirrored / "2_george_3.json").read_text())
    assert result["text"] == "two" and result["file"] == str(good[0]) and result["model"] == "digits"
    assert set(result["words"][0]) == {"text", "start", "end", "confidence"}
    assert 0 < result["duration"] < 1.5


def test_cli_prints_text_with_word_times(capsys):
    assert cli.main(["transcribe", str(fsdd_clip(6, "yweweler", 1)), "--model", str(SHIPPED), "--words"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "six" and lines[1].strip().startswith("six@0.")


def _unigram_arpa(path: Path, weights: dict[str, float]) -> Path:
    """An ARPA model of the given words' log10 probabilities, any order, any length
    (a bigram file, as KenLM requires: every word may start a sentence)."""
    entries = {"<s>": -99.0, "</s>": -1.0, "<unk>": -6.0} | weights
    bigrams = [f"{logp:.4f}\t<s> {word}" for word, logp in weights.items()]
    lines = ["\\data\\", f"ngram 1={len(entries)}", f"ngram 2={len(bigrams)}", "", "\\1-grams:"]
    lines += [f"{logp:.4f}\t{word}\t0.0000" for word, logp in entries.items()]
    lines += ["", "\\2-grams:", *bigrams]
    path.write_text("\n".join(lines + ["", "\\end\\", ""]))
    return path


def test_beam_search_with_a_language_model(test_takes, tmp_path):
    digits_lm = _unigram_arpa(tmp_path / "digits.arpa", {w: -1.0 for w in DIGIT_WORDS})
    greedy = Transcriber(SHIPPED, TranscriberOptions(shipped_decoding=False))  # not the word list it ships
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


def test_resume_skips_files_already_written(tmp_path, capsys):
    clips = [fsdd_clip(d, "george", 3) for d in (1, 2, 3)]
    out = tmp_path / "out"
    out.mkdir()
    (out / "1_george_3.txt").write_text("kept as it was\n")
    code = cli.main(["transcribe", *map(str, clips), "--model", str(SHIPPED), "--out", str(out), "--resume"])
    assert code == 0
    assert "1 files done already, 2 to go" in capsys.readouterr().err
    assert (out / "1_george_3.txt").read_text() == "kept as it was\n"
    assert (out / "2_george_3.txt").read_text() == "two\n" and (out / "3_george_3.txt").read_text() == "three\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "a temporary file was left behind"


def test_two_inputs_with_one_name_keep_both_results_and_resume_by_the_same_names(tmp_path, capsys):
    for folder, digit in (("a", 3), ("b", 7)):
        (tmp_path / folder).mkdir()
        shutil.copy(fsdd_clip(digit, "george", 3), tmp_path / folder / "x.wav")
    out = tmp_path / "out"
    inputs = [str(tmp_path / "a" / "x.wav"), str(tmp_path / "b" / "x.wav")]
    assert cli.main(["transcribe", *inputs, "--model", str(SHIPPED), "--out", str(out)]) == 0
    assert (out / "a" / "x.txt").read_text() == "three\n" and (out / "b" / "x.txt").read_text() == "seven\n"
    capsys.readouterr()
    assert cli.main(["transcribe", *inputs, "--model", str(SHIPPED), "--out", str(out), "--resume"]) == 0
    assert "2 files done already, 0 to go" in capsys.readouterr().err
    # x.wav and x.flac in one folder keep their whole names.
    shutil.copy(fsdd_clip(1, "george", 3), tmp_path / "a" / "x.flac")
    assert cli.main(["transcribe", str(tmp_path / "a"), "--model", str(SHIPPED), "--out", str(tmp_path / "out2")]) == 0
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["x.flac.txt", "x.wav.txt"]
    assert (tmp_path / "out2" / "x.flac.txt").read_text() == "one\n"


def test_output_names_that_would_still_clash_are_refused_before_any_work(tmp_path):
    from speechseq.files import output_paths

    # x.flac and x.wav keep their whole names (x.flac.txt, x.wav.txt); x.flac.wav's stem is x.flac.
    inputs = [tmp_path / "x.flac.wav", tmp_path / "x.flac", tmp_path / "x.wav"]
    with pytest.raises(SpeechseqError, match=f"{inputs[0]} and {inputs[1]} would both be written to .*x.flac.txt"):
        output_paths(inputs, tmp_path / "out", ".txt")
    assert output_paths(inputs[1:], tmp_path / "out", ".txt") == [tmp_path / "out" / "x.flac.txt",
                                                                  tmp_path / "out" / "x.wav.txt"]


def test_threads_sharing_one_transcriber_get_the_serial_results(transcriber, test_takes):
    from concurrent.futures import ThreadPoolExecutor

    files = [u.audio for u in test_takes[:24]]
    serial = [transcriber.transcribe(f).to_dict() for f in files]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = [r.to_dict() for r in pool.map(transcriber.transcribe, files)]
    assert parallel == serial


def test_folders_that_are_not_transcription_exports_are_refused_clearly(tmp_path):
    from speechseq.export import ExportError

    with pytest.raises(ExportError, match="no SavedModel and no numbered versions"):
        Transcriber(tmp_path)
    with pytest.raises(ExportError, match="not a transcription model"):
        Transcriber(ROOT / "saved_models" / "voice-activity")


def test_truncated_files_empty_folders_and_corrupt_mp3s_are_reported_in_the_user_s_words(tmp_path, capfd):
    # A recorder that crashed: its header promises 10^9 bytes of 8 kHz 16-bit audio, 0.25 s is there.
    samples = (audio.load(fsdd_clip(3, "george", 3), 8000)[:2000] * 32767).astype("<i2").tobytes()
    truncated = tmp_path / "crashed.wav"
    truncated.write_bytes(b"RIFF" + struct.pack("<I", 36 + 10**9) + b"WAVEfmt "
                          + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data"
                          + struct.pack("<I", 10**9) + samples)
    a_folder, empty = tmp_path / "x.wav", tmp_path / "nothing here"
    a_folder.mkdir()
    empty.mkdir()
    mp3 = tmp_path / "broken.mp3"
    mp3.write_bytes(b"\xff\xfb\x90\x00" + bytes(range(256)) * 20)  # an MPEG frame header, then junk
    good = fsdd_clip(7, "george", 3)
    code = cli.main(["transcribe", str(truncated), str(a_folder), str(empty), str(mp3), str(good),
                     "--model", str(SHIPPED)])
    printed = capfd.readouterr()
    assert code == 1
    promise = "truncated: the header promises 62500.0 s of audio, the file holds 0.250 s"
    assert f"speechseq transcribe: warning: {truncated}: {promise}; read what is there" in printed.err
    assert f"speechseq transcribe: error: {a_folder}: a folder with no audio files" in printed.err
    assert f"speechseq transcribe: error: {empty}: a folder with no audio files" in printed.err
    assert f"speechseq transcribe: error: {mp3}: cannot decode audio (not a valid MP3 stream)" in printed.err
    assert "Note:" not in printed.err and "MPEG" not in printed.err  # libmpg123's own notes held back
    assert f"{good}: seven" in printed.out.splitlines()
    # audit calls the truncated file bad for training, in the same words.
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"audio": str(truncated), "text": "three"}) + "\n")
    assert cli.main(["audit", str(manifest)]) == 1
    assert promise in capfd.readouterr().out


def test_transcribing_and_tagging_import_no_exporting_or_training_code():
    """The inference path opens exports through `published` alone: a one-file command
    loads neither the exporter, the serving modules, nor training."""
    import subprocess
    import sys

    child = (
        "import sys\nfrom speechseq import cli\n"
        f"assert cli.main(['transcribe', {str(ROOT / 'samples' / 'countdown.wav')!r}, '--model', {str(SHIPPED)!r}]) == 0\n"
        f"assert cli.main(['tag', {str(ROOT / 'samples' / 'countdown.wav')!r}, '--model', "
        f"{str(ROOT / 'saved_models' / 'voice-activity')!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('speechseq')))\n"
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "three two one zero" in done.stdout
    loaded = done.stdout.strip().splitlines()[-1]
    assert "'speechseq.published'" in loaded
    for module in ("export", "serving", "train", "models", "finetune", "verify"):
        assert f"'speechseq.{module}'" not in loaded, (module, loaded)


def test_a_word_heard_by_both_windows_of_a_seam_is_kept_once():
    # As found on a 10-minute file with digits/5: both windows heard "three" from 417.84 s,
    # ending it 0.3 s apart, so each placed its middle on its own side of the seam.
    from speechseq.decoding import Word
    from speechseq.transcribe import without_seam_doubles

    first, double = Word("three", 417.84, 418.14, 0.86), Word("three", 417.84, 418.44, 0.60)
    touching = Word("two", 418.10, 418.60, 0.9)
    assert without_seam_doubles([first, double]) == [first]
    assert without_seam_doubles([double, first]) == [first]
    trimmed = without_seam_doubles([double, Word("two", 418.40, 418.90, 0.9)])
    assert [(w.text, w.end) for w in trimmed] == [("three", 418.40), ("two", 418.90)]
    assert without_seam_doubles([Word("one", 1.0, 1.2, 0.5), touching]) == [Word("one", 1.0, 1.2, 0.5), touching]
