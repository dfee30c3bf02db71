"""What TF Serving runs and sees of an export: the `tf.Module`s whose signatures are
exported (`CTCServing`, `TaggingServing`) with the audio ops inside their graphs, and the
SignatureDefs, REST requests and warmup records of a written export.

Signatures are read from `saved_model.pb` itself (the SignatureDefs TF Serving
serves), not from a reloaded Python object, and `SessionModel` runs them the way TF
Serving's model server does: the MetaGraph imported into a TF1-style session, the
saver's restore op run, then `Session.run` on each SignatureDef's tensor names.
Requests follow TF Serving's REST API: `POST /v1/models/NAME[/versions/N]:predict`
with `signature_name` and `instances` (row format), binary strings as `{"b64": ...}`.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from typing import TYPE_CHECKING, Protocol

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from speechseq import decoding, models
from speechseq.errors import SpeechseqError
from speechseq.features import FeatureConfig, feature_layer
from speechseq.text import BLANK_ID, TagSet, Vocabulary

if TYPE_CHECKING:
    from speechseq.grammar_graph import GraphGrammar

WARMUP_FILE = "tf_serving_warmup_requests"  # in assets.extra: TF Serving replays it at load
REST_PORT = 8501  # TF Serving's default REST port


def signature_defs(version_dir: str | os.PathLike) -> dict:
    """name -> SignatureDef of the export's serving graph."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(version_dir) / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise SpeechseqError(f"{version_dir}: no MetaGraph tagged 'serve'")


