"""How far voice-activity scores move when the labelling rule moves a little: labels against labels.

    .venv/bin/python benchmarks/vad_label_rules.py [--clips N] [--results FILE]

The voice-activity recipe labels read sentences by a rule (`audio.sound_runs`): a 25 ms
frame is sound within 35 dB of the clip's peak and 10 dB over its floor, and a pause of
300 ms or more is non-speech. Each number there is a choice. This labels the held-out
speechocean762 speakers' clean clips by the recipe's rule and by neighbouring rules
(each one number changed), and scores every neighbour against the recipe's labels as if
it were a tagger: speech F1 on 10 ms frames, and segment F1 with onset and offset within
100 ms and within 200 ms. Where two defensible rules agree only so far on segments, no
tagger can be scored above that against either, whatever it hears. Appended to
benchmarks/RESULTS.md (or `--results FILE`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from speechseq import audio, corpora, metrics
from speechseq.benchmark import append_section, machine
from speechseq.corpora import Segment

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SPLIT = json.loads((ROOT / "pipelines" / "speechocean762_split.json").read_text())
HOP = 0.010  # seconds: the frame grid speech F1 is counted on
RECIPE = {"top_db": 35.0, "floor_margin_db": 10.0, "min_pause": 0.3}  # pipelines/voice_activity.py's sentences
NEIGHBOURS = {
    "pause 200 ms": {"min_pause": 0.2},
    "pause 250 ms": {"min_pause": 0.25},
    "pause 350 ms": {"min_pause": 0.35},
    "pause 400 ms": {"min_pause": 0.4},
    "floor margin 8 dB": {"floor_margin_db": 8.0},
    "floor margin 12 dB": {"floor_margin_db": 12.0},
    "within 30 dB of the peak": {"top_db": 30.0},
    "within 40 dB of the peak": {"top_db": 40.0},
}


def labelled(samples: np.ndarray, rule: dict) -> list[Segment]:
    spans = audio.sound_runs(samples, audio.SAMPLE_RATE, rule["top_db"], rule["floor_margin_db"], rule["min_pause"])
    return [Segment(a / audio.SAMPLE_RATE, b / audio.SAMPLE_RATE, "speech") for a, b in spans]


def frame_ids(spans: list[Segment], count: int) -> np.ndarray:
    """1 for each 10 ms frame whose centre a span holds, else 0."""
    centres = (np.arange(count) + 0.5) * HOP
    ids = np.zeros(count, np.int64)
    for span in spans:
        ids[(centres >= span.start) & (centres < span.end)] = 1
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=320, help="held-out clips to label (every k-th, k spread evenly)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    held_out = set(SPLIT["test"])
    clips = [u for u in corpora.read_manifest(corpora.data_root() / "speechocean762" / "manifest.jsonl")
             if u.speaker in held_out]
    clips = clips[:: max(1, len(clips) // args.clips)][: args.clips]
    files: dict[str, list[tuple]] = {name: [] for name in NEIGHBOURS}
    segments = pauses = 0
    for clip in clips:
        samples = audio.load(clip.audio)
        count = int(len(samples) / audio.SAMPLE_RATE / HOP)
        reference = labelled(samples, RECIPE)
        segments += len(reference)
        pauses += max(0, len(reference) - 1)
        for name, change in NEIGHBOURS.items():
            other = labelled(samples, RECIPE | change)
            files[name].append((frame_ids(reference, count), frame_ids(other, count), reference, other))
    rows = []
    for name, scored in files.items():
        speech_f1 = metrics.tagging_scores(scored, 2).per_class_f1[1]
        near, far = (metrics.tagging_scores(scored, 2, collar).segment_f1 for collar in (0.1, 0.2))
        rows.append([name, f"{speech_f1:.3f}", f"{near:.3f}", f"{far:.3f}"])
    append_section(args.results, "Voice-activity labels against labels: neighbouring rules on the same clips", [
        f"Command: `.venv/bin/python benchmarks/vad_label_rules.py --clips {args.clips}`",
        f"Machine: {machine()}",
        f"Clips: {len(clips)} clean clips of the {len(held_out)} held-out speechocean762 speakers; the recipe's rule "
        f"(within {RECIPE['top_db']:g} dB of the peak, {RECIPE['floor_margin_db']:g} dB over the floor, a pause of "
        f"{RECIPE['min_pause'] * 1000:.0f} ms or more non-speech) gives {segments} speech segments, {pauses} pauses "
        "inside clips. Each row: a rule with one number changed, scored against the recipe's labels as a tagger is."],
        ["rule scored against the recipe's", "speech F1 (10 ms frames)", "segment F1, 100 ms collar",
         "segment F1, 200 ms collar"], rows)


if __name__ == "__main__":
    main()
