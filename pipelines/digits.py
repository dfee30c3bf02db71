"""Connected-digit recogniser on FSDD: build the corpus, train, report WER/CER.

    .venv/bin/python pipelines/digits.py                      # held-out speaker: lucas
    .venv/bin/python pipelines/digits.py --held-out none --out runs/digits-all
    .venv/bin/python pipelines/digits.py --set train.epochs=5 # any run setting

Utterances join 1-7 FSDD clips of one speaker (takes 0-4 test, 5-9 dev, 10-49 train);
one speaker is held out entirely. Trains a CTC model on characters (re-running the
same command resumes), then scores the best checkpoint by dev WER on the test takes
of the training speakers and on the held-out speaker. Results go to RUN/results.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from speechseq import corpora, evaluate, runfile, train
from speechseq.corpora import DigitSequenceOptions
from speechseq.files import write_text

ROOT = Path(__file__).resolve().parents[1]
FSDD = ROOT.parent / "shared" / "data" / "fsdd"

# Chosen by measurement: see benchmarks/RESULTS.md, "Digits architecture".
DEFAULTS = [
    "features.n_mels=40",
    "model.cell=gru",
    "model.layers=2",
    "model.units=128",
    "model.subsampling=2",
    "model.conv_channels=128",
    "train.epochs=30",
    "train.batch_size=16",
    "train.learning_rate=2e-3",
    "train.early_stopping=0",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "digits")
    parser.add_argument("--held-out", default="lucas", help="speaker left out of training, or 'none'")
    parser.add_argument("--set", action="append", default=[], help="run setting, e.g. train.epochs=5")
    args = parser.parse_args()

    held_out = None if args.held_out == "none" else args.held_out
    corpus = ROOT / "work" / f"digits-{held_out or 'all'}"
    if not (corpus / "train.jsonl").exists():
        corpora.connected_digits(FSDD, corpus, DigitSequenceOptions(held_out_speaker=held_out))
    settings = DEFAULTS + [f"data.train={corpus / 'train.jsonl'}", f"data.dev={corpus / 'dev.jsonl'}"] + args.set
    run = runfile.load(None, settings, args.out)

    started = time.perf_counter()
    train.fit(run)
    minutes = (time.perf_counter() - started) / 60

    results = {"training_minutes_this_session": round(minutes, 1)}
    splits = {"test takes (training speakers)": corpus / "test.jsonl"}
    if held_out:
        splits[f"held-out speaker {held_out}"] = corpus / "held_out.jsonl"
    for name, manifest in splits.items():
        scores = evaluate.score_run(args.out, corpora.read_manifest(manifest))
        results[name] = {"wer": round(scores.wer, 4), "cer": round(scores.cer, 4), "utterances": scores.n}
        print(f"{name}: WER {scores.wer:.2%}, CER {scores.cer:.2%} on {scores.n} utterances")
    write_text(args.out / "results.json", json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
