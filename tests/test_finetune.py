"""Fine-tuning the shipped model on a new speaker: start points, freezing, new characters, resume."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from speechseq import (audio, cli, corpora, data, derived, evaluate, export, features, finetune, grammar, metrics, models,
                       runfile, train, verify)
from speechseq.errors import SpeechseqError
from speechseq.published import resolve_version
from speechseq.derived import DigitSequenceOptions
from speechseq.text import TagSet, Vocabulary
from speechseq.transcribe import Transcriber

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "saved_models" / "digits"
SMALL = ROOT / "saved_models" / "digits" / "4"  # the small digits model: a third of the latest's weights


@pytest.fixture(scope="module")
def lucas(fsdd_dir, tmp_path_factory) -> dict[str, Path]:
    """Connected digits of lucas, the speaker the shipped model never heard: 12 to adapt on, 8 to check."""
    folder = tmp_path_factory.mktemp("lucas")
    options = DigitSequenceOptions(passes=(), held_out_speaker="lucas", max_digits=3)
    held_out = corpora.read_manifest(derived.connected_digits(fsdd_dir, folder, options)["held_out"])
    return {"train": corpora.write_manifest(held_out[:12], folder / "train.jsonl"),
            "dev": corpora.write_manifest(held_out[12:20], folder / "dev.jsonl")}


NO_XLA = ["train.jit_compile=false"]  # compiling the step takes longer than these few steps


def _options(lucas, **changes) -> finetune.FinetuneOptions:
    # The small model unless a test needs the latest: what is under test trains alike on both.
    values = dict(source=str(SMALL), manifest=str(lucas["train"]), dev=str(lucas["dev"]),
                  epochs=2, steps=6, batch_size=6)
    return finetune.FinetuneOptions(**(values | changes))


def test_an_export_and_its_keras_file_start_from_the_source_s_transcripts(lucas, tmp_path):
    version = resolve_version(SHIPPED)
    run_like = tmp_path / "from-keras"  # a .keras file with its run's files beside it
    shutil.copytree(version / "assets", run_like)
    shutil.copy(version / "assets.extra" / "model.keras", run_like / "model.keras")
    files = [str(u.audio) for u in corpora.read_manifest(lucas["dev"])]
    expected = [r["labels"] for r in verify.export_outputs(version, files)]
    # The export's graph searches its word list: so does the check.
    for source in (SHIPPED, run_like / "model.keras"):
        run = finetune.make_run(_options(lucas, source=str(source)), tmp_path / f"run-{source.name}")
        vocabulary = Vocabulary.load(run.data.vocabulary)
        start = finetune.starting_model(run, vocabulary)
        trained = export.Trained(start, vocabulary, run.features, run.settings(), Path(), Path())
        words = grammar.shipped_decoder(version, vocabulary)
        assert [r["labels"] for r in verify.keras_outputs(trained, files, words)] == expected


def test_enough_utterances_are_bucketed_by_length_and_few_are_not(lucas, tmp_path):
    few = finetune.make_run(_options(lucas), tmp_path / "few")  # 12 utterances, batches of 6
    assert few.train.buckets == 1  # two batches: buckets would drop most of them
    many = corpora.write_manifest(corpora.read_manifest(lucas["train"]) * 8, tmp_path / "many.jsonl")
    run = finetune.make_run(_options(lucas, manifest=str(many)), tmp_path / "many")
    assert run.train.buckets == data.DEFAULT_BUCKETS  # one bucket would pad every batch to the longest clip


def test_frozen_layers_stay_bit_identical_and_the_rest_learns(lucas, tmp_path):
    run = finetune.make_run(_options(lucas, freeze="front,encoder:1"), tmp_path / "run", NO_XLA)
    model = finetune.fit(run, verbose=0)
    source = export.load_trained(SMALL).model
    for name in ("front", "encoder_0"):
        for before, after in zip(source.get_layer(name).get_weights(), model.get_layer(name).get_weights()):
            assert np.array_equal(before, after), name
    changed = [not np.array_equal(b, a) for b, a in zip(source.get_layer("encoder_1").get_weights(),
                                                        model.get_layer("encoder_1").get_weights())]
    assert all(changed)
    settings = json.loads((tmp_path / "run" / "run.json").read_text())
    assert settings["train"]["freeze"] == "front,encoder:1" and settings["train"]["init_from"]


def test_a_new_character_keeps_the_shared_rows_and_learns_its_own(lucas, tmp_path):
    source = export.load_trained(SMALL)
    bigger = Vocabulary(symbols=source.classes.symbols + ("#",))
    bigger.save(tmp_path / "bigger.json")
    marked = [corpora.Utterance(u.audio, u.text + " #", u.speaker, u.duration)
              for u in corpora.read_manifest(lucas["train"])]
    manifest = corpora.write_manifest(marked, tmp_path / "marked.jsonl")
    options = _options(lucas, manifest=str(manifest), dev="", vocabulary=str(tmp_path / "bigger.json"))
    run = finetune.make_run(options, tmp_path / "run", NO_XLA)
    start = finetune.starting_model(run, bigger)
    old_kernel, old_bias = source.model.get_layer("ctc_logits").get_weights()
    kernel, bias = start.get_layer("ctc_logits").get_weights()
    assert kernel.shape[1] == old_kernel.shape[1] + 1
    assert np.array_equal(kernel[:, : old_kernel.shape[1]], old_kernel) and np.array_equal(bias[:-1], old_bias)
    new_row = kernel[:, -1].copy()
    tuned = finetune.fit(run, verbose=0).get_layer("ctc_logits").get_weights()[0]
    assert not np.allclose(tuned[:, -1], new_row)


def test_a_deeper_run_starts_reading_as_its_source_and_trains_its_new_layer(lucas, tmp_path):
    source = export.load_trained(SMALL)
    depth = int(source.settings["model"]["layers"])
    one_more = [f"model.layers={depth + 1}"]
    run = finetune.make_run(_options(lucas, epochs=1, steps=2, dev=""), tmp_path / "run", NO_XLA + one_more)
    start = finetune.starting_model(run, source.classes)
    for layer in source.model.layers:  # every source layer as it was
        for before, after in zip(layer.get_weights(), start.get_layer(layer.name).get_weights()):
            assert np.array_equal(before, after), layer.name
    # The new top layer passes on what the layer below says: the deeper model reads as its source.
    clips = corpora.read_manifest(lucas["dev"])
    said = evaluate.score_ctc(source.model, clips, source.classes, source.features, source.subsampling)
    deeper = evaluate.score_ctc(start, clips, source.classes, source.features, source.subsampling)
    assert metrics.character_error_rate(list(said.hypotheses), list(deeper.hypotheses)) < 0.1, (
        said.hypotheses, deeper.hypotheses)
    new_layer = [w.copy() for w in start.get_layer(f"encoder_{depth}").get_weights()]
    model = finetune.fit(run, verbose=0)
    assert [layer.name for layer in model.layers if layer.name.startswith("encoder_")][-1] == f"encoder_{depth}"
    assert all(not np.array_equal(b, a) for b, a in zip(new_layer, model.get_layer(f"encoder_{depth}").get_weights()))
    # Fewer layers than the source's cannot hold its weights.
    shallower = finetune.make_run(_options(lucas), tmp_path / "shallow", [f"model.layers={depth - 1}"])
    with pytest.raises(SpeechseqError, match="model.layers .fewer than the source's"):
        finetune.starting_model(shallower, source.classes)


def test_a_manifest_with_missing_audio_is_refused_before_training(lucas, tmp_path):
    entries = corpora.read_manifest(lucas["train"])
    broken = entries[:4] + [corpora.Utterance(tmp_path / "gone.wav", "one two", "lucas", 1.0)]
    manifest = corpora.write_manifest(broken, tmp_path / "broken.jsonl")
    with pytest.raises(corpora.CorpusError, match="gone.wav: file not found"):
        finetune.fit(finetune.make_run(_options(lucas, manifest=str(manifest)), tmp_path / "run"), verbose=0)
    assert not (tmp_path / "run" / "backup").exists() and not (tmp_path / "run" / "log.csv").exists()


def test_an_interrupted_fine_tune_resumes_and_reports_before_and_after(lucas, tmp_path, capsys):
    # The report's dev set is the adaptation utterances themselves: eight steps are too few
    # to move the WER on 8 other utterances every time, but always enough on these.
    # The small shipped model: the same steps on a third of the weights, so the whole round trip is quicker.
    out = tmp_path / "run"
    command = ["finetune", "--from", str(SMALL), "--manifest", str(lucas["train"]), "--dev", str(lucas["train"]),
               "--out", str(out), "--epochs", "2", "--steps", "4", "--batch-size", "6", "--lr", "1e-3",
               "--set", NO_XLA[0]]
    child = subprocess.Popen([sys.executable, "-m", "speechseq", *command],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not ((out / "log.csv").exists() and len((out / "log.csv").read_text().splitlines()) >= 2):
        assert child.poll() is None and time.monotonic() < deadline, "no epoch finished"
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (out / "model.keras").exists()
    assert cli.main(command) == 0
    epochs = [line.split(",")[0] for line in (out / "log.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1"]
    report = json.loads((out / "report.json").read_text())
    row = report["new speaker (dev)"]
    assert row["utterances"] == 12 and set(row) == {"utterances", "manifest", "before", "after"}
    source = export.load_trained(SMALL)
    before = evaluate.score_ctc(source.model, corpora.read_manifest(lucas["train"]), source.classes,
                                source.features, source.subsampling)
    assert row["before"]["wer"] == round(before.wer, 4) > 0
    assert row["after"]["wer"] < row["before"]["wer"], row  # the new speaker's WER falls
    assert "WER before" in capsys.readouterr().out
    # Its export decodes as the source's did: with the source's word list and weights.
    adapted = tmp_path / "adapted"
    assert cli.main(["export", str(out), "--out", str(adapted), "--samples", str(ROOT / "samples" / "countdown.wav")]) == 0
    kept = grammar.shipped(SMALL)
    assert grammar.shipped(adapted / "1") == kept is not None
    assert Transcriber(adapted).decoding == "grammar"
    card = json.loads((adapted / "1" / "assets" / "model_card.json").read_text())
    assert card["grammar"]["alpha"] == kept[1].alpha and card["grammar"]["source"] == "digits.txt"  # the card says so
    # --tune-grammar alone (new weights for the kept list) is test_grammar's re-export.


def test_speechseq_train_starts_from_train_init_from(lucas, tmp_path, capsys):
    """A run file naming `train.init_from` trains on from those weights (the frozen encoder
    stays the source's exactly), and `train.freeze` without it is refused, not ignored."""
    source_version = resolve_version(ROOT / "saved_models" / "digits" / "4")
    source = export.load_trained(source_version)
    settings = finetune.starting_settings(source_version) | {
        "data.train": str(lucas["train"]), "data.vocabulary": str(source.folder / "vocabulary.json"),
        "train.freeze": "front,encoder", "train.epochs": 1, "train.steps_per_epoch": 2, "train.batch_size": 6,
        "train.jit_compile": False}
    sections: dict = {}
    for key, value in settings.items():
        section, name = key.split(".", 1)
        sections.setdefault(section, {})[name] = value
    config = tmp_path / "run.json"
    config.write_text(json.dumps(sections))
    assert cli.main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    trained = models.load_model(tmp_path / "run" / "model.keras")
    for name in ("front", "encoder_0", "encoder_1"):
        for theirs, ours in zip(source.model.get_layer(name).get_weights(), trained.get_layer(name).get_weights()):
            assert np.array_equal(theirs, ours), name
    assert not np.array_equal(source.model.get_layer("ctc_logits").get_weights()[0],
                              trained.get_layer("ctc_logits").get_weights()[0])  # and the head trained

    capsys.readouterr()
    assert cli.main(["train", "--set", f"data.train={lucas['train']}", "--set", "train.freeze=encoder",
                     "--out", str(tmp_path / "fresh")]) == 2
    assert "train.freeze='encoder' needs train.init_from" in capsys.readouterr().err


def test_a_frame_tagger_starts_from_a_recogniser_s_encoder(lucas, tmp_path):
    source_version = resolve_version(ROOT / "saved_models" / "digits" / "4")  # the small one: quick
    source = export.load_trained(source_version)
    settings = finetune.inherited_settings(source_version) | {
        "train.task": "frames", "data.background": "silence", "data.train": str(lucas["train"]),
        "train.init_from": str(source_version), "train.epochs": 1, "train.steps_per_epoch": 3,
        "train.batch_size": 6, "train.jit_compile": False}
    run = runfile.load(None, settings, tmp_path / "tagger")
    tags = TagSet.with_background(sorted({s.label for u in corpora.read_manifest(lucas["train"]) for s in u.segments}))
    start = finetune.starting_model(run, tags)
    assert start.get_layer("frame_logits").get_weights()[0].shape[-1] == tags.size
    for layer in source.model.layers:
        if layer.weights and layer.name != "ctc_logits":  # the front end and encoder come over whole
            for theirs, ours in zip(layer.get_weights(), start.get_layer(layer.name).get_weights()):
                assert np.array_equal(theirs, ours), layer.name
    tagger = train.fit(run, verbose=0)  # from train.init_from, and as a tagger: one probability row per 10 ms frame
    clip = corpora.read_manifest(lucas["dev"])[0]
    frames, lengths = features.feature_layer(run.features)(audio.load(clip.audio)[np.newaxis],
                                                           np.array([round(clip.duration * 16000)]))
    probs = np.asarray(tagger(models.model_inputs(frames, lengths)))
    assert probs.shape == (1, frames.shape[1], tags.size) and np.allclose(probs.sum(-1), 1, atol=1e-4)
    assert not np.array_equal(tagger.get_layer("encoder_0").get_weights()[0],
                              source.model.get_layer("encoder_0").get_weights()[0])

    wider = runfile.load(None, settings | {"model.units": 2 * source.settings["model"]["units"]}, tmp_path / "other")
    with pytest.raises(SpeechseqError, match="differ from the model it starts from in model.units"):
        finetune.starting_model(wider, tags)
