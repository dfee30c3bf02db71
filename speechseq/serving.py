"""What TF Serving sees of an export: its signatures, REST requests and warmup records.

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

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from speechseq.errors import SpeechseqError

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
