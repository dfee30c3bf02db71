"""Acoustic models: a stacked bidirectional LSTM/GRU encoder with a CTC or a frame head.

Every model takes `features` [batch, time, dim] and `feature_lengths` [batch] (true
frames, padding on the right) and returns one tensor: CTC log-probabilities
[batch, time / subsampling, vocabulary + blank] or per-frame tag probabilities
[batch, time, tags], always at the input frame rate for tags.

The recurrent settings default to what keeps TensorFlow's cuDNN kernels eligible on
GPU (tanh/sigmoid, no recurrent dropout, no unrolling, biases, GRU `reset_after`,
right-padded masks); `cudnn_problems` names any setting that breaks that.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf
from keras import layers, ops

from speechseq import strict
from speechseq.errors import SpeechseqError

CELLS = ("lstm", "gru")
SUBSAMPLINGS = (1, 2, 4)


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """The shape of the encoder."""

    cell: str = "lstm"  # recurrent cell: "lstm" or "gru"
    layers: int = 3  # stacked bidirectional recurrent layers
    units: int = 256  # units per direction in each recurrent layer
    dropout: float = 0.1  # dropout between layers (inputs of layers 2.., and before the head)
    subsampling: int = 1  # time subsampling by the convolutional front end: 1 (none), 2 or 4
    conv_channels: int = 256  # channels of each strided convolution of the front end
    conv_kernel: int = 5  # frames seen by each front-end convolution (odd)
    layer_norm: bool = False  # LayerNormalization after each recurrent layer
    activation: str = "tanh"  # recurrent cell activation (cuDNN needs tanh)
    recurrent_activation: str = "sigmoid"  # gate activation (cuDNN needs sigmoid)
    recurrent_dropout: float = 0.0  # dropout on recurrent state (cuDNN needs 0)
    use_bias: bool = True  # cell biases (cuDNN needs them)
    unroll: bool = False  # unroll the time loop (cuDNN needs False)
    reset_after: bool = True  # GRU reset gate after the matmul (cuDNN needs True)

    def __post_init__(self):
        if self.cell not in CELLS:
            raise SpeechseqError(f"cell must be one of {CELLS}, got {self.cell!r}")
        if self.subsampling not in SUBSAMPLINGS:
            raise SpeechseqError(f"subsampling must be one of {SUBSAMPLINGS}, got {self.subsampling}")
        if self.layers < 1 or self.units < 1:
            raise SpeechseqError("an encoder needs at least one layer of at least one unit")
        if self.conv_kernel % 2 == 0:
            raise SpeechseqError(f"conv_kernel must be odd, got {self.conv_kernel}")
        if not (0 <= self.dropout < 1 and 0 <= self.recurrent_dropout < 1):
            raise SpeechseqError(f"dropout and recurrent_dropout must be in [0, 1), got {self.dropout}, {self.recurrent_dropout}")
        if self.conv_channels < 1 or self.conv_kernel < 1:
            raise SpeechseqError("conv_channels and conv_kernel must be positive")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EncoderConfig:
        return strict.from_dict(cls, values, "encoder")


def cudnn_problems(config: EncoderConfig) -> list[str]:
    """The settings of `config` that keep the cuDNN LSTM/GRU kernels from being used."""
    required = {
        "activation": "tanh",
        "recurrent_activation": "sigmoid",
        "recurrent_dropout": 0.0,
        "use_bias": True,
        "unroll": False,
    }
    if config.cell == "gru":
        required["reset_after"] = True
    return [
        f"{name}={getattr(config, name)!r} (cuDNN needs {value!r})"
        for name, value in required.items()
        if getattr(config, name) != value
    ]


def output_lengths(feature_lengths, subsampling: int):
    """Output frames of the encoder for `feature_lengths` input frames: ceil(n / s)."""
    return (feature_lengths + subsampling - 1) // subsampling


@keras.saving.register_keras_serializable(package="speechseq")
class LengthMask(layers.Layer):
    """(sequence [batch, time, ...], lengths [batch]) -> boolean mask [batch, time]."""

    def call(self, sequence, lengths):
        time = ops.shape(sequence)[1]
        return ops.arange(time)[None, :] < ops.cast(lengths, "int32")[:, None]

    def compute_output_shape(self, sequence_shape, lengths_shape):
        return tuple(sequence_shape[:2])


@keras.saving.register_keras_serializable(package="speechseq")
class TimeSubsampling(layers.Layer):
    """Strided 1-D convolutions over time, each halving the frame rate.

    (frames, lengths) -> (frames at 1/factor of the rate, ceil(lengths / factor)).
    Each convolution sees zeros, not padding garbage, past an utterance's length, and
    pads its input on the left and right by itself, so the output for an utterance
    does not depend on how much padding its batch has.
    """

    def __init__(self, factor: int = 2, channels: int = 256, kernel: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.factor, self.channels, self.kernel = factor, channels, kernel
        self.steps = factor.bit_length() - 1  # one stride-2 convolution per halving
        self.convolutions = [
            layers.Conv1D(channels, kernel, strides=2, padding="valid", activation="relu",
                          dtype=self.dtype_policy, name=f"conv_{index}")
            for index in range(self.steps)
        ]
        self.supports_masking = False

    def build(self, frames_shape, lengths_shape=None):
        shape = tuple(frames_shape)
        for convolution in self.convolutions:
            convolution.build(shape)
            shape = (shape[0], None, self.channels)

    def call(self, frames, lengths):
        half = self.kernel // 2
        for convolution in self.convolutions:
            time = ops.shape(frames)[1]
            keep = ops.cast(ops.arange(time)[None, :] < lengths[:, None], frames.dtype)
            frames = ops.pad(frames * keep[:, :, None], [[0, 0], [half, half], [0, 0]])
            frames = convolution(frames)
            lengths = output_lengths(lengths, 2)
        return frames, lengths

    def compute_output_shape(self, frames_shape, lengths_shape):
        return (frames_shape[0], None, self.channels), tuple(lengths_shape)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "channels": self.channels, "kernel": self.kernel}


@keras.saving.register_keras_serializable(package="speechseq")
class Unmasked(layers.Layer):
    """Passes its input on without a Keras mask: models return plain tensors, and
    losses use explicit lengths, never an implicit mask."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, sequence):
        return ops.copy(sequence)  # a new tensor: the input's mask stays attached to the input

    def compute_mask(self, inputs, mask=None):
        return None


