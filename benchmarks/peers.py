"""speechseq's shipped digits model against PocketSphinx, side by side, in one run.

    .venv/bin/pip install -e '.[peers]'
    .venv/bin/python benchmarks/peers.py [--long-minutes 10] [--utterances N] [--results FILE]

PocketSphinx (PyPI `pocketsphinx`, its bundled en-us acoustic model) is restricted
to the ten digit words by a JSGF grammar (`<digit>+`), so both systems choose among
the same words. Both read the same 16 kHz audio: FSDD connected digits of lucas
(neither system trained on him), the test takes of the four FSDD speakers the
shipped model was trained on (`--utterances` caps each set), and one 10-minute file
(`--long-minutes`) of lucas's utterances joined with 0.5 s pauses (PocketSphinx
cuts it at pauses with its own `Segmenter` first).
WER (jiwer) and real-time factor (decoding only: each system is
loaded first; one process, 2 cores for speechseq's TensorFlow, one thread for
PocketSphinx). Results are appended to benchmarks/RESULTS.md (or `--results FILE`)
with the machine.
"""

from __future__ import annotations

import argparse
import datetime
import io
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from features import RESULTS, machine  # noqa: E402

from speechseq import audio, corpora, export, metrics  # noqa: E402
from speechseq.corpora import DigitSequenceOptions  # noqa: E402
from speechseq.text import DIGIT_WORDS  # noqa: E402
from speechseq.transcribe import Transcriber  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FSDD = ROOT.parent / "shared" / "data" / "fsdd"
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


def measure(name: str, transcribe_all, waveforms: list[np.ndarray], references: list[str]) -> dict:
    started = time.perf_counter()
    hypotheses = transcribe_all(waveforms)
    seconds = time.perf_counter() - started
    audio_seconds = sum(w.size for w in waveforms) / audio.SAMPLE_RATE
    return {"system": name, "wer": metrics.word_error_rate(references, hypotheses),
            "rtf": seconds / audio_seconds, "audio_minutes": audio_seconds / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "saved_models" / "digits"))
    parser.add_argument("--long-minutes", type=float, default=10.0, help="length of the long file")
    parser.add_argument("--utterances", type=int, help="at most this many utterances per short set (default: all)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file the section is appended to")
    args = parser.parse_args()

    corpus = ROOT / "work" / "digits-lucas"
    if not (corpus / "held_out.jsonl").exists():
        corpora.connected_digits(FSDD, corpus, DigitSequenceOptions(held_out_speaker="lucas"))
    lucas = corpora.read_manifest(corpus / "held_out.jsonl")[: args.utterances]
    known = corpora.read_manifest(corpus / "test.jsonl")[: args.utterances]
    pause = np.zeros(audio.SAMPLE_RATE // 2, np.float32)
    long_pieces, long_text, seconds = [], [], 0.0
    lucas_again = itertools.cycle(lucas)  # stop at the length asked, not at the end of a pass
    while seconds < args.long_minutes * 60:
        utterance = next(lucas_again)
        long_pieces += [audio.load(utterance.audio), pause]
        long_text.append(utterance.text)
        seconds += (long_pieces[-2].size + pause.size) / audio.SAMPLE_RATE
    sets = {
        "lucas (new to both)": ([audio.load(u.audio) for u in lucas], [u.text for u in lucas]),
        "test takes of speechseq's training speakers": ([audio.load(u.audio) for u in known], [u.text for u in known]),
        f"one {args.long_minutes:g}-minute file of lucas": ([np.concatenate(long_pieces)], [" ".join(long_text)]),
    }

    transcriber = Transcriber(args.model)
    sphinx = PocketSphinxDigits()
    systems = {
        f"speechseq {Path(args.model).name}/{export.resolve_version(args.model).name} (greedy)": lambda waves: [r.text for r in transcriber.transcribe_arrays(waves)],
        "PocketSphinx 5 en-us + digit grammar": lambda waves: [sphinx.transcribe(w) for w in waves],
    }
    rows = []
    for set_name, (waveforms, references) in sets.items():
        for system, run in systems.items():
            row = measure(system, run, waveforms, references) | {"set": set_name}
            rows.append(row)
            print(f"{set_name:<45} {system:<38} WER {row['wer']:.2%}  RTF {row['rtf']:.4f}")

    lines = [
        "",
        f"### Peers: speechseq vs PocketSphinx on digits, {datetime.date.today().isoformat()}",
        "",
        f"Command: `.venv/bin/python benchmarks/peers.py --long-minutes {args.long_minutes:g}"
        + (f" --utterances {args.utterances}" if args.utterances else "") + f"`  \nMachine: {machine()}  \n"
        "RTF: decoding time / audio time, models loaded beforehand.",
        "",
        "| test set | system | audio | WER | RTF |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {r['set']} | {r['system']} | {r['audio_minutes']:.1f} min | {r['wer']:.2%} | {r['rtf']:.4f} |"
              for r in rows]
    with open(args.results, "a", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
