"""Feature pipeline throughput: speechseq's tf.data pipeline vs a plain librosa loop.

    .venv/bin/python benchmarks/features.py [--long-minutes 10] [--long-files 4] [--short-files 2500]

Both compute the same 80-band log-mel frames (decode, resample to 16 kHz with soxr,
25 ms Hann window, 10 ms hop) over the same files in one run: FSDD clips (short,
8 kHz WAV; all 2,500 by default) and a few long FLAC files made by joining Kathleen
clips. The figures (audio seconds per wall second) are appended to
benchmarks/RESULTS.md (or `--results FILE`) with the machine they ran on. Targets:
>= 300x real time on 2 CPU cores and >= 2x the librosa loop.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import soundfile  # noqa: E402

from speechseq import corpora, data  # noqa: E402
from speechseq.benchmark import append_section, machine  # noqa: E402,F401 (the other scripts import it from here)
from speechseq.features import FeatureConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = corpora.data_root()
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
CONFIG = FeatureConfig()


def long_files(folder: Path, minutes: float, count: int) -> list[corpora.Utterance]:
    """`count` FLAC files of about `minutes` each, joined from Kathleen clips."""
    clips = sorted((DATA / "kathleen" / "clips").glob("*.flac"))
    utterances, cursor = [], 0
    for index in range(count):
        pieces, seconds = [], 0.0
        while seconds < minutes * 60:
            samples, rate = soundfile.read(clips[cursor % len(clips)], dtype="float32")
            pieces.append(samples)
            seconds += samples.size / rate
            cursor += 1
        path = folder / f"long_{index}.flac"
        soundfile.write(path, np.concatenate(pieces), rate)
        utterances.append(corpora.Utterance(path, "", "kathleen", seconds))
    return utterances


REPEATS = 3  # timed passes per measurement; the median is reported (CPU speed varies)


def median_rate(run) -> float:
    """Median audio seconds per wall second over `REPEATS` passes of `run()` -> seconds."""
    rates = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        seconds = run()
        rates.append(seconds / (time.perf_counter() - started))
    return float(np.median(rates))


def speechseq_pipeline(utterances) -> float:
    """Audio seconds per wall second through `data.ctc_dataset`, after one untimed epoch.

    The first epoch pays tf.data's one-off start-up (function instantiation, thread
    pools); training runs many epochs, so the steady state is what counts.
    """
    options = data.PipelineOptions(batch_size=32, max_batch_frames=32_000, deterministic=False)
    dataset = data.feature_dataset(utterances, CONFIG, options)
    for _ in dataset:
        pass

    def epoch() -> float:
        frames = sum(int(lengths.numpy().sum()) for _, lengths in dataset)
        return frames / CONFIG.frames_per_second

    return median_rate(epoch)


def librosa_loop(utterances) -> float:
    """Audio seconds per wall second for a per-file librosa load + melspectrogram loop."""

    def epoch() -> float:
        seconds = 0.0
        for utterance in utterances:
            waveform, _ = librosa.load(utterance.audio, sr=CONFIG.sample_rate, res_type="soxr_hq")
            mel = librosa.feature.melspectrogram(
                y=waveform, sr=CONFIG.sample_rate, n_fft=CONFIG.n_fft, hop_length=CONFIG.hop_length,
                win_length=CONFIG.win_length, n_mels=CONFIG.n_mels, fmin=CONFIG.fmin, pad_mode="constant",
            )
            np.log(np.maximum(mel, CONFIG.log_floor))
            seconds += waveform.size / CONFIG.sample_rate
        return seconds

    return median_rate(epoch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-minutes", type=float, default=10.0, help="length of each long file")
    parser.add_argument("--long-files", type=int, default=4, help="number of long files")
    parser.add_argument("--short-files", type=int, default=2500, help="FSDD clips, spread over all speakers")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file the section is appended to")
    args = parser.parse_args()

    clips = corpora.fsdd(DATA / "fsdd")
    clips = clips[:: max(len(clips) // args.short_files, 1)][: args.short_files]
    short_name = f"FSDD, {len(clips):,} short clips (8 kHz WAV)"
    with tempfile.TemporaryDirectory() as folder:
        corpora_to_run = {
            short_name: clips,
            f"{args.long_files} long files of {args.long_minutes:g} min (16 kHz FLAC)": long_files(
                Path(folder), args.long_minutes, args.long_files
            ),
        }
        # Warm up both paths (imports, graph tracing, file cache) on a few clips.
        warm = clips[:64]
        speechseq_pipeline(warm), librosa_loop(warm)
        rows = []
        for name, utterances in corpora_to_run.items():
            ours, theirs = speechseq_pipeline(utterances), librosa_loop(utterances)
            rows.append((name, ours, theirs))
            print(f"{name}: speechseq {ours:.0f}x real time, librosa loop {theirs:.0f}x, ratio {ours / theirs:.1f}")

    append_section(args.results, "Feature pipeline throughput", [
        f"Command: `.venv/bin/python benchmarks/features.py --long-minutes {args.long_minutes:g} "
        f"--long-files {args.long_files} --short-files {len(clips)}`",
        f"Machine: {machine()}",
        "Work: decode + resample to 16 kHz (soxr) + 80-band log-mel; audio seconds per wall "
        f"second, median of {REPEATS} passes (speechseq after one untimed warm-up epoch)."],
        ["corpus", "speechseq tf.data", "librosa loop", "ratio"],
        [[name, f"{ours:.0f}x", f"{theirs:.0f}x", f"{ours / theirs:.1f}"] for name, ours, theirs in rows])


if __name__ == "__main__":
    main()
