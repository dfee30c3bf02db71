"""speechseq's digit recognisers against PocketSphinx, side by side, in one run.

    .venv/bin/pip install -e '.[peers]'
    .venv/bin/python benchmarks/peers.py [--model saved_models/digits ...] [--long-minutes 10]
                                         [--utterances N] [--results FILE]

PocketSphinx (PyPI `pocketsphinx`, its bundled en-us acoustic model) is restricted
to the digit words by a JSGF grammar (`<digit>+`). Each speechseq model (`--model`,
repeatable: a digits export, or a general English one) runs twice: greedy in its graph,
and decoding only the digit words (`grammar.GrammarDecoder` with
pipelines/grammars/digits.txt: the export's own grammar and weights if it ships one,
else that list with default weights), so both systems choose among the same words.
Sets (pipelines/digit_sets.py): FSDD connected digits of lucas and the all-digit
prompts of the held-out speechocean762 test speakers (no system trained on either), the
test takes of the four FSDD speakers the digits models trained on (`--utterances` caps
each set), lucas's single-digit clips as FSDD cuts them, tight to the word, and the same
clips with 0.25 s of digital silence before and after (`--isolated` clips, every take of
each digit in turn: a model that never heard speech start at the first sample misreads
the tight ones), and one 10-minute file (`--long-minutes`) of lucas's utterances joined with
0.5 s pauses (PocketSphinx cuts it at pauses with its own `Segmenter` first).
WER and CER (jiwer) and real-time factor (decoding only: each system is loaded first;
one process, 2 cores for speechseq's TensorFlow, one thread for PocketSphinx). Results
are appended to benchmarks/RESULTS.md (or `--results FILE`) with the machine.
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "pipelines"))

import digit_sets  # noqa: E402
from features import RESULTS, machine  # noqa: E402

from speechseq import audio, corpora, grammar, metrics  # noqa: E402
from speechseq.benchmark import append_section  # noqa: E402
from speechseq.published import resolve_version  # noqa: E402
from speechseq.text import DIGIT_WORDS  # noqa: E402
from speechseq.transcribe import Transcriber, TranscriberOptions  # noqa: E402

DIGITS_GRAMMAR = ROOT / "pipelines" / "grammars" / "digits.txt"
GRAMMAR = (
    "#JSGF V1.0;\ngrammar digits;\npublic <digits> = <digit>+;\n"
    f"<digit> = {' | '.join(DIGIT_WORDS)};\n"
)


class PocketSphinxDigits:
    """PocketSphinx's en-us model, allowed to say digit words only."""

    def __init__(self):
        from pocketsphinx import Decoder

        self.decoder = Decoder(lm=None, loglevel="FATAL")
        self.decoder.add_jsgf_string("digits", GRAMMAR)
        self.decoder.activate_search("digits")

    def transcribe(self, waveform: np.ndarray) -> str:
        """One utterance; audio longer than 30 s is first cut at pauses by PocketSphinx's
        own voice-activity `Segmenter` (one 10-minute grammar search does not finish)."""
        from pocketsphinx import Segmenter

        pcm = (np.clip(waveform, -1, 1) * 32767).astype(np.int16).tobytes()
        if waveform.size <= 30 * audio.SAMPLE_RATE:
            return self._decode(pcm)
        pieces = Segmenter(sample_rate=audio.SAMPLE_RATE).segment(io.BytesIO(pcm))
        return " ".join(filter(None, (self._decode(piece.pcm) for piece in pieces)))

    def _decode(self, pcm: bytes) -> str:
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis else ""


TABLE = ["test set", "utterances", "system", "audio", "WER", "CER", "RTF"]


def measure(name: str, transcribe_all, waveforms: list[np.ndarray], references: list[str]) -> dict:
    started = time.perf_counter()
    hypotheses = transcribe_all(waveforms)
    seconds = time.perf_counter() - started
    audio_seconds = sum(w.size for w in waveforms) / audio.SAMPLE_RATE
    return {"system": name, "wer": metrics.word_error_rate(references, hypotheses),
            "cer": metrics.character_error_rate(references, hypotheses),
            "rtf": seconds / audio_seconds, "audio_minutes": audio_seconds / 60}


