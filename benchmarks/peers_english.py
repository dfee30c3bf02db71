"""speechseq's English recogniser against PocketSphinx on read sentences, side by side, in one run.

    .venv/bin/pip install -e '.[peers,lm]'
    .venv/bin/python benchmarks/peers_english.py [--model saved_models/english-read] [--utterances N]
                                                 [--results FILE]

Sets, both held out from every speechseq model's training (pipelines/english.py's split):
the 16 held-out speechocean762 speakers (children and adults of both genders, English as
a second language; their prompts, not verbatim transcripts) and Kathleen's held-out ARCTIC
prompts (a speaker the model has heard, sentences it has not). `--utterances` takes every
k-th utterance of each set so that at most N remain (spread over its speakers).
Systems: PocketSphinx 5 with its bundled en-us acoustic model, dictionary and general
trigram LM (its defaults); the speechseq export greedy in its graph (`--no-lm`), and with
what it ships (`speechseq transcribe`'s default: its n-gram LM and tuned weights, when
it ships one). References and hypotheses are normalised alike (the vocabulary's
lowercase letters, apostrophe and space). WER, CER (jiwer) and real-time factor
(decoding only, systems loaded first). Appended to benchmarks/RESULTS.md with the machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "pipelines"))

import english  # noqa: E402
from features import RESULTS, machine  # noqa: E402
from peers import TABLE, measure, table_rows  # noqa: E402

from speechseq import audio, corpora, language_model  # noqa: E402
from speechseq.benchmark import append_section  # noqa: E402
from speechseq.published import resolve_version  # noqa: E402
from speechseq.text import Vocabulary  # noqa: E402
from speechseq.transcribe import Transcriber, TranscriberOptions  # noqa: E402


class PocketSphinxEnglish:
    """PocketSphinx's defaults: en-us acoustic model, its dictionary and general LM."""

    def __init__(self):
        from pocketsphinx import Decoder

        self.decoder = Decoder(loglevel="FATAL")

    def transcribe(self, waveform: np.ndarray) -> str:
        pcm = (np.clip(waveform, -1, 1) * 32767).astype(np.int16).tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis else ""


def held_out_sets(at_most: int | None) -> dict[str, list[corpora.Utterance]]:
    sets = {
        "speechocean762 held-out speakers": english.split_by_speaker(corpora.read_manifest(english.SPEECHOCEAN))["test"],
        "Kathleen's held-out prompts": english.split_by_prompt(
            corpora.transcribed_folder(english.KATHLEEN, speaker="kathleen"))["test"],
    }
    return {name: spread(items, at_most) for name, items in sets.items()}


def spread(items: list, at_most: int | None) -> list:
    """Every k-th of `items`, k as small as leaves at most `at_most` (all of them if None)."""
    return items[:: max(1, -(-len(items) // at_most))] if at_most else items


def speechseq_systems(model: str) -> dict:
    version = resolve_version(model)
    label = f"speechseq {version.parent.name}/{version.name}"
    greedy = Transcriber(model, TranscriberOptions(shipped_decoding=False))
    shipped = Transcriber(model)
    lm = language_model.shipped(version)
    phones = greedy.decoding == "phones"  # a phone model: --no-lm spells its pronunciations without an LM search
    plain = f"{label} --no-lm (phones spelt, no LM in the search)" if phones else f"{label} greedy (--no-lm)"
    systems = {plain: lambda waves: [r.text for r in greedy.transcribe_arrays(waves)]}
    if lm is not None:
        what = "its lexicon and LMs" if phones else "its LM"
        general = f", general {lm.general_alpha:g}" if lm.general_lm else ""
        systems[f"{label} + {what} (alpha {lm.alpha:g}{general}, beta {lm.beta:g}, beam {lm.beam_width})"] = (
            lambda waves: [r.text for r in shipped.transcribe_arrays(waves)])
    return systems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="export to compare (repeatable; default saved_models/english-read)")
    parser.add_argument("--utterances", type=int, help="at most this many utterances per set, evenly spread")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file the section is appended to")
    args = parser.parse_args()
    models = args.model or [str(ROOT / "saved_models" / "english-read")]

    vocabulary = Vocabulary()
    systems = {}
    for model in models:
        systems |= speechseq_systems(model)
    sphinx = PocketSphinxEnglish()
    systems["PocketSphinx 5 en-us + its general LM"] = lambda waves: [sphinx.transcribe(w) for w in waves]

    def normalised(run):
        return lambda waves: [vocabulary.normalize(text) for text in run(waves)]

    rows = []
    for set_name, utterances in held_out_sets(args.utterances).items():
        waveforms = [audio.load(u.audio) for u in utterances]
        references = [vocabulary.normalize(u.text) for u in utterances]
        for system, run in systems.items():
            row = measure(system, normalised(run), waveforms, references) | {"set": set_name,
                                                                              "utterances": len(references)}
            rows.append(row)
            print(f"{set_name:<36} {system:<64} WER {row['wer']:.2%} CER {row['cer']:.2%} RTF {row['rtf']:.4f}",
                  flush=True)

    command = (".venv/bin/python benchmarks/peers_english.py" + "".join(f" --model {m}" for m in args.model or [])
               + (f" --utterances {args.utterances}" if args.utterances else ""))
    append_section(args.results, "Peers: speechseq vs PocketSphinx on held-out read English", [
        f"Command: `{command}`", f"Machine: {machine()}",
        "RTF: decoding time / audio time, models loaded beforehand. speechocean762's references are the prompts "
        "the learners read, not what they said."], TABLE, table_rows(rows))


if __name__ == "__main__":
    main()
