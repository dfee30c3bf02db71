"""Training end to end on real FSDD audio: overfitting, skipping bad entries, run files."""

from __future__ import annotations

import csv
import json
import logging

import keras
import numpy as np
import pytest

from conftest import TINY_RUN as TINY, fsdd_clip
from speechseq import audio, corpora, data, decoding, derived, evaluate, export, models, runfile, train
from speechseq.corpora import Utterance
from speechseq.derived import DigitSequenceOptions
from speechseq.features import feature_layer
from speechseq.text import DIGIT_WORDS, TagSet, Vocabulary
from speechseq.transcribe import Transcriber


def test_tiny_ctc_model_overfits_ten_real_clips_and_decodes_them(ten_digits, tmp_path):
    run = runfile.load(
        None,
        TINY + [f"data.train={ten_digits}", f"data.dev={ten_digits}", "train.epochs=8",
                "train.steps_per_epoch=40", "train.early_stopping=0", "train.feature_cache=memory"],
        tmp_path / "run",
    )
    model = train.fit(run, verbose=0)
    log = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [int(row["epoch"]) for row in log] == list(range(8))
    assert float(log[-1]["loss"]) < 1.0, "mean CTC loss per utterance after overfitting"
    assert float(log[0]["loss"]) > 10 * float(log[-1]["loss"])
    scores = evaluate.score_ctc(model, corpora.read_manifest(ten_digits), Vocabulary(), run.features, 1)
    assert list(scores.hypotheses) == list(scores.references), list(zip(scores.references, scores.hypotheses))
    assert float(log[-1]["val_wer"]) == 0.0
    best = evaluate.score_run(tmp_path / "run", corpora.read_manifest(ten_digits))
    assert best.wer == 0.0 and best.n == 10
    # The Transcriber's greedy path, on this run exported here, gives the Keras model's words.
    trained = export.load_trained(tmp_path / "run")
    version = export.write_version(trained, tmp_path / "saved_models" / "tiny")
    frontend = feature_layer(trained.features)
    seconds = trained.subsampling * trained.features.hop_length / trained.features.sample_rate
    clips = [u.audio for u in corpora.read_manifest(ten_digits)]
    for clip, result in zip(clips, Transcriber(version).transcribe_files(clips)):
        waveform = audio.load(clip, trained.features.sample_rate)
        features, lengths = frontend(waveform[None], np.array([waveform.size]))
        log_probs = trained.model(models.model_inputs(features, lengths), training=False)
        path = decoding.greedy_alignment(log_probs, models.output_lengths(lengths, trained.subsampling))
        expected = decoding.words_from_tokens([trained.classes.id_to_symbol(i) for i in path.ids[0].numpy()],
                                              path.first_frame[0].numpy() * seconds,
                                              path.end_frame[0].numpy() * seconds, path.confidence[0].numpy())
        assert [w.text for w in result.words] == [w.text for w in expected] and expected, clip
        np.testing.assert_allclose([(w.start, w.end, w.confidence) for w in result.words],
                                   [(w.start, w.end, w.confidence) for w in expected], atol=1e-4)
    for name in ["model.keras", "best.keras", "vocabulary.json", "features.json", "run.json", "audit.json"]:
        assert (tmp_path / "run" / name).exists(), name
    assert list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))


def test_tiny_frame_model_overfits_labelled_frames(fsdd_dir, tmp_path):
    options = DigitSequenceOptions(passes=(("test", 1),), max_digits=3)
    manifest = derived.connected_digits(fsdd_dir, tmp_path / "digits", options)["test"]
    few = corpora.read_manifest(manifest)[:8]
    small = corpora.write_manifest(few, tmp_path / "few.jsonl")
    run = runfile.load(
        None,
        TINY + [f"data.train={small}", f"data.dev={small}", "train.task=frames", "train.epochs=2",
                "train.steps_per_epoch=20", "model.subsampling=2", "train.batch_size=8", "train.early_stopping=0",
                "train.feature_cache=memory"],
        tmp_path / "run",
    )
    model = train.fit(run, verbose=0)
    tags = TagSet.load(tmp_path / "run" / "tags.json")
    assert tags.background == "silence" and set(tags.labels) <= {"silence", *DIGIT_WORDS}
    dataset = data.tagging_dataset(few, tags, run.features, data.PipelineOptions(batch_size=8))
    targets, predictions = [], []
    predict = models.inference(model)
    for features, lengths, labels in dataset:
        probs = predict(models.model_inputs(features, lengths)).numpy()
        predictions += decoding.frame_tags(probs, lengths.numpy())
        targets += [row[:n] for row, n in zip(labels.numpy(), lengths.numpy())]
    accuracy = sum((t == p).sum() for t, p in zip(targets, predictions)) / sum(len(t) for t in targets)
    assert accuracy > 0.9


