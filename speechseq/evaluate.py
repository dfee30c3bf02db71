"""Score a model on a manifest: transcripts (or frame tags) against the references."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np

from speechseq import data, decoding, metrics, models, segments
from speechseq.corpora import Utterance
from speechseq.errors import SpeechseqError
from speechseq.features import FeatureConfig
from speechseq.files import read_json_object
from speechseq.lexicon import transcript_text
from speechseq.text import Vocabulary

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Scores:
    """Error rates over a set of utterances."""

    wer: float  # word error rate
    cer: float  # character error rate
    n: int  # utterances scored
    references: tuple[str, ...]
    hypotheses: tuple[str, ...]


def ctc_transcripts(
    predict: Callable,
    dataset,
    vocabulary: Vocabulary,
    subsampling: int,
) -> tuple[list[str], list[str]]:
    """Greedy transcripts of a `data.ctc_dataset` by `predict` (`models.inference(model)`), with
    their references, in batch order."""
    references, hypotheses = [], []
    for features, feature_lengths, labels, label_lengths in dataset:
        log_probs = predict(models.model_inputs(features, feature_lengths))
        lengths = models.output_lengths(feature_lengths.numpy(), subsampling)
        hypotheses += decoding.ctc_greedy_texts(log_probs.numpy(), lengths, vocabulary)
        references += [vocabulary.decode(l[:n]) for l, n in zip(labels.numpy(), label_lengths.numpy())]
    return references, hypotheses


def frame_predictions(predict: Callable, dataset) -> tuple[np.ndarray, np.ndarray]:
    """Reference and arg-max frame ids by `predict` (`models.inference(model)`) over the real
    frames of a `data.tagging_dataset`."""
    references, predictions = [], []
    for features, feature_lengths, frame_labels in dataset:
        probabilities = predict(models.model_inputs(features, feature_lengths)).numpy()
        for row, length in enumerate(feature_lengths.numpy()):
            references.append(frame_labels[row, :length].numpy())
            predictions.append(np.argmax(probabilities[row, :length], axis=-1))
    return np.concatenate(references), np.concatenate(predictions)


def score_ctc(
    model: keras.Model,
    utterances: Sequence[Utterance],
    vocabulary: Vocabulary,
    features: FeatureConfig,
    subsampling: int,
    batch_size: int = 32,
) -> Scores:
    """WER and CER of greedy CTC transcripts of `utterances` (hypotheses in their order)."""
    # One bucket keeps the manifest's order: hypothesis i belongs to utterances[i].
    options = data.PipelineOptions(batch_size=batch_size, buckets=1)
    dataset = data.ctc_dataset(utterances, vocabulary, features, options)
    references, hypotheses = ctc_transcripts(models.inference(model), dataset, vocabulary, subsampling)
    return _scores(references, hypotheses)


def score_run(directory, utterances: Sequence[Utterance], batch_size: int = 32) -> Scores:
    """WER and CER of a CTC run directory's best model (its final one if none is best)."""
    directory = Path(directory)
    settings = json.loads((directory / "run.json").read_text())
    chosen = directory / "best.keras" if (directory / "best.keras").exists() else directory / "model.keras"
    return score_ctc(
        models.load_model(chosen, compile=False),
        utterances,
        Vocabulary.load(directory / "vocabulary.json"),
        FeatureConfig.load(directory / "features.json"),
        settings["model"]["subsampling"],
        batch_size,
    )


def score_export(model, utterances: Sequence[Utterance], options=None) -> Scores:
    """WER and CER of an exported model (`saved_models/NAME[/VERSION]`) on `utterances`.

    A file that cannot be read counts as an empty transcript and is logged by name.
    """
    from speechseq.transcribe import Transcriber, TranscriberOptions

    transcriber = Transcriber(model, options or TranscriberOptions())
    words_text = transcript_text(transcriber.vocabulary)
    references, hypotheses = [], []
    for utterance, result in zip(utterances, transcriber.transcribe_files(u.audio for u in utterances)):
        if isinstance(result, Exception):
            log.warning("scored as empty: %s", result)
        hypotheses.append("" if isinstance(result, Exception) else result.text)
        references.append(words_text.normalize(utterance.text))
    return _scores(references, hypotheses)


def _scores(references: Sequence[str], hypotheses: Sequence[str]) -> Scores:
    return Scores(
        wer=metrics.word_error_rate(references, hypotheses),
        cer=metrics.character_error_rate(references, hypotheses),
        n=len(references),
        references=tuple(references),
        hypotheses=tuple(hypotheses),
    )


def score(model, utterances: Sequence[Utterance]) -> Scores:
    """Score a run directory (its best model) or an export, whichever `model` names."""
    model = Path(model)
    if (model / "run.json").exists():
        return score_run(model, utterances)
    return score_export(model, utterances)


