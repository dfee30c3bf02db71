"""Recognisers on held-out speakers heard through transmission channels and in rooms, in one run.

    .venv/bin/python benchmarks/channels.py [--task english|digits] [--model saved_models/NAME]
                                            [--utterances N] [--channel KIND ...] [--pocketsphinx]
                                            [--results FILE]

English: the sets of benchmarks/peers_english.py (the 16 held-out speechocean762 speakers and
Kathleen's held-out prompts), each export greedy (`--no-lm`) and with what it ships. Digits:
the held-out sets of benchmarks/peers.py (FSDD's lucas, the held-out speechocean762 speakers'
digit prompts), each export greedy and with the digit list. Every k-th utterance of a set is
taken so that at most N remain. Each set is played
as it was recorded ("direct") and through each channel of `speechseq.channels`: 8 kHz
(narrowband), a landline (telephone: 300-3400 Hz, mu-law), a mobile call (gsm), Opus at
about 12 kbit/s, MP3 at about 30 kbit/s, and in a simulated room ("room": RT60 0.2-0.7 s,
`rooms.heard_in_room`, a room drawn per utterance; the `rooms` extra). `--pocketsphinx` adds
the peer of benchmarks/peers_english.py or peers.py on the same audio (the `peers` extra). WER, CER (jiwer) and real-time factor. Appended to
benchmarks/RESULTS.md.
What it answers: how much a model trained on wideband microphone speech loses on a phone
line or a codec, and so whether channel augmentation (issue 19) is worth a training run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "pipelines"))

import digit_sets  # noqa: E402
import peers  # noqa: E402
import peers_english  # noqa: E402
from features import RESULTS, machine  # noqa: E402
from peers import TABLE, measure, table_rows  # noqa: E402

import numpy as np  # noqa: E402

from speechseq import audio, channels, corpora, rooms  # noqa: E402
from speechseq.benchmark import append_section  # noqa: E402
from speechseq.text import Vocabulary  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("english", "digits"), default="english", help="which sets and decoding")
    parser.add_argument("--model", action="append",
                        help="export to measure (repeatable; default saved_models/english-read or saved_models/digits)")
    parser.add_argument("--utterances", type=int, default=80, help="at most this many utterances per set, evenly spread")
    parser.add_argument("--channel", action="append", choices=[*channels.CHANNELS, "room"],
                        help="channels to hear the sets through (repeatable; default all, and a room)")
    parser.add_argument("--pocketsphinx", action="store_true", help="also PocketSphinx on the same audio (the peers extra)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file the section is appended to")
    args = parser.parse_args()
    models = args.model or [str(ROOT / "saved_models" / ("english-read" if args.task == "english" else "digits"))]
    lines = args.channel or [*channels.CHANNELS, "room"]

    vocabulary = Vocabulary()
    systems = {}
    for model in models:
        systems |= (peers_english if args.task == "english" else peers).speechseq_systems(model)
    if args.pocketsphinx and args.task == "english":
        sphinx = peers_english.PocketSphinxEnglish()
        systems["PocketSphinx 5 en-us + its general LM"] = lambda waves: [sphinx.transcribe(w) for w in waves]
    elif args.pocketsphinx:
        sphinx = peers.PocketSphinxDigits()
        systems["PocketSphinx 5 en-us + digit grammar"] = lambda waves: [sphinx.transcribe(w) for w in waves]

    rows = []
    for set_name, utterances in held_out_sets(args.task, args.utterances).items():
        direct = [audio.load(u.audio) for u in utterances]
        references = [vocabulary.normalize(u.text) for u in utterances]
        for line in ["direct", *lines]:
            waveforms = [heard(w, line, index) for index, w in enumerate(direct)]
            for system, run in systems.items():
                row = measure(system, lambda waves: [vocabulary.normalize(t) for t in run(waves)], waveforms,
                              references) | {"set": f"{set_name}, {line}", "utterances": len(references)}
                rows.append(row)
                print(f"{set_name:<34} {line:<10} {system:<60} WER {row['wer']:.2%} CER {row['cer']:.2%}", flush=True)

    command = (f".venv/bin/python benchmarks/channels.py --task {args.task}" + "".join(f" --model {m}" for m in args.model or [])
               + f" --utterances {args.utterances}" + "".join(f" --channel {c}" for c in args.channel or [])
               + (" --pocketsphinx" if args.pocketsphinx else ""))
    append_section(args.results, "Held-out speakers through transmission channels", [
        f"Command: `{command}`", f"Machine: {machine()}",
        "Each set as recorded (direct) and through each channel of `speechseq.channels` (narrowband: 8 kHz; "
        "telephone: 300-3400 Hz, mu-law; gsm: GSM 06.10; opus: ~12 kbit/s; mp3: ~30 kbit/s) or in a simulated "
        "room (RT60 0.2-0.7 s, one drawn per utterance, the same in every run). RTF: decoding "
        "time / audio time. speechocean762's references are the prompts the learners read."], TABLE, table_rows(rows))


def heard(waveform: np.ndarray, line: str, index: int) -> np.ndarray:
    """`waveform` as recorded, through a channel, or in the room drawn for utterance `index`."""
    if line == "direct":
        return waveform
    if line == "room":
        return rooms.heard_in_room(waveform, np.random.default_rng(index))
    return channels.through(waveform, line)


def held_out_sets(task: str, at_most: int) -> dict[str, list[corpora.Utterance]]:
    if task == "english":
        return peers_english.held_out_sets(at_most)
    manifests = digit_sets.write(ROOT / "work" / "digit-sets")
    sets = {"FSDD lucas": corpora.read_manifest(manifests["fsdd lucas"]),
            "speechocean762 held-out speakers' digit prompts": corpora.read_manifest(
                manifests["speechocean762 test speakers"])}
    return {name: peers_english.spread(items, at_most) for name, items in sets.items()}


if __name__ == "__main__":
    main()
