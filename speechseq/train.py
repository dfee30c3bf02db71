"""Training: compile (Adam/AdamW with clipnorm, warm-up + cosine) and train, resumably.

A run directory holds everything a run makes and needs to resume:

    RUN/run.json         the resolved settings (re-running with others is refused)
    RUN/vocabulary.json  or tags.json: the output classes
    RUN/features.json    the feature settings
    RUN/audit.json       the entries skipped, and why
    RUN/backup/          BackupAndRestore state: an interrupted run resumes here
    RUN/best.keras       the best model so far by validation WER (or frame accuracy)
    RUN/model.keras      the final model, written when training ends
    RUN/log.csv, RUN/tensorboard/

Distribution (`distribution.choose_strategy`): one device by default; `MirroredStrategy`
across the visible GPUs; `MultiWorkerMirroredStrategy` when `TF_CONFIG` names more than one
task, each worker reading its own shard of the data and trained by `multiworker.fit`
(Keras' `fit` cannot run there). `train.batch_size` is per replica everywhere: a step
takes batch_size x replicas utterances, and the learning-rate schedule counts those steps.
All workers may share one run directory: only the chief (worker 0) writes it.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from speechseq import corpora, data, evaluate, losses, metrics, models, multiworker, starting
from speechseq.distribution import Placement, choose_strategy
from speechseq.settings import DataConfig, Run, TrainConfig
from speechseq.backup import backup_and_restore, restore_only
from speechseq.epoch_log import EpochLog
from speechseq.errors import SpeechseqError
from speechseq.features import FeatureConfig
from speechseq.files import atomic_path, write_text
from speechseq.text import TagSet, Vocabulary

log = logging.getLogger(__name__)

def feature_cache_prefix(run: Run, utterances: list[corpora.Utterance], workers: int = 1,
                         worker: int = 0) -> str | None:
    """`PipelineOptions.cache` for `train.feature_cache`: None (off), "" (in memory) or a file prefix.

    Files are named by what they hold (the utterances, their targets' settings and the
    features): a changed corpus or front end gets new files, never the old features.
    Leftovers of a run killed while it wrote them are cleared, so the run can resume.
    """
    setting = run.train.feature_cache
    if not setting:
        return None
    if setting == "memory":
        return ""
    held = repr((utterances, run.data, run.features, run.train.task, workers, worker)).encode("utf-8")
    prefix = f"{setting}-{hashlib.sha1(held).hexdigest()[:12]}" + (f"-worker{worker}" if workers > 1 else "")
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    _clear_unfinished_cache(prefix)
    return prefix


def _clear_unfinished_cache(prefix: str) -> None:
    """tf.data refuses a prefix whose lockfile is left ("a concurrent caching iterator"),
    which is what a process killed in epoch 1 leaves, with partial data beside it. A
    prefix belongs to one run, and a run to one process, so such leftovers are stale."""
    if Path(f"{prefix}.index").exists():  # finished: reused as it is
        return
    folder, name = Path(prefix).parent, Path(prefix).name
    for leftover in folder.glob(glob.escape(name) + "_*"):
        if leftover.name.endswith(".lockfile") or ".tempstate" in leftover.name:
            leftover.unlink(missing_ok=True)


def learning_rate(config: TrainConfig, total_steps: int):
    """Linear warm-up to the peak, then cosine decay (or constant)."""
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    if config.schedule == "constant":
        decay_steps, alpha = 1, 1.0
    else:
        decay_steps, alpha = max(total_steps - warmup, 1), config.final_lr_fraction
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else config.learning_rate,
        decay_steps=decay_steps,
        alpha=alpha,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def optimizer(config: TrainConfig, total_steps: int) -> keras.optimizers.Optimizer:
    """Adam or AdamW with per-variable gradient-norm clipping."""
    settings: dict[str, Any] = {"learning_rate": learning_rate(config, total_steps)}
    if config.clipnorm:
        settings["clipnorm"] = config.clipnorm
    if config.optimizer == "adamw":
        chosen = keras.optimizers.AdamW(weight_decay=config.weight_decay, **settings)
    else:
        chosen = keras.optimizers.Adam(**settings)
    return keras.optimizers.LossScaleOptimizer(chosen) if config.mixed_precision else chosen


def ctc_batches(dataset: tf.data.Dataset, subsampling: int) -> tf.data.Dataset:
    """(features, lengths, labels, label_lengths) -> Keras (inputs, packed CTC targets)."""

    def to_keras(features, feature_lengths, labels, label_lengths):
        packed = losses.pack_ctc_targets(
            labels, label_lengths, models.output_lengths(feature_lengths, subsampling)
        )
        return models.model_inputs(features, feature_lengths), packed

    return dataset.map(to_keras, num_parallel_calls=tf.data.AUTOTUNE)


def frame_batches(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """(features, lengths, frame_labels) -> Keras (inputs, labels with -1 on padding)."""

    def to_keras(features, feature_lengths, frame_labels):
        return models.model_inputs(features, feature_lengths), losses.frame_targets(frame_labels, feature_lengths)

    return dataset.map(to_keras, num_parallel_calls=tf.data.AUTOTUNE)


def _classes(run: Run, utterances) -> Vocabulary | TagSet:
    if run.train.task == "frames":
        labels = {s.label for u in utterances for s in u.segments}
        return TagSet.with_background(labels, run.data.background)
    if run.data.vocabulary:
        return Vocabulary.load(run.data.vocabulary)
    return Vocabulary(digits_as_words=run.data.digits_as_words)


def _audited(path: str, entries, run: Run, classes, report_name: str, reports: dict):
    """The usable entries of a manifest; the rest are logged by name and recorded."""
    vocabulary = classes if isinstance(classes, Vocabulary) else None
    report = corpora.audit(
        entries,
        vocabulary=vocabulary,
        frames_per_second=run.features.frames_per_second,
        subsampling=run.encoder.subsampling,
        max_seconds=run.data.max_seconds or None,
        sample_rate=run.features.sample_rate,
        min_seconds=run.features.window_ms / 1000,
    )
    for problem in report.problems:
        log.warning("skipping %s entry %d: %s: %s", report_name, problem.index, problem.audio, problem.reason)
    reports[report_name] = report.to_dict()
    if not report.good:
        raise corpora.CorpusError(f"{path}: no usable entries\n{report.format()}")
    return list(report.good)


def _check_run_directory(run: Run, write: bool = True) -> None:
    """A run directory belongs to one set of settings: resuming with others is refused."""
    saved = run.directory / "run.json"
    if saved.exists():
        previous = json.loads(saved.read_text())
        # A setting added to speechseq after the run started counts as its default.
        default_run = Run(run.directory, DataConfig(), FeatureConfig(), models.EncoderConfig(), TrainConfig())
        defaults = json.loads(json.dumps(default_run.settings()))
        changed = sorted(
            f"{section}.{key}"
            for section, values in json.loads(json.dumps(run.settings())).items()
            for key, value in values.items()
            if previous.get(section, {}).get(key, defaults[section][key]) != value
        )
        if changed:
            raise SpeechseqError(
                f"{run.directory} holds a run with other settings ({', '.join(changed)}); "
                "re-run with the same settings to resume, or choose a new --out"
            )
    elif write:
        run.directory.mkdir(parents=True, exist_ok=True)
        write_text(saved, json.dumps(run.settings(), indent=2) + "\n")


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A run's audited data and its output classes."""

    classes: Vocabulary | TagSet
    train_set: list[corpora.Utterance]
    dev_set: list[corpora.Utterance]


