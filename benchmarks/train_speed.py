"""Training step speed of the English recipe's model and of cheaper variants, side by side.

    .venv/bin/python benchmarks/train_speed.py [--steps 12] [--seconds 5] [--results FILE]

Each variant (pipelines/english.py's DEFAULTS with one thing changed) trains on the same
in-memory batches of random 80-mel features (batch 16, `--seconds` of audio each, a
60-character label per utterance), so only the model's step differs. The variants are
timed in turn, twice round, and each keeps its best pass: this machine's speed drifts
about 2x, so the figures to read are the ratios to the recipe's own model in the same run.
Steps/s and audio s per wall s are appended to benchmarks/RESULTS.md with the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "pipelines"))

from english import DEFAULTS  # noqa: E402
from features import RESULTS, machine  # noqa: E402

from speechseq import losses, models, runfile, train  # noqa: E402
from speechseq.benchmark import append_section  # noqa: E402
from speechseq.text import Vocabulary  # noqa: E402

# name -> settings on top of the recipe's DEFAULTS
VARIANTS = {
    "recipe: GRU 3x160, subsampling 2, XLA": [],
    "subsampling 4": ["model.subsampling=4"],
    "GRU 3x128": ["model.units=128", "model.conv_channels=128"],
    "GRU 2x160": ["model.layers=2"],
    "LSTM 3x160": ["model.cell=lstm"],
    "XLA off": ["train.jit_compile=false"],
}


def batches(batch_size: int, frames: int, feature_dim: int, vocabulary_size: int, subsampling: int, count: int):
    """`count` fixed batches of random features, one shape, so XLA compiles once."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        features = rng.standard_normal((batch_size, frames, feature_dim)).astype("float32")
        lengths = np.full((batch_size,), frames, "int32")
        labels = rng.integers(1, vocabulary_size, (batch_size, 60)).astype("int32")
        label_lengths = np.full((batch_size,), 60, "int32")
        packed = losses.pack_ctc_targets(labels, label_lengths, models.output_lengths(lengths, subsampling))
        out.append((models.model_inputs(features, lengths), packed))
    return out


def timed_pass(model, data, steps: int) -> float:
    started = time.perf_counter()
    for index in range(steps):
        model.train_on_batch(*data[index % len(data)])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per pass")
    parser.add_argument("--seconds", type=float, default=5.0, help="audio seconds per utterance")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file the section is appended to")
    args = parser.parse_args()

    vocabulary = Vocabulary(digits_as_words=True)
    frames = int(args.seconds * 100)
    prepared = {}
    for name, extra in VARIANTS.items():
        run = runfile.load(None, DEFAULTS + ["data.train=unused.jsonl"] + extra, "unused")
        model = models.ctc_model(run.features.feature_dim, vocabulary.size, run.encoder)
        model.compile(optimizer=train.optimizer(run.train, 10_000), loss=losses.CTCLoss(),
                      jit_compile=run.train.jit_compile)
        data = batches(run.train.batch_size, frames, run.features.feature_dim, vocabulary.size,
                       run.encoder.subsampling, 4)
        timed_pass(model, data, 2)  # compiles
        prepared[name] = (model, data, run)
        print(f"compiled {name}", flush=True)
    best: dict[str, float] = {}
    for _ in range(2):  # round robin: a drift in CPU speed hits every variant alike
        for name, (model, data, _) in prepared.items():
            best[name] = min(best.get(name, float("inf")), timed_pass(model, data, args.steps))
    batch_size = prepared[next(iter(VARIANTS))][2].train.batch_size
    audio = args.steps * batch_size * args.seconds
    reference = best[next(iter(VARIANTS))]
    rows = [[name, f"{args.steps / seconds:.2f}", f"{audio / seconds:.1f}x", f"{reference / seconds:.2f}"]
            for name, seconds in best.items()]
    append_section(args.results, "Training step speed, English recipe model and variants", [
        f"Command: `.venv/bin/python benchmarks/train_speed.py --steps {args.steps} --seconds {args.seconds:g}`",
        f"Machine: {machine()}",
        f"Batches: {batch_size} utterances of {args.seconds:g} s of random 80-mel features, 60 labels each, "
        f"in memory; best of 2 passes of {args.steps} steps per variant, in turn."],
        ["variant", "steps/s", "audio s per wall s", "speed vs the recipe's model"], rows)


if __name__ == "__main__":
    main()
