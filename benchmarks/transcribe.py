"""Transcription speed and memory: `speechseq transcribe` with the shipped model.

    .venv/bin/python benchmarks/transcribe.py [--minutes 10 30 60] [--short-files 500]
        [--results FILE] [--plot FILE]

Runs the real command in a child process per case and reads the child's wall time
and peak resident memory (`wait4`'s ru_maxrss): (a) many short files (FSDD clips),
(b) long files of 10, 30 and 60 minutes joined from connected-digit utterances,
to show whether memory stays flat as the file grows. Real-time factor = wall
seconds / audio seconds, start-up (importing TensorFlow, loading the model) included;
the start-up alone is measured on one short clip and reported beside it.
Targets on 2 CPU cores: RTF <= 0.02 for (a); RTF <= 0.05 and peak RSS <= 1.5 GB for
the 60-minute file. Results are appended to benchmarks/RESULTS.md (or `--results`)
with the machine, and drawn (RTF and peak RSS against audio length) to
benchmarks/transcribe_rtf.png (or `--plot`).
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from features import RESULTS, machine  # noqa: E402

from speechseq import audio, corpora, derived, plots  # noqa: E402
from speechseq.benchmark import append_section  # noqa: E402
from speechseq.derived import DigitSequenceOptions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FSDD = corpora.data_root() / "fsdd"
MODEL = ROOT / "saved_models" / "digits"


def run_command(arguments: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of `speechseq ARGUMENTS` in a child process."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "speechseq", *arguments],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"speechseq {' '.join(arguments[:3])} ... failed")
    return wall, usage.ru_maxrss / 1024  # Linux reports kilobytes


def long_file(folder: Path, minutes: float, utterances: list[corpora.Utterance]) -> Path:
    """A FLAC file of `minutes`, written piece by piece (the benchmark stays small too)."""
    path = folder / f"digits-{minutes:g}min.flac"
    gap = np.zeros(int(0.5 * 16000), np.float32)
    written = 0
    pieces = itertools.cycle(utterances)  # stop at the length asked, not at the end of a pass
    with soundfile.SoundFile(path, "w", 16000, 1, format="FLAC") as file:
        while written < minutes * 60 * 16000:
            samples = audio.load(next(pieces).audio)
            file.write(np.concatenate([samples, gap]))
            written += samples.size + gap.size
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 30, 60])
    parser.add_argument("--short-files", type=int, default=500)
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file the section is appended to")
    parser.add_argument("--plot", type=Path, default=ROOT / "benchmarks" / "transcribe_rtf.png",
                        help="PNG: real-time factor and peak RSS against audio length")
    args = parser.parse_args()

    rows, long_points = [], []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        clips = sorted((FSDD / "recordings").glob("*.wav"))
        startup, _ = run_command(["transcribe", str(clips[0]), "--model", str(MODEL)])
        short = clips[:: max(len(clips) // args.short_files, 1)][: args.short_files]
        seconds = sum(audio.info(c).duration for c in short)
        wall, rss = run_command(["transcribe", *map(str, short), "--model", str(MODEL), "--out", str(scratch / "out")])
        rows.append((f"{len(short)} short files (FSDD)", seconds, wall, rss))
        manifest = derived.connected_digits(FSDD, scratch / "digits", DigitSequenceOptions(passes=(("test", 1),)))
        utterances = corpora.read_manifest(manifest["test"])
        for minutes in args.minutes:
            path = long_file(scratch, minutes, utterances)
            seconds = audio.info(path).duration
            wall, rss = run_command(["transcribe", str(path), "--model", str(MODEL), "--out", str(scratch / "out")])
            rows.append((f"one {minutes:g}-minute file", seconds, wall, rss))
            long_points.append((seconds, wall, rss))
            path.unlink()

    append_section(args.results, "Transcription", [
        f"Command: `.venv/bin/python benchmarks/transcribe.py --minutes {' '.join(f'{m:g}' for m in args.minutes)} "
        f"--short-files {args.short_files}`",
        f"Machine: {machine()}",
        f"Model: {MODEL.relative_to(ROOT)} (greedy decoding in the graph, 30 s windows, 4 s overlap, batch 8)",
        f"Start-up (import, model load, one 0.4 s clip): {startup:.1f} s"],
        ["case", "audio", "wall", "real-time factor", "peak RSS"],
        [[name, f"{seconds / 60:.1f} min", f"{wall:.1f} s", f"{wall / seconds:.4f}", f"{rss:.0f} MB"]
         for name, seconds, wall, rss in rows])
    # Short files are one point (their total length); the long files show the trend.
    _, short_seconds, short_wall, short_rss = rows[0]
    series = {rows[0][0]: [(short_seconds, short_wall, short_rss)], "one long file each": long_points}
    plots.speed_and_memory(series, args.plot, f"speechseq transcribe, {MODEL.relative_to(ROOT)}, {machine()}")
    print(f"drew {args.plot}")


if __name__ == "__main__":
    main()
