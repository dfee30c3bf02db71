"""Fine-tuning: training that starts from a trained model instead of random weights.

It is `train.fit` with three differences, all recorded in the run's settings:
`train.init_from` (a run directory, `.keras` file or export to start from),
`train.freeze` (layers kept as they are) and, usually, a lower learning rate. The
features and the encoder are the source's. A new vocabulary rebuilds the output
layer and copies the rows of the characters both vocabularies share, so those keep
what they learnt; new characters start from fresh weights (`starting`, where the model
a run starts from is built; its names are re-exported here). Re-running the same
command resumes, as any training does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

import keras

from speechseq import corpora, data, evaluate, export, runfile, train
from speechseq.files import atomic_path, write_text
from speechseq.language_model import LEXICON_FILE
from speechseq.lexicon import Lexicon, LexiconError, is_phone_vocabulary
from speechseq.published import ExportError, trained_files
from speechseq.starting import (freeze, inherited_settings, resolve_source, shared_ids, starting_model,
                                starting_settings, with_frame_head, with_vocabulary)
from speechseq.text import Vocabulary


@dataclasses.dataclass(frozen=True)
class FinetuneOptions:
    """A fine-tuning run, as `speechseq finetune` takes it."""

    source: str  # run directory, .keras file or saved_models/NAME[/VERSION]
    manifest: str  # the new speaker's training utterances
    dev: str = ""  # the new speaker's validation utterances (best model, early stopping)
    vocabulary: str = ""  # a new vocabulary JSON; "" = the source's
    freeze: str = ""  # layers to keep fixed, e.g. "front,encoder:2"
    learning_rate: float = 3e-4  # peak; about a fifth of a typical from-scratch rate
    epochs: int = 10
    steps: int = 0  # optimizer steps in all; 0 = `epochs` passes over the data
    batch_size: int = 8
    replay: str = ""  # a manifest of the old training data, mixed in against forgetting
    replay_ratio: float = 0.0  # old utterances per new one
    early_stopping: int = 0  # epochs without dev progress before stopping; 0 = never
    seed: int = 0


def make_run(options: FinetuneOptions, directory: str | Path, overrides: Sequence[str] = ()) -> train.Run:
    """The fine-tuning run's settings: the source's features and encoder, the new data.
    The source's model is not loaded here: `starting_model` loads it in the strategy's scope."""
    directory = Path(directory)
    source_path = resolve_source(options.source)
    source = trained_files(source_path)
    if source.task != "ctc":
        raise ExportError(f"{options.source}: fine-tuning supports transcription (CTC) models")
    directory.mkdir(parents=True, exist_ok=True)
    if is_phone_vocabulary(source.classes) and not options.vocabulary:
        options = _spelt_in_phones(options, source.folder, directory)
    if not options.vocabulary:
        _keep_decoding(source.folder, directory)
    vocabulary = options.vocabulary
    if not vocabulary:
        vocabulary = str(directory / "source_vocabulary.json")
        if not Path(vocabulary).exists():
            source.classes.save(vocabulary)
    settings = inherited_settings(source_path)
    steps_per_epoch = math.ceil(options.steps / options.epochs) if options.steps else 0
    training = _training_manifest(options, directory)
    batch_size = min(options.batch_size, len(corpora.read_manifest(options.manifest)))
    buckets = max(1, min(data.DEFAULT_BUCKETS, len(corpora.read_manifest(training)) // (4 * batch_size)))
    settings |= {
        "data.train": str(training),
        "data.dev": options.dev,
        "data.vocabulary": vocabulary,
        "train.init_from": str(source_path.resolve()),
        "train.freeze": options.freeze,
        "train.learning_rate": options.learning_rate,
        "train.epochs": options.epochs,
        "train.steps_per_epoch": steps_per_epoch,
        # Batches no bigger than the data. Length buckets once there are enough utterances
        # to fill a few batches each: one bucket pads every batch to the longest clip.
        "train.batch_size": batch_size,
        "train.buckets": buckets,
        "train.feature_cache": "memory",  # many epochs over little audio: compute its features once
        "train.early_stopping": options.early_stopping,
        # A tenth of the steps, 10 to 50; a short run (under 20 steps) warms up for half its steps,
        # so that it reaches its peak rate at all.
        "train.warmup_steps": min(50, max(options.steps // 10, min(10, options.steps // 2))) if options.steps else 20,
        "train.seed": options.seed,
    }
    return runfile.load(None, settings | runfile.as_mapping(overrides), directory)


def _keep_decoding(source_folder: Path, directory: Path) -> None:
    """The source export's word list, LM and lexicon, copied into the run: its export then
    decodes as the source did (`export.DECODING_FILES`; a new vocabulary keeps none)."""
    for name in export.DECODING_FILES:
        if (source_folder / name).exists():
            with atomic_path(directory / name) as partial:
                shutil.copyfile(source_folder / name, partial)


def _spelt_in_phones(options: FinetuneOptions, source_folder: Path, directory: Path) -> FinetuneOptions:
    """A phone model learns from phones: its manifests, written in words as for any model,
    spelt by the lexicon its export ships (the run keeps the spelt copies)."""
    lexicon = phone_lexicon(source_folder, options.source)
    spelt = {}
    for name in ("manifest", "dev", "replay"):
        manifest = getattr(options, name)
        if manifest:
            utterances = in_phones(corpora.read_manifest(manifest), lexicon, manifest)
            spelt[name] = str(corpora.write_manifest(utterances, directory / f"phones-{name}.jsonl"))
    return dataclasses.replace(options, **spelt)


def phone_lexicon(folder: Path, source) -> Lexicon:
    lexicon_file = Path(folder) / LEXICON_FILE
    if not lexicon_file.exists():
        raise ExportError(f"{source} hears phones but has no {LEXICON_FILE}: fine-tune it from its export")
    return Lexicon.read(lexicon_file)


def in_phones(utterances: list[corpora.Utterance], lexicon: Lexicon, manifest) -> list[corpora.Utterance]:
    """`utterances` (of `manifest`) with each transcript in phones; a word the lexicon lacks stops it, named."""
    spelt, missing = lexicon.spell_utterances(utterances)
    if missing:
        raise LexiconError(f"{manifest}: the model's lexicon has no pronunciation of {', '.join(missing[:20])}"
                           f"{' ...' if len(missing) > 20 else ''} (re-export it with those words in --lm-from or "
                           "--lm-words, then fine-tune from that export)")
    return spelt


def _training_manifest(options: FinetuneOptions, directory: Path) -> str:
    """The new utterances, plus `replay_ratio` old ones per new one when asked."""
    if not options.replay or options.replay_ratio <= 0:
        return options.manifest
    new = corpora.read_manifest(options.manifest)
    old = corpora.read_manifest(options.replay)
    count = min(len(old), round(len(new) * options.replay_ratio))
    mixed = new + random.Random(options.seed).sample(old, count)
    path = directory / "train_with_replay.jsonl"
    if not path.exists():  # the same run resumes with the same mix
        corpora.write_manifest(mixed, path)
    return str(path)


def fit(run: train.Run, verbose: int | None = None, strategy=None) -> keras.Model:
    """Fine-tune (or resume fine-tuning) `run`, made by `make_run`, under `strategy`
    (`train.fit`'s).

    With a few minutes of data every utterance counts: a manifest with any bad entry
    is refused, with the audit report, before anything trains.
    """
    vocabulary = Vocabulary.load(run.data.vocabulary)
    for manifest in filter(None, (run.data.train, run.data.dev)):
        report = corpora.audit(corpora.read_manifest(manifest), vocabulary=vocabulary,
                               frames_per_second=run.features.frames_per_second,
                               subsampling=run.encoder.subsampling, sample_rate=run.features.sample_rate)
        if not report.ok:
            raise corpora.CorpusError(f"{manifest}: fix these entries first, nothing was trained\n{report.format()}")
    return train.fit(run, verbose=verbose, strategy=strategy)  # from run.train.init_from


def before_and_after(source: str | Path, run_directory: str | Path, test_sets: dict[str, str]) -> dict:
    """WER/CER of the source model and of the fine-tuned one on each named test manifest."""
    models_compared = {"before": export.load_trained(resolve_source(source)),
                       "after": export.load_trained(run_directory)}
    report: dict = {}
    before = models_compared["before"]
    lexicon = phone_lexicon(before.folder, source) if is_phone_vocabulary(before.classes) else None
    for name, manifest in test_sets.items():
        utterances = corpora.read_manifest(manifest)
        row = {"utterances": len(utterances), "manifest": str(manifest)}
        if lexicon:  # greedy phones against the references spelt in phones
            utterances = in_phones(utterances, lexicon, manifest)
            row["scored_in"] = "phones (CER: phone error rate, WER: pronunciation error rate)"
        for moment, trained in models_compared.items():
            scores = evaluate.score_ctc(trained.model, utterances, trained.classes, trained.features,
                                        trained.subsampling)
            row[moment] = {"wer": round(scores.wer, 4), "cer": round(scores.cer, 4)}
        report[name] = row
    write_text(Path(run_directory) / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def format_report(report: dict) -> str:
    lines = [f"{'test set':<28} {'n':>5} {'WER before':>11} {'WER after':>10} {'CER before':>11} {'CER after':>10}"]
    for name, row in report.items():
        lines.append(
            f"{name:<28} {row['utterances']:>5} {row['before']['wer']:>11.2%} {row['after']['wer']:>10.2%}"
            f" {row['before']['cer']:>11.2%} {row['after']['cer']:>10.2%}"
        )
    return "\n".join(lines)


__all__ = ["FinetuneOptions", "before_and_after", "fit", "format_report", "freeze", "inherited_settings",
           "make_run", "resolve_source", "shared_ids", "starting_model", "starting_settings", "with_frame_head",
           "with_vocabulary"]
