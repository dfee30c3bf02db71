"""Recipes run end to end on small fixtures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "pipelines"))

import librispeech  # noqa: E402  (pipelines/librispeech.py)

from speechseq import corpora, metrics  # noqa: E402
from speechseq.decoding import BeamOptions  # noqa: E402
from speechseq.transcribe import Transcriber, TranscriberOptions  # noqa: E402


def test_librispeech_recipe_trains_exports_and_scores_with_beam_search(librispeech_tree, tmp_path):
    (librispeech_tree / "train-tiny").symlink_to(librispeech_tree / "dev-clean")
    tiny = ["model.layers=1", "model.units=16", "model.conv_channels=16", "model.conv_kernel=5",
            "train.epochs=2", "train.batch_size=2", "train.max_batch_frames=0", "train.warmup_steps=2",
            "train.buckets=1", "train.jit_compile=false", "features.n_mels=40"]
    out = tmp_path / "run"
    results = librispeech.main(["--root", str(librispeech_tree), "--train", "train-tiny", "--dev", "dev-clean",
                                "--test", "dev-clean", "--out", str(out), "--beam", "8",
                                "--export", str(tmp_path / "saved_models" / "librispeech"),
                                *[f"--set={setting}" for setting in tiny]])
    assert json.loads((out / "results.json").read_text()) == results
    # The figures are those of the export the recipe published, on every test utterance:
    # scored again here, from the export, with the same beam search, they are the same.
    test = corpora.read_manifest(out / "manifests" / "dev-clean.jsonl")
    assert results["dev-clean"]["utterances"] == len(test) >= 2
    exported = Transcriber(tmp_path / "saved_models" / "librispeech", TranscriberOptions(beam=BeamOptions(beam_width=8)))
    hypotheses = [r.text for r in exported.transcribe_files([u.audio for u in test])]
    references = [exported.vocabulary.normalize(u.text) for u in test]
    assert results["dev-clean"]["cer"] == round(metrics.character_error_rate(references, hypotheses), 4)
    assert results["dev-clean"]["wer"] == round(metrics.word_error_rate(references, hypotheses), 4)
    settings = json.loads((out / "run.json").read_text())
    assert settings["model"]["subsampling"] == 4 and settings["train"]["clipnorm"] == 5.0
    assert (tmp_path / "saved_models" / "librispeech" / "1" / "saved_model.pb").exists()
    assert len([line for line in (out / "log.csv").read_text().splitlines()[1:]]) == 2
