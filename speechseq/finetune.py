"""Fine-tuning: training that starts from a trained model instead of random weights.

It is `train.fit` with three differences, all recorded in the run's settings:
`train.init_from` (a run directory, `.keras` file or export to start from),
`train.freeze` (layers kept as they are) and, usually, a lower learning rate. The
features and the encoder are the source's. A new vocabulary rebuilds the output
layer and copies the rows of the characters both vocabularies share, so those keep
what they learnt; new characters start from fresh weights. A frame tagging run may
start from a transcription model: the encoder is copied and a fresh frame head put on
it, so a tagger starts from what a recogniser learnt of many voices. Re-running the same
command resumes, as any training does.

Freeze specifications (comma-separated): a layer name (`front`, `encoder_0`,
`ctc_logits`, ...), `encoder` (every recurrent layer), or `encoder:N` (the first N,
nearest the input).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Sequence
from pathlib import Path

import keras

from speechseq import corpora, data, evaluate, export, models, runfile, train
from speechseq.errors import SpeechseqError
from speechseq.published import ExportError, resolve_version, trained_files
from speechseq.files import write_text
from speechseq.text import BLANK_ID, TagSet, Vocabulary


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


def resolve_source(source: str | Path) -> Path:
    """`saved_models/NAME` means its latest version; anything else is used as it is."""
    path = Path(source)
    if path.is_dir() and not (path / "run.json").exists() and not (path / "saved_model.pb").exists():
        return resolve_version(path)
    return path


def make_run(options: FinetuneOptions, directory: str | Path, overrides: Sequence[str] = ()) -> train.Run:
    """The fine-tuning run's settings: the source's features and encoder, the new data.
    The source's model is not loaded here: `starting_model` loads it in the strategy's scope."""
    directory = Path(directory)
    source_path = resolve_source(options.source)
    source = trained_files(source_path)
    if source.task != "ctc":
        raise ExportError(f"{options.source}: fine-tuning supports transcription (CTC) models")
    directory.mkdir(parents=True, exist_ok=True)
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


def inherited_settings(source: str | Path) -> dict:
    """`features.*` and `model.*` settings of a trained model: a run starting from its
    weights must have its features and the shape of its encoder."""
    files = trained_files(resolve_source(source))
    settings: dict = {f"features.{key}": value for key, value in files.features.to_dict().items()}
    return settings | {f"model.{key}": value for key, value in files.settings["model"].items()}


def starting_settings(source: str | Path) -> dict:
    """What a recipe's run needs to start from `source`'s weights: its features, encoder and path."""
    path = resolve_source(source)
    return inherited_settings(path) | {"train.init_from": str(path.resolve())}


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


def starting_model(run: train.Run, classes: Vocabulary) -> keras.Model:
    """`train.fit`'s `build_model` for fine-tuning: the source model, re-headed for
    `classes` if they differ from its vocabulary, with the chosen layers frozen."""
    source = export.load_trained(run.train.init_from)
    _check_same_front(run, source)
    model = source.model
    if isinstance(classes, TagSet):
        if classes != source.classes:  # a transcriber's encoder, or another tag set: a new head
            model = with_frame_head(model, classes, run.encoder, run.features.feature_dim)
    elif source.task != "ctc":
        raise SpeechseqError(f"{run.train.init_from}: a frame tagger cannot start a transcription run")
    elif classes != source.classes:
        model = with_vocabulary(model, source.classes, classes, run.encoder, run.features.feature_dim)
    freeze(model, run.train.freeze)
    return model


# Encoder settings that shape its weights (dropout and the like may change when training on).
WEIGHT_SHAPING = ("cell", "layers", "units", "subsampling", "conv_channels", "conv_kernel", "layer_norm",
                  "use_bias", "reset_after")


def _check_same_front(run: train.Run, source) -> None:
    """The run's features and encoder shape must be the source's: its weights fit nothing else,
    and they learnt frames made as the source's features make them."""
    features, encoder = run.features.to_dict(), run.encoder.to_dict()
    different = [f"features.{key}" for key, value in source.features.to_dict().items() if features.get(key) != value]
    different += [f"model.{key}" for key in WEIGHT_SHAPING
                  if key in source.settings["model"] and encoder[key] != source.settings["model"][key]]
    if different:
        raise SpeechseqError(f"{run.train.init_from}: the run's settings differ from the model it starts from in "
                             f"{', '.join(different)}; use the source's (finetune.inherited_settings)")