def report(utterances: Sequence[Utterance], scores: Scores, worst: int = 10) -> dict:
    """Totals, a row per speaker, the worst utterances and every utterance's transcript, as one
    JSON-ready dict (`read_report` reads it back, so `speechseq compare` need not decode again)."""
    by_speaker: dict[str, list[int]] = {}
    for index, utterance in enumerate(utterances):
        by_speaker.setdefault(utterance.speaker or "(unknown)", []).append(index)
    per_speaker = {}
    for speaker, indices in sorted(by_speaker.items()):
        subset = _scores([scores.references[i] for i in indices], [scores.hypotheses[i] for i in indices])
        per_speaker[speaker] = {"wer": subset.wer, "cer": subset.cer, "n": subset.n}
    errors = [
        (metrics.word_errors(reference, hypothesis), index)
        for index, (reference, hypothesis) in enumerate(zip(scores.references, scores.hypotheses))
    ]
    ranked = sorted((e for e in errors if e[0] > 0), key=lambda e: (-e[0], e[1]))[:worst]
    return {
        "wer": scores.wer,
        "cer": scores.cer,
        "n": scores.n,
        "per_speaker": per_speaker,
        "worst": [
            {"audio": str(utterances[i].audio), "speaker": utterances[i].speaker, "word_errors": e,
             "reference": scores.references[i], "hypothesis": scores.hypotheses[i]}
            for e, i in ranked
        ],
        "utterances": [
            {"audio": str(u.audio), "speaker": u.speaker, "reference": reference, "hypothesis": hypothesis}
            for u, reference, hypothesis in zip(utterances, scores.references, scores.hypotheses, strict=True)
        ],
    }


def read_report(path) -> tuple[list[Utterance], Scores]:
    """The utterances and transcripts of a `speechseq evaluate --json` report saved to `path`;
    a file that is not one raises `SpeechseqError` naming it."""
    rows = read_json_object(path, "a `speechseq evaluate --json` report").get("utterances")
    keys = {"audio", "speaker", "reference", "hypothesis"}
    if not isinstance(rows, list) or not all(isinstance(row, dict) and keys <= set(row) for row in rows):
        raise SpeechseqError(f"{path}: not a `speechseq evaluate --json` report with its utterances "
                             f"(each needs {', '.join(sorted(keys))})")
    utterances = [Utterance(Path(row["audio"]), row["reference"], row["speaker"]) for row in rows]
    return utterances, _scores([row["reference"] for row in rows], [row["hypothesis"] for row in rows])


def format_report(values: dict) -> str:
    """`report` as a table for people."""
    lines = [f"WER {values['wer']:.2%}  CER {values['cer']:.2%}  on {values['n']} utterances", "",
             f"{'speaker':<32} {'n':>5} {'WER':>8} {'CER':>8}"]
    for speaker, row in values["per_speaker"].items():
        lines.append(f"{speaker:<32} {row['n']:>5} {row['wer']:>8.2%} {row['cer']:>8.2%}")
    if values["worst"]:
        lines += ["", "worst utterances:"]
        for row in values["worst"]:
            lines += [f"  {row['audio']} ({row['word_errors']} word errors)",
                      f"    ref: {row['reference']}", f"    hyp: {row['hypothesis']}"]
    return "\n".join(lines)


def score_tagging(model, utterances: Sequence[Utterance], collar: float = 0.1) -> dict:
    """Frame accuracy, per-class F1 and confusion matrix (raw arg-max frames: the model),
    and segment F1 with a `collar` in seconds (smoothed segments: what `tag` outputs),
    of an exported tagging model on `utterances` with reference `segments`."""
    from speechseq.tag import Tagger

    tagger = Tagger(model)
    tags = tagger.tags

    def frames_of(spans, count: int) -> np.ndarray:
        return segments.segment_frames(spans, count, tags, tagger.features)

    raw, smoothed = [], []  # per file: the model's arg-max frames; the segments `tag` writes
    for utterance, result in zip(utterances, tagger.tag_files(u.audio for u in utterances)):
        if isinstance(result, Exception):
            raise result
        reference = frames_of(utterance.segments, len(result.probabilities))
        raw.append((reference, result.probabilities.argmax(axis=1), (), ()))
        smoothed.append((reference, frames_of(result.segments, len(reference)), utterance.segments, result.segments))
    model_scores = metrics.tagging_scores(raw, tags.size, collar)
    written = metrics.tagging_scores(smoothed, tags.size, collar)
    return {
        "frame_accuracy": model_scores.frame_accuracy,
        "per_class_f1": {label: round(float(value), 4) for label, value in zip(tags.labels, model_scores.per_class_f1)},
        # The frames of the smoothed segments `speechseq tag` writes, against the reference.
        "smoothed_per_class_f1": {label: round(float(value), 4) for label, value in zip(tags.labels, written.per_class_f1)},
        "segment_f1": written.segment_f1,
        "collar_seconds": collar,
        "confusion": {"labels": list(tags.labels), "rows_reference_columns_hypothesis": model_scores.confusion.tolist()},
        "n": len(utterances),
    }


def score_tagging_export(run_directory, test_sets: dict[str, Sequence[Utterance]], export_to=None,
                         card: dict | None = None, tune_on: Sequence[Utterance] = ()) -> dict[str, dict]:
    """Export a tagging run (to `export_to`, else to a temporary folder), its smoothing
    tuned on `tune_on` if given (`tuning`), and score it on each named test set as
    `speechseq tag` runs it: name -> `score_tagging`'s figures."""
    import tempfile

    from speechseq import export, tuning

    def tuned(staging: Path) -> None:
        if tune_on:
            tuning.write(tuning.tune(staging, tune_on), staging, f"{len(tune_on)} dev utterances")

    trained = export.load_trained(run_directory)
    with tempfile.TemporaryDirectory() as scratch:
        version = export.write_version(trained, export_to or Path(scratch) / "model", card=card, finish=tuned)
        return {name: score_tagging(version, utterances) for name, utterances in test_sets.items()}
