"""Export to TF Serving: signatures, a fresh-process check, WAV input, atomic versions, REST."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tf_serving_rest
from conftest import fsdd_clip
from speechseq import audio, cli, export, serving, verify
from speechseq.published import open_published, resolve_version, versions

ROOT = Path(__file__).resolve().parents[1]
# The digits-only model: its greedy characters spell its words, which these tests of the
# export's graph read (digits/5, the English model with the digit list, spells "hre" greedily).
SHIPPED = ROOT / "saved_models" / "digits" / "4"
CLIPS = [fsdd_clip(digit, speaker, take) for digit, speaker, take in
         [(3, "jackson", 0), (7, "jackson", 1), (0, "george", 2), (9, "yweweler", 3), (4, "lucas", 4)]]


@pytest.fixture(scope="module")
def trained():
    return export.load_trained(resolve_version(SHIPPED))


@pytest.fixture(scope="module")
def export_report(tmp_path_factory):
    """The shipped model exported again by the CLI, verified, with FSDD clips as samples:
    the version's folder and what the CLI printed."""
    root = tmp_path_factory.mktemp("saved_models") / "digits"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(["export", str(resolve_version(SHIPPED)), "--out", str(root), "--verify",
                         "--samples", *map(str, CLIPS)])
    assert code == 0
    return root / "1", printed.getvalue()


@pytest.fixture(scope="module")
def exported(export_report):
    return export_report[0]


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported))


@pytest.fixture(scope="module")
def session(exported):
    """The export in a TF1 session, as TF Serving's model server loads it."""
    with serving.SessionModel(exported) as model:
        yield model


def test_signatures_have_named_inputs_and_outputs_with_free_batch_and_time(exported):
    defs = serving.signature_defs(exported)
    assert {"serving_default", "transcribe_wav", "log_probs", "audio_log_probs"} <= set(defs)

    def shapes(tensors):
        return {key: [d.size for d in info.tensor_shape.dim] for key, info in tensors.items()}

    default = defs["serving_default"]
    assert shapes(default.inputs) == {"audio": [-1, -1], "audio_length": [-1]}
    outputs = shapes(default.outputs)
    assert outputs["transcript"] == [-1] and outputs["confidence"] == [-1]
    assert outputs["token_start"] == [-1, -1] and outputs["token_end"] == [-1, -1]
    assert shapes(defs["transcribe_wav"].inputs) == {"wav": [-1]}
    assert set(defs["transcribe_wav"].outputs) == set(default.outputs)
    feature_dim = json.loads((exported / "assets" / "features.json").read_text())["n_mels"]
    assert shapes(defs["log_probs"].inputs) == {"features": [-1, -1, feature_dim], "feature_lengths": [-1]}
    assert set(defs["log_probs"].outputs) == {"log_probs", "output_lengths"}
    for signature in defs.values():
        for key in [*signature.inputs, *signature.outputs]:
            assert not re.fullmatch(r"(args|output)_\d+", key), key
    described = serving.describe(exported)
    assert "signature_def['transcribe_wav']" in described and "shape: (-1, -1)" in described


def test_export_in_a_fresh_process_matches_the_keras_model(export_report, trained):
    # `export --verify` ran the export in a fresh process on CLIPS and compared it with Keras.
    found = re.search(r"verified in a fresh process on (\d+) files: same outputs \(max \|difference\| (\S+)\); "
                      r"every signature runs in a TF1 session as TF Serving loads it \(max \|difference\| (\S+)\)",
                      export_report[1])
    assert found, export_report[1]
    assert int(found[1]) == len(CLIPS) and float(found[2]) <= verify.TOLERANCE and float(found[3]) <= verify.TOLERANCE
    keras_side = verify.keras_outputs(trained, [str(c) for c in CLIPS])
    assert [k["labels"] for k in keras_side][:4] == ["three", "seven", "zero", "nine"]


def test_verification_catches_an_export_that_differs(exported, trained):
    changed = trained.model.get_layer("ctc_logits")
    original = [w.copy() for w in changed.get_weights()]
    try:
        changed.set_weights([w + 0.5 * np.random.default_rng(0).standard_normal(w.shape) for w in original])
        result = verify.verify(exported, trained, [str(c) for c in CLIPS[:2]])
    finally:
        changed.set_weights(original)
    assert not result.ok and result.max_difference > verify.TOLERANCE


