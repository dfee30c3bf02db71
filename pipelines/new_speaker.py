"""Adapt the digits model to a speaker it never heard, with 10, 25 and 50 utterances.

    .venv/bin/python pipelines/new_speaker.py                       # from saved_models/digits
    .venv/bin/python pipelines/new_speaker.py --from runs/digits-shipped --sizes 10 50

The source model was trained without FSDD speaker lucas (pipelines/digits.py). His
connected-digit utterances are split once: the first 50 are the adaptation pool
(the first 10, 25 or 50 of them are used), the next 15 the dev set that picks the
best epoch, the rest the test set. Each fine-tune replays `--replay-ratio` utterances
of the source's own training data per new one (default 4), against forgetting. The table gives
WER/CER on lucas's test utterances and on the old speakers' test takes, before and
after; it goes to RUNS/new-speaker/results.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechseq import corpora, finetune
from speechseq.corpora import DigitSequenceOptions
from speechseq.files import write_text

ROOT = Path(__file__).resolve().parents[1]
FSDD = ROOT.parent / "shared" / "data" / "fsdd"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", default=str(ROOT / "saved_models" / "digits"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "new-speaker")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--replay-ratio", type=float, default=4.0, help="old training utterances per new one")
    parser.add_argument("--freeze", default="", help="layers kept fixed, e.g. front,encoder:1")
    args = parser.parse_args()

    corpus = ROOT / "work" / "digits-lucas"
    if not (corpus / "held_out.jsonl").exists():
        corpora.connected_digits(FSDD, corpus, DigitSequenceOptions(held_out_speaker="lucas"))
    lucas = corpora.read_manifest(corpus / "held_out.jsonl")
    split = args.out / "lucas"
    dev = corpora.write_manifest(lucas[50:65], split / "dev.jsonl")
    test_sets = {"new speaker lucas (test)": str(corpora.write_manifest(lucas[65:], split / "test.jsonl")),
                 "old speakers (test takes)": str(corpus / "test.jsonl")}
    source = finetune.resolve_source(args.source)
    replay = json.loads((source / "assets" / "run.json" if (source / "assets").exists()
                         else source / "run.json").read_text())["data"]["train"]

    results = {}
    for size in args.sizes:
        pool = corpora.write_manifest(lucas[:size], split / f"adapt-{size}.jsonl")
        options = finetune.FinetuneOptions(
            source=str(source), manifest=str(pool), dev=str(dev), epochs=args.epochs,
            replay=replay, replay_ratio=args.replay_ratio, batch_size=8, freeze=args.freeze,
        )
        run = finetune.make_run(options, args.out / f"{size}-utterances")
        finetune.fit(run)
        report = finetune.before_and_after(source, run.directory, test_sets)
        print(f"\nfine-tuned on {size} utterances of lucas:\n{finetune.format_report(report)}")
        results[f"{size} utterances"] = report
    write_text(args.out / "results.json", json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
