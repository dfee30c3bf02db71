"""The `speechseq` command: one console script, one subcommand per job."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

from speechseq import audio, corpora
from speechseq.benchmark import NAMES as BENCHMARKS
from speechseq.errors import SpeechseqError
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
    from speechseq import distribution, runfile, train

    run = runfile.load(args.config, args.set or [], args.out)
    try:
        train.fit(run, strategy=distribution.choose_strategy(run.train.distribution))
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume from {args.out}/backup", file=sys.stderr)
        return 130
    print(f"model: {args.out}/model.keras" + (f", best: {args.out}/best.keras" if run.data.dev else ""))
    return 0


def cmd_export(args) -> int:
    """Export a run (or .keras model) as a TF Serving version; optionally verify it first."""
    from speechseq import export, serving, verify

    if args.tune_grammar and not args.grammar:
        raise SpeechseqError("--tune-grammar tunes the weights of --grammar: give the word list too")
    if args.tune_lm and not args.lm_from:
        raise SpeechseqError("--tune-lm tunes the weights of --lm-from: give the texts too")
    if args.grammar and args.lm_from:
        raise SpeechseqError("ship --grammar (a closed word list) or --lm-from (an open n-gram model), not both")
    trained = export.load_trained(args.model)
    card = _card(args.card) if args.card else None
    checked: dict = {}

    def finish(staging: Path) -> None:
        files = [str(p) for p in audio.find_audio(*args.samples)] if args.samples else _sample_files(trained)
        wavs = [p for p in files if p.lower().endswith(".wav")][:4]
        examples = _warmup_examples(trained, files[:1], wavs[:1])
        serving.write_warmup(staging, args.out.name, examples)
        if wavs:
            signature = "transcribe_wav" if trained.task == "ctc" else "tag_wav"
            body = serving.rest_request(signature, wavs=[Path(w).read_bytes() for w in wavs])
            checked["request"] = serving.write_rest_request(staging, body).name
        if args.verify:
            result = verify.verify(staging, trained, files)
            checked["verification"] = result
            if not result.ok:
                raise export.ExportError(f"the export fails verification, nothing was published: {result.problems()}")
            checked["signatures"] = serving.describe(staging)
        if (args.grammar or args.lm_from) and trained.task != "ctc":
            raise SpeechseqError("--grammar and --lm-from are for transcription models; this one tags frames")
        if args.grammar:
            _ship_grammar(args, trained, staging, checked)
        if args.lm_from:
            _ship_language_model(args, trained, staging, checked)
        if args.tune_smoothing:
            if trained.task != "frames":
                raise SpeechseqError("--tune-smoothing is for frame tagging models; this one transcribes")
            from speechseq import tuning

            checked["tuned"] = tuning.tune(staging, corpora.read_manifest(args.tune_smoothing))
            tuning.write(checked["tuned"], staging, str(args.tune_smoothing))

    target = export.write_version(trained, args.out, args.version, card, finish)
    print(f"exported {args.model} -> {target}")
    if "verification" in checked:
        result = checked["verification"]
        print(f"verified in a fresh process on {len(result.files)} files: same outputs "
              f"(max |difference| {result.max_difference:.1e}); every signature runs in a TF1 session "
              f"as TF Serving loads it (max |difference| {result.session_difference:.1e})\n")
        print(checked["signatures"])
    if "tuned" in checked:
        tuned = checked["tuned"]
        print(f"smoothing tuned on {tuned.utterances} dev utterances ({tuned.candidates} candidates): "
              f"{tuned.smoothing}; frame F1 {tuned.dev_with_defaults['frame_f1']:.3f} -> {tuned.dev['frame_f1']:.3f}, "
              f"segment F1 {tuned.dev_with_defaults['segment_f1']:.3f} -> {tuned.dev['segment_f1']:.3f}")
    if "decoding" in checked:
        print(checked["decoding"])
    if "request" in checked:
        request = target / "assets.extra" / checked["request"]
        print(f"serve it: docker run -p 8501:8501 -v {args.out.resolve()}:/models/{args.out.name} "
              f"-e MODEL_NAME={args.out.name} tensorflow/serving")
        print("then send a request:")
        print("  " + serving.curl_command(args.out.name, request))
    return 0


def _ship_grammar(args, trained, staging: Path, checked: dict) -> None:
    """--grammar (and --tune-grammar): the word list transcription decodes with by default."""
    from speechseq import grammar, tuning

    words = grammar.Grammar.read(args.grammar)
    if not args.tune_grammar:
        grammar.ship(staging, words, grammar.GrammarOptions(), {"source": args.grammar.name})
        checked["decoding"] = f"grammar: {len(words.words)} words from {args.grammar.name}, default weights"
        return
    tuned = tuning.tune_grammar(staging, corpora.read_manifest(args.tune_grammar), words)
    grammar.ship(staging, words, grammar.GrammarOptions(tuned.alpha, tuned.beta),
                 {"source": args.grammar.name, **tuned.about(args.tune_grammar.name)})
    checked["decoding"] = f"grammar: {len(words.words)} words from {args.grammar.name}, " + _tuned(tuned)


def _ship_language_model(args, trained, staging: Path, checked: dict) -> None:
    """--lm-from (and --tune-lm): an n-gram model of these texts, for beam search by default."""
    from speechseq import language_model, tuning
    from speechseq.decoding import BeamOptions

    source = args.lm_from
    if source.suffix == ".jsonl":
        texts = [trained.classes.normalize(u.text) for u in corpora.read_manifest(source)]
    else:
        texts = [trained.classes.normalize(line) for line in _read_text(source).splitlines()]
    texts = list(dict.fromkeys(t for t in texts if t))  # each sentence once: takes of one prompt are one text
    arpa = language_model.build_arpa(texts, staging / "lm-building.arpa", order=args.lm_order)
    about = {"built_from": source.name, "sentences": len(texts), "order": args.lm_order,
             "estimate": "arpabo, Kneser-Ney back-off"}
    if args.tune_lm:
        tuned = tuning.tune_language_model(staging, corpora.read_manifest(args.tune_lm), str(arpa))
        options = BeamOptions(alpha=tuned.alpha, beta=tuned.beta)
        about |= tuned.about(args.tune_lm.name)
        checked["decoding"] = f"language model: order {args.lm_order} from {len(texts)} sentences, " + _tuned(tuned)
    else:
        options = BeamOptions()
        checked["decoding"] = f"language model: order {args.lm_order} from {len(texts)} sentences, default weights"
    language_model.ship(staging, arpa, options, about)
    arpa.unlink()


def _tuned(tuned) -> str:
    return (f"weights tuned on {tuned.utterances} dev utterances ({tuned.candidates} candidates): alpha "
            f"{tuned.alpha:g}, beta {tuned.beta:g}; dev WER greedy {tuned.dev_greedy['wer']:.2%} -> {tuned.dev['wer']:.2%}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpeechseqError(f"{path}: not a UTF-8 text file") from None


def _card(path: Path) -> dict:
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SpeechseqError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(card, dict):
        raise SpeechseqError(f"{path}: a model card is a JSON object")
    return card


def _sample_files(trained) -> list[str]:
    """A few files of the run's dev (else train) manifest, to verify and warm up with."""
    for split in ("dev", "train"):
        manifest = trained.settings["data"].get(split)
        if manifest and Path(manifest).exists():
            return [str(u.audio) for u in corpora.read_manifest(manifest)[:4]]
    raise SpeechseqError("no manifest of the run can be read: name audio files with --samples")


