"""TF Serving's REST `:predict` API, decoded as the server does, against a loaded SavedModel.

No TF Serving server can be installed here, so the tests check the request bodies we
write by decoding them with the API's documented rules (row format `instances`,
columnar `inputs`, `{"b64": ...}` for binary strings), casting to the dtypes in the
SignatureDef, and calling the signature. Responses follow the API too: `predictions`
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


def _tensor(value, info):
    dtype = tf.dtypes.as_dtype(info.dtype)
    array = np.array(value, dtype=object if dtype == tf.string else dtype.as_numpy_dtype)
    return tf.constant(array, dtype=dtype)


def predict(loaded, signature_defs: dict, body: dict) -> dict:
    """What TF Serving answers to `body` for the SavedModel `loaded`."""
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
    tensors = {key: _tensor(columns[key], signature.inputs[key]) for key in keys}
    outputs = {key: value.numpy() for key, value in loaded.signatures[name](**tensors).items()}

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