def prepare_data(run: Run, write: bool = True) -> Prepared:
    """Read and audit the manifests; with `write`, record the audit, classes and features
    in the run directory (the chief does, other workers only read)."""
    train_entries = corpora.read_manifest(run.data.train)
    classes = _classes(run, train_entries)
    reports: dict[str, dict] = {}
    train_set = _audited(run.data.train, train_entries, run, classes, "train", reports)
    dev_set = (
        _audited(run.data.dev, corpora.read_manifest(run.data.dev), run, classes, "dev", reports)
        if run.data.dev else []
    )
    if write:
        write_text(run.directory / "audit.json", json.dumps(reports, indent=2) + "\n")
        classes.save(run.directory / TASK_KINDS[run.train.task].classes_file)
        run.features.save(run.directory / "features.json")
    return Prepared(classes, train_set, dev_set)


def training_options(run: Run, train_set, xla: bool, replicas_per_batch: int = 1, workers: int = 1,
                     worker: int = 0) -> data.PipelineOptions:
    """How worker `worker`'s input pipeline batches the training data: each batch feeds
    `replicas_per_batch` replicas `train.batch_size` utterances each. Fixed shapes only
    where XLA compiles (`xla`)."""
    return data.PipelineOptions(
        batch_size=run.train.batch_size * replicas_per_batch,
        max_batch_frames=run.train.max_batch_frames * replicas_per_batch or None,
        shuffle=True,
        seed=run.train.seed,
        buckets=run.train.buckets,
        pad_to_boundaries=xla,
        # XLA compiles once per shape: partial batches would each cost a compile.
        drop_remainder=xla,
        augment=data.SpecAugment() if run.train.spec_augment else None,
        noise=run.train.noise(),
        cache=feature_cache_prefix(run, train_set, workers, worker),
    )


