"""One-clip transcription against `import tensorflow`: whole processes, side by side.

    .venv/bin/python benchmarks/startup.py [--runs 5] [--model saved_models/digits] [--results FILE]

Each round runs, one after the other: `python -c "import tensorflow"`, then
`speechseq transcribe samples/countdown.wav --model MODEL` with the export's own
decoding (its shipped grammar, for digits) and with `--no-lm` (greedy in the graph).
Wall time of each whole process; the medians over the rounds, and the ratio of each
transcription to the import in the same run (this machine's speed drifts about 2x, the
ratio much less). Appended to benchmarks/RESULTS.md with the machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from features import RESULTS, machine  # noqa: E402
from speechseq.benchmark import append_section  # noqa: E402

CLIP = ROOT / "samples" / "countdown.wav"


def wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default="saved_models/digits")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    speechseq = str(Path(sys.executable).with_name("speechseq"))
    commands = {
        "import tensorflow": [sys.executable, "-c", "import tensorflow"],
        "transcribe one clip": [speechseq, "transcribe", str(CLIP), "--model", args.model],
        "transcribe one clip, --no-lm": [speechseq, "transcribe", str(CLIP), "--model", args.model, "--no-lm"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            times[name].append(wall(command))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["import tensorflow"]
    rows = [[name, " / ".join(f"{t:.2f}" for t in times[name]), f"{medians[name]:.2f} s",
             f"**{medians[name] / base:.2f}**"] for name in commands]
    append_section(args.results, "One-clip transcription against `import tensorflow`", [
        f"Command: `.venv/bin/python benchmarks/startup.py --runs {args.runs} --model {args.model}`",
        f"Machine: {machine()}",
        f"Whole-process wall time, the commands alternated {args.runs} times."],
        ["process", "each run (s)", "median", "ratio to import tensorflow"], rows)


if __name__ == "__main__":
    main()
