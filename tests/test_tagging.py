"""Frame tagging: labels <-> frames, segment files, smoothing, and a voice-activity model end to end."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from speechseq import (audio, cli, corpora, data, evaluate, export, metrics, plots, runfile, scenes, segments, train,
                       tuning, verify)
from speechseq.corpora import Segment
from speechseq.errors import SpeechseqError
from speechseq.features import FeatureConfig
from speechseq.segments import SmoothingOptions, TaggedSegment
from speechseq.tag import Tagger, TaggerOptions

FIXTURES = Path(__file__).parent / "fixtures" / "segments"
MEETING = [Segment(0.5, 1.75, "speech"), Segment(2.0, 2.4, "speech"), Segment(3.1, 4.0, "music")]


@pytest.mark.parametrize("sample_rate,hop_ms", [(16000, 10.0), (16000, 12.5), (8000, 10.0), (22050, 20.0)])
def test_segments_to_frames_to_segments_is_exact(sample_rate, hop_ms):
    config = FeatureConfig(sample_rate=sample_rate, hop_ms=hop_ms, n_fft=2048, window_ms=25.0)
    hop = config.hop_length / sample_rate
    rng = np.random.default_rng(int(hop_ms))
    edges = np.sort(rng.choice(np.arange(1, 300), 8, replace=False)) * hop  # on frame centres
    labels = ["speech", "music", "speech", "noise"]
    truth = [Segment(float(a), float(b), label) for (a, b), label in zip(edges.reshape(-1, 2), labels)]
    tags = ["silence", "music", "noise", "speech"]
    frames = data.frame_labels([s.start for s in truth], [s.end for s in truth], [tags.index(s.label) for s in truth],
                               320, config, 0).numpy()
    back = segments.from_frames(frames, tags, hop, background="silence")
    assert [(round(s.start, 6), round(s.end, 6), s.label) for s in back] == \
        [(round(s.start, 6), round(s.end, 6), s.label) for s in truth]
    assert all(frames[int(round(s.start / hop))] == tags.index(s.label) for s in truth)
    assert all(frames[int(round(s.end / hop))] != tags.index(s.label) or s.end / hop >= 320 for s in truth)


def test_segment_files_are_read_in_every_format():
    assert segments.read(FIXTURES / "meeting.csv") == MEETING
    assert segments.read(FIXTURES / "meeting.rttm") == MEETING[:2] + [Segment(3.1, 4.0, "music")]
    assert segments.read(FIXTURES / "meeting.tsv") == MEETING[:2] + [Segment(3.1, 4.5, "music")]
    assert segments.read(FIXTURES / "meeting.TextGrid") == MEETING[:2] + [Segment(3.1, 4.5, "music")]
    assert segments.read(FIXTURES / "meeting.TextGrid", tier="events")[0] == MEETING[0]


def test_bad_segment_files_are_refused_with_the_place():
    with pytest.raises(segments.SegmentFileError, match=r"backwards.csv:2: needs 0 <= start < end"):
        segments.read(FIXTURES / "backwards.csv")
    with pytest.raises(segments.SegmentFileError, match="no interval tier 'words'; tiers: events"):
        segments.read(FIXTURES / "meeting.TextGrid", tier="words")
    with pytest.raises(segments.SegmentFileError, match="unknown segment format"):
        segments.read(FIXTURES / "meeting.txt")


def test_a_row_shorter_than_its_header_is_refused_with_its_line(tmp_path):
    table = tmp_path / "events.csv"
    table.write_text("label,note,start,end\nspeech,x,0.5,1.0\ncough,y,1.2\n")
    with pytest.raises(segments.SegmentFileError, match=r"events.csv:3: fewer fields than the header"):
        segments.read(table)
    table.write_text("label,note,start,end\nspeech,x,0.5,1.0\n")
    assert segments.read(table) == [segments.Segment(0.5, 1.0, "speech")]


@pytest.mark.parametrize("format,suffix", [("csv", ".csv"), ("rttm", ".rttm"), ("textgrid", ".TextGrid")])
def test_written_segments_read_back(format, suffix, tmp_path):
    tagged = [TaggedSegment(0.5, 1.25, "speech", 0.9), TaggedSegment(2.0, 2.75, "speech", 0.8)]
    path = tmp_path / f"out{suffix}"
    path.write_text(segments.render(tagged, format, "clip.wav", 3.0))
    assert segments.read(path) == [Segment(s.start, s.end, s.label) for s in tagged]
    as_json = json.loads(segments.render(tagged, "json", "clip.wav", 3.0))
    assert as_json["file"] == "clip.wav" and as_json["segments"][1] == {"start": 2.0, "end": 2.75, "label": "speech",
                                                                        "confidence": 0.8}


def test_smoothing_removes_blips_bridges_gaps_and_uses_hysteresis():
    speech = np.zeros(100, np.float32)
    speech[20:60] = 0.9
    speech[40:43] = 0.4  # a dip above the offset threshold: hysteresis keeps speech on
    speech[80] = 0.95  # a one-frame blip: the median filter removes it
    probabilities = np.stack([1 - speech, speech], axis=1)
    ids = segments.smooth(probabilities, 0, SmoothingOptions(median_frames=3, onset=0.5, offset=0.35,
                                                             min_segment=0.05, min_gap=0.1), 0.01)
    assert segments.frames_to_runs(ids) == [(0, 20, 0), (20, 60, 1), (60, 100, 0)]
    gappy = np.zeros(100, int)
    gappy[10:30] = gappy[35:60] = 1
    gappy[90:93] = 1
    filled = segments.smooth(np.eye(2)[gappy].astype(np.float32), 0,
                             SmoothingOptions(median_frames=1, min_gap=0.1, min_segment=0.05), 0.01)
    assert segments.frames_to_runs(filled) == [(0, 10, 0), (10, 60, 1), (60, 100, 0)]


def test_smoothing_settings_are_checked_and_the_tuning_grid_keeps_offset_below_onset():
    with pytest.raises(SpeechseqError, match="offset <= onset"):
        SmoothingOptions(onset=0.3, offset=0.35)
    with pytest.raises(SpeechseqError, match="median_frames >= 1"):
        SmoothingOptions(median_frames=0)
    with pytest.raises(SpeechseqError, match="unknown smoothing settings: onsett"):
        SmoothingOptions.from_dict({"onsett": 0.5})
    two = tuning.candidates(2)
    assert two[0] == SmoothingOptions() and len(two) == len(set(two)) > 300
    assert {c.onset for c in two} == set(tuning.GRID["onset"])
    many = tuning.candidates(11)  # arg-max labels: the thresholds play no part
    assert {(c.onset, c.offset) for c in many} == {(0.5, 0.35)} and len(many) == 4 * 3 * 2


def test_tagging_metrics():
    matrix = metrics.confusion_matrix([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], 2)
    assert matrix.tolist() == [[1, 1], [1, 2]]
    assert metrics.per_class_f1(matrix) == pytest.approx([0.5, 2 / 3])
    reference = [Segment(1.0, 2.0, "speech"), Segment(3.0, 4.0, "speech")]
    assert metrics.segment_f1(reference, [Segment(1.05, 1.95, "speech"), Segment(3.3, 4.0, "speech")]) == 0.5
    assert metrics.segment_f1(reference, reference) == 1.0


@pytest.fixture(scope="module")
def voice_activity(fsdd_dir, tmp_path_factory):
    """A tiny voice-activity model trained on a few scenes, and its export."""
    folder = tmp_path_factory.mktemp("vad")
    options = scenes.SceneOptions(seconds=3.0, max_clips=2, scenes_per_speaker=12, snrs=(10.0, 20.0, None))
    manifest = scenes.build(scenes.fsdd_speakers(fsdd_dir, ["jackson", "george"], range(50)), folder, options, "train")
    run = runfile.load(None, [
        f"data.train={manifest}", f"data.dev={manifest}", "train.task=frames", "features.n_mels=40",
        "model.cell=gru", "model.layers=1", "model.units=32", "model.subsampling=2", "model.conv_channels=32",
        "model.dropout=0.0", "train.epochs=6", "train.batch_size=8", "train.learning_rate=3e-3",
        "train.warmup_steps=10", "train.spec_augment=false", "train.buckets=1", "train.early_stopping=0",
        "train.class_weights=balanced", "train.jit_compile=false",
    ], folder / "run")
    train.fit(run, verbose=0)
    version = export.write_version(export.load_trained(folder / "run"), folder / "saved_models" / "vad")
    return {"manifest": manifest, "run": folder / "run", "export": version}


def test_a_tiny_voice_activity_model_learns_speech_from_silence_and_noise(voice_activity):
    utterances = corpora.read_manifest(voice_activity["manifest"])
    scores = evaluate.score_tagging(voice_activity["export"], utterances)
    assert scores["frame_accuracy"] >= 0.85, scores
    assert scores["per_class_f1"]["speech"] >= 0.8
    # The smoothed segments' frames: what `speechseq tag` writes, scored the same way.
    assert scores["smoothed_per_class_f1"]["speech"] >= 0.8
    assert scores["smoothed_per_class_f1"] != scores["per_class_f1"]
    assert scores["confusion"]["labels"] == ["silence", "speech"]
    log = (voice_activity["run"] / "log.csv").read_text().splitlines()
    header, last = log[0].split(","), dict(zip(log[0].split(","), log[-1].split(",")))
    assert {"val_f1_speech", "val_f1_silence", "val_macro_f1", "val_frame_accuracy"} <= set(header)
    assert float(last["val_f1_speech"]) >= 0.8
    confusion = json.loads((voice_activity["run"] / "confusion.json").read_text())
    assert confusion["labels"] == ["silence", "speech"] and sum(map(sum, confusion["rows_reference_columns_hypothesis"])) > 1000


def test_exported_tag_signature_gives_the_keras_model_s_frames_also_in_a_tf1_session(voice_activity):
    files = [str(u.audio) for u in corpora.read_manifest(voice_activity["manifest"])[:4]]
    result = verify.verify(voice_activity["export"], export.load_trained(voice_activity["run"]), files)
    assert result.ok, result
    # TF Serving's way of loading (verify's session check) ran every signature on them.
    assert result.session_mismatches == () and result.session_difference <= verify.TOLERANCE


def test_digital_silence_is_all_background_in_the_exported_graph(voice_activity):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(voice_activity["export"]))
    speech = audio.load(corpora.read_manifest(voice_activity["manifest"])[0].audio)
    batch = np.stack([np.zeros_like(speech), speech])
    result = loaded.signatures["tag"](audio=tf.constant(batch), audio_length=tf.constant([speech.size] * 2))
    frames = int(result["frame_length"][0])
    assert set(result["tags"][0, :frames].numpy().tolist()) == {b"silence"}
    np.testing.assert_array_equal(result["probabilities"][0, :frames].numpy(), [[1.0, 0.0]] * frames)
    assert b"speech" in result["tags"][1, :frames].numpy().tolist()


def test_long_audio_is_tagged_in_windows_with_every_frame_once(voice_activity, tmp_path):
    utterances = corpora.read_manifest(voice_activity["manifest"])[:8]
    waveform = np.concatenate([audio.load(u.audio) for u in utterances])  # 24 s
    truth = [Segment(s.start + 3.0 * i, s.end + 3.0 * i, s.label) for i, u in enumerate(utterances) for s in u.segments]
    whole = Tagger(voice_activity["export"], TaggerOptions(window_seconds=60.0)).tag(waveform)
    windowed = Tagger(voice_activity["export"], TaggerOptions(window_seconds=5.0, overlap_seconds=1.0)).tag(waveform)
    assert len(windowed.probabilities) == len(whole.probabilities) == 1 + waveform.size // 160
    # 24.8 s: six windows, the last 4.8 s long. In batches of three it ends a full batch
    # and must still count as the last window, or its last frames are lost.
    longer = np.concatenate([waveform, np.zeros(int(0.8 * 16000), np.float32)])
    options = TaggerOptions(window_seconds=5.0, overlap_seconds=1.0)
    in_eights = Tagger(voice_activity["export"], options).tag(longer)
    in_threes = Tagger(voice_activity["export"], dataclasses.replace(options, batch_size=3)).tag(longer)
    assert len(in_threes.probabilities) == len(in_eights.probabilities) == 1 + longer.size // 160
    # Equal up to float rounding: batch shape changes the kernels' summation order.
    np.testing.assert_allclose(in_threes.probabilities, in_eights.probabilities, rtol=0, atol=1e-6)
    frames = data.frame_labels([s.start for s in truth], [s.end for s in truth], [1] * len(truth),
                               len(whole.probabilities), FeatureConfig(n_mels=40), 0).numpy()
    # Each window is normalised on its own, so frames differ a little; accuracy must not suffer.
    accuracy = {name: np.mean(result.probabilities.argmax(axis=1) == frames)
                for name, result in (("whole", whole), ("windowed", windowed))}
    assert accuracy["windowed"] >= accuracy["whole"] - 0.03 and accuracy["windowed"] > 0.8, accuracy


def test_tag_cli_writes_each_format_and_reports_bad_files(voice_activity, tmp_path, capsys):
    good = corpora.read_manifest(voice_activity["manifest"])[0].audio
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt nonsense")
    for format, suffix in [("json", "json"), ("rttm", "rttm"), ("textgrid", "TextGrid"), ("csv", "csv")]:
        code = cli.main(["tag", str(good), str(broken), "--model", str(voice_activity["export"].parent),
                         "--format", format, "--out", str(tmp_path / format)])
        assert code == 1
        assert f"{broken}: cannot decode audio" in capsys.readouterr().err
        # The inputs are in two folders: their outputs mirror those folders under --out.
        common = Path(os.path.commonpath([good.parent, broken.parent]))
        written = tmp_path / format / good.parent.relative_to(common) / f"{good.stem}.{suffix}"
        if format == "json":
            assert json.loads(written.read_text())["segments"]
        else:
            assert segments.read(written)
    plot = tmp_path / "vad.png"
    assert cli.main(["tag", str(good), "--model", str(voice_activity["export"]), "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    # What is drawn: spectrogram, a posterior curve per label, a span per segment.
    import matplotlib.pyplot as plt

    tagger = Tagger(voice_activity["export"])
    result = tagger.tag(good)
    figure = plots.tagging_figure(good, result, tagger.features)
    try:
        spectrogram, posteriors, spans = figure.axes
        assert spectrogram.get_title() == str(good) and len(spectrogram.images) == 1
        assert [line.get_label() for line in posteriors.lines] == ["silence", "speech"]
        assert all(len(line.get_ydata()) == len(result.probabilities) for line in posteriors.lines)
        assert result.segments and [(s.get_x(), s.get_x() + s.get_width()) for s in spans.patches] == [
            (segment.start, segment.end) for segment in result.segments]
        assert [text.get_text() for text in spans.texts] == [segment.label for segment in result.segments]
    finally:
        plt.close(figure)


def test_two_inputs_with_one_name_are_tagged_into_two_files(voice_activity, tmp_path):
    clips = [u.audio for u in corpora.read_manifest(voice_activity["manifest"])[:2]]
    for folder, clip in zip("ab", clips):
        (tmp_path / folder).mkdir()
        shutil.copy(clip, tmp_path / folder / "x.wav")
    out = tmp_path / "out"
    assert cli.main(["tag", str(tmp_path / "a"), str(tmp_path / "b" / "x.wav"), "--model",
                     str(voice_activity["export"]), "--format", "json", "--out", str(out)]) == 0
    written = [json.loads((out / folder / "x.json").read_text()) for folder in "ab"]
    assert written[0]["segments"] != written[1]["segments"]  # two scenes, two results


def test_smoothing_tuned_on_dev_ships_with_the_export_and_tag_uses_it(voice_activity, tmp_path, capsys):
    manifest, first = voice_activity["manifest"], corpora.read_manifest(voice_activity["manifest"])[0].audio
    code = cli.main(["export", str(voice_activity["run"]), "--out", str(tmp_path / "vad"), "--samples", str(first),
                     "--tune-smoothing", str(manifest)])
    assert code == 0, capsys.readouterr().err
    assert "smoothing tuned on 24 dev utterances" in capsys.readouterr().out
    tuned_export = tmp_path / "vad" / "1"
    shipped = json.loads((tuned_export / "assets" / "smoothing.json").read_text())
    assert json.loads((tuned_export / "assets" / "model_card.json").read_text())["smoothing"] == shipped
    assert shipped["dev"]["frame_f1"] + shipped["dev"]["segment_f1"] >= (
        shipped["dev_with_defaults"]["frame_f1"] + shipped["dev_with_defaults"]["segment_f1"])
    chosen = SmoothingOptions(**shipped["options"])
    assert Tagger(tuned_export).smoothing == chosen
    # What `tag` writes with the shipped smoothing scores what the tuning said it would.
    utterances = corpora.read_manifest(manifest)
    scores = evaluate.score_tagging(tuned_export, utterances)
    assert scores["smoothed_per_class_f1"]["speech"] == pytest.approx(shipped["dev"]["frame_f1"], abs=1e-4)
    assert scores["segment_f1"] == pytest.approx(shipped["dev"]["segment_f1"], abs=1e-4)
    # A re-export keeps it; the untuned export has none and uses the defaults.
    again = export.write_version(export.load_trained(tuned_export), tmp_path / "vad")
    assert Tagger(again).smoothing == chosen
    assert Tagger(voice_activity["export"]).smoothing == SmoothingOptions()


def test_utterances_without_segments_score_and_tune_as_all_background(voice_activity, tmp_path):
    import soundfile

    assert data.frame_labels([], [], [], 4, FeatureConfig(), 1).numpy().tolist() == [1, 1, 1, 1]
    quiet = tmp_path / "quiet.wav"
    soundfile.write(quiet, np.zeros(32000, np.float32), 16000)  # digital silence: the export finds nothing
    noisy = corpora.read_manifest(voice_activity["manifest"])[:3]
    utterances = [corpora.Utterance(quiet, "", "nobody", 2.0, ()), *noisy]
    scores = evaluate.score_tagging(voice_activity["export"], utterances[:1])
    assert scores["frame_accuracy"] == 1.0 and scores["segment_f1"] == 1.0
    assert scores["confusion"]["rows_reference_columns_hypothesis"] == [[201, 0], [0, 0]]
    assert tuning.tune(voice_activity["export"], utterances).utterances == 4


def test_tag_uses_a_model_s_shipped_smoothing_unless_a_setting_is_given(voice_activity, tmp_path, capsys):
    import shutil

    version = tmp_path / "vad" / "1"
    shutil.copytree(voice_activity["export"], version)
    wide = SmoothingOptions(median_frames=9, onset=0.7, offset=0.6, min_segment=0.5, min_gap=0.5)
    (version / "assets" / "smoothing.json").write_text(json.dumps({"options": dataclasses.asdict(wide)}))
    clip = corpora.read_manifest(voice_activity["manifest"])[0].audio

    def tagged(model, *options) -> list[dict]:
        assert cli.main(["tag", str(clip), "--model", str(model), *options]) == 0
        return json.loads(capsys.readouterr().out)["segments"]

    expected = Tagger(voice_activity["export"], TaggerOptions(smoothing=wide)).tag(clip).segments
    assert [(s["start"], s["end"]) for s in tagged(version)] == [(s.start, s.end) for s in expected]
    assert tagged(version) != tagged(voice_activity["export"])
    # One setting given on the command line replaces the shipped one; the rest stay.
    expected = Tagger(voice_activity["export"], TaggerOptions(smoothing=dataclasses.replace(wide, min_segment=0.05)))
    assert [(s["start"], s["end"]) for s in tagged(version, "--min-segment", "0.05")] == [
        (s.start, s.end) for s in expected.tag(clip).segments]
    assert cli.main(["tag", str(clip), "--model", str(version), "--onset", "0.3"]) == 2
    assert "offset <= onset" in capsys.readouterr().err
    (version / "assets" / "smoothing.json").write_text('{"options": {"median": 3}}')
    assert cli.main(["tag", str(clip), "--model", str(version)]) == 2
    assert "smoothing.json: not a smoothing file" in capsys.readouterr().err


def test_transcribe_cli_draws_the_word_alignment(tmp_path):
    plot = tmp_path / "words.png"
    samples = Path(__file__).resolve().parents[1] / "samples" / "pin-code.wav"
    model = Path(__file__).resolve().parents[1] / "saved_models" / "digits"
    assert cli.main(["transcribe", str(samples), "--model", str(model), "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # What is drawn: the spectrogram, then one span per word at the word's times, named.
    import matplotlib.pyplot as plt

    from speechseq.transcribe import Transcriber

    transcriber = Transcriber(model)
    result = transcriber.transcribe(samples)
    figure = plots.transcription_figure(samples, result, transcriber.features)
    try:
        spectrogram, words = figure.axes
        assert spectrogram.get_title() == str(samples)
        assert [image.get_array().shape[0] for image in spectrogram.images] == [transcriber.features.n_mels]
        assert [(span.get_x(), span.get_x() + span.get_width()) for span in words.patches] == [
            (w.start, w.end) for w in result.words]
        assert [text.get_text() for text in words.texts] == result.text.split() == ["four", "two", "seven", "one"]
        assert words.get_xlabel() == "seconds" and words.get_xlim() == (0, result.duration)
    finally:
        plt.close(figure)


def test_scenes_label_speech_from_first_to_last_sound(fsdd_dir, tmp_path):
    def rms(samples):
        return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))

    clips = scenes.fsdd_speakers(fsdd_dir, ["lucas"], range(3))  # his clips hold silence around the word
    manifest = scenes.build(clips, tmp_path, scenes.SceneOptions(seconds=4.0, scenes_per_speaker=4, snrs=(None,)))
    again = scenes.build(clips, tmp_path / "again", scenes.SceneOptions(seconds=4.0, scenes_per_speaker=4, snrs=(None,)))
    first, second = corpora.read_manifest(manifest), corpora.read_manifest(again)
    assert [u.segments for u in first] == [u.segments for u in second]  # same seed, same scenes
    for utterance in first:
        samples = audio.load(utterance.audio)
        assert utterance.duration == 4.0 and 1 <= len(utterance.segments) <= 3
        speech = np.zeros(samples.size, bool)
        for segment in utterance.segments:
            start, end = round(segment.start * 16000), round(segment.end * 16000)
            # Tight to the 25 ms feature frame: the frame at each edge holds sound within
            # trim_db of the word's loudest frame (not silence up to 100 ms away from it).
            peak = max(rms(samples[at : at + 400]) for at in range(start, end - 400, 160))
            assert rms(samples[max(0, start - 200) : start + 200]) > 10 ** (-35 / 20) * peak / 2
            assert rms(samples[end - 360 : end + 40]) > 10 ** (-35 / 20) * peak / 2
            speech[start:end] = True
        # Clean scenes: outside the segments only what trimming left, quieter than trim_db below the peak.
        assert np.abs(samples[~speech]).max() <= 10 ** (-35 / 20) * np.abs(samples).max() + 1e-4


def test_the_shipped_voice_activity_model_finds_unheard_speakers_in_noise(fsdd_dir, tmp_path):
    """saved_models/voice-activity (highest version) on 10 dB scenes of the two FSDD
    speakers it never heard: the figures of benchmarks/RESULTS.md, on fewer scenes."""
    model = Path(__file__).resolve().parents[1] / "saved_models" / "voice-activity"
    held_out = scenes.fsdd_speakers(fsdd_dir, ["lucas", "yweweler"], range(50))
    manifest = scenes.build(held_out, tmp_path, scenes.SceneOptions(scenes_per_speaker=6, snrs=(10.0,), seed=4))
    scores = evaluate.score_tagging(model, corpora.read_manifest(manifest))
    # Measured: speech F1 0.935 and segment F1 0.857 for voice-activity/2's weights, which
    # voice-activity/3 holds (0.93 and 0.92 on 200 scenes).
    assert scores["per_class_f1"]["speech"] > 0.9, scores
    assert scores["segment_f1"] > 0.8, scores


def test_the_shipped_digit_tagger_tags_the_digits_of_a_speaker_it_never_heard(fsdd_dir, tmp_path):
    """saved_models/digit-tags on connected digits of lucas, whom it never heard (the recipe's
    held-out speaker): 90.2% frame accuracy on the recipe's 130 strings (benchmarks/RESULTS.md)."""
    from speechseq import derived

    model = Path(__file__).resolve().parents[1] / "saved_models" / "digit-tags"
    options = derived.DigitSequenceOptions(held_out_speaker="lucas", passes=(), seed=3)
    manifest = derived.connected_digits(fsdd_dir, tmp_path, options)["held_out"]
    scores = evaluate.score_tagging(model, corpora.read_manifest(manifest)[:40])
    assert scores["frame_accuracy"] > 0.85, scores
    assert min(scores["per_class_f1"].values()) > 0.6, scores  # every digit, "four" included


