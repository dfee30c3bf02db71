"""Read English sentences: a character CTC recogniser for the Kathleen corpus.

    .venv/bin/python pipelines/sentences.py
    .venv/bin/python pipelines/sentences.py --set train.epochs=60 --out runs/sentences-long
    .venv/bin/python pipelines/sentences.py --synthetic-voices 4 --out runs/sentences-espeak

Kathleen (one speaker reading CMU ARCTIC prompts, CC0) is split by prompt, so every
take of a prompt is on one side: every 10th prompt is held out for testing, every
10th after that for validation. `--synthetic-voices N` adds N eSpeak NG voices
reading the training prompts (the same kind of text) to the training data. Trains (re-running the same command resumes), then
scores the best checkpoint by dev WER on the held-out prompts: CER and WER go to
RUN/results.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from speechseq import corpora, evaluate, runfile, synth, train
from speechseq.files import write_text

ROOT = Path(__file__).resolve().parents[1]
KATHLEEN = corpora.data_root() / "kathleen" / "clips"

# The recipe's settings live in its run file (also new_speaker.py's sentence model's).
RUN_FILE = ROOT / "pipelines" / "sentences.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "sentences")
    parser.add_argument("--set", action="append", default=[], help="run setting, e.g. train.epochs=5")
    parser.add_argument("--synthetic-voices", type=int, default=0, help="eSpeak NG voices added to training")
    args = parser.parse_args()

    corpus = ROOT / "work" / "kathleen"
    splits = corpora.split_by_group(corpora.transcribed_folder(KATHLEEN, speaker="kathleen"), corpora.prompt_of_take)
    if args.synthetic_voices:
        prompts = sorted({u.text for u in splits["train"]})
        voices = synth.voices(args.synthetic_voices, seed=1)
        splits["train"] += synth.synthetic_corpus(prompts, voices, ROOT / "work" / "espeak-sentences")
    suffix = f"-espeak{args.synthetic_voices}" if args.synthetic_voices else ""
    manifests = {name: corpora.write_manifest(items, corpus / f"{name}{suffix}.jsonl") for name, items in splits.items()}
    settings = [f"data.train={manifests['train']}", f"data.dev={manifests['dev']}"] + args.set
    run = runfile.load(RUN_FILE, settings, args.out)

    started = time.perf_counter()
    train.fit(run)
    minutes = (time.perf_counter() - started) / 60
    scores = evaluate.score_run(args.out, splits["test"])
    print(f"held-out prompts: CER {scores.cer:.2%}, WER {scores.wer:.2%} on {scores.n} utterances")
    for reference, hypothesis in list(zip(scores.references, scores.hypotheses))[:5]:
        print(f"  ref: {reference}\n  hyp: {hypothesis}")
    results = {
        "training_minutes_this_session": round(minutes, 1),
        "held_out_prompts": {"cer": round(scores.cer, 4), "wer": round(scores.wer, 4), "utterances": scores.n},
    }
    write_text(args.out / "results.json", json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
