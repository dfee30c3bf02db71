"""Manifests, corpus readers on real layouts, the connected-digit builder and the audit."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile

from conftest import DATA, ROOT, fsdd_clip, kathleen_clip, write_wav
from speechseq import audio, cli, corpora, derived
from speechseq.corpora import CorpusError, Segment, Utterance
from speechseq.derived import DigitSequenceOptions
from speechseq.text import Vocabulary


def test_manifest_round_trip_keeps_paths_relative_to_its_folder(tmp_path):
    (tmp_path / "clips").mkdir()
    inside = write_wav(tmp_path / "clips" / "a.wav", np.zeros(800, np.int16), 8000)
    outside = fsdd_clip(0)
    utterances = [
        Utterance(inside, "zero", "me", 0.1, (Segment(0.0, 0.05, "zero"),)),
        Utterance(outside, "zero", "jackson", None),
    ]
    path = corpora.write_manifest(utterances, tmp_path / "m.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["audio"] == "clips/a.wav"
    assert lines[1]["audio"] == str(outside)
    assert "duration" not in lines[1]
    assert corpora.read_manifest(path) == utterances


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not valid JSON"),
        ('{"text": "no audio"}', "'audio' path"),
        ('{"audio": "a.wav", "duration": -1}', "positive number"),
        ('{"audio": "a.wav", "segments": [{"start": 2, "end": 1, "label": "x"}]}', "empty, negative or endless"),
        ('{"audio": "a.wav", "segments": [{"start": 0}]}', "numeric start, end and a label"),
        ('{"audio": "a.wav", "text": 5}', "'text' must be a string"),
    ],
)
def test_bad_manifest_lines_are_named_by_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"audio": "ok.wav", "text": "fine"}\n\n' + line + "\n")
    with pytest.raises(CorpusError, match=message) as caught:
        corpora.read_manifest(path)
    assert str(caught.value).startswith(f"{path}:3: ")


def test_csv_and_tsv_manifests_with_common_column_names(tmp_path):
    sentence = "author of the danger trail philip steels etc"
    clip = kathleen_clip(sentence)
    deepspeech = tmp_path / "train.csv"  # DeepSpeech's layout: absolute paths, a size column
    deepspeech.write_text(f"wav_filename,wav_filesize,transcript\n{clip},{clip.stat().st_size},{sentence}\n")
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.flac").symlink_to(clip)
    ours = tmp_path / "dev.tsv"
    ours.write_text("audio\ttext\tspeaker\tduration\nclips/a.flac\t  Author of   the danger trail\tkathleen\t3.3\n")
    [from_csv] = corpora.read_manifest(deepspeech)
    assert (from_csv.audio, from_csv.text, from_csv.speaker, from_csv.duration) == (clip, sentence, "unknown", None)
    [from_tsv] = corpora.read_manifest(ours)
    assert from_tsv.audio == tmp_path / "clips" / "a.flac" and from_tsv.text == "Author of the danger trail"
    assert from_tsv.speaker == "kathleen" and from_tsv.duration == 3.3
    assert corpora.audit([from_csv, from_tsv]).ok
    ours.write_text("audio\ttext\nclips/a.flac\n")
    with pytest.raises(CorpusError, match=r"dev.tsv:2: 1 fields, the header has 2"):
        corpora.read_manifest(ours)
    ours.write_text("file_name\ttext\nclips/a.flac\tx\n")
    with pytest.raises(CorpusError, match=r"dev.tsv:1: the header names no audio column"):
        corpora.read_manifest(ours)


def test_librispeech_layout(librispeech_tree):
    utterances = corpora.librispeech(librispeech_tree)
    assert [(u.audio.name, u.speaker) for u in utterances] == [
        ("1272-128104-0000.flac", "1272"),
        ("1272-128104-0001.flac", "1272"),
        ("2412-153948-0000.flac", "2412"),
    ]
    assert utterances[2].text == "FOR THE TWENTIETH TIME THAT EVENING THE TWO MEN SHOOK HANDS"
    expected = audio.info(kathleen_clip("author of the danger trail philip steels etc")).duration
    assert utterances[0].duration == pytest.approx(expected)
    assert corpora.audit(utterances, Vocabulary()).ok


def test_common_voice_layout_with_mp3_clips(common_voice_tree):
    utterances = corpora.common_voice(common_voice_tree / "train.tsv")
    assert [u.speaker for u in utterances] == ["5f3a9c", "b27e11"]
    assert utterances[1].text.startswith('"Not at this particular case, Tom,"')
    report = corpora.audit(utterances, Vocabulary())
    assert report.ok and report.seconds > 3
    other = common_voice_tree / "not_cv.tsv"
    other.write_text("file\ttext\na.mp3\thello\n")
    with pytest.raises(CorpusError, match="not a Common Voice TSV"):
        corpora.common_voice(other)


def test_transcribed_folder_reads_kathleen(kathleen_dir):
    utterances = corpora.transcribed_folder(kathleen_dir, speaker="kathleen")
    assert len(utterances) == 1261
    first = utterances[0]
    assert first.audio.name == "arctic_a0001_1592748574.flac"
    assert first.text == "Author of the danger trail, Philip Steels, etc."
    assert {u.speaker for u in utterances} == {"kathleen"}
    assert sum(u.duration for u in utterances) / 60 == pytest.approx(62.8, abs=0.1)


def test_transcribed_folder_names_a_clip_without_transcript(tmp_path):
    write_wav(tmp_path / "lonely.wav", np.zeros(800, np.int16), 8000)
    with pytest.raises(CorpusError, match="lonely.wav: no transcript lonely.txt"):
        corpora.transcribed_folder(tmp_path)


def test_fsdd_reader(fsdd_dir):
    utterances = corpora.fsdd(fsdd_dir)
    assert len(utterances) == 2500
    assert {u.speaker for u in utterances} == {"jackson", "nicolas", "yweweler", "george", "lucas"}
    seven = next(u for u in utterances if u.audio.name == "7_jackson_32.wav")
    assert seven.text == "seven" and seven.speaker == "jackson"


@pytest.fixture(scope="module")
def digits(fsdd_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    options = DigitSequenceOptions(passes=(("train", 1), ("dev", 1), ("test", 1)), held_out_speaker="lucas")
    return out, options, derived.connected_digits(fsdd_dir, out, options)


def test_connected_digits_splits_by_take_and_holds_a_speaker_out(digits):
    _, _, manifests = digits
    assert sorted(manifests) == ["dev", "held_out", "test", "train"]
    split_of = {}
    for split, path in manifests.items():
        for utterance in corpora.read_manifest(path):
            assert (utterance.speaker == "lucas") == (split == "held_out")
            split_of.setdefault(split, []).append(utterance)
    # Every clip of a split is used once per pass: test takes 0-4 of 4 speakers x 10 digits.
    test_digits = sum(len(u.segments) for u in split_of["test"])
    assert test_digits == 4 * 10 * 5
    assert sum(len(u.segments) for u in split_of["held_out"]) == 500
    assert all(1 <= len(u.segments) <= 7 for us in split_of.values() for u in us)


def test_connected_digit_audio_matches_its_segments_and_transcript(digits):
    out, _, manifests = digits
    utterance = next(u for u in corpora.read_manifest(manifests["dev"]) if len(u.segments) >= 3)
    samples, rate = soundfile.read(utterance.audio, dtype="int16")
    assert utterance.text == " ".join(s.label for s in utterance.segments)
    assert utterance.duration == pytest.approx(len(samples) / rate, abs=1e-4)  # 4 decimals
    for before, after in zip(utterance.segments, utterance.segments[1:]):
        gap = samples[int(round(before.end * rate)) : int(round(after.start * rate))]
        # The inserted silence (50-300 ms), and maybe the clips' own quiet edges beside it.
        assert after.start - before.end >= 0.05 and (gap == 0).sum() >= 0.05 * rate - 1
    # Each segment is the sound of one FSDD clip of that digit: found inside it by exact
    # sample match, holding its loudest sample, with only quiet samples of it left outside.
    for segment in utterance.segments:
        piece = samples[int(round(segment.start * rate)) : int(round(segment.end * rate))]
        digit = corpora.DIGIT_WORDS.index(segment.label)
        recordings = fsdd_clip(0).parent.glob(f"{digit}_{utterance.speaker}_*.wav")
        clips = [soundfile.read(p, dtype="int16")[0] for p in recordings]
        found = [(clip, offset) for clip in clips for offset in range(len(clip) - len(piece) + 1)
                 if clip[offset] == piece[0] and np.array_equal(clip[offset : offset + len(piece)], piece)]
        assert found, segment
        clip, offset = found[0]
        peak = np.abs(clip.astype(np.int32)).max()
        assert np.abs(piece.astype(np.int32)).max() == peak
        outside = np.concatenate([clip[:offset], clip[offset + len(piece):]]).astype(np.int32)
        assert not outside.size or np.abs(outside).max() < peak * 10 ** (-20 / 20)


def test_digit_segments_can_span_whole_clips_silence_and_all(fsdd_dir, tmp_path):
    options = derived.DigitSequenceOptions(passes=(("test", 1),), held_out_speaker="lucas", trim_db=None)
    whole = corpora.read_manifest(derived.connected_digits(fsdd_dir, tmp_path / "whole", options)["held_out"])
    trimmed = corpora.read_manifest(derived.connected_digits(
        fsdd_dir, tmp_path / "trimmed", dataclasses.replace(options, trim_db=35.0))["held_out"])
    covered = lambda utterances: sum(s.end - s.start for u in utterances for s in u.segments)
    # lucas leaves about a quarter of each clip silent: the trimmed segments are that much shorter.
    assert 0.6 < covered(trimmed) / covered(whole) < 0.9
    assert [u.text for u in trimmed] == [u.text for u in whole]


def test_connected_digits_can_have_room_around_them(fsdd_dir, tmp_path):
    options = DigitSequenceOptions(passes=(("test", 1),), max_digits=4, edge=0.05, max_edge=0.6, noise_share=0.7)
    utterances = corpora.read_manifest(derived.connected_digits(fsdd_dir, tmp_path, options)["test"])
    leads, noisy = [], 0
    for utterance in utterances:
        samples, rate = soundfile.read(utterance.audio, dtype="int16")
        samples = samples.astype(np.float64)
        lead_in = samples[: int(0.05 * rate)]  # inserted edge only: every lead is 50 ms or more
        peak = np.abs(samples).max()
        if lead_in.any():
            noisy += 1
            below = 20 * np.log10(peak / np.sqrt(np.mean(lead_in ** 2)))
            assert 38 < below < 67, utterance.audio  # 40-65 dB drawn, give or take a short window's spread
        leads.append(utterance.segments[0].start)
        assert utterance.segments[-1].end <= utterance.duration - 0.05 + 1e-3
    assert min(leads) >= 0.05 and max(leads) - min(leads) > 0.3  # edges drawn, not fixed
    assert 0.55 < noisy / len(utterances) < 0.85
    default = corpora.read_manifest(derived.connected_digits(
        fsdd_dir, tmp_path / "default", DigitSequenceOptions(passes=(("test", 1),), max_digits=4))["test"])
    assert all(not soundfile.read(u.audio, dtype="int16")[0][: int(0.1 * 8000)].any() for u in default)


def test_connected_digits_are_reproducible(digits, fsdd_dir, tmp_path):
    out, options, manifests = digits
    again = derived.connected_digits(fsdd_dir, tmp_path, options)
    assert again["test"].read_text() == manifests["test"].read_text()
    first = corpora.read_manifest(manifests["test"])[0]
    second = corpora.read_manifest(again["test"])[0]
    assert first.audio.read_bytes() == second.audio.read_bytes()


def _mixed_manifest(tmp_path):
    good = [Utterance(fsdd_clip(d), corpora.DIGIT_WORDS[d], "jackson", audio.info(fsdd_clip(d)).duration) for d in range(3)]
    (tmp_path / "text.wav").write_text("not audio at all")
    nan = np.zeros(800, np.float32)
    nan[10] = np.nan
    write_wav(tmp_path / "nan.wav", nan, 8000, "FLOAT")
    write_wav(tmp_path / "rate.wav", np.zeros(80, np.int16), 1)
    bad = [
        Utterance(tmp_path / "missing.wav", "one"),
        Utterance(tmp_path / "text.wav", "two"),
        Utterance(tmp_path / "nan.wav", "three"),
        Utterance(fsdd_clip(4), ""),  # empty transcript
        Utterance(fsdd_clip(5), "five\u00e9"),  # character outside the vocabulary
        Utterance(fsdd_clip(6), "six " * 40),  # far more letters than frames
        Utterance(fsdd_clip(7), "seven", duration=9.0),  # duration the file does not have
        Utterance(tmp_path / "rate.wav", "eight"),
    ]
    entries = good[:1] + bad[:4] + good[1:] + bad[4:]
    return corpora.write_manifest(entries, tmp_path / "mixed.jsonl"), len(good), len(bad)


def test_audit_reports_every_bad_entry_once(tmp_path):
    path, n_good, n_bad = _mixed_manifest(tmp_path)
    report = corpora.audit(corpora.read_manifest(path), Vocabulary())
    assert len(report.good) == n_good and len(report.problems) == n_bad
    reasons = {p.audio.rsplit("/", 1)[-1] + f"#{p.index}": p.reason for p in report.problems}
    assert reasons["missing.wav#1"] == "file not found"
    assert reasons["text.wav#2"].startswith("cannot decode audio")
    assert reasons["nan.wav#3"] == "contains NaN or infinite samples"
    assert reasons["4_jackson_0.wav#4"] == "empty transcript"
    assert "'é'" in reasons["5_jackson_0.wav#7"]
    assert "CTC frames" in reasons["6_jackson_0.wav#8"]
    assert "manifest says 9.00 s" in reasons["7_jackson_0.wav#9"]
    assert "sample rate 1 Hz" in reasons["rate.wav#10"]


def test_ctc_length_check_counts_repeats_and_subsampling():
    assert corpora.ctc_frames_needed([1, 2, 2, 3, 3, 3]) == 9
    clip = fsdd_clip(1)  # "one": ~0.4 s, ~40 frames at 100 frames/s
    seconds = audio.info(clip).duration
    letters = int(seconds * 100 / 4) + 3  # too many for subsampling 4, fine for 1
    text = "on" * (letters // 2)
    utterance = [Utterance(clip, text, "jackson")]
    assert corpora.audit(utterance, Vocabulary(), subsampling=1).ok
    assert not corpora.audit(utterance, Vocabulary(), subsampling=4).ok


def test_audit_cli_exits_non_zero_and_names_each_bad_file(tmp_path, capsys):
    path, _, n_bad = _mixed_manifest(tmp_path)
    assert cli.main(["audit", str(path), "--json"]) == 1  # the exit status `python -m speechseq` passes on
    report = json.loads(capsys.readouterr().out)
    assert report["bad"] == n_bad and report["good"] == 3
    assert cli.main(["audit", str(path)]) == 1
    text = capsys.readouterr().out
    for name in ["missing.wav", "text.wav", "nan.wav", "rate.wav"]:
        assert sum(name in line for line in text.splitlines()) == 1


def test_speed_perturbed_copies_scale_time_and_pitch_and_keep_the_words(tmp_path):
    from speechseq.transcribe import Transcriber

    clip = fsdd_clip(7, "jackson", 0)
    seconds = audio.info(clip).duration
    original = Utterance(clip, "seven", "jackson", seconds, (Segment(0.0, seconds, "seven"),))
    copies = derived.speed_perturbed([original], (0.9, 1.1), tmp_path)
    assert derived.speed_perturbed([original], (0.9, 1.1), tmp_path) == copies  # kept, not rebuilt

    def centroid(path) -> float:
        power = np.abs(np.fft.rfft(audio.load(path))) ** 2
        return float((np.arange(power.size) * power).sum() / power.sum() / power.size * 8000)

    for factor, copy in zip((0.9, 1.1), copies):
        assert audio.info(copy.audio).duration == pytest.approx(seconds / factor, abs=0.002)
        assert copy.duration == pytest.approx(seconds / factor) and copy.segments[0].end == pytest.approx(seconds / factor)
        assert centroid(copy.audio) / centroid(clip) == pytest.approx(factor, rel=0.03)
    assert corpora.audit(copies, Vocabulary(digits_as_words=True)).ok
    shipped = Transcriber(ROOT / "saved_models" / "digits")
    assert [result.text for result in shipped.transcribe_files([c.audio for c in copies])] == ["seven", "seven"]


def test_copies_cut_to_sound_drop_the_silence_around_speech_and_keep_all_of_it(tmp_path):
    # A word with 0.4 s of faint room noise before and after: the copy keeps the word whole
    # (its energy) and at most 50 ms of the noise on each side (beside a 25 ms frame's reach);
    # its segment moves with the cut.
    word = audio.load(fsdd_clip(3, "jackson", 1))
    start, end = audio.sound_span(word, audio.SAMPLE_RATE, 35.0)
    noise = np.random.default_rng(0).standard_normal(6400).astype(np.float32) * 1e-4
    padded = np.concatenate([noise, word[start:end], noise])
    clip = write_wav(tmp_path / "padded.wav", padded, audio.SAMPLE_RATE)
    sound = (end - start) / audio.SAMPLE_RATE
    original = Utterance(clip, "three", "jackson", len(padded) / audio.SAMPLE_RATE, (Segment(0.4, 0.4 + sound, "three"),))
    # A real recording with half a second of its room before the speech and after it.
    spoken = DATA / "speechocean762" / "audio" / "0001" / "000010011.ogg"
    sentence = Utterance(spoken, "we call it bear", "so762-0001", audio.info(spoken).duration)

    copies = derived.cut_to_sound([original, sentence], tmp_path / "tight")
    assert derived.cut_to_sound([original, sentence], tmp_path / "tight") == copies  # the same cut every time
    cut = audio.load(copies[0].audio)
    assert sound <= copies[0].duration <= sound + 0.15
    assert copies[0].duration == pytest.approx(audio.info(copies[0].audio).duration, abs=1e-3)
    assert float(np.sum(cut ** 2)) >= 0.99 * float(np.sum(word[start:end] ** 2))
    assert copies[0].segments[0].start <= 0.075 and copies[0].segments[0].end >= copies[0].duration - 0.075
    # A real recording: its silence goes, its speech stays.
    before = audio.load(spoken)
    after = audio.load(copies[1].audio)
    assert copies[1].duration < sentence.duration - 0.8
    assert float(np.sum(after ** 2)) >= 0.98 * float(np.sum(before ** 2))
    assert copies[1].text == sentence.text and copies[1].speaker == "so762-0001"
