"""Losses on true lengths: CTC that never scores padding, masked frame cross-entropy.

Keras' own `keras.losses.CTC` takes the padded time length for every utterance and
counts non-zero labels as the label length, so padding is scored; these losses take
the real lengths instead. Keras hands a loss only `(y_true, y_pred)`, so the CTC
targets travel packed in one int tensor (`pack_ctc_targets`) and frame targets mark
padding with -1.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from speechseq.text import BLANK_ID

PADDING_LABEL = -1  # frame target of a padded frame: not scored


def pack_ctc_targets(labels, label_lengths, output_lengths):
    """[batch, 2 + labels]: column 0 the model's output length, 1 the label length."""
    return tf.concat(
        [tf.cast(output_lengths, tf.int32)[:, None], tf.cast(label_lengths, tf.int32)[:, None],
         tf.cast(labels, tf.int32)],
        axis=1,
    )


def ctc_losses(log_probs, labels, label_lengths, output_lengths):
    """Negative log-likelihood of each utterance's labels, [batch].

    Only the first `output_lengths[i]` frames and `label_lengths[i]` labels of
    utterance i count. An infeasible utterance (more labels, plus a blank between
    repeats, than frames) gets 0 rather than a huge or infinite loss; training skips
    those with a warning beforehand (see `corpora.audit`).
    """
    labels = tf.cast(labels, tf.int32)
    label_lengths = tf.cast(label_lengths, tf.int32)
    output_lengths = tf.cast(output_lengths, tf.int32)
    within = tf.sequence_mask(label_lengths - 1, tf.maximum(tf.shape(labels)[1] - 1, 0))
    repeats = tf.reduce_sum(tf.cast((labels[:, 1:] == labels[:, :-1]) & within, tf.int32), axis=1)
    feasible = label_lengths + repeats <= output_lengths
    losses = tf.nn.ctc_loss(
        labels=labels,
        logits=tf.cast(log_probs, tf.float32),
        label_length=label_lengths,
        logit_length=output_lengths,
        logits_time_major=False,
        blank_index=BLANK_ID,
    )
    return tf.where(feasible & tf.math.is_finite(losses), losses, tf.zeros_like(losses))


@keras.saving.register_keras_serializable(package="speechseq")
class CTCLoss(keras.losses.Loss):
    """CTC on true lengths; `y_true` comes from `pack_ctc_targets`. Mean over utterances."""

    def __init__(self, name="ctc", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return ctc_losses(y_pred, y_true[:, 2:], y_true[:, 1], y_true[:, 0])

    def sum_and_weight(self, y_true, y_pred):
        """(summed loss, utterances) of a batch: the loss is their ratio, and a batch split
        across replicas adds up (`multiworker`)."""
        return tf.reduce_sum(self.call(y_true, y_pred)), tf.cast(tf.shape(y_true)[0], tf.float32)


def frame_targets(frame_labels, feature_lengths):
    """Frame labels with every frame past its utterance's length set to `PADDING_LABEL`."""
    time = tf.shape(frame_labels)[1]
    real = tf.sequence_mask(feature_lengths, time)
    return tf.where(real, tf.cast(frame_labels, tf.int32), PADDING_LABEL)


@keras.saving.register_keras_serializable(package="speechseq")
class MaskedFrameCrossEntropy(keras.losses.Loss):
    """Cross-entropy averaged over real frames only (targets of -1 are padding).

    `class_weights` (one per tag) rescale each frame's loss by its true tag, for
    imbalanced labels; the mean is then over the weights of the real frames.
    """

    def __init__(self, class_weights=None, name="frame_cross_entropy", **kwargs):
        kwargs.pop("reduction", None)  # always "sum" (the mean is taken in `call`); saved configs carry it
        super().__init__(name=name, reduction="sum", **kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        total, weight = self.sum_and_weight(y_true, y_pred)
        return total / tf.maximum(weight, 1e-6)

    def sum_and_weight(self, y_true, y_pred):
        """(weighted sum of the real frames' losses, sum of their weights) of a batch."""
        y_true = tf.cast(y_true, tf.int32)
        real = y_true != PADDING_LABEL
        safe = tf.where(real, y_true, 0)
        losses = keras.losses.sparse_categorical_crossentropy(safe, tf.cast(y_pred, tf.float32))
        weights = tf.cast(real, tf.float32)
        if self.class_weights is not None:
            weights *= tf.gather(tf.constant(self.class_weights, tf.float32), safe)
        return tf.reduce_sum(losses * weights), tf.reduce_sum(weights)

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}
