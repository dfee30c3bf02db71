"""The connected-digit sets that digits models are tuned and scored on, by speaker.

    .venv/bin/python pipelines/digit_sets.py [--out work/digit-sets]   # writes the manifests, prints sizes

- dev: FSDD takes 5-9 of the four training speakers, strung into digit strings, and the
  all-digit prompts ("zero three five one") of the speechocean762 dev speakers. Decoding
  weights (a digit grammar's alpha and beta) are picked here.
- held out, never trained or tuned on: every take of FSDD speaker lucas, strung the same
  way (130 utterances), and the all-digit prompts of the speechocean762 test speakers
  (8 utterances, 31 digits: children and adults, Mandarin L1).
The speechocean762 speakers are those of pipelines/speechocean762_split.json, as in every
recipe; FSDD's strings are those `derived.connected_digits` makes for lucas held out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechseq import corpora, derived
from speechseq.derived import DigitSequenceOptions

ROOT = Path(__file__).resolve().parents[1]
DATA = corpora.data_root()
FSDD = DATA / "fsdd"
SPEECHOCEAN = DATA / "speechocean762" / "manifest.jsonl"
SPEAKER_SPLIT = json.loads((ROOT / "pipelines" / "speechocean762_split.json").read_text())
DIGIT_WORDS = {"zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
FSDD_HELD_OUT = "lucas"


def digit_prompts(speakers) -> list[corpora.Utterance]:
    """The speechocean762 utterances of `speakers` whose prompt is digit words only."""
    return [u for u in corpora.read_manifest(SPEECHOCEAN)
            if u.speaker in set(speakers) and u.text.split() and set(u.text.split()) <= DIGIT_WORDS]


def write(out: Path) -> dict[str, Path]:
    """Manifests: dev, and each held-out set by name."""
    fsdd = out / f"fsdd-{FSDD_HELD_OUT}"
    if not (fsdd / "held_out.jsonl").exists():  # the same options always make the same files
        derived.connected_digits(FSDD, fsdd, DigitSequenceOptions(held_out_speaker=FSDD_HELD_OUT))
    dev = corpora.read_manifest(fsdd / "dev.jsonl") + digit_prompts(SPEAKER_SPLIT["dev"])
    return {
        "dev": corpora.write_manifest(dev, out / "dev.jsonl"),
        f"fsdd {FSDD_HELD_OUT}": fsdd / "held_out.jsonl",
        "speechocean762 test speakers": corpora.write_manifest(digit_prompts(SPEAKER_SPLIT["test"]),
                                                               out / "speechocean762-test.jsonl"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "work" / "digit-sets")
    args = parser.parse_args()
    for name, manifest in write(args.out).items():
        items = corpora.read_manifest(manifest)
        words = sum(len(u.text.split()) for u in items)
        print(f"{name}: {len(items)} utterances, {words} digits, {len({u.speaker for u in items})} speakers: {manifest}")


if __name__ == "__main__":
    main()
