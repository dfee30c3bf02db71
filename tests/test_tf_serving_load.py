"""Every shipped version, loaded as TF Serving's model server loads it.

TF Serving does not use TF2's object loader: it imports the MetaGraph into a session,
runs the saver's restore op and then `Session::Run` on a SignatureDef's tensor names.
These tests do exactly that, in child processes (a fresh TensorFlow that has never
seen the Keras models), and with TensorFlow's own `saved_model_cli run`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import fsdd_clip
from speechseq.published import resolve_version, versions

ROOT = Path(__file__).resolve().parents[1]
SAVED_MODELS = ROOT / "saved_models"
SAMPLE = ROOT / "samples" / "countdown.wav"  # "three two one zero"
SAVED_MODEL_CLI = Path(sys.executable).with_name("saved_model_cli")


def shipped_versions() -> list[Path]:
    return [root / str(v) for root in sorted(SAVED_MODELS.iterdir()) for v in versions(root)]


# One child process for every version: each runs every signature on real clips in a
# TF1 session and with TF2's loader (verify.session_outputs_differ), and reports what the
# session itself answered on the bundled sample between two pauses.
_CHILD = """
import json, sys
import numpy as np
from speechseq import serving, verify, audio
from speechseq.published import open_published
clips, report = sys.argv[2:], {}
for version in json.loads(sys.argv[1]):
    published = open_published(version)
    waveform = audio.load(clips[0], published.features.sample_rate)
    pause = np.zeros(published.features.sample_rate // 2, np.float32)  # half a second each side
    waveform = np.concatenate([pause, waveform, pause])
    inputs = {"audio": waveform[np.newaxis], "audio_length": np.array([waveform.size], np.int32)}
    with serving.SessionModel(version) as session:
        found = verify.session_outputs_differ(published, clips, session)
        if published.task == "ctc":
            found["answer"] = session.run("serving_default", inputs)["transcript"][0].decode()
        else:
            tags = session.run("tag", inputs)["tags"][0]
            found["answer"] = sorted({t.decode() for t in tags if t})
    report[version] = found
print(json.dumps(report))
"""


def test_every_shipped_version_runs_every_signature_in_a_tf1_session():
    versions = shipped_versions()
    assert {v.parent.name for v in versions} == {"digit-tags", "digits", "english-read", "voice-activity"}
    clips = [str(SAMPLE), str(fsdd_clip(7, "lucas", 1))]  # eSpeak NG and a real speaker
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(list(map(str, versions))), *clips],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for version, found in report.items():
        assert found["mismatches"] == [] and found["difference"] <= 1e-4, (version, found)
        name = Path(version).parent.name
        if name == "digits":
            assert found["answer"] == "three two one zero", (version, found)
        elif name == "voice-activity":
            assert found["answer"] == ["silence", "speech"], (version, found)
        elif name == "digit-tags":  # the four digits of the sample, and the pauses between them
            assert {"silence", "three", "two", "one", "zero"} <= set(found["answer"]), (version, found)
        else:
            assert found["answer"].strip(), (version, found)  # reads words from speech


def test_saved_model_cli_run_prints_the_transcript_of_a_bundled_sample(tmp_path):
    version = resolve_version(SAVED_MODELS / "digits")
    inputs = tmp_path / "wav.npy"
    np.save(inputs, np.array([SAMPLE.read_bytes()], dtype=object), allow_pickle=True)
    done = subprocess.run(
        [str(SAVED_MODEL_CLI), "run", "--dir", str(version), "--tag_set", "serve",
         "--signature_def", "transcribe_wav", "--inputs", f"wav={inputs}"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    assert "Result for output key transcript:" in printed, printed
    transcript = printed.split("Result for output key transcript:", 1)[1].strip().splitlines()[0]
    assert transcript == "[b'three two one zero']", printed