class _KerasTrackedServing(serving.CTCServing):
    """The serving module as it was before exports ran in TF Serving: the Keras model
    tracked, its variables not (see `serving._ServingModule`)."""

    def __init__(self, trained):
        super().__init__(trained)
        self.served_variables = []
        self.keras_model = trained.model


def test_verification_catches_an_export_that_tf_serving_cannot_run(exported, trained, tmp_path):
    broken = tmp_path / "1"
    shutil.copytree(exported, broken, ignore=shutil.ignore_patterns("saved_model.pb", "variables"))
    module = _KerasTrackedServing(trained)
    tf.saved_model.save(module, str(broken), signatures=module.signatures())
    published = open_published(broken)  # TF2's loader runs it: the old tests passed
    waveform = audio.load(CLIPS[0])
    assert published.signatures["serving_default"](
        audio=tf.constant(waveform[None]), audio_length=tf.constant([waveform.size])
    )["transcript"].numpy().tolist() == [b"three"]
    found = verify.session_outputs_differ(published, [str(CLIPS[0])])  # what `export --verify` runs
    problems = "\n".join(found["mismatches"])
    failing = set(re.findall(r": (\w+) fails in a TF1 session: .*Could not find variable", problems))
    assert failing == {"serving_default", "transcribe_wav", "log_probs", "audio_log_probs"}, problems
    assert "warmup request for 'serving_default' fails in a TF1 session" in problems
    result = verify.Verification((str(CLIPS[0]),), 0.0, (), found["difference"], tuple(found["mismatches"]))
    assert not result.ok and "TF Serving's session loader" in result.problems()


def test_wav_bytes_at_8k_and_44k_give_the_text_of_the_resampled_waveform(loaded):
    clips = CLIPS[:4]
    native = [clip.read_bytes() for clip in clips]  # FSDD: 8 kHz 16-bit WAV
    high = [verify.wav_bytes(audio.load(clip, 44_100), 44_100) for clip in clips]
    waveforms = [audio.load(clip) for clip in clips]
    width = max(w.size for w in waveforms)
    padded = np.stack([np.pad(w, (0, width - w.size)) for w in waveforms])
    reference = loaded.signatures["serving_default"](
        audio=tf.constant(padded), audio_length=tf.constant([w.size for w in waveforms], tf.int32)
    )["transcript"].numpy().tolist()
    assert reference == [b"three", b"seven", b"zero", b"nine"]
    for wavs in (native, high):
        result = loaded.signatures["transcribe_wav"](wav=tf.constant(wavs))
        assert result["transcript"].numpy().tolist() == reference
        assert result["token_count"].numpy().tolist() == [len(t) for t in reference]


def test_rows_of_digital_silence_give_no_words_beside_speech_in_one_batch(loaded):
    clip = audio.load(CLIPS[0])  # "three"
    hiss = np.random.default_rng(0).uniform(-5e-5, 5e-5, clip.size).astype(np.float32)  # below -80 dBFS
    quiet_speech = clip / np.abs(clip).max() * 3e-4  # just above it: still read
    batch = np.stack([np.zeros_like(clip), hiss, clip, quiet_speech])
    lengths = tf.constant([clip.size] * 4)
    result = loaded.signatures["serving_default"](audio=tf.constant(batch), audio_length=lengths)
    assert result["transcript"].numpy().tolist()[:3] == [b"", b"", b"three"]
    assert result["token_count"].numpy().tolist()[:2] == [0, 0] and result["token_count"].numpy()[3] > 0
    frames = loaded.signatures["audio_log_probs"](audio=tf.constant(batch), audio_length=lengths)["output_lengths"]
    assert frames.numpy().tolist()[:2] == [0, 0] and frames.numpy()[2] > 0


