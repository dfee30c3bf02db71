"""Check an export against the Keras model it came from, in a fresh process.

The export is loaded by a new Python process that has never seen the Keras model
(`python -m speechseq.verify VERSION_DIR FILE...`, which prints JSON), so a graph
that silently depends on state of the exporting process fails here, not in TF Serving.
That process loads it twice: with TF2's object loader (what `speechseq transcribe`
uses) and into a TF1 session as TF Serving's model server does (`serving.SessionModel`);
every signature must run in the session on every file, with the TF2 loader's outputs,
and the warmup records TF Serving replays at load must run there too.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from collections.abc import Sequence

import numpy as np

from speechseq.errors import SpeechseqError


@dataclasses.dataclass(frozen=True)
class Verification:
    """How far the export's outputs are from the Keras model's on the same files."""

    files: tuple[str, ...]
    max_difference: float  # largest |export - keras| over log-probs (or tag probabilities)
    mismatches: tuple[str, ...]  # files whose transcript (or tags) differ
    session_difference: float = 0.0  # largest |TF1 session - TF2 loader| over every float output
    session_mismatches: tuple[str, ...] = ()  # signatures whose session outputs differ or fail

    @property
    def ok(self) -> bool:
        return (not self.mismatches and self.max_difference <= TOLERANCE
                and not self.session_mismatches and self.session_difference <= TOLERANCE)

    def problems(self) -> str:
        """What went wrong, for an error message."""
        found = []
        if self.mismatches or self.max_difference > TOLERANCE:
            found += [f"max |export - keras| {self.max_difference:.2e}", *self.mismatches]
        if self.session_mismatches or self.session_difference > TOLERANCE:
            found += [f"TF Serving's session loader: max |session - TF2 loader| {self.session_difference:.2e}",
                      *self.session_mismatches]
        return "; ".join(found)


TOLERANCE = 1e-4  # log-probabilities: float32 round-off between two graph builds


def export_outputs(version_dir: str | os.PathLike, files: Sequence[str], published=None) -> list[dict]:
    """Run the export on each file: its scores (log-probs or tag probabilities) and labels.
    `published`: the export already opened (`open_published`)."""
    import tensorflow as tf

    from speechseq import audio
    from speechseq.published import open_published

    published = published or open_published(version_dir)
    loaded = published.loaded
    results = []
    for path in files:
        waveform = audio.load(path, published.features.sample_rate)
        inputs = {"audio": tf.constant(waveform[np.newaxis]), "audio_length": tf.constant([waveform.size])}
        if published.task == "ctc":
            outputs = loaded.signatures["audio_log_probs"](**inputs)
            length = int(outputs["output_lengths"][0])
            scores = outputs["log_probs"][0, :length].numpy()
            labels = loaded.signatures["serving_default"](**inputs)["transcript"][0].numpy().decode()
        else:
            outputs = loaded.signatures["tag"](**inputs)
            length = int(outputs["frame_length"][0])
            scores = outputs["probabilities"][0, :length].numpy()
            labels = outputs["tag_ids"][0, :length].numpy().tolist()
        results.append({"path": str(path), "scores": scores.tolist(), "labels": labels})
    return results


def signature_inputs(signature_def, waveform: np.ndarray, sample_rate: int, frontend) -> dict[str, np.ndarray]:
    """One clip as the inputs a signature takes: raw audio, WAV bytes, or features."""
    keys = set(signature_def.inputs)
    if keys == {"audio", "audio_length"}:
        return {"audio": waveform[np.newaxis], "audio_length": np.array([waveform.size], np.int32)}
    if keys == {"wav"}:
        return {"wav": np.array([wav_bytes(waveform, sample_rate)], object)}
    if keys == {"features", "feature_lengths"}:
        features, lengths = frontend(waveform[np.newaxis], np.array([waveform.size], np.int32))
        return {"features": np.asarray(features), "feature_lengths": np.asarray(lengths, np.int32)}
    raise SpeechseqError(f"no verify inputs for a signature taking {sorted(keys)}")


def wav_bytes(waveform: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV file bytes, as a client of the `*_wav` signatures sends them."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, waveform, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def session_outputs_differ(published, files: Sequence[str], session=None) -> dict:
    """Every signature of the export `published` (`open_published`, TF2's loader),
    run on every file in a TF1 session as TF Serving runs it (`session`, a
    `serving.SessionModel`, opened here unless given) and with TF2's loader, and the
    warmup records replayed in the session: the largest float difference and what
    failed or differed."""
    import tensorflow as tf

    from speechseq import serving

    if session is not None:
        return _compare_with_session(published, session, files)
    try:
        opened = serving.SessionModel(published.folder)
    except (OSError, RuntimeError, ValueError, tf.errors.OpError) as error:  # report it, don't crash
        return {"difference": float("inf"), "mismatches": [f"cannot load in a TF1 session: {_first_line(error)}"]}
    with opened:
        return _compare_with_session(published, opened, files)


def _compare_with_session(published, session, files: Sequence[str]) -> dict:
    import tensorflow as tf

    from speechseq import audio, serving
    from speechseq.features import feature_layer

    difference, mismatches = 0.0, []
    names = sorted(name for name in session.signature_defs if not name.startswith("__"))
    frontend = feature_layer(published.features)
    for path in files:
        waveform = audio.load(path, published.features.sample_rate)
        for name in names:
            inputs = signature_inputs(session.signature_defs[name], waveform, published.features.sample_rate, frontend)
            expected = {k: v.numpy() for k, v in published.signatures[name](
                **{k: tf.constant(v) for k, v in inputs.items()}).items()}
            try:
                got = session.run(name, inputs)
            except tf.errors.OpError as error:
                mismatches.append(f"{path}: {name} fails in a TF1 session: {_first_line(error)}")
                continue
            for key, value in expected.items():
                if value.dtype.kind == "f" and got[key].shape == value.shape:
                    difference = max(difference, float(np.abs(got[key] - value).max(initial=0.0)))
                elif not np.array_equal(got[key], value):
                    mismatches.append(f"{path}: {name}/{key} differs between the TF1 session and TF2 loader")
    if (published.folder / "assets.extra" / serving.WARMUP_FILE).exists():
        for log in serving.read_warmup(published.folder):
            request = log.predict_log.request
            try:
                session.run(request.model_spec.signature_name,
                            {k: tf.make_ndarray(proto) for k, proto in request.inputs.items()})
            except (tf.errors.OpError, KeyError, ValueError) as error:
                mismatches.append(f"warmup request for {request.model_spec.signature_name!r} fails in a "
                                  f"TF1 session: {_first_line(error)}")
    return {"difference": difference, "mismatches": mismatches}


def _first_line(error: Exception) -> str:
    text = getattr(error, "message", None) or str(error)
    return " ".join(text.split())[:300]


def keras_outputs(trained, files: Sequence[str], words=None) -> list[dict]:
    """The same as `export_outputs`, computed with the Keras model in this process; `words`
    (a `grammar.GrammarDecoder`): the word list the export ships, searched on the host."""
    from speechseq import audio, decoding, models
    from speechseq.features import feature_layer

    frontend = feature_layer(trained.features)
    predict = models.inference(trained.model)
    results = []
    for path in files:
        waveform = audio.load(path, trained.features.sample_rate)
        features, lengths = frontend(waveform[np.newaxis], np.array([waveform.size]))
        scores = np.asarray(predict(models.model_inputs(features, lengths)))
        if trained.task == "ctc":
            length = int(models.output_lengths(int(lengths[0]), trained.subsampling))
            if words is None:
                labels = decoding.ctc_greedy_texts(scores, [length], trained.classes)[0].strip()
            else:
                seconds = trained.features.seconds_per_frame(trained.subsampling)
                labels = " ".join(word.text for word in words.words(scores[0, :length], seconds))
        else:
            length = int(lengths[0])
            labels = decoding.frame_tags(scores, [length])[0].tolist()
        results.append({"path": str(path), "scores": scores[0, :length], "labels": labels})
    return results


def verify(version_dir: str | os.PathLike, trained, files: Sequence[str]) -> Verification:
    """Compare the export (loaded in a fresh process) with `trained` on `files` (decoded
    with the word list the export ships, if any: the graph's search against the host's)."""
    from speechseq import grammar

    words = grammar.shipped_decoder(version_dir, trained.classes) if trained.task == "ctc" else None
    done = subprocess.run(
        [sys.executable, "-m", "speechseq.verify", str(version_dir), *map(str, files)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        from speechseq.export import ExportError

        raise ExportError(f"the export at {version_dir} failed to run in a fresh process:\n{done.stderr[-3000:]}")
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    exported, session = printed["files"], printed["session"]
    expected = keras_outputs(trained, files, words)
    difference, mismatches = 0.0, []
    for ours, theirs in zip(expected, exported):
        scores = np.asarray(theirs["scores"], np.float32)
        if scores.shape != ours["scores"].shape:
            difference = float("inf")
        else:
            difference = max(difference, float(np.abs(scores - ours["scores"]).max(initial=0.0)))
        if theirs["labels"] != ours["labels"]:
            mismatches.append(f"{ours['path']}: keras {ours['labels']!r}, export {theirs['labels']!r}")
    return Verification(tuple(map(str, files)), difference, tuple(mismatches),
                        session["difference"], tuple(session["mismatches"]))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    from speechseq.published import open_published

    version_dir, files = argv[0], argv[1:]
    published = open_published(version_dir)
    print(json.dumps({"files": export_outputs(version_dir, files, published),
                      "session": session_outputs_differ(published, files)}))


if __name__ == "__main__":
    main()