def _warmup_examples(trained, files: list[str], wavs: list[str]) -> dict:
    import numpy as np

    waveform = audio.load(files[0], trained.features.sample_rate) if files else np.zeros(16000, np.float32)
    inputs = {"audio": waveform[np.newaxis], "audio_length": np.array([waveform.size], np.int32)}
    if trained.task == "frames":
        examples = {"tag": inputs}
        if wavs:
            examples["tag_wav"] = {"wav": np.array([Path(wavs[0]).read_bytes()], object)}
        return examples
    examples = {"serving_default": inputs}
    if wavs:
        examples["transcribe_wav"] = {"wav": np.array([Path(wavs[0]).read_bytes()], object)}
    return examples


def cmd_transcribe(args) -> int:
    """Transcribe files with an exported model; a bad file is reported and the rest go on."""
    from tqdm import tqdm

    from speechseq import writers
    from speechseq.decoding import BeamOptions
    from speechseq.files import write_text
    from speechseq.transcribe import Transcriber, TranscriberOptions

    from speechseq.grammar import Grammar, GrammarOptions

    beam = words = weights = None
    if args.beam or args.lm or args.hotword:
        if args.grammar:
            raise SpeechseqError("--grammar decodes only its words: it does not go with --beam, --lm or --hotword")
        beam = BeamOptions(beam_width=args.beam or 32, lm=args.lm,
                           alpha=BeamOptions.alpha if args.alpha is None else args.alpha,
                           beta=BeamOptions.beta if args.beta is None else args.beta,
                           hotwords=tuple(args.hotword or ()))
    if args.grammar:
        words = Grammar.read(args.grammar)
    if args.alpha is not None or args.beta is not None:
        weights = GrammarOptions(alpha=GrammarOptions.alpha if args.alpha is None else args.alpha,
                                 beta=GrammarOptions.beta if args.beta is None else args.beta)
    if args.resume and not args.out:
        raise SpeechseqError("--resume needs --out: it skips inputs whose output file exists")
    paths, nothing_found = _input_files(args.inputs, "transcribe")
    outputs = _outputs(paths, args.out, f".{args.format}")
    pictures = _pictures(paths, args.plot)
    if args.resume:
        todo = [i for i, target in enumerate(outputs) if not target.exists()]
        print(f"speechseq transcribe: resuming: {len(paths) - len(todo)} files done already, {len(todo)} to go",
              file=sys.stderr)
        paths, outputs, pictures = ([items[i] for i in todo] for items in (paths, outputs, pictures))
    transcriber = Transcriber(args.model, TranscriberOptions(
        batch_size=args.batch_size, beam=beam, grammar=words, grammar_options=weights, shipped_decoding=not args.no_lm))
    failures = 0
    progress = tqdm(total=len(paths), unit="file", disable=None if len(paths) > 1 else True, file=sys.stderr)
    for path, output, picture, result in zip(paths, outputs, pictures, transcriber.transcribe_files(paths)):
        progress.update()
        if isinstance(result, audio.AudioError):
            failures += 1
            progress.write(f"speechseq transcribe: error: {result}", file=sys.stderr)
            continue
        text = writers.render(result, args.format)
        if picture:
            from speechseq import plots

            plots.transcription(path, result, transcriber.features, picture)
        if output:
            write_text(output, text)
        elif args.format == "txt":
            print(f"{path}: {result.text}" if len(paths) > 1 else result.text)
            if args.words:
                print("  " + " ".join(f"{w.text}@{w.start:.2f}s" for w in result.words))
        else:
            print(text, end="" if text.endswith("\n") else "\n")
    progress.close()
    if failures:
        print(f"speechseq transcribe: {failures} of {len(paths)} files failed", file=sys.stderr)
    return 1 if failures or nothing_found else 0


