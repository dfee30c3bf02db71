"""Faults and load: killed processes, a full disk, concurrent processes. Nothing is lost.

Each fault is real: processes are killed with SIGKILL, and the disk fills up for a
child process through `RLIMIT_FSIZE` (writes past the limit fail with EFBIG, as on a
full filesystem). The long variants run with `pytest -m slow`.
"""

from __future__ import annotations

import csv
import json
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FSDD, ROOT, fsdd_clip
from speechseq import audio, cli, corpora
from speechseq.published import resolve_version, versions
from speechseq.errors import SpeechseqError

DIGITS = ROOT / "saved_models" / "digits"


def _speechseq(*args: str) -> list[str]:
    return [sys.executable, "-m", "speechseq", *args]


def _with_file_size_limit(limit: int):
    """preexec_fn: a child that may not write any file past `limit` bytes."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _outputs(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def test_a_full_disk_stops_transcription_clearly_and_keeps_earlier_outputs(tmp_path, capsys):
    clips = [fsdd_clip(3, "jackson", 0), fsdd_clip(1, "nicolas", 0)]
    out = tmp_path / "out"
    assert cli.main(["transcribe", *map(str, clips), "--model", str(DIGITS), "--format", "json", "--out", str(out)]) == 0
    earlier = _outputs(out)
    assert len(earlier) == 2
    # Again with word times (a bigger file) on a disk with 100 bytes left per file.
    done = subprocess.run(
        _speechseq("transcribe", *map(str, clips), "--model", str(DIGITS), "--format", "json", "--words",
                   "--out", str(out)),
        capture_output=True, text=True, timeout=300, preexec_fn=_with_file_size_limit(100),
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert f"cannot write {out / '3_jackson_0.json'}: File too large" in done.stderr
    assert _outputs(out) == earlier, "an earlier output was changed or a temporary file was left"


def test_a_full_disk_during_export_publishes_nothing_and_keeps_earlier_versions(tmp_path):
    root = tmp_path / "digits"
    source = resolve_version(DIGITS)
    # The shipped run's manifests are not in a fresh checkout: name the warm-up audio.
    samples = ["--samples", str(fsdd_clip(3)), str(fsdd_clip(7, "nicolas"))]
    shutil.copytree(source, root / "1")  # an earlier version, published
    before = sorted(p.name for p in root.iterdir())
    done = subprocess.run(_speechseq("export", str(source), "--out", str(root), *samples), capture_output=True,
                          text=True, timeout=300, preexec_fn=_with_file_size_limit(1 << 20))  # saved_model.pb is bigger
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert f"cannot write {root / '2'}" in done.stderr and "nothing was published" in done.stderr
    assert sorted(p.name for p in root.iterdir()) == before == ["1"]
    assert versions(root) == [1]
    assert (root / "1" / "saved_model.pb").read_bytes() == (source / "saved_model.pb").read_bytes()


def test_a_killed_transcription_resumes_and_never_leaves_a_half_written_output(tmp_path, capsys):
    files = sorted((FSDD / "recordings").glob("*.wav"))[:150]
    out = tmp_path / "out"
    command = _speechseq("transcribe", *map(str, files), "--model", str(DIGITS), "--format", "json", "--out", str(out))
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    # A write under way is a hidden temporary (`.NAME.*.tmp.json`), which `*.json` also matches: count whole ones.
    def finished():
        return [path for path in out.glob("*.json") if not path.name.startswith(".")] if out.is_dir() else []

    while len(finished()) < 40:
        assert child.poll() is None and time.monotonic() < deadline, "it finished or never started"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    written = finished()  # a write the kill cut short leaves its temporary, never a NAME.json
    assert 40 <= len(written) < len(files), "the kill came too late to test anything"
    for path in written:  # every output there is whole
        assert json.loads(path.read_text())["file"].endswith(path.stem + ".wav")

    assert cli.main(["transcribe", *map(str, files), "--model", str(DIGITS), "--format", "json", "--out", str(out),
                     "--resume"]) == 0
    assert f"{len(written)} files done already, {len(files) - len(written)} to go" in capsys.readouterr().err
    resumed = {name: text for name, text in _outputs(out).items() if not name.startswith(".")}
    assert len(resumed) == len(files)
    again = tmp_path / "uninterrupted"
    assert cli.main(["transcribe", *map(str, files), "--model", str(DIGITS), "--format", "json", "--out", str(again)]) == 0
    assert resumed == _outputs(again)


def test_concurrent_transcribe_processes_on_one_model_give_the_serial_results(tmp_path):
    files = [fsdd_clip(digit, speaker, take) for digit in range(10) for speaker, take in
             [("jackson", 1), ("george", 2), ("lucas", 3)]]
    serial = tmp_path / "serial"
    assert cli.main(["transcribe", *map(str, files), "--model", str(DIGITS), "--format", "json", "--words",
                     "--out", str(serial)]) == 0
    children = [
        subprocess.Popen(_speechseq("transcribe", *map(str, files), "--model", str(DIGITS), "--format", "json",
                                    "--words", "--out", str(tmp_path / f"process{n}")),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for n in range(2)
    ]
    for child in children:
        assert child.wait(timeout=300) == 0, child.stderr.read()[-2000:]
    expected = _outputs(serial)
    assert len(expected) == len(files)
    for n in range(2):
        assert _outputs(tmp_path / f"process{n}") == expected


@pytest.mark.slow
def test_training_killed_five_times_at_random_points_finishes_every_epoch(ten_digits, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        f'[data]\ntrain = "{ten_digits}"\n'
        "[features]\nn_mels = 40\n"
        "[model]\ncell = \"gru\"\nlayers = 1\nunits = 16\n"
        "[train]\nepochs = 20\nsteps_per_epoch = 40\nbatch_size = 5\njit_compile = false\nbuckets = 1\n"
    )
    out = tmp_path / "run"
    command = _speechseq("train", "--config", str(config), "--out", str(out))
    rng = random.Random(7)
    kills = []
    for trial in range(5):
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rng.uniform(4.0, 12.0)  # start-up takes ~6 s: some kills land in it, most in training
        time.sleep(delay)
        if child.poll() is not None:
            break
        child.send_signal(signal.SIGKILL)
        child.wait()
        logged = len((out / "log.csv").read_text().splitlines()) - 1 if (out / "log.csv").exists() else 0
        kills.append(f"{delay:.1f} s ({logged} epochs logged)")
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert len(kills) == 5, f"training finished before the {len(kills) + 1}th kill"
    epochs = [int(row["epoch"]) for row in csv.DictReader(open(out / "log.csv"))]
    assert sorted(set(epochs)) == list(range(20))
    # An epoch is logged twice only when a kill fell between its log line and its backup.
    assert len(epochs) <= 20 + len(kills)
    assert (out / "model.keras").exists()
    print(f"kills after {kills}; epochs logged in the end: {epochs}")


def test_errors_in_the_input_are_one_line_and_a_bug_keeps_its_traceback(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "missing.jsonl"
    assert cli.main(["audit", str(missing)]) == 2
    printed = capsys.readouterr().err.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("speechseq audit: error: ") and str(missing) in printed[0]
    with pytest.raises((SpeechseqError, OSError)):  # --debug: the traceback of the same error
        cli.main(["--debug", "audit", str(missing)])

    def a_bug(*args, **kwargs):
        raise ValueError("a bug inside speechseq")

    monkeypatch.setattr(corpora, "read_manifest", a_bug)
    with pytest.raises(ValueError, match="a bug inside speechseq"):  # not turned into a one-line user error
        cli.main(["audit", str(missing)])
    assert issubclass(audio.AudioError, SpeechseqError) and issubclass(corpora.CorpusError, SpeechseqError)


def test_a_transcribe_of_one_file_prints_only_its_result():
    # TensorFlow's C++ start-up lines (`E0000 ... failed call to cuInit` on a CPU machine)
    # go to file descriptor 2 unless the command holds them back; `-v` lets them through.
    done = subprocess.run(_speechseq("transcribe", str(ROOT / "samples" / "countdown.wav"), "--model", str(DIGITS)),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0
    assert (done.stdout, done.stderr) == ("three two one zero\n", "")