def replicas_per_batch(placement: Placement) -> int:
    """Keras' `fit` splits each batch among a worker's local replicas; the multi-worker
    loop's input pipelines make per-replica batches themselves."""
    return 1 if placement.multiworker else placement.local_replicas


def training_batches(run: Run, prepared: Prepared, options: data.PipelineOptions,
                     context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """The training data as Keras `(inputs, targets)` batches; `context`: one worker's shard."""
    task = TASK_KINDS[run.train.task]
    return task.keras_batches(task.dataset(prepared.train_set, prepared.classes, run.features, options, context), run)


def steps_per_epoch(run: Run, train_set, options: data.PipelineOptions, placement: Placement) -> int:
    """Optimizer steps per epoch: every worker takes the same number, the fewest any
    worker's shard gives (under the multi-worker loop a step takes one batch per local replica)."""
    if run.train.steps_per_epoch:
        return run.train.steps_per_epoch
    batches = min(data.batches_per_epoch(train_set, run.features, options, placement.workers, w)
                  for w in range(placement.workers))
    return batches // (placement.local_replicas if placement.multiworker else 1)


def xla_in_effect(model: keras.Model, run: Run, placement: Placement) -> bool:
    """Whether the compiled training step really uses XLA: asked for, not the multi-worker
    loop (which runs without it), and every layer compilable (Keras turns it off for
    LSTM/GRU layers on cuDNN). Only then are batches padded to fixed shapes."""
    if not run.train.jit_compile or placement.multiworker:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' "Proceeding with jit_compile=False": logged below
        model.jit_compile = True  # Keras' own check: it stays False where a layer cannot compile
    if not model.jit_compile:
        log.info("XLA is off: a layer of this model cannot be compiled here (cuDNN recurrent layers)")
    return bool(model.jit_compile)


def fit(run: Run, verbose: int | None = None, build_model: Callable | None = None,
        strategy: tf.distribute.Strategy | None = None) -> keras.Model:
    """Train (or resume) the run in `run.directory`; returns the final model.

    `strategy`: made by `choose_strategy(run.train.distribution)` when not given (make it
    once per process). `verbose`: Keras' 1 (progress bar) or 2 (a line per epoch); by
    default the bar on a terminal and lines otherwise (logs, CI). `build_model(run,
    classes)` makes the starting model instead of a freshly initialised one; by default a
    run with `train.init_from` starts from that model (`starting.starting_model`). It runs
    inside the strategy's scope, before any saved progress is restored.
    """
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    placement = Placement.of(strategy or choose_strategy(run.train.distribution))
    if placement.multiworker and run.train.mixed_precision:
        raise SpeechseqError("train.mixed_precision is not supported in multi-worker training")
    _check_run_directory(run, write=placement.chief)
    finished = run.directory / "model.keras"
    if finished.exists():
        log.warning("%s is finished already: its model is %s", run.directory, finished)
        return models.load_model(finished)
    if build_model is None and run.train.init_from:
        build_model = starting.starting_model
    elif build_model is None and run.train.freeze:
        raise SpeechseqError(f"train.freeze={run.train.freeze!r} needs train.init_from: the layers it names "
                             "would stay at their random initial weights")
    keras.utils.set_random_seed(run.train.seed)
    task = TASK_KINDS[run.train.task]
    prepared = prepare_data(run, write=placement.chief)

    # The model, then what XLA decides about batch shapes, then the schedule's length.
    with placement.strategy.scope():
        dtype = "mixed_float16" if run.train.mixed_precision else "float32"
        model = (build_model(run, prepared.classes) if build_model
                 else task.new_model(run.features.feature_dim, prepared.classes.size, run.encoder, dtype))
    xla = xla_in_effect(model, run, placement)
    options = training_options(run, prepared.train_set, xla, replicas_per_batch(placement),
                               placement.workers, placement.worker)
    steps = steps_per_epoch(run, prepared.train_set, options, placement)
    if steps == 0:
        raise corpora.CorpusError(
            f"{run.data.train}: {len(prepared.train_set)} usable utterances make no full batch of "
            f"{run.train.batch_size} in any of {run.train.buckets} length buckets: "
            "lower train.batch_size or train.buckets"
        )
    with placement.strategy.scope():
        model.compile(optimizer=optimizer(run.train, steps * run.train.epochs),
                      loss=task.loss(run, prepared), metrics=task.metrics(), jit_compile=xla)

    eval_options = data.PipelineOptions(batch_size=run.train.batch_size, buckets=run.train.buckets,
                                        pad_to_boundaries=xla)
    dev = (task.dataset(prepared.dev_set, prepared.classes, run.features, eval_options)
           if prepared.dev_set else None)
    predict = models.inference(model)
    callbacks = _callbacks(run, task, prepared.classes, dev, predict, placement.chief)
    validation = task.keras_batches(dev, run) if dev is not None else None
    if placement.multiworker:
        validate = ((lambda: multiworker.validation_logs(model, predict, validation, task.metrics))
                    if validation is not None else None)
        multiworker.fit(model, placement.strategy, lambda context: training_batches(run, prepared, options, context),
                        steps, run.train.epochs, callbacks, validate)
    else:
        model.fit(
            training_batches(run, prepared, options).repeat(),
            epochs=run.train.epochs,
            steps_per_epoch=steps,
            shuffle=False,  # the dataset reshuffles itself every epoch
            validation_data=validation,
            validation_steps=(data.batches_per_epoch(prepared.dev_set, run.features, eval_options)
                              if validation is not None else None),
            callbacks=callbacks,
            verbose=verbose,
        )
    if placement.chief:
        with atomic_path(run.directory / "model.keras") as temporary:
            model.save(temporary)
    return model


def _balanced_weights(utterances, tags: TagSet) -> list[float]:
    """Class weight per tag: inverse frame frequency, normalised to mean 1 over frames."""
    seconds = np.zeros(tags.size)
    for utterance in utterances:
        covered = 0.0
        for segment in utterance.segments:
            seconds[tags.id(segment.label)] += segment.end - segment.start
            covered += segment.end - segment.start
        seconds[tags.background_id] += max((utterance.duration or 0.0) - covered, 0.0)
    share = seconds / max(seconds.sum(), 1e-9)
    weights = np.where(share > 0, 1.0 / np.maximum(share, 1e-9), 0.0)
    return list(weights / max((weights * share).sum(), 1e-9))


def _transcription_metrics(run: Run, classes, dev, predict: Callable, chief: bool):
    def transcribe():
        return evaluate.ctc_transcripts(predict, dev, classes, run.encoder.subsampling)

    return metrics.TranscriptionMetrics(transcribe)


def _tagging_metrics(run: Run, classes, dev, predict: Callable, chief: bool):
    def write_confusion(matrix):
        if chief:
            values = {"labels": list(classes.labels), "rows_reference_columns_hypothesis": matrix.tolist()}
            write_text(run.directory / "confusion.json", json.dumps(values) + "\n")

    return metrics.TaggingMetrics(lambda: evaluate.frame_predictions(predict, dev), classes.labels, write_confusion)


@dataclasses.dataclass(frozen=True)
class TaskKind:
    """What differs between the tasks: `TASK_KINDS` has one row each."""

    classes_file: str  # the run directory's record of the output classes
    dataset: Callable  # (utterances, classes, features, options, input context) -> batches
    keras_batches: Callable[[tf.data.Dataset, Run], tf.data.Dataset]  # -> Keras (inputs, targets)
    new_model: Callable  # (feature_dim, classes, encoder, dtype) -> a fresh model
    loss: Callable[[Run, Prepared], keras.losses.Loss]
    metrics: Callable[[], list]  # compiled metrics, new ones each call
    dev_metrics: Callable  # (run, classes, dev batches, predict, chief) -> the callback logging `monitor`
    monitor: str  # the dev figure that picks the best model and stops early
    mode: str  # "min" or "max": which way `monitor` improves


TASK_KINDS = {
    "ctc": TaskKind(
        "vocabulary.json", data.ctc_dataset, lambda batches, run: ctc_batches(batches, run.encoder.subsampling),
        models.BUILDERS["ctc"], lambda run, prepared: losses.CTCLoss(), list, _transcription_metrics, "val_wer", "min",
    ),
    "frames": TaskKind(
        "tags.json", data.tagging_dataset, lambda batches, run: frame_batches(batches), models.BUILDERS["frames"],
        lambda run, prepared: losses.MaskedFrameCrossEntropy(
            _balanced_weights(prepared.train_set, prepared.classes) if run.train.class_weights == "balanced" else None),
        lambda: [metrics.MaskedFrameAccuracy()], _tagging_metrics, "val_frame_accuracy", "max",
    ),
}


def _callbacks(run: Run, task: TaskKind, classes, dev, predict: Callable, chief: bool):
    """The callbacks, in the order they must run at each epoch's end. `predict` is the model
    being trained, as a graph (`models.inference`). Only the chief gets the writers;
    every worker gets those that decide (dev metrics, NaN stop, early stopping)."""
    directory = run.directory
    callbacks: list[keras.callbacks.Callback] = []
    if dev is not None:
        callbacks.append(task.dev_metrics(run, classes, dev, predict, chief))
    callbacks.append(keras.callbacks.TerminateOnNaN())
    if chief:
        callbacks += [
            EpochLog(str(directory / "log.csv"), append=True),  # before the backup: see EpochLog
            backup_and_restore(directory / "backup"),
            keras.callbacks.TensorBoard(str(directory / "tensorboard")),
        ]
    else:
        callbacks.append(restore_only(directory / "backup"))
    if dev is not None:
        if chief:
            callbacks.append(keras.callbacks.ModelCheckpoint(
                str(directory / "best.keras"), monitor=task.monitor, mode=task.mode, save_best_only=True))
        if run.train.early_stopping:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor=task.monitor, mode=task.mode, patience=run.train.early_stopping))
    return callbacks