def _input_files(inputs: list[str], command: str) -> tuple[list[Path], int]:
    """The audio files the inputs name, and how many inputs gave none (each reported by
    name on stderr: a folder with no audio in it, a pattern that matches nothing)."""
    found = audio.find_audio_each(*inputs)
    empty = [location for location, files in found if not files]
    for location in empty:
        print(f"speechseq {command}: error: {audio.nothing_found_reason(location)}", file=sys.stderr)
    paths = [path for _, files in found for path in files]
    if not paths:
        raise SpeechseqError(f"no audio files in {' '.join(inputs)}")
    return paths, len(empty)


def _outputs(paths: list[Path], out: Path | None, suffix: str) -> list[Path | None]:
    """Each input's output file under `out` (None each without `--out`): folders mirrored
    so that two same-named inputs never share one (`files.output_paths`)."""
    from speechseq.files import output_paths

    return output_paths(paths, out, suffix) if out else [None] * len(paths)


def _pictures(paths: list[Path], plot: Path | None) -> list[Path | None]:
    """`--plot` itself for one input; for several, `NAME-PLOT` beside it for each."""
    if plot is None or len(paths) == 1:
        return [plot] * len(paths)
    return _outputs(paths, plot.parent, f"-{plot.name}")


def cmd_evaluate(args) -> int:
    """WER, CER, per-speaker rows and the worst utterances of a model on a manifest."""
    from speechseq import evaluate

    utterances = corpora.read_manifest(args.manifest)
    values = evaluate.report(utterances, evaluate.score(args.model, utterances), worst=args.worst)
    print(json.dumps(values, indent=2) if args.json else evaluate.format_report(values))
    return 0