def test_infeasible_and_broken_entries_are_skipped_with_a_warning_naming_them(ten_digits, tmp_path, caplog):
    good = corpora.read_manifest(ten_digits)
    entries = good + [
        Utterance(fsdd_clip(1), "one " * 30, "x"),  # far more letters than frames
        Utterance(tmp_path / "gone.wav", "two", "x"),
    ]
    manifest = corpora.write_manifest(entries, tmp_path / "mixed.jsonl")
    run = runfile.load(None, TINY + [f"data.train={manifest}", "train.epochs=1", "train.steps_per_epoch=2",
                                     "train.jit_compile=false"], tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="speechseq.train"):
        train.fit(run, verbose=0)
    messages = [r.getMessage() for r in caplog.records]
    assert any("1_jackson_0.wav" in m and "CTC frames" in m for m in messages)
    assert any("gone.wav" in m and "file not found" in m for m in messages)
    audit = json.loads((tmp_path / "run" / "audit.json").read_text())
    assert audit["train"]["good"] == 10 and audit["train"]["bad"] == 2
    log = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert np.isfinite(float(log[0]["loss"]))


def test_run_file_and_typed_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[data]\ntrain = "data/train.jsonl"\n[model]\ncell = "gru"\n[train]\nepochs = 3\n')
    run = runfile.load(path, ["train.learning_rate=5e-4", "model.layer_norm=true", "features.fmax=none"], tmp_path / "out")
    assert run.data.train == str(tmp_path / "data" / "train.jsonl")
    assert run.encoder.cell == "gru" and run.encoder.layer_norm is True
    assert run.train.epochs == 3 and run.train.learning_rate == 5e-4 and run.features.fmax is None
    for override, message in [
        ("train.epoch=3", "unknown key"),
        ("train.epochs=three", "expected int"),
        ("model.cell=rnn", "cell must be one of"),
        ("optimizer.lr=1", "unknown section"),
        ("epochs=3", "section.key=value"),
        ("features.n_fft=1.5", "expected int"),
        ("train.noise_snrs=loud", "comma-separated numbers"),
        ("train.noise_snrs=5,inf", "must be finite"),
        ("train.noise_probability=1.5", "a probability in"),
        ("train.learning_rate=0", "positive learning_rate"),
    ]:
        with pytest.raises(runfile.RunFileError, match=message):
            runfile.load(path, [override])
    with pytest.raises(runfile.RunFileError, match="feature_cache would keep the first draw"):
        runfile.load(path, ["train.noise_snrs=10", "train.feature_cache=memory"])
    noisy = runfile.load(path, ["train.noise_snrs=0, 10", "train.noise_probability=0.25"])
    assert noisy.train.noise() == data.AddNoise((0.0, 10.0), 0.25)
    assert run.train.noise() is None  # no SNRs: no noise
    # Settings as typed values (what `finetune.make_run` passes), checked as strictly.
    typed = runfile.load(path, {"train.learning_rate": 5e-4, "model.layer_norm": True, "features.fmax": None,
                                "data.dev": str(tmp_path / "dev.jsonl")} | runfile.as_mapping(["train.epochs=4"]))
    assert (typed.train.learning_rate, typed.encoder.layer_norm, typed.features.fmax, typed.train.epochs) == (
        5e-4, True, None, 4)
    assert typed.data.dev == str(tmp_path / "dev.jsonl")
    with pytest.raises(runfile.RunFileError, match=r"train.epochs=3.5.*expected int"):
        runfile.load(path, {"train.epochs": 3.5})
    bad = tmp_path / "bad.toml"
    bad.write_text("[trian]\nepochs = 3\n")
    with pytest.raises(runfile.RunFileError, match=r"unknown section \[trian\]"):
        runfile.load(bad)


def test_learning_rate_warms_up_then_decays():
    config = train.TrainConfig(learning_rate=1e-3, warmup_steps=10, final_lr_fraction=0.1)
    schedule = train.learning_rate(config, total_steps=110)
    rates = [float(schedule(step)) for step in [0, 5, 10, 60, 110]]
    assert rates[0] == 0.0 and rates[1] == pytest.approx(5e-4) and rates[2] == pytest.approx(1e-3)
    assert rates[2] > rates[3] > rates[4] == pytest.approx(1e-4)
    opt = train.optimizer(train.TrainConfig(clipnorm=2.0, optimizer="adamw"), 100)
    assert isinstance(opt, keras.optimizers.AdamW) and opt.clipnorm == 2.0
    assert isinstance(train.optimizer(train.TrainConfig(mixed_precision=True), 100), keras.optimizers.LossScaleOptimizer)
