"""Multi-worker training throughput on this machine: 1 process vs 2 workers on localhost.

    .venv/bin/python benchmarks/multiworker.py [--steps 30] [--epochs 4] [--results FILE]

The digits recipe's model (pipelines/digits.toml) trains on FSDD single-digit clips
(DATA/fsdd, SPEECHSEQ_DATA or ../shared/data), `train.batch_size` 16 per replica, features
cached in memory, XLA off (the multi-worker loop runs without it), in three set-ups, each
through `speechseq train`:
- one process, Keras' `fit` (the one-machine path);
- one process, the multi-worker loop (`train.distribution=multiworker`, no TF_CONFIG): the
  loop's own cost beside `fit`;
- two worker processes on loopback ports (TF_CONFIG), one run directory: the multi-machine
  path squeezed onto one machine, so both workers share its cores.
Each epoch is `--steps` steps; an epoch's time is read from when the chief's log.csv row
for it appears, and the first epoch (tracing, feature caching) is left out. Throughput is
utterances trained per second over all workers; the ratios to the first row are the
figures to read on a machine whose speed drifts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from features import RESULTS, machine  # noqa: E402

from speechseq import corpora, distribution  # noqa: E402
from speechseq.benchmark import append_section  # noqa: E402

DATA = corpora.data_root()
BATCH = 16


def epoch_times(run: Path, processes: list[subprocess.Popen], epochs: int, limit: float) -> list[float]:
    """When each epoch's row appeared in the chief's log.csv, polled until all processes end."""
    seen: list[float] = []
    deadline = time.monotonic() + limit
    log = run / "log.csv"
    while any(p.poll() is None for p in processes):
        if time.monotonic() > deadline:
            for p in processes:
                p.kill()
            raise SystemExit(f"{run}: no finish within {limit:.0f} s")
        rows = len(log.read_text().splitlines()) - 1 if log.exists() else 0
        while len(seen) < min(rows, epochs):
            seen.append(time.monotonic())
        time.sleep(0.05)
    if any(p.returncode for p in processes):
        raise SystemExit(f"{run}: a training process failed; see {run.parent}/*.log")
    return seen


def train(name: str, manifest: Path, folder: Path, steps: int, epochs: int, workers: int,
          setting: str) -> float:
    """Utterances per second over epochs 2.. of one set-up."""
    run = folder / name
    settings = ["--set", f"data.train={manifest}", "--set", f"train.epochs={epochs}",
                "--set", f"train.steps_per_epoch={steps}", "--set", f"train.batch_size={BATCH}",
                "--set", "train.jit_compile=false", "--set", "train.feature_cache=memory",
                "--set", "data.dev=", "--set", f"train.distribution={setting}"]
    command = [sys.executable, "-m", "speechseq", "train", "--config", str(ROOT / "pipelines" / "digits.toml"),
               "--out", str(run), *settings]
    environments = [dict(os.environ)]
    if workers > 1:
        environments = [dict(os.environ, TF_CONFIG=config) for config in distribution.local_cluster(workers)]
    processes = []
    for index, environment in enumerate(environments):
        log = open(folder / f"{name}-{index}.log", "w")
        processes.append(subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
    times = epoch_times(run, processes, epochs, limit=1800)
    if len(times) < 3:
        raise SystemExit(f"{run}: {len(times)} epochs logged; need at least 3")
    seconds = (times[-1] - times[0]) / (len(times) - 1)
    return steps * BATCH * workers / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per set-up (the first is not timed)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file the section is appended to")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="speechseq-multiworker-") as temporary:
        folder = Path(temporary)
        manifest = corpora.write_manifest(corpora.fsdd(DATA / "fsdd"), folder / "fsdd.jsonl")
        setups = {
            "1 process, Keras fit": (1, "one"),
            "1 process, multi-worker loop": (1, "multiworker"),
            "2 worker processes, multi-worker loop": (2, "auto"),
        }
        speeds = {}
        for name, (workers, setting) in setups.items():
            speeds[name] = train(name.replace(" ", "-").replace(",", ""), manifest, folder, args.steps,
                                 args.epochs, workers, setting)
            print(f"{name}: {speeds[name]:.1f} utterances/s", flush=True)
    reference = speeds[next(iter(setups))]
    rows = [[name, setups[name][0], BATCH * setups[name][0], f"{speed:.1f}", f"{speed / reference:.2f}"]
            for name, speed in speeds.items()]
    append_section(args.results, "Multi-worker training throughput, one machine", [
        f"Command: `.venv/bin/python benchmarks/multiworker.py --steps {args.steps} --epochs {args.epochs}`",
        f"Machine: {machine()}",
        f"Data: FSDD single-digit clips (all speakers), the digits recipe's model (pipelines/digits.toml), batch "
        f"{BATCH} per replica, features cached, XLA off; epochs 2-{args.epochs} of {args.steps} steps timed. "
        "Two workers on one machine share its cores."],
        ["set-up", "workers", "utterances per step", "utterances/s", "vs one process (fit)"], rows)


if __name__ == "__main__":
    main()
