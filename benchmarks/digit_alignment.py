"""How well a CTC model's forced alignment finds word boundaries, where the truth is known.

    .venv/bin/python benchmarks/digit_alignment.py [--model saved_models/digits/4 ...] [--utterances N]

Digit tagging needs each word's start and end. speechocean762's digit prompts have none;
a CTC recogniser can give them by forced alignment: decoding with a grammar of one phrase,
the known transcript (`grammar.GrammarDecoder`), whose words span their letters' frames.
This measures that on FSDD's speaker lucas strung into connected digits
(`derived.connected_digits`, lucas held out: no digits model trained on him), where each
digit's true segment is its clip's sound: start and end errors per word, and the share
of 10 ms frames whose label (digit or silence) the alignment gets right. Results are
appended to benchmarks/RESULTS.md (or `--results FILE`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speechseq import audio, corpora, derived
from speechseq.benchmark import append_section, machine
from speechseq.corpora import Segment
from speechseq.derived import DigitSequenceOptions
from speechseq.grammar import Grammar, GrammarDecoder
from speechseq.transcribe import Transcriber

ROOT = Path(__file__).resolve().parents[1]
HOP = 0.010  # seconds: the frame grid the agreement is counted on


def frame_labels(spans: Sequence[Segment], count: int) -> np.ndarray:
    """Each 10 ms frame's label ("" for silence): the segment holding its centre."""
    centres = np.arange(count) * HOP
    labels = np.full(count, "", object)
    for span in spans:
        labels[(centres >= span.start) & (centres < span.end)] = span.label
    return labels


def aligned(transcriber: Transcriber, utterance: corpora.Utterance) -> list[Segment]:
    """The transcript's words, timed by the model's best CTC path through that transcript alone."""
    waveform = audio.load(utterance.audio)
    log_probs, lengths = transcriber.log_probs(waveform[np.newaxis], np.array([waveform.size]))
    decoder = GrammarDecoder(transcriber.published.classes, Grammar.from_lines([utterance.text]))
    return [Segment(w.start, w.end, w.text) for w in decoder.words(log_probs[0, : lengths[0]],
                                                                  transcriber.seconds_per_frame)]


def measure(model: str, utterances: Sequence[corpora.Utterance]) -> list:
    transcriber = Transcriber(model)
    start_errors, end_errors, hits, frames, mismatched = [], [], 0, 0, 0
    for utterance in utterances:
        words = aligned(transcriber, utterance)
        if [w.label for w in words] != [s.label for s in utterance.segments]:
            mismatched += 1  # the phrase loop said the transcript twice or not at all
            continue
        start_errors += [w.start - s.start for w, s in zip(words, utterance.segments)]
        end_errors += [w.end - s.end for w, s in zip(words, utterance.segments)]
        count = int(utterance.duration / HOP) + 1
        hits += int((frame_labels(words, count) == frame_labels(utterance.segments, count)).sum())
        frames += count
    starts, ends = np.array(start_errors), np.array(end_errors)
    return [model, len(utterances) - mismatched, len(starts),
            f"{np.median(starts) * 1000:+.0f} ms", f"{np.percentile(abs(starts), 90) * 1000:.0f} ms",
            f"{np.median(ends) * 1000:+.0f} ms", f"{np.percentile(abs(ends), 90) * 1000:.0f} ms",
            f"{hits / max(frames, 1):.1%}"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="a CTC export (repeatable); default saved_models/digits")
    parser.add_argument("--utterances", type=int, default=130, help="the first N of lucas's 130")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        corpus = derived.connected_digits(corpora.data_root() / "fsdd", Path(scratch),
                                          DigitSequenceOptions(held_out_speaker="lucas"))
        utterances = corpora.read_manifest(corpus["held_out"])[: args.utterances]
        rows = [measure(model, utterances) for model in args.model or ["saved_models/digits"]]
    append_section(
        args.results, "Forced alignment of connected digits against their true word boundaries",
        [f"Command: `.venv/bin/python benchmarks/digit_alignment.py {' '.join(sys.argv[1:])}`".rstrip(),
         f"Machine: {machine()}",
         f"Data: FSDD speaker lucas (new to every model), {len(utterances)} connected-digit utterances; truth: each "
         "digit's clip sound. Errors: aligned minus true (negative: early), median and 90th percentile of the size."],
        ["model", "utterances aligned", "words", "start error", "start |error| p90", "end error", "end |error| p90",
         "frames labelled right"], rows)


if __name__ == "__main__":
    main()