def cmd_tag(args) -> int:
    """Tag files with an exported frame model: segments per file; bad files reported."""
    from speechseq import segments
    from speechseq.files import write_text
    from speechseq.tag import Tagger

    paths, nothing_found = _input_files(args.inputs, "tag")
    extension = "TextGrid" if args.format == "textgrid" else args.format
    outputs = _outputs(paths, args.out, f".{extension}")
    pictures = _pictures(paths, args.plot)
    tagger = Tagger(args.model)
    changes = {name: value for name, value in (("median_frames", args.median), ("onset", args.onset),
                                                ("offset", args.offset), ("min_segment", args.min_segment),
                                                ("min_gap", args.min_gap)) if value is not None}
    tagger.smoothing = dataclasses.replace(tagger.smoothing, **changes)  # the model's own, but for these
    failures = 0
    for path, output, picture, result in zip(paths, outputs, pictures, tagger.tag_files(paths)):
        if isinstance(result, audio.AudioError):
            failures += 1
            print(f"speechseq tag: error: {result}", file=sys.stderr)
            continue
        text = segments.render(result.segments, args.format, str(path), result.duration)
        if output:
            write_text(output, text)
        else:
            print(text, end="")
        if picture:
            from speechseq import plots

            plots.tagging(path, result, tagger.features, picture)
    if failures:
        print(f"speechseq tag: {failures} of {len(paths)} files failed", file=sys.stderr)
    return 1 if failures or nothing_found else 0


def cmd_finetune(args) -> int:
    """Fine-tune a model on new recordings; print and save the before/after table."""
    from speechseq import distribution, finetune

    options = finetune.FinetuneOptions(
        source=str(args.source), manifest=str(args.manifest), dev=str(args.dev or ""),
        vocabulary=str(args.vocabulary or ""), freeze=args.freeze, learning_rate=args.lr,
        epochs=args.epochs, steps=args.steps, batch_size=args.batch_size, replay=str(args.replay or ""),
        replay_ratio=args.replay_ratio, early_stopping=args.early_stopping,
    )
    run = finetune.make_run(options, args.out, args.set or [])
    strategy = distribution.choose_strategy(run.train.distribution)
    try:
        finetune.fit(run, strategy=strategy)
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume from {args.out}/backup", file=sys.stderr)
        return 130
    if not distribution.Placement.of(strategy).chief:  # the chief reports, for all workers
        return 0
    test_sets = dict(item.split("=", 1) for item in args.test or [])
    if args.dev and not test_sets:
        test_sets = {"new speaker (dev)": str(args.dev)}
    if test_sets:
        print(finetune.format_report(finetune.before_and_after(args.source, args.out, test_sets)))
        print(f"report: {args.out}/report.json")
    print(f"model: {args.out}/model.keras; export it with: speechseq export {args.out} --out saved_models/NAME")
    return 0


