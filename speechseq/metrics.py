"""Error rates and accuracies: WER/CER (jiwer), masked frame accuracy, per-class and
segment F1, and the validation callbacks that put them in Keras' logs for checkpointing
and early stopping."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

import jiwer
import keras
import numpy as np
import tensorflow as tf

from speechseq.losses import PADDING_LABEL


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Word errors (substitutions + deletions + insertions) per reference word."""
    return float(jiwer.wer(list(references), list(hypotheses)))


def word_errors(reference: str, hypothesis: str) -> int:
    """Substitutions + deletions + insertions between one reference and its hypothesis."""
    if not reference.split():
        return len(hypothesis.split())
    result = jiwer.process_words(reference, hypothesis)
    return result.substitutions + result.deletions + result.insertions


def character_errors(reference: str, hypothesis: str) -> int:
    """Character substitutions + deletions + insertions (spaces count), as `character_error_rate` counts them."""
    if not reference:
        return len(hypothesis)
    result = jiwer.process_characters(reference, hypothesis)
    return result.substitutions + result.deletions + result.insertions


def character_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Character errors per reference character (spaces count)."""
    return float(jiwer.cer(list(references), list(hypotheses)))


@keras.saving.register_keras_serializable(package="speechseq")
class MaskedFrameAccuracy(keras.metrics.Mean):
    """Share of real frames (target != -1) whose most likely tag is the target."""

    def __init__(self, name="frame_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.cast(y_true, tf.int32)
        real = y_true != PADDING_LABEL
        hits = tf.cast(tf.argmax(y_pred, axis=-1, output_type=tf.int32) == y_true, tf.float32)
        return super().update_state(tf.boolean_mask(hits, real))


class TranscriptionMetrics(keras.callbacks.Callback):
    """After each epoch, transcribe the validation set and log `val_wer` and `val_cer`.

    Runs in `on_epoch_end` before the callbacks after it in the list, so put it first:
    `ModelCheckpoint` and `EarlyStopping` then monitor `val_wer` in the same epoch.
    `transcribe() -> (references, hypotheses)` decodes it with the model being trained.
    """

    def __init__(self, transcribe: Callable[[], tuple[list[str], list[str]]]):
        super().__init__()
        self.transcribe = transcribe

    def on_epoch_end(self, epoch, logs=None):
        references, hypotheses = self.transcribe()
        if logs is not None:
            logs["val_wer"] = word_error_rate(references, hypotheses)
            logs["val_cer"] = character_error_rate(references, hypotheses)


class TaggingMetrics(keras.callbacks.Callback):
    """After each epoch, tag the validation set: log `val_f1_<label>` for every label
    and their mean `val_macro_f1`, and hand the confusion matrix to `on_confusion`.

    `predict() -> (reference frame ids, predicted frame ids)` over real frames, by the
    model being trained.
    """

    def __init__(self, predict: Callable, labels: Sequence[str], on_confusion: Callable[[np.ndarray], None]):
        super().__init__()
        self.predict, self.labels, self.on_confusion = predict, list(labels), on_confusion

    def on_epoch_end(self, epoch, logs=None):
        reference, predicted = self.predict()
        matrix = confusion_matrix(reference, predicted, len(self.labels))
        f1 = per_class_f1(matrix)
        if logs is not None:
            for label, value in zip(self.labels, f1):
                logs[f"val_f1_{label}"] = float(value)
            logs["val_macro_f1"] = float(f1.mean())
        self.on_confusion(matrix)


def confusion_matrix(reference: np.ndarray, hypothesis: np.ndarray, classes: int) -> np.ndarray:
    """[classes, classes] counts: row = reference label, column = hypothesis label."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (np.asarray(reference, int), np.asarray(hypothesis, int)), 1)
    return matrix


def per_class_f1(matrix: np.ndarray) -> np.ndarray:
    """F1 of each class from a confusion matrix (0 where a class never occurs nor is guessed)."""
    true_positive = np.diag(matrix).astype(float)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    denominator = predicted + actual
    return np.where(denominator > 0, 2 * true_positive / np.maximum(denominator, 1), 0.0)


def segment_matches(reference, hypothesis, collar: float = 0.1) -> int:
    """Hypothesis segments that are right: a reference segment of the same label has its
    onset and its offset both within `collar` seconds of theirs (each matched once)."""
    unmatched = list(reference)
    hits = 0
    for guess in sorted(hypothesis, key=lambda s: s.start):
        for index, truth in enumerate(unmatched):
            if (truth.label == guess.label and abs(truth.start - guess.start) <= collar
                    and abs(truth.end - guess.end) <= collar):
                hits += 1
                del unmatched[index]
                break
    return hits


def segment_f1(reference, hypothesis, collar: float = 0.1) -> float:
    """Event F1 of one file's segments (see `segment_matches`)."""
    return tagging_scores([(None, None, reference, hypothesis)], 0, collar).segment_f1


@dataclasses.dataclass(frozen=True)
class TaggingScores:
    """Tagging figures summed over files: frames (a confusion matrix) and segments."""

    confusion: np.ndarray  # [reference tag, hypothesis tag] frame counts
    segment_hits: int  # hypothesis segments matched by a reference one (`segment_matches`)
    segments: int  # reference plus hypothesis segments
    collar: float  # seconds an onset or offset may be off and still match

    @property
    def frame_accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(self.confusion.sum(), 1))

    @property
    def per_class_f1(self) -> np.ndarray:
        return per_class_f1(self.confusion)

    def foreground_f1(self, background_id: int) -> float:
        """Mean frame F1 of the tags other than the background."""
        f1 = self.per_class_f1
        return float(np.mean([value for i, value in enumerate(f1) if i != background_id]))

    @property
    def segment_f1(self) -> float:
        return 2 * self.segment_hits / self.segments if self.segments else 1.0


def tagging_scores(files: Iterable[tuple], classes: int, collar: float = 0.1) -> TaggingScores:
    """`TaggingScores` of files given as (reference frame ids, hypothesis frame ids,
    reference segments, hypothesis segments); frame ids may be None (segments only)."""
    confusion, hits, count = np.zeros((classes, classes), np.int64), 0, 0
    for reference_ids, hypothesis_ids, reference, hypothesis in files:
        if reference_ids is not None:
            confusion += confusion_matrix(reference_ids, hypothesis_ids, classes)
        hits += segment_matches(reference, hypothesis, collar)
        count += len(reference) + len(hypothesis)
    return TaggingScores(confusion, hits, count, collar)
