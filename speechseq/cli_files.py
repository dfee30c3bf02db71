"""`speechseq transcribe` and `tag`: an export run over audio files, through one files-runner
(inputs found, outputs named, `--resume`, progress, bad files reported, exit status)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from speechseq import audio
from speechseq.errors import SpeechseqError


def _inputs_model_and_output(command: argparse.ArgumentParser, formats: list[str]) -> None:
    """The arguments every command that runs an export over audio files takes."""
    command.add_argument("inputs", nargs="+", help="files, folders or glob patterns")
    command.add_argument("--model", required=True, help="saved_models/NAME (latest version) or NAME/VERSION")
    command.add_argument("--format", choices=formats, default=formats[0])
    command.add_argument("--out", type=Path, help="folder for one <stem>.<format> per input (default: stdout)")
    command.add_argument("--resume", action="store_true",
                         help="with --out: skip inputs whose output exists (outputs are written whole or not at all)")


@dataclasses.dataclass(frozen=True)
class FileJob:
    """One input file's place: where its output and picture go (None: stdout, none)."""

    path: Path
    output: Path | None
    picture: Path | None


def run_files(args, suffix: str, open_model: Callable[[], Callable[[list[Path]], Iterable]],
              write: Callable[[FileJob, object, int], None]) -> int:
    """Run an export over the files `args.inputs` names, as `transcribe` and `tag` do.

    `open_model()` loads the export and returns `results(paths)`, one result or
    `audio.AudioError` per path in order; `write(job, result, files)` puts one result out.
    A bad file is reported and the rest go on; the exit status is 1 when any file failed
    or any input named no audio, else 0.
    """
    from tqdm import tqdm

    command = args.command
    if args.resume and not args.out:
        raise SpeechseqError("--resume needs --out: it skips inputs whose output file exists")
    paths, nothing_found = _input_files(args.inputs, command)
    jobs = [FileJob(*row) for row in zip(paths, _outputs(paths, args.out, suffix), _pictures(paths, args.plot))]
    if args.resume:
        todo = [job for job in jobs if not job.output.exists()]
        print(f"speechseq {command}: resuming: {len(jobs) - len(todo)} files done already, {len(todo)} to go",
              file=sys.stderr)
        jobs = todo
    results = open_model()
    failures = 0
    progress = tqdm(total=len(jobs), unit="file", disable=None if len(jobs) > 1 else True, file=sys.stderr)
    for job, result in zip(jobs, results([job.path for job in jobs])):
        progress.update()
        if isinstance(result, audio.AudioError):
            failures += 1
            progress.write(f"speechseq {command}: error: {result}", file=sys.stderr)
            continue
        write(job, result, len(jobs))
    progress.close()
    if failures:
        print(f"speechseq {command}: {failures} of {len(jobs)} files failed", file=sys.stderr)
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


def add_transcribe(commands) -> None:
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
                            help="greedy decoding in the graph, ignoring the word list or language model the export "
                            "ships (a phone model: its pronunciations spelt without an LM in the search)")
    transcribe.add_argument("--plot", type=Path, help="PNG: spectrogram with each word's span")
    transcribe.set_defaults(run=cmd_transcribe)


def cmd_transcribe(args) -> int:
    """Transcribe files with an exported model; a bad file is reported and the rest go on."""
    from speechseq import writers
    from speechseq.decoding import BeamOptions
    from speechseq.files import write_text
    from speechseq.grammar import Grammar, GrammarOptions
    from speechseq.transcribe import Transcriber, TranscriberOptions

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
    opened: list[Transcriber] = []

    def open_model():
        opened.append(Transcriber(args.model, TranscriberOptions(
            batch_size=args.batch_size, beam=beam, grammar=words, grammar_options=weights,
            shipped_decoding=not args.no_lm)))
        return opened[0].transcribe_files

    def write(job: FileJob, result, files: int) -> None:
        text = writers.render(result, args.format)
        if job.picture:
            from speechseq import plots

            plots.transcription(job.path, result, opened[0].features, job.picture)
        if job.output:
            write_text(job.output, text)
        elif args.format == "txt":
            print(f"{job.path}: {result.text}" if files > 1 else result.text)
            if args.words:
                print("  " + " ".join(f"{w.text}@{w.start:.2f}s" for w in result.words))
        else:
            print(text, end="" if text.endswith("\n") else "\n")

    return run_files(args, f".{args.format}", open_model, write)


def add_tag(commands) -> None:
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


def cmd_tag(args) -> int:
    """Tag files with an exported frame model: segments per file; bad files reported."""
    from speechseq import segments
    from speechseq.files import write_text
    from speechseq.tag import Tagger

    changes = {name: value for name, value in (("median_frames", args.median), ("onset", args.onset),
                                                ("offset", args.offset), ("min_segment", args.min_segment),
                                                ("min_gap", args.min_gap)) if value is not None}
    opened: list[Tagger] = []

    def open_model():
        tagger = Tagger(args.model)
        tagger.smoothing = dataclasses.replace(tagger.smoothing, **changes)  # the model's own, but for these
        opened.append(tagger)
        return tagger.tag_files

    def write(job: FileJob, result, files: int) -> None:
        text = segments.render(result.segments, args.format, str(job.path), result.duration)
        if job.output:
            write_text(job.output, text)
        else:
            print(text, end="")
        if job.picture:
            from speechseq import plots

            plots.tagging(job.path, result, opened[0].features, job.picture)

    extension = "TextGrid" if args.format == "textgrid" else args.format
    return run_files(args, f".{extension}", open_model, write)


def add_commands(commands) -> None:
    add_transcribe(commands)
    add_tag(commands)
