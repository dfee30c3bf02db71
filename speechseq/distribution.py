"""Where a training process stands: the `tf.distribute` strategy a run asks for, and this
process's place in it (how many workers, which one, whether it is the chief)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket

import tensorflow as tf

from speechseq.errors import SpeechseqError


def cluster_size() -> int:
    """The tasks (chief and workers) `TF_CONFIG`'s cluster names; 0 without `TF_CONFIG`."""
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster") or {}
    except (json.JSONDecodeError, AttributeError):
        raise SpeechseqError(f"TF_CONFIG is not a JSON object: {os.environ.get('TF_CONFIG')!r}") from None
    return sum(len(cluster.get(job) or []) for job in ("chief", "worker"))


def choose_strategy(distribution: str = "auto") -> tf.distribute.Strategy:
    """The strategy `distribution` names; "auto": several machines when `TF_CONFIG` names
    more than one task, else all local GPUs when there are several, else the default device.
    "mirrored" mirrors across every local device, GPUs or else CPUs.

    Call it once per process, before any other TensorFlow work: collective ops are
    configured at start-up. `speechseq train` and `finetune` make it and pass it to `fit`.
    """
    if distribution == "multiworker" or (distribution == "auto" and cluster_size() > 1):
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
    if resolver.task_type not in jobs:  # no cluster: one worker
        return 1, 0
    index = sum(spec.num_tasks(job) for job in jobs[: jobs.index(resolver.task_type)]) + resolver.task_id
    return sum(spec.num_tasks(job) for job in jobs), index


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where this process stands in its strategy."""

    strategy: tf.distribute.Strategy
    workers: int  # processes training together (1 unless multi-worker)
    worker: int  # this one's index; 0 is the chief, the only one that writes the run directory

    @classmethod
    def of(cls, strategy: tf.distribute.Strategy) -> Placement:
        return cls(strategy, *worker_position(strategy))

    @property
    def chief(self) -> bool:
        return self.worker == 0

    @property
    def multiworker(self) -> bool:
        """Trained by `multiworker.fit`: Keras' `fit` cannot run under this strategy."""
        return isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)

    @property
    def local_replicas(self) -> int:
        return self.strategy.num_replicas_in_sync // self.workers


def local_cluster(workers: int) -> list[str]:
    """`TF_CONFIG` values for `workers` processes on this machine, on free loopback ports:
    a multi-worker run to try or test on one machine (worker 0 is the chief)."""
    sockets = [socket.socket() for _ in range(workers)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]}
    finally:
        for s in sockets:
            s.close()
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(workers)]
