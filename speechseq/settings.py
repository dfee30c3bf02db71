"""A training run's settings: what to train on (`DataConfig`), how (`TrainConfig`), and
the resolved whole (`Run`) that `runfile` builds and `train.fit` takes."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from speechseq import data, models
from speechseq.errors import SpeechseqError
from speechseq.features import FeatureConfig

TASKS = ("ctc", "frames")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What to train on."""

    train: str = ""  # training manifest (JSON Lines)
    dev: str = ""  # validation manifest; "" = none (no best-model selection)
    vocabulary: str = ""  # vocabulary JSON; "" = English letters, space and apostrophe
    digits_as_words: bool = True  # with the default vocabulary: "42" -> "four two"
    background: str = "silence"  # frames task: label of time no segment covers
    max_seconds: float = 0.0  # skip longer utterances; 0 = no limit


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train."""

    task: str = "ctc"  # "ctc" (transcripts) or "frames" (per-frame tags)
    batch_size: int = 16  # utterances per batch, per replica
    max_batch_frames: int = 0  # cap on padded frames per batch (long utterances); 0 = none
    epochs: int = 30  # passes over the training data
    steps_per_epoch: int = 0  # batches per epoch; 0 = one pass over the data
    learning_rate: float = 1e-3  # peak learning rate, after warm-up
    warmup_steps: int = 200  # linear warm-up from 0, in optimizer steps
    schedule: str = "cosine"  # after warm-up: "cosine" decay to final_lr_fraction, or "constant"
    final_lr_fraction: float = 0.05  # cosine: final learning rate / peak
    optimizer: str = "adam"  # "adam" or "adamw"
    weight_decay: float = 1e-4  # adamw only
    clipnorm: float = 5.0  # gradient norm clipping per variable; 0 = none
    mixed_precision: bool = False  # float16 compute with loss scaling (GPU)
    spec_augment: bool = True  # time and frequency masking of training batches
    noise_snrs: str = ""  # noise added to training audio at these SNRs (dB), e.g. "0,5,10,20"; "" = none
    noise_probability: float = 0.5  # share of training utterances that get noise
    buckets: int = 4  # length buckets
    feature_cache: str = ""  # keep each utterance's features after epoch 1: "memory", a file prefix, "" = none
    jit_compile: bool = True  # XLA; batches are padded to fixed bucket lengths
    early_stopping: int = 10  # epochs without validation progress before stopping; 0 = never
    class_weights: str = ""  # frames task: "balanced" or "" (all 1)
    distribution: str = "auto"  # "auto", "one" (default device), "mirrored" (local devices), "multiworker"
    seed: int = 0  # weights, shuffling and augmentation
    init_from: str = ""  # start from this run, .keras file or export's weights (see `starting`; more layers deepen it)
    freeze: str = ""  # with init_from: layers kept as they are, e.g. "front,encoder:2" (see `starting`)

    def noise(self) -> data.AddNoise | None:
        """The waveform noise these settings ask for, or None."""
        if not self.noise_snrs.strip():
            return None
        try:
            snrs = tuple(float(part) for part in self.noise_snrs.split(","))
        except ValueError:
            raise SpeechseqError(f"noise_snrs must be comma-separated numbers (dB), got {self.noise_snrs!r}") from None
        if not all(math.isfinite(snr) for snr in snrs):
            raise SpeechseqError(f"noise_snrs must be finite, got {self.noise_snrs!r}")
        return data.AddNoise(snrs, self.noise_probability)

    def __post_init__(self):
        if not 0 <= self.noise_probability <= 1:
            raise SpeechseqError(f"noise_probability must be a probability in [0, 1], got {self.noise_probability}")
        if self.noise() and self.feature_cache:  # (noise() also checks noise_snrs)
            raise SpeechseqError("noise_snrs draws new noise every epoch, feature_cache would keep the first draw: "
                             "set one of them, not both")
        if self.task not in TASKS:
            raise SpeechseqError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise SpeechseqError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.distribution not in ("auto", "one", "mirrored", "multiworker"):
            raise SpeechseqError(f"distribution must be auto, one, mirrored or multiworker, got {self.distribution!r}")
        if self.schedule not in ("cosine", "constant"):
            raise SpeechseqError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if min(self.batch_size, self.epochs, self.buckets) < 1:
            raise SpeechseqError("batch_size, epochs and buckets must be at least 1")
        if min(self.steps_per_epoch, self.warmup_steps, self.early_stopping, self.max_batch_frames) < 0:
            raise SpeechseqError("steps_per_epoch, warmup_steps, early_stopping and max_batch_frames must not be negative")
        if not 0 < self.learning_rate < math.inf or not 0 < self.final_lr_fraction <= 1:
            raise SpeechseqError(f"need a positive learning_rate and 0 < final_lr_fraction <= 1, got "
                             f"{self.learning_rate}, {self.final_lr_fraction}")
        if not (0 <= self.clipnorm < math.inf and 0 <= self.weight_decay < math.inf):
            raise SpeechseqError(f"clipnorm and weight_decay must be finite and not negative, got "
                             f"{self.clipnorm}, {self.weight_decay}")


@dataclasses.dataclass(frozen=True)
class Run:
    """Everything `fit` needs, resolved from the settings and the manifests."""

    directory: Path
    data: DataConfig
    features: FeatureConfig
    encoder: models.EncoderConfig
    train: TrainConfig

    def settings(self) -> dict[str, dict]:
        return {
            "data": dataclasses.asdict(self.data),
            "features": self.features.to_dict(),
            "model": self.encoder.to_dict(),
            "train": dataclasses.asdict(self.train),
        }
