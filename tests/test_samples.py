"""The README's main command: the bundled samples, transcribed by the shipped model."""

from __future__ import annotations

import sys
from pathlib import Path

from speechseq import cli, synth

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "pipelines"))

import samples  # noqa: E402  (pipelines/samples.py)


def test_the_shipped_model_transcribes_the_bundled_samples(capsys):
    assert cli.main(["transcribe", str(ROOT / "samples"), "--model", str(ROOT / "saved_models" / "digits"),
                     "--words"]) == 0
    printed = capsys.readouterr().out.splitlines()
    transcripts = dict(line.split(": ", 1) for line in printed if not line.startswith(" "))
    expected = {str(p.with_suffix(".wav")): p.read_text().strip() for p in (ROOT / "samples").glob("*.txt")}
    assert len(expected) == len(samples.SAMPLES) and transcripts == expected
    times = [line for line in printed if line.startswith(" ")]
    assert len(times) == len(expected) and all("@" in line for line in times)


def test_sample_voices_are_not_training_voices():
    training = {voice.speaker for voice in synth.voices(24 + 8, seed=7)}  # pipelines/digits.py's pool
    assert not training & {voice.speaker for _, voice in samples.SAMPLES.values()}
