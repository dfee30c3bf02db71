"""`speechseq manifest`, `audit`, `features`, `evaluate`, `compare` and `benchmark`: commands on manifests and the checkout."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from speechseq import corpora
from speechseq.benchmark import NAMES as BENCHMARKS
from speechseq.errors import SpeechseqError
from speechseq.text import Vocabulary

def add_manifest(commands) -> None:
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


def cmd_manifest(args) -> int:
    """Turn a corpus layout into a JSON Lines manifest."""
    if args.layout == "digits":
        from speechseq import derived

        options = derived.DigitSequenceOptions(held_out_speaker=args.held_out, seed=args.seed)
        written = derived.connected_digits(args.source, args.out, options)
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


def add_audit(commands) -> None:
    audit = commands.add_parser("audit", help="check every entry of a manifest")
    audit.add_argument("manifest", type=Path)
    audit.add_argument("--json", action="store_true", help="print a JSON report")
    audit.add_argument("--vocabulary", type=Path, help="vocabulary JSON (default: English letters)")
    audit.add_argument("--no-text", action="store_true", help="check audio only (tagging corpora)")
    audit.add_argument("--subsampling", type=int, default=1, help="model time subsampling for the CTC length check")
    audit.add_argument("--max-seconds", type=float, help="flag utterances longer than this")
    audit.set_defaults(run=cmd_audit)


def _vocabulary(args) -> Vocabulary | None:
    if args.no_text:
        return None
    if args.vocabulary:
        return Vocabulary.load(args.vocabulary)
    return Vocabulary(digits_as_words=True)


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


def add_features(commands) -> None:
    features = commands.add_parser("features", help="compute features over a manifest with tf.data")
    features.add_argument("manifest", type=Path)
    features.add_argument("--batch-size", type=int, default=32)
    features.add_argument("--mfcc", type=int, help="MFCC coefficients instead of log-mel")
    features.set_defaults(run=cmd_features)


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


def add_evaluate(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="score a model on a manifest: WER, CER, per speaker")
    evaluate.add_argument("--model", type=Path, required=True, help="saved_models/NAME[/VERSION] or a run directory")
    evaluate.add_argument("--manifest", type=Path, required=True)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--worst", type=int, default=10, help="worst utterances to list")
    evaluate.set_defaults(run=cmd_evaluate)


def cmd_evaluate(args) -> int:
    """WER, CER, per-speaker rows and the worst utterances of a model on a manifest."""
    from speechseq import evaluate

    utterances = corpora.read_manifest(args.manifest)
    values = evaluate.report(utterances, evaluate.score(args.model, utterances), worst=args.worst)
    print(json.dumps(values, indent=2) if args.json else evaluate.format_report(values))
    return 0


def add_compare(commands) -> None:
    compare = commands.add_parser("compare", help="two models on one manifest: the difference and its interval "
                                  "over speakers")
    for side, text in (("baseline", "saved_models/NAME[/VERSION], a run directory, or a saved `speechseq "
                        "evaluate --json` report (not decoded again)"), ("candidate", "the model (or report) "
                        "to compare with it")):
        compare.add_argument(side, type=Path, help=text)
    compare.add_argument("--manifest", type=Path,
                         help="utterances with a speaker each (needed unless both sides are reports)")
    compare.add_argument("--draws", type=int, default=2000, help="bootstrap draws of the speakers")
    compare.add_argument("--by", choices=("speaker", "utterance"), default="speaker",
                         help="what the bootstrap draws (utterance: a set of one speaker's prompts)")
    compare.add_argument("--json", action="store_true", help="print one JSON object")
    compare.set_defaults(run=cmd_compare)


def cmd_compare(args) -> int:
    """Both models' WER and CER on a manifest, the candidate's difference and its 95% interval
    from speakers drawn with replacement (speechseq.comparison)."""
    from speechseq import comparison

    if args.draws < 100:
        raise SpeechseqError(f"--draws must be at least 100 for a 95% interval, got {args.draws}")
    for side in (args.baseline, args.candidate):
        if side.suffix == ".json" and not side.is_file():
            raise SpeechseqError(f"{side}: no such report (a model is a folder)")
    if args.manifest is None and not (args.baseline.is_file() and args.candidate.is_file()):
        raise SpeechseqError("--manifest is needed to score a model (only two saved reports compare without one)")
    manifest = corpora.read_manifest(args.manifest) if args.manifest is not None else None
    if manifest == []:
        raise SpeechseqError(f"{args.manifest}: no utterances to compare on")
    (utterances, baseline), (candidate_utterances, candidate) = (
        _scored(side, manifest, args.manifest) for side in (args.baseline, args.candidate))
    if not utterances:
        raise SpeechseqError(f"{args.baseline}: no utterances to compare on")
    if _audio(utterances) != _audio(candidate_utterances) or baseline.references != candidate.references:
        raise SpeechseqError(f"{args.baseline} and {args.candidate} are not scored on the same utterances with the "
                             "same reference text (other manifests, or vocabularies that write it differently)")
    values = comparison.compare(utterances, baseline.hypotheses, candidate.hypotheses, baseline.references,
                                draws=args.draws, by=args.by)
    values = {"baseline_model": str(args.baseline), "candidate_model": str(args.candidate), **values}
    print(json.dumps(values, indent=2) if args.json else comparison.format_comparison(values))
    return 0


def _scored(side: Path, manifest, manifest_path: Path | None):
    """(utterances, evaluate.Scores) of one side of `compare`: a saved report read back, or a
    model scored on the manifest."""
    from speechseq import evaluate

    if not side.is_file():
        return manifest, evaluate.score(side, manifest)
    utterances, scores = evaluate.read_report(side)
    if manifest is not None and _audio(utterances) != _audio(manifest):
        raise SpeechseqError(f"{side}: its utterances are not {manifest_path}'s (the report scored another manifest)")
    return utterances, scores


def _audio(utterances) -> list[str]:
    return [str(u.audio) for u in utterances]


def add_benchmark(commands) -> None:
    benchmark = commands.add_parser("benchmark", help="run the benchmarks/ scripts of a source checkout")
    size = benchmark.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="quick", action="store_true", default=True,
                      help="small sizes, minutes in all (default)")
    size.add_argument("--full", dest="quick", action="store_false", help="the scripts' own sizes (an hour or more)")
    benchmark.add_argument("--only", nargs="+", choices=BENCHMARKS,
                           metavar="NAME", help=", ".join(BENCHMARKS) + " (default: all)")
    benchmark.add_argument("--results", type=Path,
                           help="markdown file the figures go to (default: benchmarks/quick-results.md, "
                           "started afresh; with --full benchmarks/RESULTS.md, appended to)")
    benchmark.set_defaults(run=cmd_benchmark)


def cmd_benchmark(args) -> int:
    """Run the checkout's benchmarks/ scripts (quick sizes by default); exit 1 if any failed."""
    from speechseq import benchmark

    failed = benchmark.run(args.only or list(BENCHMARKS), args.quick, args.results)
    if failed:
        print(f"speechseq benchmark: failed: {' '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def add_commands(commands) -> None:
    add_manifest(commands)
    add_audit(commands)
    add_features(commands)
    add_evaluate(commands)
    add_compare(commands)
    add_benchmark(commands)
