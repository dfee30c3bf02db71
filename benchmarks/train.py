"""Training throughput: the real input pipeline vs the same batches held in memory.

    .venv/bin/python benchmarks/train.py [--utterances 800] [--results FILE]

Trains the connected-digit recipe's model (pipelines/digits.py settings) on FSDD
connected digits, one epoch of `--utterances` per timed pass, fed three ways in one run:
- the `tf.data` pipeline as it runs in epoch 1 (decode, resample, log-mel, bucketing,
  SpecAugment);
- the same pipeline with `train.feature_cache=memory` from epoch 2 on (features
  kept per utterance, batches re-formed, SpecAugment still drawn per batch);
- the same batches already in memory as tensors: the step alone.
The difference to the last is what the input costs; the target is at most 5% of step
time. Each input is also drained alone, without training, for its own cost per batch:
on a small shared CPU the epoch times vary by more than the difference (identical
epochs took 24-41 s here), so both figures are given. Audio seconds per wall second
and steps per second are appended to benchmarks/RESULTS.md with the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "pipelines"))

from digits import FSDD, RUN_FILE  # noqa: E402
from features import RESULTS, machine  # noqa: E402

from speechseq import corpora, data, derived, losses, models, runfile, train  # noqa: E402
from speechseq.benchmark import append_section  # noqa: E402
from speechseq.derived import DigitSequenceOptions  # noqa: E402
from speechseq.text import Vocabulary  # noqa: E402


def timed_fit(model, dataset, steps: int) -> float:
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return time.perf_counter() - started


def drained(dataset, steps: int) -> float:
    """Seconds to pull `steps` batches from a fresh iterator, with no training beside it."""
    batches = iter(dataset)
    started = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=800, help="training utterances per timed epoch")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per input (the best counts)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file the section is appended to")
    args = parser.parse_args()

    corpus = ROOT / "work" / "digits-lucas"
    if not (corpus / "train.jsonl").exists():
        derived.connected_digits(FSDD, corpus, DigitSequenceOptions(held_out_speaker="lucas"))
    run = runfile.load(RUN_FILE, [f"data.train={corpus / 'train.jsonl'}"], "unused")
    utterances = corpora.read_manifest(run.data.train)[: args.utterances]
    vocabulary = Vocabulary(digits_as_words=True)
    # No shuffling: every variant trains on the very same batches each epoch (step
    # time depends on each batch's bucket length); the cached one in another order.
    options = data.PipelineOptions(
        batch_size=run.train.batch_size, shuffle=False, buckets=run.train.buckets,
        pad_to_boundaries=run.train.jit_compile, drop_remainder=run.train.jit_compile,
        augment=data.SpecAugment(),
    )
    steps = data.batches_per_epoch(utterances, run.features, options)

    def batches(options):
        return train.ctc_batches(data.ctc_dataset(utterances, vocabulary, run.features, options),
                                 run.encoder.subsampling).repeat()

    inputs = {
        "tf.data pipeline (epoch 1)": batches(options),
        "tf.data pipeline, features cached (epoch 2 on)": batches(dataclasses.replace(options, cache="")),
        "same batches in memory": batches(options).take(steps).cache().repeat(),
    }
    audio_seconds = sum(float(tf.reduce_sum(x["feature_lengths"])) for x, _ in inputs["same batches in memory"].take(steps)) / 100

    model = models.ctc_model(run.features.feature_dim, vocabulary.size, run.encoder)
    model.compile(optimizer=train.optimizer(run.train, 10_000), loss=losses.CTCLoss(), jit_compile=run.train.jit_compile)
    # Warm-up: fills the caches and compiles every bucket shape (XLA) before timing.
    for dataset in inputs.values():
        timed_fit(model, dataset, steps)
    times = {}
    for _ in range(args.repeats):  # alternate, so drifts in CPU speed hit all alike
        for name, dataset in inputs.items():
            times.setdefault(name, []).append(timed_fit(model, dataset, steps))
    best = {name: min(values) for name, values in times.items()}
    step_alone = best["same batches in memory"]
    # The caches are warm: these are the epoch-2-on costs (epoch 1's for the uncached one).
    alone = {name: min(drained(dataset, steps) for _ in range(args.repeats)) / steps
             for name, dataset in inputs.items()}
    rows = [[name, f"{steps / s:.2f}", f"{audio_seconds / s:.0f}x", f"{s / step_alone - 1:+.1%}",
             f"{alone[name] * 1000:.1f} ms ({alone[name] * steps / step_alone:.1%} of a step)"]
            for name, s in best.items()]
    append_section(args.results, "Training throughput, digits recipe model", [
        f"Command: `.venv/bin/python benchmarks/train.py --utterances {args.utterances} --repeats {args.repeats}`",
        f"Machine: {machine()}",
        f"Model: {run.encoder.cell} {run.encoder.layers}x{run.encoder.units} bidirectional, subsampling "
        f"{run.encoder.subsampling}, batch {run.train.batch_size}, XLA {'on' if run.train.jit_compile else 'off'}; "
        f"best of {args.repeats} timed epochs of {steps} steps ({args.utterances} utterances) each.",
        "Target: the input costs at most +5% of step time."],
        ["input", "steps/s", "audio s per wall s", "time over the step alone", "input drained alone, per batch"],
        rows)


if __name__ == "__main__":
    main()