def test_token_times_fall_inside_the_spoken_digits(loaded):
    clips = [audio.load(clip) for clip in CLIPS[:3]]  # three, seven, zero

    def silence(seconds):
        return np.zeros(int(seconds * 16000), np.float32)

    waveform = np.concatenate([silence(0.5), clips[0], silence(0.3), clips[1], silence(0.3), clips[2], silence(0.5)])
    spans, cursor = [], 0.5
    for clip in clips:
        spans.append((cursor, cursor + clip.size / 16000))
        cursor += clip.size / 16000 + 0.3
    result = loaded.signatures["serving_default"](audio=tf.constant(waveform[None]),
                                                  audio_length=tf.constant([waveform.size]))
    assert result["transcript"].numpy()[0] == b"three seven zero"
    count = int(result["token_count"][0])
    tokens = [t.decode() for t in result["tokens"][0, :count].numpy()]
    starts, ends = result["token_start"][0, :count].numpy(), result["token_end"][0, :count].numpy()
    word_starts = [starts[i] for i, t in enumerate(tokens) if t != " " and (i == 0 or tokens[i - 1] == " ")]
    for start, (clip_start, clip_end) in zip(word_starts, spans):
        assert clip_start - 0.1 <= start <= clip_end, (start, clip_start, clip_end)
    assert np.all(np.diff(starts) > 0) and np.all(ends > starts)
    assert 0.5 < float(result["confidence"][0]) <= 1.0
    assert np.all(result["token_start"][0, count:].numpy() == -1.0)


@pytest.mark.parametrize("loader", ["tf1_session", "tf2"])
def test_rest_bodies_decoded_the_tf_serving_way_run_on_the_signatures(exported, loaded, session, loader):
    run = session.run if loader == "tf1_session" else tf_serving_rest.tf2_runner(loaded)
    defs = serving.signature_defs(exported)
    written = json.loads((exported / "assets.extra" / "rest_request.json").read_text())
    assert written["signature_name"] == "transcribe_wav" and "b64" in written["instances"][0]["wav"]
    rows = tf_serving_rest.predict(run, defs, written)["predictions"]
    assert [row["transcript"] for row in rows] == ["three", "seven", "zero", "nine"]
    waveforms = [audio.load(clip) for clip in CLIPS[:2]]
    row_body = serving.rest_request("serving_default", audio=waveforms)
    assert [r["transcript"] for r in tf_serving_rest.predict(run, defs, row_body)["predictions"]] == ["three", "seven"]
    columnar = {"signature_name": "serving_default", "inputs": {
        "audio": [row["audio"] for row in row_body["instances"]],
        "audio_length": [row["audio_length"] for row in row_body["instances"]]}}
    assert tf_serving_rest.predict(run, defs, columnar)["outputs"]["transcript"] == ["three", "seven"]
    curl = serving.curl_command("digits", exported / "assets.extra" / "rest_request.json")
    assert curl.startswith("curl ") and ":8501/v1/models/digits:predict" in curl


def test_warmup_requests_replay_in_a_tf1_session_as_the_server_does_at_load(exported, session):
    logs = serving.read_warmup(exported)
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == ["serving_default", "transcribe_wav"]
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "digits"
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        result = session.run(request.model_spec.signature_name, inputs)
        assert result["transcript"][0] == b"three"


def test_assets_carry_vocabulary_features_card_and_the_keras_model(exported):
    card = json.loads((exported / "assets" / "model_card.json").read_text())
    assert card["name"] == "digits" and card["version"] == 1 and card["sample_rate"] == 16000
    for key in ("architecture", "training", "metrics", "license"):
        assert card[key], key
    assert json.loads((exported / "assets" / "vocabulary.json").read_text())["blank_id"] == 0
    assert (exported / "assets.extra" / "model.keras").stat().st_size > 100_000
    again = export.load_trained(exported)
    assert again.subsampling == 2 and again.task == "ctc"


def test_versions_count_up_and_a_published_version_is_never_replaced(trained, tmp_path):
    root = tmp_path / "digits"
    shutil.copytree(resolve_version(SHIPPED), root / "1")  # a published version (no second export)
    assert export.write_version(trained, root).name == "2"
    assert resolve_version(root).name == "2"
    with pytest.raises(export.ExportError, match="never overwritten"):
        export.write_version(trained, root, version=1)
    assert versions(root) == [1, 2]


def test_a_failed_export_publishes_nothing(trained, tmp_path):
    root = tmp_path / "digits"

    def fail(staging):
        assert (staging / "saved_model.pb").exists()
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        export.write_version(trained, root, finish=fail)
    assert list(root.iterdir()) == []


