"""One training process of the distribution tests: trains from the run settings on the
command line (under TF_CONFIG for multi-worker), then saves its final weights to
OUT/weights.npz.

    [TF_CONFIG=...] python tests/distributed_worker.py OUT [--cpus=N] [--run=DIR]
                        [--replica-batches] [--reference-of=WORKERS] key=value ...

`--cpus=N` splits the CPU into N logical devices, so that MirroredStrategy has N
replicas on a machine without GPUs. `--run=DIR`: the run directory (default OUT/run; the
workers of one run may share it). `--replica-batches` prints, before training, the size of
each replica's first batches as the strategy hands them out. `--reference-of=W` trains no
distributed run: one process on one device, Keras' `fit`, on the global batches that W
multi-worker processes would see together (each step: worker 0's batch, then worker 1's...).
"""

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf


def options(arguments: list[str], name: str) -> str | None:
    values = [a.split("=", 1)[1] for a in arguments if a.startswith(f"--{name}=")]
    return values[-1] if values else None


def replica_batch_sizes(strategy, run, train, multiworker) -> list[int]:
    """Utterances in each replica's share of the first two steps' batches."""
    placement = train.Placement.of(strategy)
    prepared = train.prepare_data(run, write=False)
    options = train.training_options(run, prepared.train_set, False, train.replicas_per_batch(placement),
                                     placement.workers, placement.worker)
    if placement.multiworker:
        batches = multiworker.distributed_batches(
            strategy, lambda context: train.training_batches(run, prepared, options, context))
    else:  # as Keras' fit distributes a dataset
        batches = strategy.experimental_distribute_dataset(train.training_batches(run, prepared, options).repeat())
    sizes = []
    for step, (inputs, _) in enumerate(batches):
        if step == 2:
            break
        sizes += [int(features.shape[0]) for features in strategy.experimental_local_results(inputs["features"])]
    return sizes


def global_batches(run, train, workers: int) -> tuple[tf.data.Dataset, int]:
    """The batches `workers` processes take together, joined into one per step."""
    from speechseq import data

    prepared = train.prepare_data(run, write=False)
    shards, steps = [], []
    for worker in range(workers):
        options = train.training_options(run, prepared.train_set, False, 1, workers, worker)
        shards.append(train.training_batches(run, prepared, options, tf.distribute.InputContext(workers, worker)))
        # Counted, not iterated: each pass over a shard reshuffles it.
        steps.append(data.batches_per_epoch(prepared.train_set, run.features, options, workers, worker))

    def join(*batches):
        time = tf.reduce_max([tf.shape(inputs["features"])[1] for inputs, _ in batches])
        width = tf.reduce_max([tf.shape(targets)[1] for _, targets in batches])
        features = tf.concat([tf.pad(i["features"], [[0, 0], [0, time - tf.shape(i["features"])[1]], [0, 0]])
                              for i, _ in batches], 0)
        lengths = tf.concat([i["feature_lengths"] for i, _ in batches], 0)
        targets = tf.concat([tf.pad(t, [[0, 0], [0, width - tf.shape(t)[1]]]) for _, t in batches], 0)
        return {"features": features, "feature_lengths": lengths}, targets

    return tf.data.Dataset.zip(tuple(shard.repeat() for shard in shards)).map(join), min(steps)


def train_reference(run, workers: int):
    import keras

    from speechseq import losses, models, train

    keras.utils.set_random_seed(run.train.seed)
    prepared = train.prepare_data(run, write=False)
    model = models.ctc_model(run.features.feature_dim, prepared.classes.size, run.encoder)
    batches, steps = global_batches(run, train, workers)
    steps = run.train.steps_per_epoch or steps
    model.compile(optimizer=train.optimizer(run.train, steps * run.train.epochs), loss=losses.CTCLoss(),
                  jit_compile=False)
    model.fit(batches, epochs=run.train.epochs, steps_per_epoch=steps, shuffle=False, verbose=0)
    return model


def main() -> None:
    out, arguments = Path(sys.argv[1]), sys.argv[2:]
    cpus = options(arguments, "cpus")
    if cpus:
        device = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(device, [tf.config.LogicalDeviceConfiguration()] * int(cpus))
    overrides = [a for a in arguments if not a.startswith("--")]

    from speechseq import distribution, multiworker, runfile, train

    run = runfile.load(None, overrides, Path(options(arguments, "run") or out / "run"))
    out.mkdir(parents=True, exist_ok=True)
    if options(arguments, "reference-of"):
        model = train_reference(run, int(options(arguments, "reference-of")))
    else:
        strategy = distribution.choose_strategy(run.train.distribution)
        print(f"replicas in sync: {strategy.num_replicas_in_sync}", flush=True)
        if "--replica-batches" in arguments:
            print(f"replica batch sizes: {replica_batch_sizes(strategy, run, train, multiworker)}", flush=True)
        model = train.fit(run, verbose=0, strategy=strategy)
        # Where BackupAndRestore resumed (it leaves the epoch on the model); 0 for a fresh run.
        print(f"started at epoch {getattr(model, '_initial_epoch', None) or 0}", flush=True)
    np.savez(out / "weights.npz", *[np.asarray(w) for w in model.get_weights()])


if __name__ == "__main__":
    main()
