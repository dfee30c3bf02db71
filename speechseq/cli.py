"""The `speechseq` command: one console script, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from speechseq import audio, corpora
from speechseq.text import Vocabulary


def _vocabulary(args) -> Vocabulary | None:
    if args.no_text:
        return None
    if args.vocabulary:
        return Vocabulary.load(args.vocabulary)
    return Vocabulary(digits_as_words=True)


def cmd_manifest(args) -> int:
    """Turn a corpus layout into a JSON Lines manifest."""
    if args.layout == "digits":
        options = corpora.DigitSequenceOptions(held_out_speaker=args.held_out, seed=args.seed)
        written = corpora.connected_digits(args.source, args.out, options)
        for split, path in sorted(written.items()):
            print(f"{split}: {len(corpora.read_manifest(path))} utterances -> {path}")
        return 0
    readers = {
        "fsdd": corpora.fsdd,
        "librispeech": corpora.librispeech,
        "commonvoice": corpora.common_voice,
        "folder": lambda source: corpora.transcribed_folder(source, args.speaker),
    }
    utterances = readers[args.layout](args.source)
    path = corpora.write_manifest(utterances, args.out)
    print(f"{len(utterances)} utterances -> {path}")
    return 0


def cmd_audit(args) -> int:
    """Check every manifest entry; exit 1 when any is bad."""
    from speechseq.features import FeatureConfig

    report = corpora.audit(
        corpora.read_manifest(args.manifest),
        vocabulary=_vocabulary(args),
        frames_per_second=FeatureConfig().frames_per_second,
        subsampling=args.subsampling,
        max_seconds=args.max_seconds,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0 if report.ok else 1


def cmd_features(args) -> int:
    """Run the tf.data feature pipeline over a manifest and report its speed."""
    from speechseq import data
    from speechseq.features import FeatureConfig

    config = FeatureConfig(n_mfcc=args.mfcc)
    utterances = corpora.read_manifest(args.manifest)
    dataset = data.feature_dataset(
        utterances, config, data.PipelineOptions(batch_size=args.batch_size, deterministic=False)
    )
    started = time.perf_counter()
    utterance_count = frame_count = 0
    for features, lengths in dataset:
        utterance_count += int(features.shape[0])
        frame_count += int(lengths.numpy().sum())
    elapsed = time.perf_counter() - started
    seconds = frame_count / config.frames_per_second
    print(
        f"{utterance_count} utterances, {frame_count} frames of {config.feature_dim} "
        f"{'MFCCs' if config.n_mfcc else 'log-mel bands'} ({seconds:.1f} s of audio) "
        f"in {elapsed:.1f} s: {seconds / elapsed:.0f}x real time"
    )
    return 0


def cmd_train(args) -> int:
    """Train a model from a run file; re-running the same command resumes."""
    from speechseq import runfile, train

    run = runfile.load(args.config, args.set or [], args.out)
    try:
        train.fit(run)
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume from {args.out}/backup", file=sys.stderr)
        return 130
    print(f"model: {args.out}/model.keras" + (f", best: {args.out}/best.keras" if run.data.dev else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechseq", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    manifest = commands.add_parser("manifest", help="write a JSON Lines manifest for a corpus")
    manifest.add_argument(
        "layout", choices=["fsdd", "digits", "librispeech", "commonvoice", "folder"],
        help="fsdd: one clip per entry; digits: connected-digit utterances built from FSDD "
        "(--out is a folder); folder: audio with a .txt transcript beside each file; "
        "commonvoice: SOURCE is a split's .tsv",
    )
    manifest.add_argument("source", type=Path, help="the corpus folder (or Common Voice TSV)")
    manifest.add_argument("--out", type=Path, required=True, help="manifest file (folder for digits)")
    manifest.add_argument("--speaker", help="speaker name for the 'folder' layout")
    manifest.add_argument("--held-out", help="digits: this speaker's clips go to held_out.jsonl")
    manifest.add_argument("--seed", type=int, default=0, help="digits: random seed")
    manifest.set_defaults(run=cmd_manifest)

    audit = commands.add_parser("audit", help="check every entry of a manifest")
    audit.add_argument("manifest", type=Path)
    audit.add_argument("--json", action="store_true", help="print a JSON report")
    audit.add_argument("--vocabulary", type=Path, help="vocabulary JSON (default: English letters)")
    audit.add_argument("--no-text", action="store_true", help="check audio only (tagging corpora)")
    audit.add_argument("--subsampling", type=int, default=1, help="model time subsampling for the CTC length check")
    audit.add_argument("--max-seconds", type=float, help="flag utterances longer than this")
    audit.set_defaults(run=cmd_audit)

    features = commands.add_parser("features", help="compute features over a manifest with tf.data")
    features.add_argument("manifest", type=Path)
    features.add_argument("--batch-size", type=int, default=32)
    features.add_argument("--mfcc", type=int, help="MFCC coefficients instead of log-mel")
    features.set_defaults(run=cmd_features)

    train = commands.add_parser("train", help="train a model (re-run the same command to resume)")
    train.add_argument("--config", type=Path, help="run file (TOML or JSON): [data] [features] [model] [train]")
    train.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                       help="override one setting, e.g. --set train.epochs=5 (repeatable)")
    train.add_argument("--out", type=Path, required=True, help="run directory")
    train.set_defaults(run=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (corpora.CorpusError, audio.AudioError, ValueError, OSError) as error:
        print(f"speechseq {args.command}: error: {error}", file=sys.stderr)
        return 2
