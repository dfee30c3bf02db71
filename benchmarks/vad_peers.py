"""speechseq's voice-activity models against webrtcvad and silero-vad, side by side, in one run.

    .venv/bin/pip install -e '.[vad-peers]'
    .venv/bin/python benchmarks/vad_peers.py [--model saved_models/voice-activity ...]
                                             [--scenes N] [--results FILE]

Scenes: the held-out speechocean762 speakers of pipelines/speechocean762_split.json (16
children and adults, never trained on), 10 s scenes of one or two of their read sentences
in white, brown, babble, music-like or hum noise, one set each at 0, 5, 10 and 20 dB and
clean, and the 10 dB scenes again heard in simulated rooms and through transmission channels
(`voice_activity.speechocean_tests`,
built on first use; `--scenes N` takes the first
N of each set). Reference: the clean clips' sound on 10 ms frames, pauses of 300 ms or more
inside a sentence non-speech (`scenes`).

Systems, each scored on the same 10 ms frames (frame t centred at t x 10 ms, speech when
a system's speech segment holds that centre):
- speechseq (`--model`, repeatable): the model's arg-max frames ("raw"), and the segments
  `speechseq tag` writes (its shipped smoothing);
- webrtcvad (PyPI webrtcvad-wheels), aggressiveness 0-3 on 10 ms frames, each frame's
  decision held for a stated hangover of 100 ms after its last speech frame (a frame is
  speech if it or one of the 10 frames before it was voted speech), and with no hangover;
- silero-vad (its ONNX model from its wheel, onnxruntime): per-32 ms-chunk probabilities at
  its default threshold 0.5 ("raw"), and its `get_speech_timestamps` with every default.
Figures: speech F1 on the frames, segment F1 (onset and offset both within 200 ms of a
reference segment's), and real-time factor (processing time / audio time, one process,
after loading: TensorFlow on both cores, onnxruntime's own threads, webrtcvad one).
Results are appended to benchmarks/RESULTS.md (or `--results FILE`) with the machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "pipelines"))

import voice_activity  # noqa: E402

from speechseq import audio, corpora, metrics  # noqa: E402
from speechseq.benchmark import append_section, machine  # noqa: E402
from speechseq.corpora import Segment  # noqa: E402

HOP = 0.010  # seconds: the common frame grid
COLLAR = 0.2  # seconds, for segment F1
WEBRTC_HANGOVER_FRAMES = 10  # 100 ms
SPEECH = "speech"
BY_NOISE_SET = "speechocean_10db"  # the set also scored per noise kind


def noise_of(utterance: corpora.Utterance) -> str:
    """The noise kind a scene's file name tells ("so762-0001_0003_babble_snr10.wav")."""
    return utterance.audio.stem.split("_")[-2]


def frames_of(spans: Sequence[Segment], count: int) -> np.ndarray:
    """True for each of `count` 10 ms frames whose centre lies in a speech segment."""
    centres = np.arange(count) * HOP
    speech = np.zeros(count, bool)
    for span in spans:
        if span.label == SPEECH:
            speech |= (centres >= span.start) & (centres < span.end)
    return speech


