"""Digit tagging: which digit is being said in every 10 ms frame of connected digits.

    .venv/bin/python pipelines/digit_tagging.py
    .venv/bin/python pipelines/digit_tagging.py --set train.epochs=30 --export saved_models/digit-tags
    .venv/bin/python pipelines/digit_tagging.py --synthetic-voices 24 --speed 0.9 1.1 --set train.epochs=12

A connected-digit corpus like pipelines/digits.py's (FSDD clips joined with short
silences, lucas held out) stores each digit's segment: the sound of its clip, since
lucas leaves a quarter of each clip silent (`DigitSequenceOptions.trim_db`). A
per-frame model learns the ten digit words and "silence". It is scored through an
export (as `speechseq tag` runs it, smoothing tuned on the dev takes) on the test
takes of the training speakers and on the held-out speaker: frame accuracy,
per-class F1 and segment F1 (onset and offset within 100 ms). Results go to
RUN/results.json. `--synthetic-voices N` adds N eSpeak NG voices saying each digit
alone (`synth.digit_clips`, `--synthetic-takes` takes each), joined into training
utterances the same way, with the same exact segments. `--speed` adds copies of the
FSDD training utterances played faster or slower, their segments scaled to match.
`--start-from saved_models/english-read/7` starts from a recogniser's weights: its features
and encoder (trained on many more voices than FSDD's four) with a fresh frame head
(`finetune.starting_model`); the recipe's own features and model settings give way to the source's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from speechseq import corpora, derived, evaluate, finetune, runfile, synth, train
from speechseq.derived import DigitSequenceOptions
from speechseq.files import write_text

ROOT = Path(__file__).resolve().parents[1]
FSDD = corpora.data_root() / "fsdd"

DEFAULTS = [
    "train.task=frames",
    "data.background=silence",
    "features.n_mels=40",
    "model.cell=gru",
    "model.layers=2",
    "model.units=128",
    "model.subsampling=2",
    "model.conv_channels=128",
    "train.epochs=15",
    "train.batch_size=16",
    "train.learning_rate=2e-3",
    "train.early_stopping=0",
    "train.feature_cache=memory",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "digit-tagging")
    parser.add_argument("--set", action="append", default=[], help="run setting, e.g. train.epochs=5")
    parser.add_argument("--export", type=Path, help="also export to this saved_models/NAME")
    parser.add_argument("--synthetic-voices", type=int, default=0,
                        help="eSpeak NG voices saying each digit alone, joined into training utterances")
    parser.add_argument("--synthetic-takes", type=int, default=8, help="takes of each digit by each voice")
    parser.add_argument("--speed", type=float, nargs="+", default=[],
                        help="speed perturbation: FSDD training utterances also played at these speeds, e.g. 0.9 1.1")
    parser.add_argument("--start-from", type=Path,
                        help="a trained model (export, run or .keras) whose features and encoder weights to start from")
    args = parser.parse_args()

    corpus = ROOT / "work" / "digit-tagging"  # its own: segments span each clip's sound (trim_db)
    synthetic: list[corpora.DigitClip] = []
    if args.synthetic_voices:
        corpus = corpus.with_name(f"digit-tagging-espeak{args.synthetic_voices}x{args.synthetic_takes}")
        # Takes from 10 on: connected_digits puts them in the training split only.
        synthetic = synth.digit_clips(synth.voices(args.synthetic_voices, seed=13), corpus / "espeak-clips",
                                      range(10, 10 + args.synthetic_takes))
    if not (corpus / "train.jsonl").exists():
        derived.connected_digits(FSDD, corpus, DigitSequenceOptions(held_out_speaker="lucas"), synthetic)
    train_manifest = corpus / "train.jsonl"
    if args.speed:
        # The human speakers' utterances only: they are what is scarce (eSpeak voices already vary their rate).
        training = corpora.read_manifest(train_manifest)
        human = {clip.speaker for clip in corpora.fsdd_clips(FSDD)}
        copies = derived.speed_perturbed([u for u in training if u.speaker in human], args.speed, corpus / "speed")
        name = "train" + "".join(f"-sp{f:g}" for f in args.speed)
        train_manifest = corpora.write_manifest(training + copies, corpus / f"{name}.jsonl")
    settings = runfile.as_mapping(DEFAULTS + [f"data.train={train_manifest}", f"data.dev={corpus / 'dev.jsonl'}"])
    if args.start_from:
        settings |= finetune.starting_settings(args.start_from)
    run = runfile.load(None, settings | runfile.as_mapping(args.set), args.out)
    started = time.perf_counter()
    train.fit(run)
    results: dict = {"training_minutes_this_session": round((time.perf_counter() - started) / 60, 1)}

    test_sets = {"test takes (training speakers)": corpora.read_manifest(corpus / "test.jsonl"),
                 "held-out speaker lucas": corpora.read_manifest(corpus / "held_out.jsonl")}
    dev = corpora.read_manifest(corpus / "dev.jsonl")  # the export's smoothing is tuned on it
    for name, scores in evaluate.score_tagging_export(args.out, test_sets, args.export, tune_on=dev).items():
        results[name] = scores
        print(f"{name}: frame accuracy {scores['frame_accuracy']:.2%}, segment F1 {scores['segment_f1']:.3f}, "
              f"per-class F1 {json.dumps(scores['per_class_f1'])}")
    write_text(args.out / "results.json", json.dumps(results, indent=2) + "\n")

if __name__ == "__main__":
    main()
