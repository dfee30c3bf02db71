"""Adapt the digits model to a speaker it never heard, with 10, 25 and 50 utterances.

    .venv/bin/python pipelines/new_speaker.py                       # from saved_models/digits
    .venv/bin/python pipelines/new_speaker.py --from runs/digits-shipped --sizes 10 50

The source model was trained without FSDD speaker lucas (pipelines/digits.py). His
connected-digit utterances are split once: the first 50 are the adaptation pool
(the first 10, 25 or 50 of them are used), the next 15 the dev set that picks the
best epoch, the rest the test set. Each fine-tune replays `--replay-ratio` utterances
of the source's own training data per new one (default 8), against forgetting. The table gives
WER/CER on lucas's test utterances and on the old speakers' test takes, before and
after; it goes to RUNS/new-speaker/results.json.

    .venv/bin/python pipelines/new_speaker.py --sentences          # eSpeak voices -> Kathleen

`--sentences` does the same at sentence level: a model trained only on eSpeak NG
voices reading the Kathleen training prompts (pipelines/sentences.py's split) is
fine-tuned on the first 5, 15 and 30 minutes of Kathleen's own training takes, and
scored on her held-out prompts (and on the eSpeak voices reading them) before and
after; results go to RUNS/new-speaker-sentences/results.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechseq import audio, corpora, derived, finetune, runfile, synth, train
from speechseq.derived import DigitSequenceOptions
from speechseq.files import write_text

ROOT = Path(__file__).resolve().parents[1]
FSDD = corpora.data_root() / "fsdd"
KATHLEEN = corpora.data_root() / "kathleen" / "clips"
SENTENCES_RUN_FILE = ROOT / "pipelines" / "sentences.toml"  # the sentence recipe's model and training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", default=str(ROOT / "saved_models" / "digits"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--epochs", type=int, default=15, help="fine-tuning epochs (sentences: 20 met the target)")
    parser.add_argument("--replay-ratio", type=float, default=8.0, help="old training utterances per new one")
    parser.add_argument("--freeze", default="", help="layers kept fixed, e.g. front,encoder:1")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: 3e-4 digits, 1.5e-3 sentences)")
    parser.add_argument("--sentences", action="store_true", help="eSpeak-trained sentence model -> Kathleen")
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 15, 30], help="--sentences: Kathleen minutes")
    parser.add_argument("--voices", type=int, default=3, help="--sentences: eSpeak voices the source learns from")
    parser.add_argument("--source-epochs", type=int, default=8, help="--sentences: epochs of the eSpeak model")
    args = parser.parse_args()
    if args.sentences:
        adapt_sentences(args, args.out or ROOT / "runs" / "new-speaker-sentences")
    else:
        adapt_digits(args, args.out or ROOT / "runs" / "new-speaker")


def adapt_digits(args, out: Path) -> None:
    corpus = ROOT / "work" / "digits-lucas"
    if not (corpus / "held_out.jsonl").exists():
        derived.connected_digits(FSDD, corpus, DigitSequenceOptions(held_out_speaker="lucas"))
    lucas = corpora.read_manifest(corpus / "held_out.jsonl")
    split = out / "lucas"
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
            learning_rate=args.lr or finetune.FinetuneOptions.learning_rate,
        )
        results[f"{size} utterances"] = _fine_tune(options, out / f"{size}-utterances", test_sets,
                                                   f"{size} utterances of lucas")
    write_text(out / "results.json", json.dumps(results, indent=2) + "\n")


def adapt_sentences(args, out: Path) -> None:
    kathleen = corpora.split_by_group(corpora.transcribed_folder(KATHLEEN, speaker="kathleen"), corpora.prompt_of_take)
    source = out / "espeak-source"
    _train_espeak_source(kathleen, args.voices, args.source_epochs, source, out)
    test_sets = {"Kathleen, held-out prompts": str(corpora.write_manifest(kathleen["test"], out / "kathleen-test.jsonl")),
                 "eSpeak voices, held-out prompts": str(out / "espeak-test.jsonl")}
    dev = corpora.write_manifest(kathleen["dev"], out / "kathleen-dev.jsonl")
    results = {}
    for minutes in args.minutes:
        pool = corpora.write_manifest(_first_minutes(kathleen["train"], minutes), out / f"kathleen-{minutes:g}min.jsonl")
        options = finetune.FinetuneOptions(source=str(source), manifest=str(pool), dev=str(dev), epochs=args.epochs,
                                           # The source only heard synthetic voices: a from-scratch rate adapts
                                           # it faster than a gentle one (30 min: 33.6% CER at 1.5e-3, 38.6% at 5e-4).
                                           learning_rate=args.lr or 1.5e-3, batch_size=16, freeze=args.freeze)
        results[f"{minutes:g} minutes"] = _fine_tune(options, out / f"{minutes:g}-minutes", test_sets,
                                                     f"{minutes:g} minutes of Kathleen")
    write_text(out / "results.json", json.dumps(results, indent=2) + "\n")


def _fine_tune(options: finetune.FinetuneOptions, directory: Path, test_sets: dict[str, str], what: str) -> dict:
    """Fine-tune (or resume), then score before and after on `test_sets` and print the table."""
    run = finetune.make_run(options, directory)
    finetune.fit(run)
    report = finetune.before_and_after(options.source, run.directory, test_sets)
    print(f"\nfine-tuned on {what}:\n{finetune.format_report(report)}")
    return report


def _train_espeak_source(kathleen: dict, voices: int, epochs: int, directory: Path, out: Path) -> None:
    """A sentence model that never heard a human: eSpeak voices reading Kathleen's prompts."""
    voice_list = synth.voices(voices, seed=5)
    read = {name: synth.synthetic_corpus(sorted({u.text for u in kathleen[name]}), voice_list,
                                         ROOT / "work" / "espeak-sentences")
            for name in ("train", "dev", "test")}
    manifests = {name: corpora.write_manifest(items, out / f"espeak-{name}.jsonl") for name, items in read.items()}
    settings = [f"data.train={manifests['train']}", f"data.dev={manifests['dev']}", f"train.epochs={epochs}"]
    train.fit(runfile.load(SENTENCES_RUN_FILE, settings, directory))


def _first_minutes(utterances: list[corpora.Utterance], minutes: float) -> list[corpora.Utterance]:
    """The first utterances (in corpus order) that together last `minutes`."""
    chosen, seconds = [], 0.0
    for utterance in utterances:
        if seconds >= minutes * 60:
            break
        chosen.append(utterance)
        seconds += utterance.duration or audio.info(utterance.audio).duration
    return chosen


if __name__ == "__main__":
    main()
