"""One training process of the distribution tests: trains from the run settings on the
command line (under TF_CONFIG for multi-worker), then saves its final weights to
OUT/weights.npz.

    [TF_CONFIG=...] python tests/distributed_worker.py OUT [--cpus=N] key=value ...

`--cpus=N` splits the CPU into N logical devices, so that MirroredStrategy has N
replicas on a machine without GPUs.
"""

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf


def main() -> None:
    out, arguments = Path(sys.argv[1]), sys.argv[2:]
    cpus = [int(a.split("=")[1]) for a in arguments if a.startswith("--cpus=")]
    if cpus:
        device = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(device, [tf.config.LogicalDeviceConfiguration()] * cpus[0])
    overrides = [a for a in arguments if not a.startswith("--cpus=")]

    from speechseq import runfile, train

    run = runfile.load(None, overrides, out / "run")
    print(f"replicas in sync: {train.choose_strategy(run.train.distribution).num_replicas_in_sync}")
    model = train.fit(run, verbose=0)
    np.savez(out / "weights.npz", *[np.asarray(w) for w in model.get_weights()])


if __name__ == "__main__":
    main()
