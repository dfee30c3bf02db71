"""tf.distribute: several workers, and several devices in one process."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_RUN as TINY
from speechseq import models, runfile
from speechseq.text import Vocabulary

ROOT = Path(__file__).resolve().parents[1]


WORKER = ROOT / "tests" / "distributed_worker.py"


def _cluster_environments(count: int) -> list[dict]:
    """One environment per worker: TF_CONFIG for `count` workers on loopback ports."""
    from speechseq import distribution

    return [dict(os.environ, TF_CONFIG=config) for config in distribution.local_cluster(count)]


def _start_workers(command_of, count: int = 2) -> list[subprocess.Popen]:
    return [subprocess.Popen(command_of(index), env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for index, environment in enumerate(_cluster_environments(count))]


def _finish(processes: list[subprocess.Popen], timeout: float = 240) -> list[str]:
    """Their outputs, once all have ended; all exited 0. When one worker dies the others
    can wait for it in a collective forever: the wait is bounded."""
    try:
        outputs = [p.communicate(timeout=timeout)[0] for p in processes]
    finally:
        for process in processes:
            process.kill()
    assert [p.returncode for p in processes] == [0] * len(processes), "\n".join(o[-3000:] for o in outputs)
    return outputs


def _same_weights(first: Path, second: Path, atol: float = 0.0) -> None:
    one, other = np.load(first), np.load(second)
    assert len(one.files) == len(other.files) > 0
    for name in one.files:
        np.testing.assert_allclose(one[name], other[name], rtol=0, atol=atol, err_msg=name)


def _epochs_logged(run: Path) -> list[int]:
    return [int(row["epoch"]) for row in csv.DictReader(open(run / "log.csv"))]


def _only_the_chief_wrote(run: Path, starts: int = 1) -> None:
    """What one writer leaves: a TensorBoard events file per start of the run, one row per epoch."""
    assert sorted(p.name for p in run.iterdir()) == [
        "audit.json", "features.json", "log.csv", "model.keras", "run.json", "tensorboard", "vocabulary.json"]
    assert len(list((run / "tensorboard" / "train").glob("events.out.tfevents.*"))) == starts
    epochs = _epochs_logged(run)
    assert epochs == sorted(set(epochs))


MULTIWORKER = TINY + ["train.batch_size=2", "train.jit_compile=false", "model.units=16"]


def test_two_workers_share_one_run_directory_and_train_as_one_process_on_the_global_batches(ten_digits, tmp_path):
    """The multi-worker loop: two processes (TF_CONFIG names two tasks, so "auto" picks
    MultiWorkerMirroredStrategy), each replica `batch_size` utterances of its own shard,
    end with the weights of Keras' fit on one device fed both shards' batches as one."""
    run = tmp_path / "run"
    settings = MULTIWORKER + [f"data.train={ten_digits}", "train.epochs=2"]
    outputs = _finish(_start_workers(lambda i: [sys.executable, str(WORKER), str(tmp_path / f"w{i}"), f"--run={run}",
                                                "--replica-batches", *settings]))
    for output in outputs:
        assert "replicas in sync: 2" in output and "replica batch sizes: [2, 2]" in output
    _same_weights(tmp_path / "w0" / "weights.npz", tmp_path / "w1" / "weights.npz")
    _only_the_chief_wrote(run)
    assert _epochs_logged(run) == [0, 1]
    reference = subprocess.run([sys.executable, str(WORKER), str(tmp_path / "one"), "--reference-of=2",
                                f"--run={tmp_path / 'one-run'}", *settings], capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stdout[-2000:] + reference.stderr[-3000:]
    # Float sums in another order: measured 9e-8 apart after 6 steps; a batch of the wrong
    # size or shard moves weights by about the learning rate, 1e-3.
    _same_weights(tmp_path / "w0" / "weights.npz", tmp_path / "one" / "weights.npz", atol=1e-5)
    # The weights moved from their initial values: the workers really trained.
    first = np.load(tmp_path / "w0" / "weights.npz")
    initial = models.ctc_model(40, Vocabulary().size, runfile.load(None, settings).encoder)
    assert any(w.shape == first[n].shape and not np.allclose(w, first[n])
               for w, n in zip(initial.get_weights(), first.files))


def test_killing_a_worker_mid_run_then_restarting_both_resumes_with_each_epoch_logged_once(ten_digits, tmp_path):
    import time

    run = tmp_path / "run"
    settings = MULTIWORKER + [f"data.train={ten_digits}", "train.epochs=3", "train.steps_per_epoch=20"]

    def command(index):
        return [sys.executable, str(WORKER), str(tmp_path / f"w{index}"), f"--run={run}", *settings]

    first = _start_workers(command)
    try:
        deadline = time.monotonic() + 200
        while not (run / "log.csv").exists() or not _epochs_logged(run):
            assert all(p.poll() is None for p in first), "a worker ended before an epoch was logged"
            assert time.monotonic() < deadline, "no epoch logged in time"
            time.sleep(0.2)
        assert all(p.poll() is None for p in first)  # killed alive, with an epoch behind them
        first[1].kill()
        first[1].wait()
        time.sleep(1)
    finally:
        for process in first:  # the chief now waits on its peer in a collective forever
            process.kill()
    backed_up = json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"]
    assert 1 <= backed_up < 3
    outputs = _finish(_start_workers(command))
    for output in outputs:  # both resumed from the chief's backup, none started over
        assert f"started at epoch {backed_up}" in output
    assert _epochs_logged(run) == [0, 1, 2]
    _only_the_chief_wrote(run, starts=2)
    _same_weights(tmp_path / "w0" / "weights.npz", tmp_path / "w1" / "weights.npz")
    from speechseq import losses  # noqa: F401  (registers the loss the saved model was compiled with)

    assert int(models.load_model(run / "model.keras").optimizer.iterations.numpy()) == 3 * 20


def test_multi_worker_fine_tuning_from_an_export_starts_and_finishes(ten_digits, tmp_path):
    out = tmp_path / "tuned"
    outputs = _finish(_start_workers(lambda i: [
        sys.executable, "-m", "speechseq", "finetune", "--from", str(ROOT / "saved_models" / "digits" / "4"),
        "--manifest", str(ten_digits), "--out", str(out), "--epochs", "2", "--steps", "4", "--batch-size", "2",
        "--set", "train.jit_compile=false"]))
    assert "model:" in outputs[0] and "model:" not in outputs[1]  # the chief reports
    assert _epochs_logged(out) == [0, 1]
    assert (out / "model.keras").exists() and not (out / "backup").exists()
    assert len(list((out / "tensorboard" / "train").glob("events.out.tfevents.*"))) == 1


def test_auto_picks_multi_worker_only_when_tf_config_names_several_tasks(monkeypatch):
    import tensorflow as tf

    from speechseq import distribution
    from speechseq.errors import SpeechseqError

    one = {"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(one))
    assert distribution.cluster_size() == 1
    assert not isinstance(distribution.choose_strategy("auto"), tf.distribute.MultiWorkerMirroredStrategy)
    two = {"cluster": {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"]}, "task": {"type": "chief", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(two))
    assert distribution.cluster_size() == 2
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(SpeechseqError, match="TF_CONFIG"):
        distribution.cluster_size()
    monkeypatch.delenv("TF_CONFIG")
    assert distribution.cluster_size() == 0


def test_batches_are_padded_for_xla_only_where_the_step_really_compiles(ten_digits, tmp_path):
    import tensorflow as tf

    from speechseq import train

    run = runfile.load(None, TINY + [f"data.train={ten_digits}", "train.jit_compile=true"], tmp_path)
    one_device = train.Placement.of(tf.distribute.get_strategy())
    assert train.xla_in_effect(models.ctc_model(40, Vocabulary().size, run.encoder), run, one_device)
    # Keras turns XLA off for a layer that cannot compile (LSTM/GRU on cuDNN do so on a GPU).
    model = models.ctc_model(40, Vocabulary().size, run.encoder)
    model.get_layer("encoder_0").supports_jit = False
    assert not train.xla_in_effect(model, run, one_device)
    plain = runfile.load(None, TINY + [f"data.train={ten_digits}", "train.jit_compile=false"], tmp_path / "b")
    assert not train.xla_in_effect(models.ctc_model(40, Vocabulary().size, plain.encoder), plain, one_device)
    options = train.training_options(run, [], xla=False)
    assert not options.pad_to_boundaries and not options.drop_remainder


def test_mirrored_strategy_over_two_local_devices_trains(ten_digits, tmp_path):
    """The multi-GPU path, on two logical CPU devices in a fresh process."""
    settings = TINY + [f"data.train={ten_digits}", "train.epochs=2", "train.batch_size=2",
                       "train.jit_compile=false", "model.units=16", "train.distribution=mirrored"]
    result = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path), "--cpus=2", "--replica-batches", *settings],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "replicas in sync: 2" in result.stdout
    # batch_size is per replica: each of the two gets 2 utterances of every 4-utterance batch.
    assert "replica batch sizes: [2, 2, 2, 2]" in result.stdout
    log = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert len(log) == 2 and float(log[1]["loss"]) < float(log[0]["loss"])