def cmd_benchmark(args) -> int:
    """Run the checkout's benchmarks/ scripts (quick sizes by default); exit 1 if any failed."""
    from speechseq import benchmark

    failed = benchmark.run(args.only or list(BENCHMARKS), args.quick, args.results)
    if failed:
        print(f"speechseq benchmark: failed: {' '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _inputs_model_and_output(command: argparse.ArgumentParser, formats: list[str]) -> None:
    """The arguments every command that runs an export over audio files takes."""
    command.add_argument("inputs", nargs="+", help="files, folders or glob patterns")
    command.add_argument("--model", required=True, help="saved_models/NAME (latest version) or NAME/VERSION")
    command.add_argument("--format", choices=formats, default=formats[0])
    command.add_argument("--out", type=Path, help="folder for one <stem>.<format> per input (default: stdout)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechseq", description=__doc__)
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error in your input too, not only its one-line message")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="let TensorFlow print its start-up lines (CUDA probing, CPU features)")
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

    export = commands.add_parser("export", help="export a trained model for TF Serving")
    export.add_argument("model", type=Path, help="run directory, .keras file in one, or an export version")
    export.add_argument("--out", type=Path, required=True, help="saved_models/NAME: versions go in numbered folders")
    export.add_argument("--version", type=int, help="version number (default: the next free one)")
    export.add_argument("--verify", action="store_true",
                        help="reload in a fresh process and compare with the Keras model before publishing")
    export.add_argument("--samples", nargs="+", metavar="AUDIO",
                        help="audio to verify and warm up with (default: the run's dev manifest)")
    export.add_argument("--card", type=Path, help="JSON merged into the model card (license, data attribution)")
    export.add_argument("--tune-smoothing", type=Path, metavar="DEV.jsonl",
                        help="tagging models: pick the smoothing on these utterances' segments and ship it")
    export.add_argument("--grammar", type=Path, metavar="WORDS.txt",
                        help="transcription models: ship this word or phrase list; transcribe decodes with it by default")
    export.add_argument("--tune-grammar", type=Path, metavar="DEV.jsonl",
                        help="with --grammar: pick its weights (alpha, beta) on these utterances")
    export.add_argument("--lm-from", type=Path, metavar="TEXTS",
                        help="transcription models: ship an n-gram model of these texts (a manifest's, or one "
                        "sentence per line); transcribe beam-searches with it by default")
    export.add_argument("--lm-order", type=int, default=3, help="with --lm-from: the n of the n-grams")
    export.add_argument("--tune-lm", type=Path, metavar="DEV.jsonl",
                        help="with --lm-from: pick its weights (alpha, beta) on these utterances")
    export.set_defaults(run=cmd_export)

    transcribe = commands.add_parser("transcribe", help="transcribe audio files with an exported model")
    _inputs_model_and_output(transcribe, ["txt", "json", "srt", "vtt"])
    transcribe.add_argument("--words", action="store_true", help="txt on stdout: also print word start times")
    transcribe.add_argument("--batch-size", type=int, default=8, help="audio windows per model call")
    transcribe.add_argument("--beam", type=int, help="beam search with this many beams (default: greedy)")
    transcribe.add_argument("--lm", help="KenLM language model (.arpa or .bin) for beam search")
    transcribe.add_argument("--alpha", type=float,
                            help="language model weight (beam default 0.5; grammar: the export's tuned one, else 1)")
    transcribe.add_argument("--beta", type=float,
                            help="word insertion bonus (beam default 1.0; grammar: the export's tuned one, else 0)")
    transcribe.add_argument("--hotword", action="append", help="word or phrase to favour (repeatable)")
    transcribe.add_argument("--grammar", type=Path, metavar="FILE",
                            help="decode only these words or phrases (one per line; any sequence of them)")
    transcribe.add_argument("--no-lm", action="store_true",
                            help="greedy decoding in the graph, ignoring the word list or language model the export ships")
    transcribe.add_argument("--plot", type=Path, help="PNG: spectrogram with each word's span")
    transcribe.add_argument("--resume", action="store_true",
                            help="with --out: skip inputs whose output exists (outputs are written whole or not at all)")
    transcribe.set_defaults(run=cmd_transcribe)

    evaluate = commands.add_parser("evaluate", help="score a model on a manifest: WER, CER, per speaker")
    evaluate.add_argument("--model", type=Path, required=True, help="saved_models/NAME[/VERSION] or a run directory")
    evaluate.add_argument("--manifest", type=Path, required=True)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--worst", type=int, default=10, help="worst utterances to list")
    evaluate.set_defaults(run=cmd_evaluate)

    tag = commands.add_parser("tag", help="label every frame of audio files with an exported frame model")
    _inputs_model_and_output(tag, ["json", "csv", "rttm", "textgrid"])
    # Smoothing: each setting left out is the model's own (assets/smoothing.json), else the default shown.
    tag.add_argument("--median", type=int, help="median filter over posteriors, in frames (5)")
    tag.add_argument("--onset", type=float, help="two labels: posterior that starts a segment (0.5)")
    tag.add_argument("--offset", type=float, help="two labels: posterior that ends it (0.35)")
    tag.add_argument("--min-segment", type=float, help="seconds; shorter segments are dropped (0.05)")
    tag.add_argument("--min-gap", type=float, help="seconds; shorter gaps are filled (0.1)")
    tag.add_argument("--plot", type=Path, help="PNG: spectrogram, frame posteriors and segments")
    tag.set_defaults(run=cmd_tag)

    finetune = commands.add_parser("finetune", help="adapt a trained model to new recordings")
    finetune.add_argument("--from", dest="source", type=Path, required=True,
                          help="run directory, .keras file or saved_models/NAME[/VERSION]")
    finetune.add_argument("--manifest", type=Path, required=True, help="the new recordings (JSON Lines)")
    finetune.add_argument("--out", type=Path, required=True, help="run directory (re-run to resume)")
    finetune.add_argument("--dev", type=Path, help="held-out new recordings: best model, early stopping")
    finetune.add_argument("--test", action="append", metavar="NAME=MANIFEST",
                          help="a test set for the before/after table (repeatable); default: --dev")
    finetune.add_argument("--freeze", default="", help="layers kept fixed: names, 'encoder' or 'encoder:N'")
    finetune.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    finetune.add_argument("--epochs", type=int, default=10)
    finetune.add_argument("--steps", type=int, default=0, help="optimizer steps in all (default: epochs x data)")
    finetune.add_argument("--batch-size", type=int, default=8)
    finetune.add_argument("--vocabulary", type=Path, help="a new vocabulary JSON (shared characters keep their rows)")
    finetune.add_argument("--replay", type=Path, help="old training manifest mixed in against forgetting")
    finetune.add_argument("--replay-ratio", type=float, default=0.0, help="old utterances per new one")
    finetune.add_argument("--early-stopping", type=int, default=0, help="patience in epochs on dev WER; 0 = off")
    finetune.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="any other run setting")
    finetune.set_defaults(run=cmd_finetune)

    benchmark = commands.add_parser("benchmark", help="run the benchmarks/ scripts of a source checkout")
    size = benchmark.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="quick", action="store_true", default=True,
                      help="small sizes, minutes in all (default)")
    size.add_argument("--full", dest="quick", action="store_false", help="the scripts' own sizes (an hour or more)")
    benchmark.add_argument("--only", nargs="+", choices=BENCHMARKS,
                           metavar="NAME", help="features, train, transcribe and/or peers (default: all)")
    benchmark.add_argument("--results", type=Path,
                           help="markdown file the figures go to (default: benchmarks/quick-results.md, "
                           "started afresh; with --full benchmarks/RESULTS.md, appended to)")
    benchmark.set_defaults(run=cmd_benchmark)
    return parser


