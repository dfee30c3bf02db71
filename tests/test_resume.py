"""Interrupted training: a killed run resumes, a feature cache outlives a kill, a run
directory keeps its settings."""

from __future__ import annotations

import csv
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_RUN as TINY
from speechseq import cli, corpora, runfile, train
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
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if log_file.exists() and len(log_file.read_text().splitlines()) >= 2:  # header + epoch 0
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "model.keras").exists(), "the run was killed before it finished"
    assert cli.main(arguments) == 0  # resumed in this process: another process than the killed one
    epochs = [int(row["epoch"]) for row in csv.DictReader(open(log_file))]
    assert epochs[-1] == 2 and sorted(set(epochs)) == [0, 1, 2]
    # An epoch may be logged twice only if the kill came after its log line but before
    # its backup; it is never skipped, and the run never does more than 3 epochs' work.
    assert len(epochs) <= 4
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