@keras.saving.register_keras_serializable(package="speechseq")
class UpsampleTime(layers.Layer):
    """(sequence at 1/factor of the rate, reference) -> sequence repeated back to the
    reference's time length (the encoder's output for each input frame)."""

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, sequence, reference):
        return ops.repeat(sequence, self.factor, axis=1)[:, : ops.shape(reference)[1]]

    def compute_output_shape(self, sequence_shape, reference_shape):
        return (sequence_shape[0], reference_shape[1], *sequence_shape[2:])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _recurrent_layer(config: EncoderConfig, index: int, dtype):
    settings = dict(
        units=config.units,
        activation=config.activation,
        recurrent_activation=config.recurrent_activation,
        recurrent_dropout=config.recurrent_dropout,
        use_bias=config.use_bias,
        unroll=config.unroll,
        return_sequences=True,
        dtype=dtype,
    )
    if config.cell == "gru":
        cell = layers.GRU(reset_after=config.reset_after, **settings)
    else:
        cell = layers.LSTM(**settings)
    return layers.Bidirectional(cell, dtype=dtype, name=f"encoder_{index}")


def encode(features, feature_lengths, config: EncoderConfig, dtype="float32"):
    """Apply the encoder to symbolic inputs; returns (encoded, encoded_lengths)."""
    problems = cudnn_problems(config)
    if problems:
        warnings.warn(
            "this encoder cannot use the cuDNN kernels on GPU: " + "; ".join(problems),
            stacklevel=3,
        )
    x, lengths = features, feature_lengths
    if config.subsampling > 1:
        x, lengths = TimeSubsampling(
            config.subsampling, config.conv_channels, config.conv_kernel, dtype=dtype, name="front"
        )(x, lengths)
    mask = LengthMask(name="encoder_mask")(x, lengths)
    for index in range(config.layers):
        if index and config.dropout:
            x = layers.Dropout(config.dropout, name=f"dropout_{index}")(x)
        x = _recurrent_layer(config, index, dtype)(x, mask=mask)
        if config.layer_norm:
            x = layers.LayerNormalization(dtype=dtype, name=f"norm_{index}")(x)
    if config.dropout:
        x = layers.Dropout(config.dropout, name="dropout_head")(x)
    return Unmasked(name="encoded")(x), lengths


