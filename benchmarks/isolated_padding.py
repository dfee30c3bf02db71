"""Why do single digits with room around them read worse? Padding against feature normalisation.

    .venv/bin/python benchmarks/isolated_padding.py --run RUN_DIR --grammar saved_models/digits/5

A CTC run's best model (RUN_DIR/best.keras, its features.json and run.json) decodes single
digits with the word list of a published export (`grammar.shipped_decoder`), as they are cut
tight and with 0.25 s of padding each side (digital zeros, or white noise at -60 dBFS). The
features are normalised per utterance (`features.normalize`: each band's mean and variance
over the whole input); each padded set is read twice, normalised as shipped and with the
statistics of the clip's own frames only (the padding left out), which isolates how much of
the loss comes from the normalisation. Sets: dev words (cut at their segments from the digit
dev set, `pipelines/digit_sets.py`: FSDD speakers the models trained on, dev takes) for
choosing, and the held-out speaker lucas's first 100 single clips for reporting.
WER per cell; appended to benchmarks/RESULTS.md (or `--results FILE`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "pipelines"))

import digit_sets  # noqa: E402
from speechseq import audio, corpora, export, features, grammar, metrics, models  # noqa: E402
from speechseq.benchmark import append_section, machine  # noqa: E402

PAD_SECONDS = 0.25
NOISE_DBFS = -60.0


class Reader:
    """A run's model and features with the normalisation done here, so its statistics can
    come from chosen frames; decoded with an export's word list."""

    def __init__(self, run: Path, word_list_export: Path):
        trained = export.load_trained(run)  # a run's best model, its features and settings
        config = trained.features
        if not config.normalize:
            raise SystemExit(f"{run}: its features are not normalised per utterance; nothing to compare")
        self.hop = config.hop_length
        self.raw = features.feature_layer(dataclasses.replace(config, normalize=False))
        self.subsampling = trained.subsampling
        self.model = models.inference(trained.model)
        self.decoder = grammar.shipped_decoder(word_list_export, trained.classes)
        if self.decoder is None:
            raise SystemExit(f"{word_list_export}: ships no word list")
        self.seconds_per_frame = config.seconds_per_frame(self.subsampling)

    def frames(self, waveform: np.ndarray) -> np.ndarray:
        frames, count = self.raw(waveform[np.newaxis], np.array([waveform.size]))
        return frames.numpy()[0, : int(count[0])]

    def read(self, frames: np.ndarray, stats: slice) -> str:
        """Normalised by the mean and variance of `frames[stats]` (the layer's own rule)."""
        mean, variance = frames[stats].mean(0), frames[stats].var(0)
        normal = (frames - mean) / np.sqrt(np.maximum(variance, 1e-4))
        log_probs = np.asarray(self.model(models.model_inputs(normal[np.newaxis], np.array([len(normal)]))))[0]
        kept = models.output_lengths(np.array([len(normal)]), self.subsampling)[0]
        return " ".join(word.text for word in self.decoder.words(log_probs[: int(kept)], self.seconds_per_frame))


def dev_words() -> tuple[list[np.ndarray], list[str]]:
    """Single words cut at their segments from the digit dev set's strings."""
    waves, words = [], []
    for utterance in corpora.read_manifest(digit_sets.write(ROOT / "work" / "digit-sets")["dev"]):
        waveform = audio.load(utterance.audio)
        for segment in utterance.segments:
            waves.append(waveform[round(segment.start * audio.SAMPLE_RATE): round(segment.end * audio.SAMPLE_RATE)])
            words.append(segment.label)
    return waves, words


def lucas_clips(count: int) -> tuple[list[np.ndarray], list[str]]:
    clips = sorted((c for c in corpora.fsdd_clips(digit_sets.FSDD) if c.speaker == digit_sets.FSDD_HELD_OUT),
                   key=lambda c: (c.take, c.digit))[:count]
    return [audio.load(c.path) for c in clips], [c.word for c in clips]


def padded_rows(reader: Reader, waves: list[np.ndarray], words: list[str]) -> list[list]:
    pad = round(PAD_SECONDS * audio.SAMPLE_RATE)
    rng = np.random.default_rng(0)
    paddings = {
        "cut tight": lambda: np.zeros(0, np.float32),
        f"+{PAD_SECONDS:g} s digital zeros": lambda: np.zeros(pad, np.float32),
        f"+{PAD_SECONDS:g} s white noise at {NOISE_DBFS:g} dBFS":
            lambda: (10 ** (NOISE_DBFS / 20) * rng.standard_normal(pad)).astype(np.float32),
    }
    rows = []
    for name, padding in paddings.items():
        hypotheses = {"as shipped": [], "clip's own frames": []}
        for waveform in waves:
            before, after = padding(), padding()
            frames = reader.frames(np.concatenate([before, waveform, after]))
            first = before.size // reader.hop
            hypotheses["as shipped"].append(reader.read(frames, slice(None)))
            hypotheses["clip's own frames"].append(reader.read(frames, slice(first, first + waveform.size // reader.hop + 1)))
        rows.append([name] + [f"{metrics.word_error_rate(words, h):.1%}" for h in hypotheses.values()])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a CTC run folder with best.keras")
    parser.add_argument("--grammar", type=Path, required=True, help="a published export that ships a word list")
    parser.add_argument("--lucas", type=int, default=100, help="lucas's single clips read (takes in order)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    reader = Reader(args.run, args.grammar)
    rows = []
    for set_name, (waves, words) in {"dev words (training speakers, dev takes)": dev_words(),
                                     f"lucas's single clips (held out, {args.lucas})": lucas_clips(args.lucas)}.items():
        rows += [[f"{set_name}: {row[0]}", *row[1:]] for row in padded_rows(reader, waves, words)]
    append_section(
        args.results, "Single digits with room around them, and the features' normalisation",
        [f"Command: `.venv/bin/python benchmarks/isolated_padding.py --run {args.run} --grammar {args.grammar}"
         f" --lucas {args.lucas}`", f"Machine: {machine()}",
         "WER with the export's word list; statistics of the per-utterance normalisation over all "
         "frames (as shipped) or over the clip's own frames only (the padding left out)."],
        ["set: padding", "normalised as shipped", "stats of the clip's own frames"], rows)


if __name__ == "__main__":
    main()
