"""The bundled sample recordings: digit strings read by eSpeak NG voices, in samples/.

    .venv/bin/python pipelines/samples.py

Writes small 16 kHz 16-bit WAVs with the text each one says beside it (`.txt`).
The voices are not among those the shipped digits model was trained on (those come
from `synth.voices(..., seed=7)` in pipelines/digits.py).
"""

from __future__ import annotations

from pathlib import Path

import soundfile

from speechseq import audio, synth
from speechseq.files import atomic_path, write_text

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = {
    "pin-code": ("four two seven one", synth.Voice("en-us", "m3", rate=150, pitch=40)),
    "phone-number": ("five five five zero one nine eight", synth.Voice("en-gb-x-rp", "f1", rate=165, pitch=62)),
    "countdown": ("three two one zero", synth.Voice("en-gb-scotland", "m5", rate=140, pitch=48)),
}


def main() -> None:
    synthesizer = synth.Synthesizer()
    folder = ROOT / "samples"
    folder.mkdir(exist_ok=True)
    for name, (text, voice) in SAMPLES.items():
        speech = audio.resample(synthesizer.speak(text, voice), synthesizer.sample_rate, audio.SAMPLE_RATE)
        with atomic_path(folder / f"{name}.wav") as temporary:
            soundfile.write(temporary, speech, audio.SAMPLE_RATE, format="WAV", subtype="PCM_16")
        write_text(folder / f"{name}.txt", text + "\n")
        print(f"{folder / name}.wav: {text!r} by {voice.speaker}")


if __name__ == "__main__":
    main()
