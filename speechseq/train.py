"""Training: compile (Adam/AdamW with clipnorm, warm-up + cosine) and Keras `fit`.

A run directory holds everything a run makes and needs to resume:

    RUN/run.json         the resolved settings (re-running with others is refused)
    RUN/vocabulary.json  or tags.json: the output classes
    RUN/features.json    the feature settings
    RUN/audit.json       the entries skipped, and why
    RUN/backup/          BackupAndRestore state: an interrupted run resumes here
    RUN/best.keras       the best model so far by validation WER (or frame accuracy)
    RUN/model.keras      the final model, written when training ends
    RUN/log.csv, RUN/tensorboard/

Distribution: one device by default; `MirroredStrategy` across the visible GPUs;
`MultiWorkerMirroredStrategy` when `TF_CONFIG` names a cluster, each worker reading
its own shard of the data.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from speechseq import corpora, data, evaluate, losses, metrics, models
from speechseq.backup import backup_and_restore
from speechseq.epoch_log import EpochLog
from speechseq.errors import SpeechseqError
from speechseq.features import FeatureConfig
from speechseq.files import atomic_path, write_text
from speechseq.text import TagSet, Vocabulary

log = logging.getLogger(__name__)

TASKS = ("ctc", "frames")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What to train on."""

    train: str = ""  # training manifest (JSON Lines)
    dev: str = ""  # validation manifest; "" = none (no best-model selection)
    vocabulary: str = ""  # vocabulary JSON; "" = English letters, space and apostrophe
    digits_as_words: bool = True  # with the default vocabulary: "42" -> "four two"
    background: str = "silence"  # frames task: label of time no segment covers
    max_seconds: float = 0.0  # skip longer utterances; 0 = no limit


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train."""

    task: str = "ctc"  # "ctc" (transcripts) or "frames" (per-frame tags)
    batch_size: int = 16  # utterances per batch, per replica
    max_batch_frames: int = 0  # cap on padded frames per batch (long utterances); 0 = none
    epochs: int = 30  # passes over the training data
    steps_per_epoch: int = 0  # batches per epoch; 0 = one pass over the data
    learning_rate: float = 1e-3  # peak learning rate, after warm-up
    warmup_steps: int = 200  # linear warm-up from 0, in optimizer steps
    schedule: str = "cosine"  # after warm-up: "cosine" decay to final_lr_fraction, or "constant"
    final_lr_fraction: float = 0.05  # cosine: final learning rate / peak
    optimizer: str = "adam"  # "adam" or "adamw"
    weight_decay: float = 1e-4  # adamw only
    clipnorm: float = 5.0  # gradient norm clipping per variable; 0 = none
    mixed_precision: bool = False  # float16 compute with loss scaling (GPU)
    spec_augment: bool = True  # time and frequency masking of training batches
    noise_snrs: str = ""  # noise added to training audio at these SNRs (dB), e.g. "0,5,10,20"; "" = none
    noise_probability: float = 0.5  # share of training utterances that get noise
    buckets: int = 4  # length buckets
    feature_cache: str = ""  # keep each utterance's features after epoch 1: "memory", a file prefix, "" = none
    jit_compile: bool = True  # XLA; batches are padded to fixed bucket lengths
    early_stopping: int = 10  # epochs without validation progress before stopping; 0 = never
    class_weights: str = ""  # frames task: "balanced" or "" (all 1)
    distribution: str = "auto"  # "auto", "one" (default device), "mirrored" (local devices), "multiworker"
    seed: int = 0  # weights, shuffling and augmentation
    init_from: str = ""  # fine-tuning: start from this run, .keras file or export (see `finetune`)
    freeze: str = ""  # fine-tuning: layers kept as they are, e.g. "front,encoder:2" (see `finetune`)

    def noise(self) -> data.AddNoise | None:
        """The waveform noise these settings ask for, or None."""
        if not self.noise_snrs.strip():
            return None
        try:
            snrs = tuple(float(part) for part in self.noise_snrs.split(","))
        except ValueError:
            raise SpeechseqError(f"noise_snrs must be comma-separated numbers (dB), got {self.noise_snrs!r}") from None
        if not all(math.isfinite(snr) for snr in snrs):
            raise SpeechseqError(f"noise_snrs must be finite, got {self.noise_snrs!r}")
        return data.AddNoise(snrs, self.noise_probability)

    def __post_init__(self):
        if not 0 <= self.noise_probability <= 1:
            raise SpeechseqError(f"noise_probability must be a probability in [0, 1], got {self.noise_probability}")
        if self.noise() and self.feature_cache:  # (noise() also checks noise_snrs)
            raise SpeechseqError("noise_snrs draws new noise every epoch, feature_cache would keep the first draw: "
                             "set one of them, not both")
        if self.task not in TASKS:
            raise SpeechseqError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise SpeechseqError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.distribution not in ("auto", "one", "mirrored", "multiworker"):
            raise SpeechseqError(f"distribution must be auto, one, mirrored or multiworker, got {self.distribution!r}")
        if self.schedule not in ("cosine", "constant"):
            raise SpeechseqError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if min(self.batch_size, self.epochs, self.buckets) < 1:
            raise SpeechseqError("batch_size, epochs and buckets must be at least 1")
        if min(self.steps_per_epoch, self.warmup_steps, self.early_stopping, self.max_batch_frames) < 0:
            raise SpeechseqError("steps_per_epoch, warmup_steps, early_stopping and max_batch_frames must not be negative")
        if not 0 < self.learning_rate < math.inf or not 0 < self.final_lr_fraction <= 1:
            raise SpeechseqError(f"need a positive learning_rate and 0 < final_lr_fraction <= 1, got "
                             f"{self.learning_rate}, {self.final_lr_fraction}")
        if not (0 <= self.clipnorm < math.inf and 0 <= self.weight_decay < math.inf):
            raise SpeechseqError(f"clipnorm and weight_decay must be finite and not negative, got "
                             f"{self.clipnorm}, {self.weight_decay}")


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


def choose_strategy(distribution: str = "auto") -> tf.distribute.Strategy:
    """The strategy `distribution` names; "auto": several machines from TF_CONFIG,
    else all local GPUs when there are several, else the default device.
    "mirrored" mirrors across every local device, GPUs or else CPUs.

    Call it before any other TensorFlow work: collective ops are configured at start-up.
    """
    if distribution == "multiworker" or (
        distribution == "auto" and json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster")
    ):
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if distribution == "mirrored" or (distribution == "auto" and len(gpus) > 1):
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    return tf.distribute.get_strategy()


def worker_position(strategy: tf.distribute.Strategy) -> tuple[int, int]:
    """(number of workers, this worker's index) of a multi-worker strategy; (1, 0) otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return 1, 0
    spec = resolver.cluster_spec()
    jobs = [job for job in ("chief", "worker") if job in spec.jobs]
    index = sum(spec.num_tasks(job) for job in jobs[: jobs.index(resolver.task_type)]) + resolver.task_id
    return sum(spec.num_tasks(job) for job in jobs), index


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


@dataclasses.dataclass(frozen=True)
class Run:
    """Everything `fit` needs, resolved from the settings and the manifests."""

    directory: Path
    data: DataConfig
    features: FeatureConfig
    encoder: models.EncoderConfig
    train: TrainConfig

    def settings(self) -> dict[str, dict]:
        return {
            "data": dataclasses.asdict(self.data),
            "features": self.features.to_dict(),
            "model": self.encoder.to_dict(),
            "train": dataclasses.asdict(self.train),
        }


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


def _check_run_directory(run: Run) -> None:
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
    else:
        run.directory.mkdir(parents=True, exist_ok=True)
        write_text(saved, json.dumps(run.settings(), indent=2) + "\n")


def fit(run: Run, verbose: int | None = None, build_model: Callable | None = None) -> keras.Model:
    """Train (or resume) the run in `run.directory`; returns the final model.

    `verbose`: Keras' 1 (progress bar) or 2 (a line per epoch); by default the bar
    on a terminal and lines otherwise (logs, CI). `build_model(run, classes)` makes
    the starting model instead of a freshly initialised one (fine-tuning); it runs
    inside the distribution strategy's scope, before any saved progress is restored.
    """
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    strategy = choose_strategy(run.train.distribution)
    _check_run_directory(run)
    finished = run.directory / "model.keras"
    if finished.exists():
        log.warning("%s is finished already: its model is %s", run.directory, finished)
        return models.load_model(finished)
    keras.utils.set_random_seed(run.train.seed)
    train_entries = corpora.read_manifest(run.data.train)
    classes = _classes(run, train_entries)
    reports: dict[str, dict] = {}
    train_set = _audited(run.data.train, train_entries, run, classes, "train", reports)
    dev_set = (
        _audited(run.data.dev, corpora.read_manifest(run.data.dev), run, classes, "dev", reports)
        if run.data.dev else []
    )
    write_text(run.directory / "audit.json", json.dumps(reports, indent=2) + "\n")
    classes.save(run.directory / ("tags.json" if isinstance(classes, TagSet) else "vocabulary.json"))
    run.features.save(run.directory / "features.json")

    workers, worker = worker_position(strategy)
    train_options = data.PipelineOptions(
        batch_size=run.train.batch_size,
        max_batch_frames=run.train.max_batch_frames or None,
        shuffle=True,
        seed=run.train.seed,
        buckets=run.train.buckets,
        pad_to_boundaries=run.train.jit_compile,
        # XLA compiles once per shape: partial batches would each cost a compile.
        drop_remainder=run.train.jit_compile,
        augment=data.SpecAugment() if run.train.spec_augment else None,
        noise=run.train.noise(),
        cache=feature_cache_prefix(run, train_set, workers, worker),
    )
    # Every worker must take the same number of steps: the fewest any shard gives.
    steps = run.train.steps_per_epoch or min(
        data.batches_per_epoch(train_set, run.features, train_options, workers, w) for w in range(workers)
    )
    if steps == 0:
        raise corpora.CorpusError(
            f"{run.data.train}: {len(train_set)} usable utterances make no full batch of "
            f"{run.train.batch_size} in any of {run.train.buckets} length buckets: "
            "lower train.batch_size or train.buckets"
        )
    context = tf.distribute.InputContext(workers, worker) if workers > 1 else None
    dtype = "mixed_float16" if run.train.mixed_precision else "float32"

    with strategy.scope():
        if run.train.task == "ctc":
            model = (build_model(run, classes) if build_model
                     else models.ctc_model(run.features.feature_dim, classes.size, run.encoder, dtype))
            train_data = ctc_batches(
                data.ctc_dataset(train_set, classes, run.features, train_options, context),
                run.encoder.subsampling,
            )
            loss, compiled_metrics = losses.CTCLoss(), []
        else:
            model = (build_model(run, classes) if build_model
                     else models.frame_model(run.features.feature_dim, classes.size, run.encoder, dtype))
            train_data = frame_batches(data.tagging_dataset(train_set, classes, run.features, train_options, context))
            weights = _balanced_weights(train_set, classes) if run.train.class_weights == "balanced" else None
            loss, compiled_metrics = losses.MaskedFrameCrossEntropy(weights), [metrics.MaskedFrameAccuracy()]
        model.compile(
            optimizer=optimizer(run.train, steps * run.train.epochs),
            loss=loss,
            metrics=compiled_metrics,
            jit_compile=run.train.jit_compile,
        )
    eval_options = data.PipelineOptions(batch_size=run.train.batch_size, buckets=run.train.buckets,
                                        pad_to_boundaries=run.train.jit_compile)
    callbacks, validation = _callbacks(run, classes, dev_set, eval_options, evaluate.inference(model))
    model.fit(
        train_data.repeat(),
        epochs=run.train.epochs,
        steps_per_epoch=steps,
        shuffle=False,  # the dataset reshuffles itself every epoch
        validation_data=validation,
        validation_steps=data.batches_per_epoch(dev_set, run.features, eval_options) if dev_set else None,
        callbacks=callbacks,
        verbose=verbose,
    )
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


def _callbacks(run: Run, classes, dev_set, options: data.PipelineOptions, predict: Callable):
    """The callbacks, in the order they must run at each epoch's end; `predict` is the
    model being trained, as a graph (`evaluate.inference`)."""
    directory = run.directory
    callbacks: list[keras.callbacks.Callback] = []
    validation = None
    monitor, mode = None, None
    if dev_set and run.train.task == "ctc":
        dev_raw = data.ctc_dataset(dev_set, classes, run.features, options)
        validation = ctc_batches(dev_raw, run.encoder.subsampling)

        def transcribe():
            return evaluate.ctc_transcripts(predict, dev_raw, classes, run.encoder.subsampling)

        callbacks.append(metrics.TranscriptionMetrics(transcribe))
        monitor, mode = "val_wer", "min"
    elif dev_set:
        dev_raw = data.tagging_dataset(dev_set, classes, run.features, options)
        validation = frame_batches(dev_raw)

        def write_confusion(matrix):
            values = {"labels": list(classes.labels), "rows_reference_columns_hypothesis": matrix.tolist()}
            write_text(directory / "confusion.json", json.dumps(values) + "\n")

        callbacks.append(metrics.TaggingMetrics(
            lambda: evaluate.frame_predictions(predict, dev_raw), classes.labels, write_confusion))
        monitor, mode = "val_frame_accuracy", "max"
    callbacks += [
        keras.callbacks.TerminateOnNaN(),
        EpochLog(str(directory / "log.csv"), append=True),  # before the backup: see EpochLog
        backup_and_restore(directory / "backup"),
        keras.callbacks.TensorBoard(str(directory / "tensorboard")),
    ]
    if monitor:
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(directory / "best.keras"), monitor=monitor, mode=mode, save_best_only=True))
        if run.train.early_stopping:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=run.train.early_stopping))
    return callbacks, validation
