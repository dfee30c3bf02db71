"""Check an export against the Keras model it came from, in a fresh process.

The export is loaded by a new Python process that has never seen the Keras model
(`python -m speechseq.verify VERSION_DIR FILE...`, which prints JSON), so a graph
that silently depends on state of the exporting process fails here, not in TF Serving.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Verification:
    """How far the export's outputs are from the Keras model's on the same files."""

    files: tuple[str, ...]
    max_difference: float  # largest |export - keras| over log-probs (or tag probabilities)
    mismatches: tuple[str, ...]  # files whose transcript (or tags) differ

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.max_difference <= TOLERANCE


TOLERANCE = 1e-4  # log-probabilities: float32 round-off between two graph builds


def export_outputs(version_dir: str | os.PathLike, files: Sequence[str]) -> list[dict]:
    """Run the export on each file: its scores (log-probs or tag probabilities) and labels."""
    import tensorflow as tf

    from speechseq import audio, export

    published = export.open_published(version_dir)
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


def keras_outputs(trained, files: Sequence[str]) -> list[dict]:
    """The same as `export_outputs`, computed with the Keras model in this process."""
    from speechseq import audio, decoding, evaluate, models
    from speechseq.features import feature_layer

    frontend = feature_layer(trained.features)
    predict = evaluate.inference(trained.model)
    results = []
    for path in files:
        waveform = audio.load(path, trained.features.sample_rate)
        features, lengths = frontend(waveform[np.newaxis], np.array([waveform.size]))
        scores = np.asarray(predict(models.model_inputs(features, lengths)))
        if trained.task == "ctc":
            length = int(models.output_lengths(int(lengths[0]), trained.subsampling))
            labels = decoding.ctc_greedy_texts(scores, [length], trained.classes)[0].strip()
        else:
            length = int(lengths[0])
            labels = decoding.frame_tags(scores, [length])[0].tolist()
        results.append({"path": str(path), "scores": scores[0, :length], "labels": labels})
    return results


def verify(version_dir: str | os.PathLike, trained, files: Sequence[str]) -> Verification:
    """Compare the export (loaded in a fresh process) with `trained` on `files`."""
    done = subprocess.run(
        [sys.executable, "-m", "speechseq.verify", str(version_dir), *map(str, files)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        from speechseq.export import ExportError

        raise ExportError(f"the export at {version_dir} failed to run in a fresh process:\n{done.stderr[-3000:]}")
    exported = json.loads(done.stdout.strip().splitlines()[-1])
    expected = keras_outputs(trained, files)
    difference, mismatches = 0.0, []
    for ours, theirs in zip(expected, exported):
        scores = np.asarray(theirs["scores"], np.float32)
        if scores.shape != ours["scores"].shape:
            difference = float("inf")
        else:
            difference = max(difference, float(np.abs(scores - ours["scores"]).max(initial=0.0)))
        if theirs["labels"] != ours["labels"]:
            mismatches.append(f"{ours['path']}: keras {ours['labels']!r}, export {theirs['labels']!r}")
    return Verification(tuple(map(str, files)), difference, tuple(mismatches))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    print(json.dumps(export_outputs(argv[0], argv[1:])))


if __name__ == "__main__":
    main()
