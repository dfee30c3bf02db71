"""Score a model on a manifest: transcripts (or frame tags) against the references."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import keras

from speechseq import data, decoding, metrics, models
from speechseq.corpora import Utterance
from speechseq.features import FeatureConfig
from speechseq.text import Vocabulary


@dataclasses.dataclass(frozen=True)
class Scores:
    """Error rates over a set of utterances."""

    wer: float  # word error rate
    cer: float  # character error rate
    n: int  # utterances scored
    references: tuple[str, ...]
    hypotheses: tuple[str, ...]


def ctc_transcripts(
    model: keras.Model,
    dataset,
    vocabulary: Vocabulary,
    subsampling: int,
) -> tuple[list[str], list[str]]:
    """Greedy transcripts of a `data.ctc_dataset`, with their references, in batch order."""
    references, hypotheses = [], []
    for features, feature_lengths, labels, label_lengths in dataset:
        log_probs = model(models.model_inputs(features, feature_lengths), training=False)
        lengths = models.output_lengths(feature_lengths.numpy(), subsampling)
        hypotheses += decoding.ctc_greedy_texts(log_probs.numpy(), lengths, vocabulary)
        references += [vocabulary.decode(l[:n]) for l, n in zip(labels.numpy(), label_lengths.numpy())]
    return references, hypotheses


def score_ctc(
    model: keras.Model,
    utterances: Sequence[Utterance],
    vocabulary: Vocabulary,
    features: FeatureConfig,
    subsampling: int,
    batch_size: int = 32,
) -> Scores:
    """WER and CER of greedy CTC transcripts of `utterances`."""
    dataset = data.ctc_dataset(utterances, vocabulary, features, data.PipelineOptions(batch_size=batch_size))
    references, hypotheses = ctc_transcripts(model, dataset, vocabulary, subsampling)
    return Scores(
        wer=metrics.word_error_rate(references, hypotheses),
        cer=metrics.character_error_rate(references, hypotheses),
        n=len(references),
        references=tuple(references),
        hypotheses=tuple(hypotheses),
    )


def score_run(directory, utterances: Sequence[Utterance], batch_size: int = 32) -> Scores:
    """WER and CER of a CTC run directory's best model (its final one if none is best)."""
    directory = Path(directory)
    settings = json.loads((directory / "run.json").read_text())
    chosen = directory / "best.keras" if (directory / "best.keras").exists() else directory / "model.keras"
    return score_ctc(
        keras.saving.load_model(chosen),
        utterances,
        Vocabulary.load(directory / "vocabulary.json"),
        FeatureConfig.load(directory / "features.json"),
        settings["model"]["subsampling"],
        batch_size,
    )