def speechseq_systems(model: str) -> dict:
    """A model greedy, and decoding the digit words only (its own grammar if it ships one)."""
    version = resolve_version(model)
    label = f"speechseq {version.parent.name}/{version.name}"
    shipped = grammar.shipped(version)
    greedy = Transcriber(model, TranscriberOptions(shipped_decoding=False))
    digits = Transcriber(model, TranscriberOptions(grammar=None if shipped else grammar.Grammar.read(DIGITS_GRAMMAR)))
    weights = f"alpha {shipped[1].alpha:g}, beta {shipped[1].beta:g}" if shipped else "default weights"
    return {
        f"{label} greedy": lambda waves: [r.text for r in greedy.transcribe_arrays(waves)],
        f"{label} + digit grammar ({'shipped' if shipped else 'given'}, {weights})":
            lambda waves: [r.text for r in digits.transcribe_arrays(waves)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="export to compare (repeatable; default saved_models/digits)")
    parser.add_argument("--long-minutes", type=float, default=10.0, help="length of the long file (0: none)")
    parser.add_argument("--utterances", type=int, help="at most this many utterances per short set (default: all)")
    parser.add_argument("--isolated", type=int, default=100, help="lucas's single-digit clips scored alone (0: none)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file the section is appended to")
    args = parser.parse_args()
    models = args.model or [str(ROOT / "saved_models" / "digits")]

    manifests = digit_sets.write(ROOT / "work" / "digit-sets")
    lucas = corpora.read_manifest(manifests["fsdd lucas"])[: args.utterances]
    speechocean = corpora.read_manifest(manifests["speechocean762 test speakers"])[: args.utterances]
    known = corpora.read_manifest(manifests["fsdd lucas"].parent / "test.jsonl")[: args.utterances]

    def loaded(utterances):
        return [audio.load(u.audio) for u in utterances], [u.text for u in utterances]

    sets = {
        "FSDD lucas (new to all)": loaded(lucas),
        "speechocean762 test speakers' digit prompts (new to all)": loaded(speechocean),
        "test takes of the digits models' FSDD training speakers": loaded(known),
    }
    if args.isolated:
        clips = sorted((c for c in corpora.fsdd_clips(digit_sets.FSDD) if c.speaker == digit_sets.FSDD_HELD_OUT),
                       key=lambda c: (c.take, c.digit))[: args.isolated]
        tight = [audio.load(c.path) for c in clips]
        silence = np.zeros(audio.SAMPLE_RATE // 4, np.float32)
        sets["lucas's single-digit clips, cut tight (as FSDD ships them)"] = (tight, [c.word for c in clips])
        sets["the same clips with 0.25 s of silence each side"] = (
            [np.concatenate([silence, w, silence]) for w in tight], [c.word for c in clips])
    if args.long_minutes:
        pause = np.zeros(audio.SAMPLE_RATE // 2, np.float32)
        long_pieces, long_text, seconds = [], [], 0.0
        lucas_again = itertools.cycle(lucas)  # stop at the length asked, not at the end of a pass
        while seconds < args.long_minutes * 60:
            utterance = next(lucas_again)
            long_pieces += [audio.load(utterance.audio), pause]
            long_text.append(utterance.text)
            seconds += (long_pieces[-2].size + pause.size) / audio.SAMPLE_RATE
        sets[f"one {args.long_minutes:g}-minute file of lucas"] = ([np.concatenate(long_pieces)], [" ".join(long_text)])

    systems = {}
    for model in models:
        systems |= speechseq_systems(model)
    sphinx = PocketSphinxDigits()
    systems["PocketSphinx 5 en-us + digit grammar"] = lambda waves: [sphinx.transcribe(w) for w in waves]
    rows = []
    for set_name, (waveforms, references) in sets.items():
        for system, run in systems.items():
            row = measure(system, run, waveforms, references) | {"set": set_name, "utterances": len(references)}
            rows.append(row)
            print(f"{set_name:<58} {system:<70} WER {row['wer']:.2%} CER {row['cer']:.2%} RTF {row['rtf']:.4f}")

    command = (".venv/bin/python benchmarks/peers.py" + "".join(f" --model {m}" for m in args.model or [])
               + f" --long-minutes {args.long_minutes:g} --isolated {args.isolated}" + (f" --utterances {args.utterances}" if args.utterances else ""))
    append_section(args.results, "Peers: speechseq vs PocketSphinx on digits",
                   [f"Command: `{command}`", f"Machine: {machine()}",
                    "RTF: decoding time / audio time, models loaded beforehand."], TABLE, table_rows(rows))


def table_rows(rows: list[dict]) -> list[list]:
    """`measure`'s rows as `TABLE`'s cells."""
    return [[r["set"], r["utterances"], r["system"], f"{r['audio_minutes']:.1f} min", f"{r['wer']:.2%}", f"{r['cer']:.2%}",
             f"{r['rtf']:.4f}"] for r in rows]


if __name__ == "__main__":
    main()
