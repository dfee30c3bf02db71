"""Connected-digit recogniser on FSDD: build the corpus, train, report WER/CER.

    .venv/bin/python pipelines/digits.py                      # held-out speaker: lucas
    .venv/bin/python pipelines/digits.py --held-out none --out runs/digits-all
    .venv/bin/python pipelines/digits.py --set train.epochs=5 # any run setting
    .venv/bin/python pipelines/digits.py --synthetic-voices 24 --held-out none --out runs/digits-shipped
    .venv/bin/python pipelines/digits.py --synthetic-voices 40 --speed 0.9 1.1 --noise 0,5,10,20 --set train.epochs=15

Utterances join 1-7 FSDD clips of one speaker (takes 0-4 test, 5-9 dev, 10-49 train);
one speaker is held out entirely. Trains a CTC model on characters (re-running the
same command resumes), then scores the best checkpoint by dev WER on the test takes
of the training speakers and on the held-out speaker. `--synthetic-voices N` adds N
eSpeak NG voices reading random digit strings to the training data, and scores the
model on eight other eSpeak voices it never heard. `--speed` adds copies of the FSDD
training utterances played faster or slower (tempo and pitch, as Kaldi's speed
perturbation) and `--noise` adds white, pink or brown noise at the given SNRs to half
the training audio. Results go to RUN/results.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import random

from speechseq import corpora, derived, evaluate, runfile, synth, train
from speechseq.derived import DigitSequenceOptions
from speechseq.files import write_text

ROOT = Path(__file__).resolve().parents[1]
FSDD = corpora.data_root() / "fsdd"

# Chosen by measurement: see benchmarks/RESULTS.md, "Digits architecture".
# The recipe's settings live in one place, its run file (also `speechseq train --config`).
RUN_FILE = ROOT / "pipelines" / "digits.toml"


DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def digit_strings(count: int, seed: int) -> list[str]:
    """`count` random strings of 1-7 spoken digits, as the FSDD utterances are."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(DIGIT_WORDS) for _ in range(rng.randint(1, 7))) for _ in range(count)]


def synthetic_splits(count: int) -> tuple[list[corpora.Utterance], list[corpora.Utterance]]:
    """Training utterances from `count` eSpeak voices, and test ones from 8 voices not among them."""
    pool = synth.voices(count + 8, seed=7)
    training, unheard = pool[:count], pool[count:]
    folder = ROOT / "work" / "espeak-digits"
    train_set = synth.synthetic_corpus(digit_strings(60, seed=1), training, folder / "train")
    test_set = synth.synthetic_corpus(digit_strings(20, seed=2), unheard, folder / "test")
    return train_set, test_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "digits")
    parser.add_argument("--held-out", default="lucas", help="speaker left out of training, or 'none'")
    parser.add_argument("--set", action="append", default=[], help="run setting, e.g. train.epochs=5")
    parser.add_argument("--synthetic-voices", type=int, default=0, help="eSpeak NG voices added to training")
    parser.add_argument("--speed", type=float, nargs="+", default=[],
                        help="speed perturbation: FSDD training utterances also played at these speeds, e.g. 0.9 1.1")
    parser.add_argument("--noise", default="", help="noise SNRs in dB for training audio, e.g. 0,5,10,20")
    args = parser.parse_args()

    held_out = None if args.held_out == "none" else args.held_out
    corpus = ROOT / "work" / f"digits-{held_out or 'all'}"
    if not (corpus / "train.jsonl").exists():
        derived.connected_digits(FSDD, corpus, DigitSequenceOptions(held_out_speaker=held_out))
    train_manifest, splits = corpus / "train.jsonl", {"test takes (training speakers)": corpus / "test.jsonl"}
    training = corpora.read_manifest(train_manifest)
    if args.speed:
        training += derived.speed_perturbed(training, args.speed, corpus / "speed")
    if args.synthetic_voices:
        synthetic_train, synthetic_test = synthetic_splits(args.synthetic_voices)
        training += synthetic_train
        splits["unheard eSpeak voices"] = corpora.write_manifest(synthetic_test, corpus / "test-espeak.jsonl")
    if args.speed or args.synthetic_voices:
        name = "train" + "".join(f"-sp{f:g}" for f in args.speed) + (f"-espeak{args.synthetic_voices}" * bool(args.synthetic_voices))
        train_manifest = corpora.write_manifest(training, corpus / f"{name}.jsonl")
    if held_out:
        splits[f"held-out speaker {held_out}"] = corpus / "held_out.jsonl"
    settings = [f"data.train={train_manifest}", f"data.dev={corpus / 'dev.jsonl'}",
                           f"train.noise_snrs={args.noise}",
                           # Features kept after epoch 1, unless noise is drawn anew every epoch.
                           f"train.feature_cache={'' if args.noise else 'memory'}"] + args.set
    run = runfile.load(RUN_FILE, settings, args.out)

    started = time.perf_counter()
    train.fit(run)
    minutes = (time.perf_counter() - started) / 60

    results = {"training_minutes_this_session": round(minutes, 1)}
    for name, manifest in splits.items():
        scores = evaluate.score_run(args.out, corpora.read_manifest(manifest))
        results[name] = {"wer": round(scores.wer, 4), "cer": round(scores.cer, 4), "utterances": scores.n}
        print(f"{name}: WER {scores.wer:.2%}, CER {scores.cer:.2%} on {scores.n} utterances")
    write_text(args.out / "results.json", json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
