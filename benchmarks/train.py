"""Training throughput: the real input pipeline vs the same batches cached in memory.

    .venv/bin/python benchmarks/train.py [--batches 40] [--results FILE]

Trains the connected-digit recipe's model (pipelines/digits.py settings) on FSDD
connected digits for `--batches` steps twice, in one run: once fed by the real
`tf.data` pipeline (decode, resample, log-mel, bucketing, SpecAugment), once by the
same number of batches already in memory. The difference is what the input pipeline
costs; the target is at most 5% of step time. Audio seconds per wall second and
steps per second are appended to benchmarks/RESULTS.md with the machine.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "pipelines"))

from digits import DEFAULTS, FSDD  # noqa: E402
from features import RESULTS, machine  # noqa: E402

from speechseq import corpora, data, losses, models, runfile, train  # noqa: E402
from speechseq.corpora import DigitSequenceOptions  # noqa: E402
from speechseq.text import Vocabulary  # noqa: E402


def timed_fit(model, dataset, steps: int) -> float:
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="timed training steps per variant")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file the section is appended to")
    args = parser.parse_args()

    corpus = ROOT / "work" / "digits-lucas"
    if not (corpus / "train.jsonl").exists():
        corpora.connected_digits(FSDD, corpus, DigitSequenceOptions(held_out_speaker="lucas"))
    run = runfile.load(None, DEFAULTS + [f"data.train={corpus / 'train.jsonl'}"], "unused")
    utterances = corpora.read_manifest(run.data.train)
    vocabulary = Vocabulary(digits_as_words=True)
    # No shuffling: both variants then see the very same batches in the same order
    # (step time depends on each batch's bucket length).
    options = data.PipelineOptions(
        batch_size=run.train.batch_size, shuffle=False, buckets=run.train.buckets,
        pad_to_boundaries=run.train.jit_compile, drop_remainder=run.train.jit_compile,
        augment=data.SpecAugment(),
    )
    real = train.ctc_batches(data.ctc_dataset(utterances, vocabulary, run.features, options), run.encoder.subsampling)
    cached = real.take(args.batches).cache().repeat()
    audio_seconds = sum(float(tf.reduce_sum(x["feature_lengths"])) for x, _ in real.take(args.batches)) / 100

    model = models.ctc_model(run.features.feature_dim, vocabulary.size, run.encoder)
    model.compile(optimizer=train.optimizer(run.train, 10_000), loss=losses.CTCLoss(), jit_compile=run.train.jit_compile)
    # Warm-up: fills the cache and compiles every bucket shape (XLA) before timing.
    timed_fit(model, cached, args.batches)
    timed_fit(model, real.repeat(), args.batches)
    times = {}
    for _ in range(2):  # alternate, so drifts in CPU speed hit both alike
        times.setdefault("in memory", []).append(timed_fit(model, cached, args.batches))
        times.setdefault("tf.data pipeline", []).append(timed_fit(model, real.repeat(), args.batches))
    best = {name: min(values) for name, values in times.items()}
    overhead = best["tf.data pipeline"] / best["in memory"] - 1
    for name, seconds in best.items():
        print(f"{name}: {args.batches / seconds:.2f} steps/s, {audio_seconds / seconds:.0f}x real time")
    print(f"input pipeline overhead: {overhead:+.1%} of step time")

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"\n### Training throughput, digits recipe model ({stamp})\n",
        f"Command: `.venv/bin/python benchmarks/train.py --batches {args.batches}`  \n"
        f"Machine: {machine()}  \nModel: {run.encoder.cell} {run.encoder.layers}x{run.encoder.units} "
        f"bidirectional, subsampling {run.encoder.subsampling}, batch {run.train.batch_size}, "
        f"XLA {'on' if run.train.jit_compile else 'off'}; best of 2 timed passes of {args.batches} steps each.\n",
        "| input | steps/s | audio s per wall s |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {name} | {args.batches / s:.2f} | {audio_seconds / s:.0f}x |" for name, s in best.items()]
    lines.append(f"\nInput pipeline overhead: {overhead:+.1%} of step time (target: at most +5%).")
    with open(args.results, "a", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