def model_inputs(features, feature_lengths) -> dict:
    """A batch as the models' named inputs."""
    return {"features": features, "feature_lengths": feature_lengths}


def _inputs(feature_dim: int):
    features = keras.Input(shape=(None, feature_dim), dtype="float32", name="features")
    feature_lengths = keras.Input(shape=(), dtype="int32", name="feature_lengths")
    return features, feature_lengths


def ctc_model(feature_dim: int, vocabulary_size: int, config: EncoderConfig, dtype="float32") -> keras.Model:
    """Encoder + CTC head: log-probabilities over the vocabulary and the blank (id 0)."""
    features, feature_lengths = _inputs(feature_dim)
    encoded, _ = encode(features, feature_lengths, config, dtype)
    logits = layers.Dense(vocabulary_size, dtype=dtype, name="ctc_logits")(encoded)
    # Softmax in float32 even under mixed precision: CTC needs the precision.
    log_probs = layers.Activation("log_softmax", dtype="float32", name="log_probs")(logits)
    return keras.Model([features, feature_lengths], log_probs, name="ctc")


def frame_model(feature_dim: int, tag_count: int, config: EncoderConfig, dtype="float32") -> keras.Model:
    """Encoder + frame head: tag probabilities for every input frame."""
    features, feature_lengths = _inputs(feature_dim)
    encoded, _ = encode(features, feature_lengths, config, dtype)
    if config.subsampling > 1:  # back to the input frame rate
        encoded = UpsampleTime(config.subsampling, name="upsample")(encoded, features)
    logits = layers.Dense(tag_count, dtype=dtype, name="frame_logits")(encoded)
    probs = layers.Activation("softmax", dtype="float32", name="frame_probs")(logits)
    return keras.Model([features, feature_lengths], probs, name="frames")


# A fresh model for each task (settings.TASKS): training builds one, deepening rebuilds one.
BUILDERS = {"ctc": ctc_model, "frames": frame_model}


class ModelFileError(SpeechseqError):
    """A `.keras` file that cannot be loaded, with the reason."""


def load_model(path, compile: bool = True) -> keras.Model:
    """A `.keras` file, loaded in Keras' safe mode: code stored in it (a Lambda layer's
    Python function) is refused, not run. Speechseq's own layers are registered classes."""
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except (ValueError, TypeError, OSError) as error:
        reason = " ".join(str(error).split())[:500]
        raise ModelFileError(f"{path}: cannot load this Keras model ({reason})") from None


def inference(model: keras.Model) -> Callable:
    """`model(inputs, training=False)` traced into a graph that takes any batch and length.

    Called eagerly, Keras runs a recurrent layer's time loop op by op from Python: a
    tiny tagging run spent 58 of its 75 s validating so. Traced once for the model's
    own input shapes (batch and time left open), the loop is one graph op. Without
    autograph: Keras' layers need no conversion, and it took a third of the first call.
    """
    specs = {tensor.name: tf.TensorSpec(tensor.shape, tensor.dtype) for tensor in model.inputs}
    function = tf.function(lambda inputs: model(inputs, training=False), input_signature=[specs], autograph=False)
    return lambda inputs: function({name: tf.cast(value, specs[name].dtype) for name, value in inputs.items()})