def test_a_killed_export_leaves_no_version_for_tf_serving(tmp_path):
    root = tmp_path / "digits"
    script = (
        "import sys\nfrom speechseq import export\nfrom speechseq.published import resolve_version\n"
        f"trained = export.load_trained(resolve_version({str(SHIPPED)!r}))\n"
        "export.write_version(trained, sys.argv[1], finish=lambda staging: __import__('time').sleep(60))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(root)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(root.glob(".1.partial-*/saved_model.pb")):
        assert child.poll() is None and time.monotonic() < deadline, "the export never started"
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert versions(root) == []
    assert not [p for p in root.iterdir() if p.name.isdigit()]


def test_inputs_that_cannot_be_right_are_refused_and_the_process_survives(exported):
    # Run in a child: whatever the graph does with these, this test process must not die.
    script = f"""
import io, numpy as np, soundfile, tensorflow as tf
loaded = tf.saved_model.load({str(exported)!r})
buffer = io.BytesIO()
soundfile.write(buffer, np.zeros(30 * 60 * 8000, np.int16), 8000, format="WAV", subtype="PCM_16")
thirty_minutes_wav = buffer.getvalue()
serve, wav = loaded.signatures["serving_default"], loaded.signatures["transcribe_wav"]
cases = {{
    "negative length": lambda: serve(audio=tf.zeros([1, 8000]), audio_length=tf.constant([-5])),
    "length past the audio": lambda: serve(audio=tf.zeros([1, 8000]), audio_length=tf.constant([9000])),
    "lengths for another batch": lambda: serve(audio=tf.zeros([2, 8000]), audio_length=tf.constant([8000])),
    "NaN samples": lambda: serve(audio=tf.fill([1, 8000], float("nan")), audio_length=tf.constant([8000])),
    "bytes that are not WAV": lambda: wav(wav=tf.constant([b"definitely not a wav file"])),
    "a 30-minute clip": lambda: serve(audio=tf.zeros([1, 30 * 60 * 16000]), audio_length=tf.constant([30 * 60 * 16000])),
    "a 30-minute WAV": lambda: wav(wav=tf.constant([thirty_minutes_wav])),
}}
for name, call in cases.items():
    try:
        call()
        print(name, "ACCEPTED")
    except tf.errors.InvalidArgumentError as error:
        print(name, "REFUSED", " ".join(error.message.split())[:300])
empty = serve(audio=tf.zeros([1, 0]), audio_length=tf.constant([0]))
print("empty audio", repr(empty["transcript"].numpy()[0]), int(empty["token_count"][0]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    refused = [line for line in done.stdout.splitlines() if "REFUSED" in line]
    assert len(refused) == 7, done.stdout
    assert any("must not be negative" in line for line in refused)
    assert sum("send longer audio in windows" in line for line in refused) == 2
    assert any("longer than the audio" in line for line in refused)
    assert "empty audio b'' 0" in done.stdout


def test_a_keras_file_carrying_python_code_is_refused_in_safe_mode(tmp_path, capsys):
    import shutil

    import keras

    assets = resolve_version(SHIPPED) / "assets"
    for name in ("features.json", "run.json", "vocabulary.json"):
        shutil.copy(assets / name, tmp_path / name)
    inputs = keras.Input((None, 40))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)  # a Python function inside the file
    keras.Model(inputs, outputs).save(tmp_path / "model.keras")
    assert cli.main(["export", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'model.keras'}: cannot load this Keras model" in error and "safe_mode" in error
    assert not (tmp_path / "out" / "1").exists()


@pytest.mark.parametrize("flag", ["--results", "--card"])
def test_a_results_or_card_file_that_is_not_a_json_object_is_refused_before_any_model_loads(tmp_path, capsys, flag):
    for text, problem in (("[0.1, 0.2]", "is a JSON object"), ("{wer: 0.1", "not valid JSON"), (None, "no such file")):
        given = tmp_path / "given.json"
        given.unlink(missing_ok=True)
        if text is not None:
            given.write_text(text)
        # The model path does not exist: the file is checked first, so its error is the one printed.
        assert cli.main(["export", str(tmp_path / "no-model"), "--out", str(tmp_path / "out"), flag, str(given)]) == 2
        error = capsys.readouterr().err
        assert f"{given}: " in error and problem in error, error
    assert not (tmp_path / "out").exists()
