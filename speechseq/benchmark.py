"""`speechseq benchmark`: run the scripts in the checkout's benchmarks/ folder, each in a
child process, at quick sizes (a smoke test of the figures) or at their full sizes."""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from speechseq.errors import SpeechseqError

# The scripts live in the source checkout beside the package, not inside it: an installed
# wheel has no benchmarks/ (they need the shared corpora and the shipped models anyway).
FOLDER = Path(__file__).resolve().parents[1] / "benchmarks"
NAMES = ("features", "train", "transcribe", "peers", "peers_english", "vad_peers", "channels")
QUICK_RESULTS = "quick-results.md"  # in FOLDER; quick figures never go into RESULTS.md
FULL_RESULTS = "RESULTS.md"

# Sizes that finish in minutes on 2 cores: enough to show each script still works and
# to catch a large regression, too small for figures worth reporting.
QUICK = {
    "features": ["--long-minutes", "1", "--long-files", "1", "--short-files", "500"],
    "train": ["--utterances", "96", "--repeats", "2"],
    "transcribe": ["--minutes", "1", "--short-files", "40"],
    "peers": ["--long-minutes", "1", "--utterances", "40", "--isolated", "20"],
    "peers_english": ["--utterances", "10"],
    "vad_peers": ["--scenes", "4"],
    "channels": ["--utterances", "6", "--channel", "telephone"],
}


def machine() -> str:
    """One line naming the CPU, cores, OS, Python and TensorFlow, without importing TensorFlow."""
    cpu = platform.processor() or "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as file:
            cpu = next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), cpu)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tensorflow = "not installed"
    for distribution in ("tensorflow", "tensorflow-cpu"):  # either provides the `tensorflow` module
        try:
            tensorflow = importlib.metadata.version(distribution)
            break
        except importlib.metadata.PackageNotFoundError:
            pass
    return (f"{cores} cores ({cpu}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, TensorFlow {tensorflow}")


def append_section(results: Path, title: str, about: list[str], header: list[str], rows: list[list]) -> None:
    """Append one benchmark's section to a markdown results file: a dated heading, the
    `about` lines (command, machine, data), and a table (first column left-aligned)."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"\n### {title} ({stamp})\n", "  \n".join(about) + "\n",
             "| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1),
             *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)]
    with open(results, "a", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    print("\n".join(lines[2:]) + f"\nappended to {results}", flush=True)


def _skip_reason(name: str) -> str | None:
    if name in ("peers", "peers_english") and importlib.util.find_spec("pocketsphinx") is None:
        return "pocketsphinx is not installed (pip install -e '.[peers]')"
    if name == "vad_peers" and not all(importlib.util.find_spec(m) for m in ("webrtcvad", "silero_vad", "onnxruntime")):
        return "webrtcvad, silero-vad or onnxruntime is not installed (pip install -e '.[vad-peers]')"
    return None


def run(names: list[str], quick: bool, results: Path | None = None) -> list[str]:
    """Run the named benchmarks in turn, their output streamed; return the names that failed."""
    if not FOLDER.is_dir():
        raise FileNotFoundError(
            f"no benchmarks folder at {FOLDER}: `speechseq benchmark` runs from a source checkout "
            "(pip install -e .), not from an installed wheel"
        )
    results = Path(results or FOLDER / (QUICK_RESULTS if quick else FULL_RESULTS)).resolve()
    if quick:
        if results == (FOLDER / FULL_RESULTS).resolve():
            raise SpeechseqError(f"quick figures do not go into {results}: name another --results file")
        # A quick run starts its file afresh, so it always shows one run on one machine.
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(f"# speechseq quick benchmark, {stamp}\n\nMachine: {machine()}  \n"
                           "Quick sizes: a check that the benchmarks run, not figures to report.\n",
                           encoding="utf-8")
    # The children must import this very checkout's package, whatever the caller's path.
    root = FOLDER.parent
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    environment = os.environ | {"PYTHONPATH": path}
    failed, summary = [], []
    for name in names:
        reason = _skip_reason(name)
        if reason:
            print(f"== {name}: skipped: {reason}", flush=True)
            summary.append(f"{name}: skipped ({reason})")
            continue
        extra = QUICK[name] if quick else []
        if name == "transcribe":  # its chart goes beside the results; a quick one must not replace the full one
            chart = results.with_name("transcribe_rtf-quick.png" if quick else "transcribe_rtf.png")
            extra = extra + ["--plot", str(chart)]
        command = [sys.executable, str(FOLDER / f"{name}.py"), *extra, "--results", str(results)]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        code = subprocess.run(command, cwd=root, env=environment).returncode
        seconds = time.perf_counter() - started
        if code:
            failed.append(name)
        summary.append(f"{name}: {'FAILED (exit ' + str(code) + ')' if code else 'ok'} in {seconds:.0f} s")
    print("\n".join(["== summary", *summary, f"results: {results}"]), flush=True)
    return failed
