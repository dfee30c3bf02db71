"""Export a trained model as a SavedModel that stock TF Serving runs as it is.

Raw audio in, text (or frame tags) out: the feature layer, the Keras model and the
greedy CTC decoder all live in the graph, built from core TensorFlow ops only. A
version is written to `saved_models/NAME/.N.partial-*` and renamed to
`saved_models/NAME/N` in one step once complete, so TF Serving (which watches for
numeric folder names) never sees half of one.

Layout of a version folder:
    saved_model.pb, variables/         the graph and its weights
    assets/vocabulary.json | tags.json what the outputs mean (blank id recorded)
    assets/features.json               how audio becomes frames
    assets/model_card.json             sample rate, architecture, data, metrics, license
    assets/run.json                    the training settings
    assets.extra/model.keras           the Keras model, for fine-tuning
    assets.extra/tf_serving_warmup_requests, rest_request.json (see `serving`)
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from speechseq import decoding, models
from speechseq.errors import SpeechseqError
from speechseq.features import FeatureConfig, feature_layer
from speechseq.files import current_umask
from speechseq.text import BLANK_ID, TagSet, Vocabulary


class ExportError(SpeechseqError):
    """An export that cannot be made, with the reason."""


# ---- the trained model an export starts from --------------------------------------------


@dataclasses.dataclass(frozen=True)
class Trained:
    """A Keras model with everything needed to use it on audio."""

    model: keras.Model
    classes: Vocabulary | TagSet  # what its outputs mean
    features: FeatureConfig
    settings: dict  # the run's settings (run.json): [data] [features] [model] [train]
    keras_path: Path  # the .keras file it came from
    folder: Path  # the run directory or the export's assets folder

    @property
    def subsampling(self) -> int:
        return int(self.settings["model"]["subsampling"])

    @property
    def task(self) -> str:
        return task_of(self.classes)


@dataclasses.dataclass(frozen=True)
class TrainedFiles:
    """Where a trained model lies and what it was trained with, read without building it
    (a model built outside a distribution strategy's scope cannot train inside it)."""

    keras_path: Path
    classes: Vocabulary | TagSet
    features: FeatureConfig
    settings: dict  # run.json
    folder: Path

    @property
    def task(self) -> str:
        return task_of(self.classes)


def trained_files(path: str | os.PathLike) -> TrainedFiles:
    """A run directory, a `.keras` file in one, or an export version folder -> its files.

    A run directory gives its best model by dev WER (its final one if it has no best);
    an export gives the Keras model stored beside its graph.
    """
    path = Path(path)
    if path.is_dir() and (path / "saved_model.pb").exists():
        keras_path, folder = path / "assets.extra" / "model.keras", path / "assets"
    elif path.is_dir():
        best = path / "best.keras"
        keras_path, folder = (best if best.exists() else path / "model.keras"), path
    else:
        keras_path, folder = path, path.parent
    if not keras_path.exists():
        raise ExportError(f"{path}: no trained model (looked for {keras_path})")
    for needed in ("features.json", "run.json"):
        if not (folder / needed).exists():
            raise ExportError(f"{path}: {folder / needed} is missing: not a speechseq run directory")
    return TrainedFiles(keras_path, load_classes(folder), FeatureConfig.load(folder / "features.json"),
                        json.loads((folder / "run.json").read_text()), folder)


def load_trained(path: str | os.PathLike) -> Trained:
    """`trained_files(path)` with its Keras model loaded."""
    files = trained_files(path)
    return Trained(
        model=models.load_model(files.keras_path, compile=False),  # inference; training recompiles
        classes=files.classes,
        features=files.features,
        settings=files.settings,
        keras_path=files.keras_path,
        folder=files.folder,
    )


def task_of(classes: Vocabulary | TagSet) -> str:
    """"frames" for a model that tags frames, "ctc" for one that transcribes."""
    return "frames" if isinstance(classes, TagSet) else "ctc"


def load_classes(folder: Path) -> Vocabulary | TagSet:
    """What a model's outputs mean: the `tags.json` or `vocabulary.json` in `folder`."""
    if (folder / "tags.json").exists():
        return TagSet.load(folder / "tags.json")
    if (folder / "vocabulary.json").exists():
        return Vocabulary.load(folder / "vocabulary.json")
    raise ExportError(f"neither vocabulary.json nor tags.json in {folder}: not a speechseq model")


# ---- a published export, opened for inference ----------------------------------------------


@dataclasses.dataclass(frozen=True)
class Published:
    """An export's graph, loaded, with what its inputs and outputs mean."""

    folder: Path  # the version folder
    classes: Vocabulary | TagSet
    features: FeatureConfig
    settings: dict  # the training settings (assets/run.json)
    loaded: Any  # the loaded SavedModel: it owns the variables its signatures use

    @property
    def signatures(self):
        return self.loaded.signatures

    @property
    def name(self) -> str:
        return self.folder.parent.name

    @property
    def version(self) -> int:
        return int(self.folder.name) if self.folder.name.isdigit() else 0

    @property
    def task(self) -> str:
        return task_of(self.classes)


def open_published(model: str | os.PathLike) -> Published:
    """`saved_models/NAME` (its latest version) or a version folder, loaded for inference."""
    folder = resolve_version(model)
    assets = folder / "assets"
    return Published(
        folder=folder,
        classes=load_classes(assets),
        features=FeatureConfig.load(assets / "features.json"),
        settings=json.loads((assets / "run.json").read_text()),
        loaded=tf.saved_model.load(str(folder)),
    )


# ---- audio inside the graph --------------------------------------------------------------


def resample_in_graph(signal, rate, target_rate: int):
    """Resample a 1-D float signal from `rate` (a scalar tensor) to `target_rate` Hz.

    Band-limited resampling in the frequency domain (the spectrum is cut or padded
    with zeros), with core ops only, so TF Serving can run it.
    """
    rate = tf.cast(rate, tf.int64)

    def by_fft():
        n = tf.size(signal, out_type=tf.int64)
        new_n = tf.cast(tf.round(tf.cast(n, tf.float64) * target_rate / tf.cast(rate, tf.float64)), tf.int64)
        new_n = tf.maximum(new_n, 1)
        spectrum = tf.signal.rfft(signal)
        have, keep = n // 2 + 1, new_n // 2 + 1
        spectrum = tf.pad(spectrum[: tf.minimum(have, keep)], [[0, tf.maximum(keep - have, 0)]])
        scale = tf.cast(new_n, tf.float32) / tf.cast(tf.maximum(n, 1), tf.float32)
        return tf.signal.irfft(spectrum, fft_length=tf.cast(new_n, tf.int32)[tf.newaxis]) * scale

    return tf.cond(tf.equal(rate, target_rate), lambda: signal, by_fft)


def decode_wavs(wavs, target_rate: int):
    """WAV file bytes [batch] (16-bit PCM, any rate, any channels) -> padded mono
    waveforms [batch, samples] at `target_rate` and their lengths [batch]."""

    def one(wav):
        samples, rate = tf.audio.decode_wav(wav)
        too_long = tf.debugging.assert_less_equal(
            tf.cast(tf.shape(samples)[0], tf.int64), tf.cast(rate, tf.int64) * MAX_REQUEST_SECONDS,
            message=f"a WAV may hold at most {MAX_REQUEST_SECONDS} s: send longer audio in windows")
        with tf.control_dependencies([too_long]):
            return resample_in_graph(tf.reduce_mean(samples, axis=1), rate, target_rate)

    waveforms = tf.map_fn(
        one, wavs, fn_output_signature=tf.RaggedTensorSpec(shape=[None], dtype=tf.float32, ragged_rank=0)
    )
    return waveforms.to_tensor(), tf.cast(waveforms.row_lengths(), tf.int32)


# Longest audio one request may carry. Windows of this length keep a request's memory
# and time bounded; `speechseq transcribe` sends long files in 30 s windows.
MAX_REQUEST_SECONDS = 600


def checked_audio(audio, audio_length, sample_rate: int):
    """The serving inputs, refused with InvalidArgument when they cannot be right:
    lengths negative or past the padded audio, one length per utterance missing, or
    rows longer than `MAX_REQUEST_SECONDS` at `sample_rate`."""
    audio_length = tf.cast(audio_length, tf.int32)
    checks = [
        tf.debugging.assert_less_equal(tf.shape(audio)[1], MAX_REQUEST_SECONDS * sample_rate,
                                       message=f"audio rows may be at most {MAX_REQUEST_SECONDS} s long: "
                                               "send longer audio in windows"),
        tf.debugging.assert_equal(tf.shape(audio_length)[0], tf.shape(audio)[0],
                                  message="audio_length needs one length per row of audio"),
        tf.debugging.assert_non_negative(audio_length, message="audio_length must not be negative"),
        tf.debugging.assert_less_equal(audio_length, tf.shape(audio)[1],
                                       message="audio_length is longer than the audio given"),
        tf.debugging.assert_all_finite(audio, message="audio holds NaN or infinite samples"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(audio), tf.identity(audio_length)


# Loudest sample, as a fraction of full scale, of audio with nothing in it: -80 dBFS,
# three steps of 16-bit PCM. Normalised per utterance, digital silence looks like
# average speech to a model, so a transcription model reads no words from it.
SILENCE_PEAK = 1e-4


def is_silent(audio, audio_length):
    """[batch] bool: rows whose real samples all stay below `SILENCE_PEAK`."""
    real = tf.sequence_mask(audio_length, tf.shape(audio)[1])
    return tf.reduce_max(tf.where(real, tf.abs(audio), 0.0), axis=1) < SILENCE_PEAK


def _audio_specs():
    return [
        tf.TensorSpec([None, None], tf.float32, name="audio"),
        tf.TensorSpec([None], tf.int32, name="audio_length"),
    ]


_WAV_SPEC = [tf.TensorSpec([None], tf.string, name="wav")]


# ---- serving modules ---------------------------------------------------------------------


class _ServingModule(tf.Module):
    """What both serving modules share: a Keras model and its feature layer, saved as
    their variables alone.

    Why the Keras objects are held untracked and their `tf.Variable`s tracked instead: a
    Keras 3 variable is a wrapper around a `tf.Variable`. Saved through a `tf.Module`
    that tracks the Keras model, the checkpoint and the saver's restore op follow the
    wrappers (VarHandleOps named `Variable`, `Variable_1`, ...), while the traced
    signatures capture the wrapped variables' own handles, which `tf.saved_model.save`
    writes as a second set of VarHandleOps under the Keras names
    (`forward_gru/gru_cell/bias`) that nothing restores. TF2's object loader rebinds
    the captures through the object graph and never notices; TF Serving imports the
    MetaGraph into a session, runs the restore op, then the signatures, which fail with
    "Could not find variable ..." (tensorflow/serving#2250, keras-team/keras#20095).
    With the wrapped variables tracked and nothing else, the graph has one VarHandleOp
    per variable, restored by the saver and read by the signatures, and the
    checkpoint holds each weight once.
    """

    def __init__(self, trained: Trained, name: str):
        super().__init__(name=name)
        self._hold(trained.model, feature_layer(trained.features, name="frontend"))
        self.served_variables = [v.value for layer in (self.model, self.frontend) for v in layer.variables]

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _hold(self, model: keras.Model, frontend: keras.Layer) -> None:
        self.model, self.frontend = model, frontend


class CTCServing(_ServingModule):
    """Signatures of a transcription model: audio or WAV bytes -> text with token times."""

    def __init__(self, trained: Trained):
        super().__init__(trained, name="speechseq_ctc")
        config = trained.features
        self._sample_rate = config.sample_rate
        self._subsampling = trained.subsampling
        self._seconds_per_output = trained.subsampling * config.hop_length / config.sample_rate
        vocabulary = trained.classes
        self._symbols = tf.constant(["" if i == BLANK_ID else vocabulary.id_to_symbol(i) for i in range(vocabulary.size)])
        feature_spec = [
            tf.TensorSpec([None, None, config.feature_dim], tf.float32, name="features"),
            tf.TensorSpec([None], tf.int32, name="feature_lengths"),
        ]
        self.transcribe = tf.function(self._transcribe_audio, input_signature=_audio_specs())
        self.transcribe_wav = tf.function(self._transcribe_wav, input_signature=_WAV_SPEC)
        self.log_probs = tf.function(self._log_probs_of_features, input_signature=feature_spec)
        self.audio_log_probs = tf.function(self._log_probs_of_audio, input_signature=_audio_specs())

    def signatures(self) -> dict:
        # The functions, not their concrete functions: tf.saved_model.save traces them
        # again under its save context anyway, so tracing them here first made the export
        # half as slow again (digits model: 15 s, 10 s without). Each signature calls the
        # next as a function (transcribe_wav -> transcribe -> audio_log_probs -> log_probs),
        # so the model is traced and saved once: 56 functions in the digits export instead
        # of 112, loaded in half the time (0.32 s instead of 0.65 s).
        return {"serving_default": self.transcribe, "transcribe_wav": self.transcribe_wav,
                "log_probs": self.log_probs, "audio_log_probs": self.audio_log_probs}

    def _log_probs_of_features(self, features, feature_lengths):
        log_probs = self.model(models.model_inputs(features, feature_lengths), training=False)
        return {"log_probs": log_probs, "output_lengths": models.output_lengths(feature_lengths, self._subsampling)}

    def _log_probs_of_audio(self, audio, audio_length):
        audio, audio_length = checked_audio(audio, audio_length, self._sample_rate)
        outputs = self.log_probs(*self.frontend(audio, audio_length))  # one traced model for all signatures
        # Silent rows get no output frames, so every decoder reads nothing from them.
        outputs["output_lengths"] = tf.where(is_silent(audio, audio_length), 0, outputs["output_lengths"])
        return outputs

    def _transcribe_audio(self, audio, audio_length):
        outputs = self.audio_log_probs(audio, audio_length)
        alignment = decoding.greedy_alignment(outputs["log_probs"], outputs["output_lengths"])
        tokens = tf.ragged.map_flat_values(tf.gather, self._symbols, alignment.ids)
        seconds = self._seconds_per_output
        count = tf.cast(alignment.ids.row_lengths(), tf.int32)
        confidence = tf.reduce_sum(alignment.confidence, axis=1) / tf.maximum(tf.cast(count, tf.float32), 1.0)
        return {
            "transcript": tf.strings.strip(tf.strings.reduce_join(tokens, axis=1)),
            "confidence": confidence,
            "tokens": tokens.to_tensor(default_value=""),
            "token_start": (tf.cast(alignment.first_frame, tf.float32) * seconds).to_tensor(default_value=-1.0),
            "token_end": (tf.cast(alignment.end_frame, tf.float32) * seconds).to_tensor(default_value=-1.0),
            "token_confidence": alignment.confidence.to_tensor(default_value=0.0),
            "token_count": count,
        }

    def _transcribe_wav(self, wav):
        return self.transcribe(*decode_wavs(wav, self._sample_rate))


class TaggingServing(_ServingModule):
    """Signatures of a frame-tagging model: audio or WAV bytes -> a tag for every frame."""

    def __init__(self, trained: Trained):
        super().__init__(trained, name="speechseq_tagging")
        self._sample_rate = trained.features.sample_rate
        self._tag_names = tf.constant(list(trained.classes.labels))
        self._background = tf.one_hot(trained.classes.background_id, len(trained.classes.labels))
        self.tag = tf.function(self._tag_audio, input_signature=_audio_specs())
        self.tag_wav = tf.function(self._tag_wav, input_signature=_WAV_SPEC)

    def signatures(self) -> dict:  # the functions, traced once inside the save (see CTCServing)
        return {"serving_default": self.tag, "tag": self.tag, "tag_wav": self.tag_wav}

    def _tag_audio(self, audio, audio_length):
        audio, audio_length = checked_audio(audio, audio_length, self._sample_rate)
        features, frame_lengths = self.frontend(audio, audio_length)
        probabilities = self.model(models.model_inputs(features, frame_lengths), training=False)
        # Silent rows are all background (see SILENCE_PEAK).
        silent = is_silent(audio, audio_length)[:, tf.newaxis, tf.newaxis]
        probabilities = tf.where(silent, tf.cast(self._background, probabilities.dtype), probabilities)
        real = tf.sequence_mask(frame_lengths, tf.shape(probabilities)[1])
        ids = tf.where(real, tf.argmax(probabilities, axis=-1, output_type=tf.int32), -1)
        names = tf.where(real, tf.gather(self._tag_names, tf.maximum(ids, 0)), "")
        return {"tag_ids": ids, "tags": names, "probabilities": probabilities, "frame_length": frame_lengths}

    def _tag_wav(self, wav):
        return self.tag(*decode_wavs(wav, self._sample_rate))  # one traced model for both signatures


def serving_module(trained: Trained) -> CTCServing | TaggingServing:
    return TaggingServing(trained) if trained.task == "frames" else CTCServing(trained)


# ---- versions and the atomic write -------------------------------------------------------


def versions(model_root: str | os.PathLike) -> list[int]:
    """The published versions under `saved_models/NAME`, oldest first."""
    root = Path(model_root)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and p.is_dir())


def resolve_version(model: str | os.PathLike) -> Path:
    """`saved_models/NAME` -> its latest version folder; a version folder -> itself."""
    path = Path(model)
    if (path / "saved_model.pb").exists():
        return path
    published = versions(path)
    if not published:
        raise ExportError(f"{path}: no SavedModel and no numbered versions in it")
    return path / str(published[-1])


def model_card(trained: Trained, name: str, version: int, extra: dict | None = None) -> dict:
    """What a user of the export needs to know about it, for `assets/model_card.json`."""
    settings = trained.settings
    card = {
        "name": name,
        "version": version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "task": "transcription (character CTC)" if trained.task == "ctc" else "frame tagging",
        "sample_rate": trained.features.sample_rate,
        "input": "mono float32 audio in [-1, 1] at sample_rate, or 16-bit PCM WAV bytes at any rate",
        "architecture": {
            "encoder": settings["model"],
            "features": trained.features.to_dict(),
            "parameters": int(trained.model.count_params()),
        },
        "training": {"settings": settings["train"], "data": _training_data(trained)},
        "metrics": _metrics(trained.folder),
        "license": "unspecified: set it with --card",
    }
    # A re-export (from a version's folder) keeps the words its card was given: what the
    # model is, its licence, its data's attribution, the command that trained it.
    earlier = _json_file(trained.folder / "model_card.json")
    card |= {key: value for key, value in earlier.items() if key not in card or key == "license"}
    if earlier:
        card["exported_from"] = f"{earlier.get('name')}/{earlier.get('version')} (the same weights)"
    if (trained.folder / "smoothing.json").exists():  # a re-export ships the same smoothing
        card["smoothing"] = _json_file(trained.folder / "smoothing.json")
    if settings["train"].get("init_from"):
        card["fine_tuned"] = {
            "from": settings["train"]["init_from"],
            "on": settings["data"]["train"],
            "frozen": settings["train"].get("freeze", ""),
            "before_and_after": _json_file(trained.folder / "report.json"),
        }
    return card | (extra or {})


def _training_data(trained: Trained) -> dict:
    audit_file = trained.folder / "audit.json"
    summary = json.loads(audit_file.read_text()) if audit_file.exists() else {}
    return {
        split: {key: summary.get(split, {}).get(key) for key in ("good", "hours", "speakers")}
        | {"manifest": trained.settings["data"].get(split)}
        for split in ("train", "dev")
        if trained.settings["data"].get(split)
    }


def _metrics(folder: Path) -> dict:
    return _json_file(folder / "results.json")


def _json_file(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def write_version(
    trained: Trained,
    model_root: str | os.PathLike,
    version: int | None = None,
    card: dict | None = None,
    finish: Callable[[Path], None] | None = None,
) -> Path:
    """Export `trained` as `model_root/<version>` (the next free integer by default).

    `finish(staging_folder)` runs on the complete export before it is published (to
    verify it, or add files to `assets.extra`); if it raises, nothing is published.
    """
    root = Path(model_root)
    root.mkdir(parents=True, exist_ok=True)
    version = version if version is not None else (versions(root) or [0])[-1] + 1
    if version < 1:
        raise ExportError(f"version must be a positive integer, got {version}")
    target = root / str(version)
    if target.exists():
        raise ExportError(f"{target} exists: a published version is never overwritten (choose --version)")
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{version}.partial-"))
    try:
        module = serving_module(trained)
        tf.saved_model.save(module, str(staging), signatures=module.signatures())
        _write_assets(trained, staging, name=root.name, version=version, card=card)
        if finish is not None:
            finish(staging)
        _sync_tree(staging)
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp's 0700 would lock out TF Serving's user
        os.rename(staging, target)  # atomic on one filesystem; fails if target appeared meanwhile
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, (OSError, tf.errors.OpError)):  # a full disk, say
            reason = error.message if isinstance(error, tf.errors.OpError) else error.strerror or error
            raise ExportError(f"cannot write {target}: {reason}; nothing was published") from None
        raise
    return target


def _write_assets(trained: Trained, folder: Path, name: str, version: int, card: dict | None) -> None:
    assets, extra = folder / "assets", folder / "assets.extra"
    assets.mkdir(exist_ok=True)
    extra.mkdir(exist_ok=True)
    trained.classes.save(assets / ("tags.json" if trained.task == "frames" else "vocabulary.json"))
    trained.features.save(assets / "features.json")
    (assets / "run.json").write_text(json.dumps(trained.settings, indent=2) + "\n")
    (assets / "model_card.json").write_text(
        json.dumps(model_card(trained, name, version, card), indent=2) + "\n"
    )
    for kept in ("results.json", "audit.json", "report.json", "smoothing.json", "grammar.txt", "grammar.json"):
        # re-exports keep them (a grammar given to the export replaces the earlier one)
        if (trained.folder / kept).exists():
            shutil.copyfile(trained.folder / kept, assets / kept)
    trained.model.save(extra / "model.keras")  # loaded uncompiled: weights without optimizer state


def _sync_tree(folder: Path) -> None:
    """Flush every file to disk before the rename publishes them."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as file:
                os.fsync(file.fileno())


__all__ = [
    "CTCServing",
    "ExportError",
    "Published",
    "TaggingServing",
    "Trained",
    "load_classes",
    "task_of",
    "load_trained",
    "open_published",
    "model_card",
    "resolve_version",
    "versions",
    "write_version",
]
