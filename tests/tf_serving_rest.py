"""TF Serving's REST `:predict` API, decoded as the server does, against a SavedModel.

No TF Serving server can be installed here, so the tests check the request bodies we
write by decoding them with the API's documented rules (row format `instances`,
columnar `inputs`, `{"b64": ...}` for binary strings), casting to the dtypes in the
SignatureDef, and running the signature: in a TF1 session as the server does
(`serving.SessionModel.run`) or with TF2's loader (`tf2_runner`). Responses follow the API too: `predictions`
(one object per instance) for row requests, `outputs` for columnar ones.
"""

from __future__ import annotations

import base64

import numpy as np
import tensorflow as tf


def _decode(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _array(value, info):
    dtype = tf.dtypes.as_dtype(info.dtype)
    return np.array(value, dtype=object if dtype == tf.string else dtype.as_numpy_dtype)


def tf2_runner(loaded):
    """`run(signature_name, inputs)` for a SavedModel loaded with `tf.saved_model.load`."""

    def run(name, inputs):
        outputs = loaded.signatures[name](**{key: tf.constant(value) for key, value in inputs.items()})
        return {key: value.numpy() for key, value in outputs.items()}

    return run


def predict(run, signature_defs: dict, body: dict) -> dict:
    """What TF Serving answers to `body`, each signature run by `run(name, numpy inputs)`."""
    if ("instances" in body) == ("inputs" in body):
        raise ValueError("a request has either 'instances' or 'inputs'")
    name = body.get("signature_name", "serving_default")
    signature = signature_defs[name]
    keys = list(signature.inputs)
    if "instances" in body:
        rows = body["instances"]
        if not all(isinstance(row, dict) for row in rows):  # one unnamed input: rows are its values
            rows = [{keys[0]: row} for row in rows]
        columns = {key: [_decode(row[key]) for row in rows] for key in keys}
    else:
        given = body["inputs"]
        columns = {key: _decode(v) for key, v in (given.items() if isinstance(given, dict) else [(keys[0], given)])}
    outputs = run(name, {key: _array(columns[key], signature.inputs[key]) for key in keys})

    def plain(value):
        if isinstance(value, bytes):
            return value.decode("utf-8")
        if isinstance(value, np.ndarray):
            return [plain(v) for v in value]
        return value.item() if isinstance(value, np.generic) else value

    if "instances" in body:
        count = len(body["instances"])
        return {"predictions": [{key: plain(value[i]) for key, value in outputs.items()} for i in range(count)]}
    return {"outputs": {key: plain(value) for key, value in outputs.items()}}
