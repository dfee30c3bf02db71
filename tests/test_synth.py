"""Synthetic speakers from eSpeak NG."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from speechseq import audio, derived, synth
from speechseq.errors import SpeechseqError
from speechseq.synth import Voice


@pytest.fixture(scope="module")
def synthesizer():
    return synth.Synthesizer()


def test_speech_is_audible_and_its_length_follows_the_rate(synthesizer):
    assert synthesizer.sample_rate == 22050
    slow = synthesizer.speak("three one four one five nine", Voice(rate=120))
    fast = synthesizer.speak("three one four one five nine", Voice(rate=240))
    assert slow.dtype == np.float32 and np.abs(slow).max() > 0.1
    assert 1.6 < slow.size / fast.size < 2.4
    assert 1.0 < slow.size / synthesizer.sample_rate < 6.0


def test_voices_are_distinct_speakers(synthesizer):
    chosen = synth.voices(12, seed=3)
    assert len({v.speaker for v in chosen}) == 12
    assert synth.voices(12, seed=3) == chosen
    a = synthesizer.speak("seven", Voice(variant="m3", pitch=30))
    b = synthesizer.speak("seven", Voice(variant="f3", pitch=70))
    # Different timbre and pitch: different spectra, not just different lengths.
    spectrum = lambda x: np.abs(np.fft.rfft(x[:4096] * np.hanning(4096)))
    assert np.corrcoef(spectrum(a), spectrum(b))[0, 1] < 0.9


def test_unknown_voice_is_refused(synthesizer):
    with pytest.raises(SpeechseqError, match="no voice 'zz-none'"):
        synthesizer.speak("one", Voice(name="zz-none"))


def test_synthetic_corpus_writes_loadable_wavs(synthesizer, tmp_path):
    texts = ["one two", "nine"]
    utterances = synth.synthetic_corpus(texts, synth.voices(2), tmp_path, synthesizer)
    assert [u.text for u in utterances] == texts * 2
    for utterance in utterances:
        assert soundfile.info(utterance.audio).samplerate == 22050
        assert audio.load(utterance.audio).size == pytest.approx(utterance.duration * 16000, abs=2)
    # Another call into the same folder (a dev split, say) gets its own texts' audio.
    voice = synth.voices(1)
    [other] = synth.synthetic_corpus(["seven eight nine zero seven"], voice, tmp_path, synthesizer)
    [again] = synth.synthetic_corpus(["one two"], voice, tmp_path, synthesizer)
    assert other.audio != again.audio and other.duration > 2 * again.duration
    assert again.audio == utterances[0].audio  # the same text by the same voice is kept, not rebuilt


def test_a_second_synthesizer_in_one_process_still_speaks():
    # espeak_Initialize twice in one process used to hang the next synthesis:
    # run it in a child with a timeout so a regression fails instead of stalling.
    import subprocess
    import sys

    script = (
        "from speechseq import synth\n"
        "first = synth.Synthesizer(); first.speak('one two')\n"
        "second = synth.Synthesizer(); print(second.speak('three four five').size, first.speak('six').size)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    second, first = (int(n) for n in done.stdout.split())
    assert second > 5000 and first > 2000


def test_synthetic_digit_clips_join_fsdd_s_into_training_utterances_with_exact_segments(synthesizer, fsdd_dir,
                                                                                       tmp_path):
    from speechseq import corpora

    voices = synth.voices(2, seed=13)
    clips = synth.digit_clips(voices, tmp_path / "clips", range(10, 12), synthesizer=synthesizer)
    assert len(clips) == 2 * 2 * 10 and len({c.speaker for c in clips}) == 2
    by_path = {}
    for clip in clips:
        assert corpora.FSDD_NAME.match(clip.path.stem).groups() == (str(clip.digit), clip.speaker, str(clip.take))
        samples, rate = soundfile.read(clip.path, dtype="int16")
        assert rate == 8000 and 0.15 < samples.size / rate < 1.0
        by_path[clip.path] = samples
    takes = {c.take: by_path[c.path] for c in clips if c.digit == 7 and c.speaker == clips[0].speaker}
    assert takes[10].size != takes[11].size or not np.array_equal(takes[10], takes[11])  # takes differ

    options = derived.DigitSequenceOptions(passes=(("train", 1), ("dev", 1), ("test", 1)), held_out_speaker="lucas",
                                           trim_db=None)  # segments are then whole clips, found below
    manifests = derived.connected_digits(fsdd_dir, tmp_path / "digits", options, clips)
    synthetic = [u for u in corpora.read_manifest(manifests["train"]) if u.speaker.startswith("espeak")]
    assert {u.speaker for u in synthetic} == {c.speaker for c in clips}
    assert sum(len(u.segments) for u in synthetic) == len(clips)  # each clip once, in training only
    for split in ("dev", "test", "held_out"):
        assert not any(u.speaker.startswith("espeak") for u in corpora.read_manifest(manifests[split]))
    utterance = synthetic[0]
    joined, rate = soundfile.read(utterance.audio, dtype="int16")
    pieces = [joined[round(s.start * rate):round(s.end * rate)] for s in utterance.segments]
    assert all(any(np.array_equal(piece, samples) for samples in by_path.values()) for piece in pieces)
    assert utterance.text == " ".join(s.label for s in utterance.segments)