class _Warnings(logging.Handler):
    """speechseq's logged warnings (a truncated file, a skipped entry) on stderr, one line
    each, prefixed with the command; written to the `sys.stderr` of the moment."""

    def __init__(self, prefix: str):
        super().__init__(logging.WARNING)
        self.prefix = prefix

    def emit(self, record: logging.LogRecord) -> None:
        print(self.prefix + record.getMessage(), file=sys.stderr)


def _print_warnings_as(prefix: str) -> None:
    logger = logging.getLogger("speechseq")
    for handler in [h for h in logger.handlers if isinstance(h, _Warnings)]:
        logger.removeHandler(handler)
    logger.addHandler(_Warnings(prefix))


# Commands that never load TensorFlow: they need no quiet start.
WITHOUT_TENSORFLOW = {"manifest"}
# Commands that load an export and run it on the files given, in this process only.
RUN_EXPORTS_ONCE = {"transcribe", "tag"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _print_warnings_as(f"speechseq {args.command}: warning: ")
    quiet = args.command not in WITHOUT_TENSORFLOW and not args.verbose
    if quiet:
        from speechseq.startup import quiet_tensorflow
    with quiet_tensorflow() if quiet else contextlib.nullcontext():
        if args.command in RUN_EXPORTS_ONCE:
            from speechseq.startup import skip_graph_optimization

            skip_graph_optimization()
        return _run(args)


def _run(args) -> int:
    try:
        return args.run(args)
    # What is wrong with the user's input or paths, in one line; anything else is a bug in
    # speechseq and keeps its traceback.
    except (SpeechseqError, OSError) as error:
        if args.debug:
            raise
        print(f"speechseq {args.command}: error: {error}", file=sys.stderr)
        return 2