class SessionModel:
    """An export loaded as TF Serving loads it (`LoadSavedModel`), not with TF2's
    object loader: a graph and session of its own, the variables restored by the
    MetaGraph's saver, each signature run by the tensor names its SignatureDef gives.

    `tf.saved_model.load` resolves a function's captured variables through the saved
    object graph, so an export can run there and still fail here; this is the test
    that matters for TF Serving.
    """

    def __init__(self, version_dir: str | os.PathLike):
        self.folder = Path(version_dir)
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph)
        with self._graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self._session, ["serve"], str(self.folder))
        self.signature_defs = dict(meta_graph.signature_def)

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`Session.run` of one signature: its outputs by key, as numpy arrays."""
        signature = self.signature_defs[signature_name]
        if set(inputs) != set(signature.inputs):
            raise SpeechseqError(f"signature {signature_name!r} takes {sorted(signature.inputs)}, got {sorted(inputs)}")
        feeds = {signature.inputs[key].name: value for key, value in inputs.items()}
        fetches = {key: info.name for key, info in signature.outputs.items()}
        return self._session.run(fetches, feeds)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "SessionModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shape(tensor_info) -> str:
    if tensor_info.tensor_shape.unknown_rank:
        return "unknown_rank"
    return str(tuple(d.size for d in tensor_info.tensor_shape.dim))


def describe(version_dir: str | os.PathLike) -> str:
    """The signatures in the layout of `saved_model_cli show --all` (-1: any size)."""
    lines = ["MetaGraphDef with tag-set: 'serve' contains the following SignatureDefs:", ""]
    for name, signature in sorted(signature_defs(version_dir).items()):
        if name.startswith("__"):
            continue
        lines.append(f"signature_def['{name}']:")
        for title, tensors in (("input", signature.inputs), ("output", signature.outputs)):
            lines.append(f"  The given SavedModel SignatureDef contains the following {title}(s):")
            for key, info in sorted(tensors.items()):
                lines += [
                    f"    {title}s['{key}'] tensor_info:",
                    f"        dtype: {_dtype_name(info.dtype)}",
                    f"        shape: {_shape(info)}",
                    f"        name: {info.name}",
                ]
        lines += [f"  Method name is: {signature.method_name}", ""]
    return "\n".join(lines)


def _dtype_name(enum: int) -> str:
    return types_pb2.DataType.Name(enum)


def rest_request(signature_name: str, wavs: list[bytes] | None = None, audio: list[np.ndarray] | None = None) -> dict:
    """A TF Serving REST `:predict` body: WAV bytes for `transcribe_wav`/`tag_wav`, or
    waveforms (padded to one length, with their true lengths) for `serving_default`."""
    if wavs is not None:
        instances = [{"wav": {"b64": base64.b64encode(w).decode("ascii")}} for w in wavs]
    else:
        width = max(len(a) for a in audio)
        instances = [
            {"audio": np.pad(a, (0, width - len(a))).round(6).tolist(), "audio_length": len(a)} for a in audio
        ]
    return {"signature_name": signature_name, "instances": instances}


def curl_command(name: str, request_file: str | os.PathLike, host: str = "localhost") -> str:
    """The command that sends `request_file` to a TF Serving container serving `name`."""
    return (
        f"curl -s -X POST http://{host}:{REST_PORT}/v1/models/{name}:predict "
        f"-H 'Content-Type: application/json' -d @{request_file}"
    )


def write_warmup(version_dir: str | os.PathLike, model_name: str, examples: dict[str, dict[str, np.ndarray]]) -> Path:
    """Write `assets.extra/tf_serving_warmup_requests`: one PredictionLog per signature.

    `examples`: signature name -> its inputs (numpy arrays with a batch dimension).
    TF Serving runs them when it loads the version, so the first real request does
    not pay for graph warm-up.
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = Path(version_dir) / "assets.extra" / WARMUP_FILE
    path.parent.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in examples.items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup(version_dir: str | os.PathLike) -> list:
    """The PredictionLogs of an export's warmup file (what TF Serving would replay)."""
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for record in tf.data.TFRecordDataset(str(Path(version_dir) / "assets.extra" / WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs


def write_rest_request(version_dir: str | os.PathLike, body: dict) -> Path:
    path = Path(version_dir) / "assets.extra" / "rest_request.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(body) + "\n")
    return path


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


class Servable(Protocol):
    """What a serving module is made from: `export.Trained` is one."""

    model: keras.Model
    classes: Vocabulary | TagSet
    features: FeatureConfig

    @property
    def subsampling(self) -> int: ...

    @property
    def task(self) -> str: ...


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

    def __init__(self, trained: Servable, name: str):
        super().__init__(name=name)
        self._hold(trained.model, feature_layer(trained.features, name="frontend"))
        self.served_variables = [v.value for layer in (self.model, self.frontend) for v in layer.variables]

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _hold(self, model: keras.Model, frontend: keras.Layer) -> None:
        self.model, self.frontend = model, frontend


class CTCServing(_ServingModule):
    """Signatures of a transcription model: audio or WAV bytes -> text with token times.

    With `words` (the search of the word list the export ships), `transcript` holds the
    list's words, found in the graph as `speechseq transcribe` finds them, with `words`,
    `word_start`, `word_end`, `word_confidence` and `word_count` beside it; the token
    outputs stay the model's own greedy characters.
    """

    def __init__(self, trained: Servable, words: "GraphGrammar | None" = None):
        super().__init__(trained, name="speechseq_ctc")
        self._words = words
        config = trained.features
        self._sample_rate = config.sample_rate
        self._subsampling = trained.subsampling
        self._seconds_per_output = config.seconds_per_frame(trained.subsampling)
        vocabulary = trained.classes
        self._symbols = tf.constant(["" if i == BLANK_ID else vocabulary.id_to_symbol(i) for i in range(vocabulary.size)])
        feature_spec = [
            tf.TensorSpec([None, None, config.feature_dim], tf.float32, name="features"),
            tf.TensorSpec([None], tf.int32, name="feature_lengths"),
        ]
        # autograph=False (here and in TaggingServing): the bodies write their control flow as
        # tf.cond / tf.while_loop, and converting them with all the Keras code they call took
        # 4 of the 10 s that tf.saved_model.save spent on digits/4's signatures.
        self.transcribe = tf.function(self._transcribe_audio, input_signature=_audio_specs(), autograph=False)
        self.transcribe_wav = tf.function(self._transcribe_wav, input_signature=_WAV_SPEC, autograph=False)
        self.log_probs = tf.function(self._log_probs_of_features, input_signature=feature_spec, autograph=False)
        self.audio_log_probs = tf.function(self._log_probs_of_audio, input_signature=_audio_specs(), autograph=False)

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
        results = {
            "transcript": tf.strings.strip(tf.strings.reduce_join(tokens, axis=1)),
            "confidence": confidence,
            "tokens": tokens.to_tensor(default_value=""),
            "token_start": (tf.cast(alignment.first_frame, tf.float32) * seconds).to_tensor(default_value=-1.0),
            "token_end": (tf.cast(alignment.end_frame, tf.float32) * seconds).to_tensor(default_value=-1.0),
            "token_confidence": alignment.confidence.to_tensor(default_value=0.0),
            "token_count": count,
        }
        if self._words is not None:
            words = self._words(outputs["log_probs"], outputs["output_lengths"], seconds)
            word_count = tf.cast(words["words"].row_lengths(), tf.int32)
            results |= {
                "transcript": tf.strings.reduce_join(words["words"], axis=1, separator=" "),
                "confidence": tf.reduce_sum(words["word_confidence"], axis=1)
                / tf.maximum(tf.cast(word_count, tf.float32), 1.0),
                "words": words["words"].to_tensor(default_value=""),
                "word_start": words["word_start"].to_tensor(default_value=-1.0),
                "word_end": words["word_end"].to_tensor(default_value=-1.0),
                "word_confidence": words["word_confidence"].to_tensor(default_value=0.0),
                "word_count": word_count,
            }
        return results

    def _transcribe_wav(self, wav):
        return self.transcribe(*decode_wavs(wav, self._sample_rate))


class TaggingServing(_ServingModule):
    """Signatures of a frame-tagging model: audio or WAV bytes -> a tag for every frame."""

    def __init__(self, trained: Servable):
        super().__init__(trained, name="speechseq_tagging")
        self._sample_rate = trained.features.sample_rate
        self._tag_names = tf.constant(list(trained.classes.labels))
        self._background = tf.one_hot(trained.classes.background_id, len(trained.classes.labels))
        self.tag = tf.function(self._tag_audio, input_signature=_audio_specs(), autograph=False)
        self.tag_wav = tf.function(self._tag_wav, input_signature=_WAV_SPEC, autograph=False)

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


def serving_module(trained: Servable, words: "GraphGrammar | None" = None) -> CTCServing | TaggingServing:
    """The module to export; `words`: a transcription model's word list, searched in the graph."""
    return TaggingServing(trained) if trained.task == "frames" else CTCServing(trained, words)