def with_frame_head(model: keras.Model, tags: TagSet, encoder, feature_dim: int) -> keras.Model:
    """A frame tagger for `tags` with `model`'s front end and encoder weights and a fresh head."""
    return _below_the_head(model, models.frame_model(feature_dim, tags.size, encoder))


def _below_the_head(model: keras.Model, rebuilt: keras.Model) -> keras.Model:
    """`rebuilt` with `model`'s weights in every layer but the output heads (left as built)."""
    for layer in rebuilt.layers:
        if layer.weights and layer.name not in ("ctc_logits", "frame_logits"):
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return rebuilt


def with_vocabulary(model: keras.Model, old: Vocabulary, new: Vocabulary, encoder, feature_dim: int) -> keras.Model:
    """A copy of `model` with an output layer for `new`: every other layer's weights
    copied, and the output rows of characters in both vocabularies (and the blank)
    copied from the old output layer."""
    rebuilt = _below_the_head(model, models.ctc_model(feature_dim, new.size, encoder))
    kernel, bias = rebuilt.get_layer("ctc_logits").get_weights()
    old_kernel, old_bias = model.get_layer("ctc_logits").get_weights()
    for new_id, old_id in shared_ids(old, new):
        kernel[:, new_id], bias[new_id] = old_kernel[:, old_id], old_bias[old_id]
    rebuilt.get_layer("ctc_logits").set_weights([kernel, bias])
    return rebuilt


def shared_ids(old: Vocabulary, new: Vocabulary) -> list[tuple[int, int]]:
    """(new id, old id) of the blank and of every character both vocabularies have."""
    old_ids = {symbol: index + 1 for index, symbol in enumerate(old.symbols)}
    pairs = [(BLANK_ID, BLANK_ID)]
    pairs += [(index + 1, old_ids[symbol]) for index, symbol in enumerate(new.symbols) if symbol in old_ids]
    return pairs


def freeze(model: keras.Model, specification: str) -> list[str]:
    """Set `trainable = False` on the layers `specification` names; returns their names."""
    names = [layer.name for layer in model.layers]
    encoder = [name for name in names if name.startswith("encoder_") and name[8:].isdigit()]
    chosen: list[str] = []
    for part in filter(None, (p.strip() for p in specification.split(","))):
        if part == "encoder":
            chosen += encoder
        elif part.startswith("encoder:"):
            depth = int(part.split(":", 1)[1])
            if not 0 < depth <= len(encoder):
                raise SpeechseqError(f"freeze {part!r}: the model has {len(encoder)} encoder layers")
            chosen += sorted(encoder, key=lambda n: int(n[8:]))[:depth]
        elif part in names:
            chosen.append(part)
        else:
            raise SpeechseqError(f"freeze {part!r}: no such layer; layers: {', '.join(n for n in names if n)}")
    for name in chosen:
        model.get_layer(name).trainable = False
    return chosen


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
    return train.fit(run, verbose=verbose, build_model=starting_model, strategy=strategy)


def before_and_after(source: str | Path, run_directory: str | Path, test_sets: dict[str, str]) -> dict:
    """WER/CER of the source model and of the fine-tuned one on each named test manifest."""
    models_compared = {"before": export.load_trained(resolve_source(source)),
                       "after": export.load_trained(run_directory)}
    report: dict = {}
    for name, manifest in test_sets.items():
        utterances = corpora.read_manifest(manifest)
        row = {"utterances": len(utterances), "manifest": str(manifest)}
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


__all__ = ["FinetuneOptions", "before_and_after", "fit", "format_report", "freeze", "make_run",
           "shared_ids", "starting_model", "with_vocabulary"]
