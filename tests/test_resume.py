"""Interrupted training: a killed run resumes, a feature cache outlives a kill, a run
directory keeps its settings."""

from __future__ import annotations

import csv
import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_RUN as TINY
from speechseq import cli, corpora, models, runfile, train
from speechseq.errors import SpeechseqError


def test_killed_run_resumes_without_losing_or_repeating_an_epoch(ten_digits, tmp_path, caplog):
    config = tmp_path / "run.toml"
    config.write_text(
        f'[data]\ntrain = "{ten_digits}"\n'
        "[features]\nn_mels = 40\n"
        "[model]\ncell = \"gru\"\nlayers = 1\nunits = 16\n"
        "[train]\nepochs = 3\nsteps_per_epoch = 6\nbatch_size = 5\njit_compile = false\nbuckets = 1\n"
    )
    out = tmp_path / "run"
    arguments = ["train", "--config", str(config), "--out", str(out)]
    process = subprocess.Popen([sys.executable, "-m", "speechseq", *arguments],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log_file = out / "log.csv"

    def epochs_logged() -> int:
        return len(log_file.read_text().splitlines()) - 1 if log_file.exists() else 0  # less the header

    def backed_up() -> bool:  # the first epoch's backup is complete (its metadata comes last)
        return (out / "backup" / "training_metadata.json").exists()

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and not (epochs_logged() >= 1 and backed_up()):
        time.sleep(0.05)
    alive_at_the_kill, logged_at_the_kill = process.poll() is None, epochs_logged()
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert alive_at_the_kill and logged_at_the_kill >= 1, "the child must be killed mid-run, after an epoch"
    assert not (out / "model.keras").exists(), "the run was killed before it finished"
    with caplog.at_level(logging.INFO, logger="speechseq.epoch_log"):
        assert cli.main(arguments) == 0  # resumed in this process: another process than the killed one
    resumed_at = [int(m) for m in re.findall(r"resuming at epoch (\d+)", caplog.text)]
    assert resumed_at and resumed_at[0] >= logged_at_the_kill, caplog.text  # not from scratch
    caplog.clear()
    # Each epoch once, whether the kill came before or after the epoch's backup (an epoch
    # trained again after a resume replaces its row).
    assert [int(row["epoch"]) for row in csv.DictReader(open(log_file))] == [0, 1, 2]
    # The optimizer went on from where the backup left it: 3 epochs of 6 steps in all (a
    # resume that restored the weights but not the optimizer would count fewer).
    assert int(models.load_model(out / "model.keras").optimizer.iterations) == 3 * 6
    with caplog.at_level(logging.WARNING):
        assert cli.main(arguments) == 0
    assert "finished already" in caplog.text


def test_file_feature_cache_resumes_after_a_killed_first_epoch_and_follows_the_data(ten_digits, tmp_path):
    prefix = tmp_path / "cache" / "features"
    settings = TINY + ["train.epochs=1", "train.steps_per_epoch=2", "train.jit_compile=false",
                       f"train.feature_cache={prefix}"]
    run = runfile.load(None, settings + [f"data.train={ten_digits}"], tmp_path / "run")
    utterances = corpora.read_manifest(ten_digits)
    cache = train.feature_cache_prefix(run, utterances)
    # What a process SIGKILLed while writing the cache leaves (measured): a lockfile and
    # partial data. tf.data then refuses the prefix, so without the clean-up no resume.
    Path(f"{cache}_0.lockfile").write_text("Created at: 0")
    Path(f"{cache}_0.data-00000-of-00001.tempstate42").write_bytes(b"partial")
    train.fit(run, verbose=0)
    assert Path(f"{cache}.index").exists()  # the run used the very prefix the leftovers had
    assert not list(prefix.parent.glob("*.lockfile")) and not list(prefix.parent.glob("*tempstate*"))

    # Other utterances under the same setting get their own files, not the old features.
    six = corpora.write_manifest(utterances[:6], tmp_path / "six.jsonl")
    train.fit(runfile.load(None, settings + [f"data.train={six}"], tmp_path / "run-six"), verbose=0)
    assert len(list(prefix.parent.glob("features-*.index"))) == 2


def test_run_with_other_settings_in_the_same_directory_is_refused(ten_digits, tmp_path):
    run = runfile.load(None, TINY + [f"data.train={ten_digits}", "train.epochs=1", "train.steps_per_epoch=1",
                                     "train.jit_compile=false"], tmp_path / "run")
    train.fit(run, verbose=0)
    changed = runfile.load(None, TINY + [f"data.train={ten_digits}", "train.epochs=1", "train.steps_per_epoch=1",
                                         "train.jit_compile=false", "model.units=8"], tmp_path / "run")
    with pytest.raises(SpeechseqError, match="model.units"):
        train.fit(changed, verbose=0)


def test_a_first_backup_cut_off_by_a_kill_is_dropped_and_a_complete_one_kept(tmp_path, caplog):
    import h5py
    import numpy as np

    from speechseq import backup

    cut_off = tmp_path / "cut" / "backup"
    cut_off.mkdir(parents=True)
    complete = tmp_path / "complete" / "backup"
    complete.mkdir(parents=True)
    with h5py.File(complete / backup.WEIGHTS, "w") as file:
        file["layers/dense/vars/0"] = np.ones((64, 64), np.float32)
    # What a kill during the first save leaves (measured: "truncated file: eof = 96").
    (cut_off / backup.WEIGHTS).write_bytes((complete / backup.WEIGHTS).read_bytes()[:96])
    with caplog.at_level(logging.WARNING):
        backup.backup_and_restore(cut_off)
        backup.backup_and_restore(complete)
    assert not cut_off.exists() and "the first backup was cut off" in caplog.text
    assert (complete / backup.WEIGHTS).exists()
