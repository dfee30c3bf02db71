"""Training under `MultiWorkerMirroredStrategy`: a loop on `tf.distribute`, where Keras' `fit` cannot run.

Keras 3.15's `fit` fails under this strategy: it mean-reduces its scalar logs along axis 0
(keras-team/keras#20585; 3.15.1, the newest release, still does). `train.fit` uses this
loop for multi-worker runs only, and Keras' `fit` everywhere else.

One step, on every worker at once:
- each replica takes its own batch of `batch_size` utterances (its worker's shard of the
  data, `distribute_datasets_from_function`) and computes its summed loss and its weight
  (utterances for CTC, real frames for tagging: `sum_and_weight` of the run's loss);
- its gradients are those of its sum divided by the global weight, so that the replicas'
  gradients add up to the gradient of the mean over the global batch;
- the gradients (with the sums and weights, for the logs) are summed over all replicas in
  one collective (`strategy.reduce(SUM, axis=None)`) and the optimizer applies them once,
  in cross-replica context. Gradient clipping therefore sees the global batch's gradient,
  as on one device (Keras' replica-context apply clips each replica's part before summing).

Callbacks are Keras' own, driven as `fit` drives them (`CallbackList`): `train.fit` gives
the chief the writers (CSV log, TensorBoard, best model, backups) and every worker the ones
that decide (dev metrics, early stopping, NaN stop). Every worker scores the whole dev set
with the same weights, so they all reach the same decision at the same epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

SUM = tf.distribute.ReduceOp.SUM


def distributed_batches(strategy: tf.distribute.Strategy,
                        make_batches: Callable[[tf.distribute.InputContext], tf.data.Dataset]):
    """The per-replica batches `make_batches(input_context)` gives each worker, repeated, as
    the strategy hands them to its replicas."""
    return strategy.distribute_datasets_from_function(lambda context: make_batches(context).repeat())


def train_step(model: keras.Model, strategy: tf.distribute.Strategy) -> Callable:
    """`step(iterator) -> (summed loss, summed weight)` over all replicas: one optimizer step."""
    variables = model.trainable_variables
    shapes = [v.shape for v in variables]
    sizes = [int(np.prod(shape)) for shape in shapes]

    def replica_step(inputs, targets):
        with tf.GradientTape() as tape:
            total, weight = model.loss.sum_and_weight(targets, model(inputs, training=True))
            global_weight = tf.distribute.get_replica_context().all_reduce(SUM, weight)
            scaled = total / tf.maximum(global_weight, 1e-9)
        gradients = tape.gradient(scaled, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        # One vector, one collective: the gradients and the two log values.
        return tf.concat([tf.reshape(tf.cast(g, tf.float32), [-1]) for g in gradients]
                         + [tf.reshape(total, [1]), tf.reshape(weight, [1])], axis=0)

    @tf.function
    def step(iterator):
        summed = strategy.reduce(SUM, strategy.run(replica_step, args=next(iterator)), axis=None)
        parts = tf.split(summed, sizes + [1, 1])
        gradients = [tf.reshape(part, shape) for part, shape in zip(parts, shapes)]
        model.optimizer.apply(gradients, variables)
        return parts[-2][0], parts[-1][0]

    return step


def validation_logs(model: keras.Model, predict: Callable, batches: tf.data.Dataset,
                    make_metrics: Callable[[], Sequence[keras.metrics.Metric]]) -> dict[str, float]:
    """`val_loss` and the compiled metrics' `val_*` over the whole dev set, on this worker."""
    total = weight = 0.0
    scores = list(make_metrics())
    for inputs, targets in batches:
        predictions = predict(inputs)
        batch_total, batch_weight = model.loss.sum_and_weight(targets, predictions)
        total, weight = total + float(batch_total), weight + float(batch_weight)
        for metric in scores:
            metric.update_state(targets, predictions)
    return {"val_loss": total / max(weight, 1e-9)} | {f"val_{m.name}": float(m.result()) for m in scores}


def fit(model: keras.Model, strategy: tf.distribute.Strategy,
        make_batches: Callable[[tf.distribute.InputContext], tf.data.Dataset], steps_per_epoch: int,
        epochs: int, callbacks: Sequence[keras.callbacks.Callback],
        validate: Callable[[], dict[str, float]] | None = None) -> None:
    """Train the compiled `model` as `model.fit` would, under `strategy`.

    `make_batches(input_context)`: one worker's per-replica batches of Keras
    `(inputs, targets)`; every worker takes `steps_per_epoch` steps per epoch.
    `validate()`: the epoch's `val_*` logs, before the callbacks see them.
    """
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)  # before a backup is restored into it
    iterator = iter(distributed_batches(strategy, make_batches))
    step = train_step(model, strategy)
    hooks = keras.callbacks.CallbackList(list(callbacks), model=model, epochs=epochs, steps=steps_per_epoch)
    model.stop_training = False
    hooks.on_train_begin()
    logs: dict[str, float] = {}
    # Where BackupAndRestore resumes: it leaves the epoch on the model, as `fit` reads it.
    for epoch in range(getattr(model, "_initial_epoch", None) or 0, epochs):
        hooks.on_epoch_begin(epoch)
        total = weight = 0.0
        for batch in range(steps_per_epoch):
            hooks.on_train_batch_begin(batch)
            batch_total, batch_weight = step(iterator)
            total, weight = total + float(batch_total), weight + float(batch_weight)
            logs = {"loss": total / max(weight, 1e-9)}
            hooks.on_train_batch_end(batch, logs)
            if model.stop_training:
                break
        if validate is not None:
            logs = logs | validate()
        hooks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    hooks.on_train_end(logs)