def test_tag_resume_skips_the_files_tagged_already_and_keeps_their_outputs(tmp_path, capsys):
    """`tag` runs files through the same runner as `transcribe`: --resume keyed on the output names."""
    from conftest import fsdd_clip

    model = str(Path(__file__).resolve().parents[1] / "saved_models" / "voice-activity")
    clips = [str(fsdd_clip(3)), str(fsdd_clip(7, "nicolas"))]
    out = tmp_path / "out"
    assert cli.main(["tag", *clips, "--model", model, "--out", str(out)]) == 0
    first = {path: path.read_text() for path in out.rglob("*.json")}
    assert len(first) == 2
    removed = sorted(first)[0]
    removed.unlink()
    capsys.readouterr()
    assert cli.main(["tag", *clips, "--model", model, "--out", str(out), "--resume"]) == 0
    assert "resuming: 1 files done already, 1 to go" in capsys.readouterr().err
    assert {path: path.read_text() for path in out.rglob("*.json")} == first
    assert cli.main(["tag", *clips, "--model", model, "--resume"]) == 2  # without --out: refused
    assert "--resume needs --out" in capsys.readouterr().err


def test_a_folder_of_short_files_costs_the_tagger_one_model_call_per_batch():
    """Tagger and Transcriber share one windowing engine: windows of many files fill a batch."""
    from conftest import fsdd_clip

    model = Path(__file__).resolve().parents[1] / "saved_models" / "voice-activity"
    tagger = Tagger(model, TaggerOptions(batch_size=4))
    calls: list[int] = []
    signature = tagger._tag_signature
    tagger._tag_signature = lambda **inputs: calls.append(len(inputs["audio"])) or signature(**inputs)
    files = [fsdd_clip(digit) for digit in range(10)]
    results = list(tagger.tag_files(files))
    assert calls == [4, 4, 2]
    alone = Tagger(model)  # one file per call: the same posteriors
    for path, result in zip(files, results):
        assert result.source == str(path)
        np.testing.assert_allclose(result.probabilities, alone.tag(path).probabilities, atol=1e-4)
    with pytest.raises(SpeechseqError, match="overlap_seconds"):
        TaggerOptions(window_seconds=4.0, overlap_seconds=2.0)