def runs_to_segments(decisions: np.ndarray, seconds_per_decision: float) -> list[Segment]:
    """Speech segments [a, b) of each run of True decisions."""
    padded = np.concatenate([[False], decisions, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [Segment(a * seconds_per_decision, b * seconds_per_decision, SPEECH)
            for a, b in zip(edges[::2], edges[1::2])]


def with_hangover(decisions: np.ndarray, frames: int) -> np.ndarray:
    """Each speech decision held for `frames` more frames."""
    held = decisions.copy()
    for shift in range(1, frames + 1):
        held[shift:] |= decisions[:-shift]
    return held


class Speechseq:
    """An exported speechseq tagger: its raw arg-max frames and the segments `tag` writes."""

    def __init__(self, model: str):
        from speechseq.tag import Tagger

        self.tagger = Tagger(model)
        self.name = f"speechseq {model}"
        self.speech_id = self.tagger.tags.id(SPEECH)

    def outputs(self, paths: Sequence[Path]) -> dict[str, list[list[Segment]]]:
        raw, written = [], []
        for result in self.tagger.tag_files(paths):
            if isinstance(result, Exception):
                raise result
            raw.append(runs_to_segments(result.probabilities.argmax(axis=1) == self.speech_id, result.seconds_per_frame))
            written.append([Segment(s.start, s.end, s.label) for s in result.segments])
        return {f"{self.name}, raw frames": raw, f"{self.name}, tag's segments": written}


class WebRtc:
    """webrtcvad at every aggressiveness, with and without the hangover."""

    name = "webrtcvad"

    def outputs(self, paths: Sequence[Path]) -> dict[str, list[list[Segment]]]:
        import webrtcvad

        results: dict[str, list[list[Segment]]] = {}
        for mode in range(4):
            vad = webrtcvad.Vad(mode)
            plain, held = [], []
            for path in paths:
                pcm = (np.clip(audio.load(path), -1, 1) * 32767).astype(np.int16)
                step = int(HOP * audio.SAMPLE_RATE)
                votes = np.array([vad.is_speech(pcm[i:i + step].tobytes(), audio.SAMPLE_RATE)
                                  for i in range(0, pcm.size - step + 1, step)])
                plain.append(runs_to_segments(votes, HOP))
                held.append(runs_to_segments(with_hangover(votes, WEBRTC_HANGOVER_FRAMES), HOP))
            results[f"webrtcvad mode {mode}, no hangover"] = plain
            results[f"webrtcvad mode {mode}, 100 ms hangover"] = held
        return results


class Silero:
    """silero-vad's ONNX model at its default threshold."""

    name = "silero-vad"

    def __init__(self):
        from silero_vad import load_silero_vad

        self.model = load_silero_vad(onnx=True)

    def outputs(self, paths: Sequence[Path]) -> dict[str, list[list[Segment]]]:
        import torch
        from silero_vad.utils_vad import get_speech_timestamps_from_probs

        raw, timestamps = [], []
        chunk = 512  # samples at 16 kHz: the model's step
        for path in paths:
            samples = audio.load(path)
            probabilities = self.model.audio_forward(torch.from_numpy(samples), audio.SAMPLE_RATE)[0].numpy()
            raw.append(runs_to_segments(probabilities > 0.5, chunk / audio.SAMPLE_RATE))
            spans = get_speech_timestamps_from_probs(list(map(float, probabilities)), sampling_rate=audio.SAMPLE_RATE,
                                                     audio_length_samples=samples.size)
            timestamps.append([Segment(s["start"] / audio.SAMPLE_RATE, s["end"] / audio.SAMPLE_RATE, SPEECH)
                               for s in spans])
        return {"silero-vad, raw chunks at 0.5": raw, "silero-vad, get_speech_timestamps": timestamps}


def score(references: Sequence[corpora.Utterance], hypotheses: Sequence[list[Segment]]) -> tuple[float, float]:
    """(speech F1 on the 10 ms frames, segment F1 with the 200 ms collar)."""
    files = []
    for utterance, found in zip(references, hypotheses):
        count = int(utterance.duration / HOP) + 1
        files.append((frames_of(utterance.segments, count).astype(int), frames_of(found, count).astype(int),
                      [s for s in utterance.segments if s.label == SPEECH], found))
    scores = metrics.tagging_scores(files, 2, COLLAR)
    return float(scores.per_class_f1[1]), scores.segment_f1


def timed(system_outputs: Callable, paths: Sequence[Path]) -> tuple[dict, float]:
    started = time.perf_counter()
    outputs = system_outputs(paths)
    return outputs, time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="an exported speechseq tagger (repeatable); "
                        "default saved_models/voice-activity")
    parser.add_argument("--scenes", type=int, help="the first N scenes of each SNR set only")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)

    sets = voice_activity.speechocean_tests(ROOT / "work" / "voice-activity")
    systems = [Speechseq(model) for model in args.model or ["saved_models/voice-activity"]]
    systems += [WebRtc(), Silero()]
    figures: dict[str, dict[str, tuple[float, float]]] = {}
    seconds: dict[str, list[float]] = {}  # system -> [processing seconds, audio seconds]
    by_noise: dict[str, dict[str, tuple[float, float]]] = {}  # variant -> noise kind -> figures at 10 dB
    for set_name, manifest in sets.items():
        utterances = corpora.read_manifest(manifest)[: args.scenes]
        paths = [u.audio for u in utterances]
        for system in systems:
            outputs, spent = timed(system.outputs, paths)
            totals = seconds.setdefault(system.name, [0.0, 0.0])
            totals[0] += spent
            totals[1] += sum(u.duration for u in utterances)
            for variant, hypotheses in outputs.items():
                figures.setdefault(variant, {})[set_name] = score(utterances, hypotheses)
                if set_name == BY_NOISE_SET:
                    for kind in sorted({noise_of(u) for u in utterances}):
                        chosen = [i for i, u in enumerate(utterances) if noise_of(u) == kind]
                        by_noise.setdefault(variant, {})[kind] = score([utterances[i] for i in chosen],
                                                                       [hypotheses[i] for i in chosen])
        print(f"{set_name}: scored", flush=True)

    set_names = list(sets)
    rows = []
    for variant, by_set in figures.items():
        system = next(s.name for s in systems if variant.startswith(s.name))
        runtime = seconds[system][0] / seconds[system][1]
        rows.append([variant] + [f"{by_set[name][0]:.3f} ({by_set[name][1]:.3f})" for name in set_names]
                    + [f"{runtime:.4f}"])
    count = len(corpora.read_manifest(next(iter(sets.values())))[: args.scenes])
    append_section(
        args.results, "Voice activity peers on held-out speakers",
        [f"Command: `.venv/bin/python benchmarks/vad_peers.py {' '.join(sys.argv[1:])}`".rstrip(),
         f"Machine: {machine()}",
         f"Scenes: {count} per set, 10 s, of the 16 held-out speechocean762 speakers (never trained on), "
         "noise drawn from white, brown, babble, tones, hum. Cells: speech F1 on 10 ms frames "
         "(segment F1, onset and offset within 200 ms). RTF: processing / audio seconds, every set, "
         "all of a system's variants together."],
        ["system"] + [name.removeprefix("speechocean_") for name in set_names] + ["RTF"], rows)
    kinds = sorted({kind for per_kind in by_noise.values() for kind in per_kind})
    append_section(
        args.results, "Voice activity peers on held-out speakers, 10 dB, by noise",
        ["The 10 dB set of the section above, its scenes grouped by the noise they hold "
         "(the noise kind is in each scene's file name). Cells: speech F1 (segment F1)."],
        ["system"] + kinds,
        [[variant] + [f"{per_kind[k][0]:.3f} ({per_kind[k][1]:.3f})" if k in per_kind else "" for k in kinds]
         for variant, per_kind in by_noise.items()])


if __name__ == "__main__":
    main()
