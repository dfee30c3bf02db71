"""Runs that start from a trained model's weights instead of random ones (`train.init_from`).

`train.fit` builds such a run's model with `starting_model`: the source's model, re-headed
when the run's classes differ from its own (a new vocabulary keeps the rows of the
characters both share; a frame tagger gets a fresh frame head on a recogniser's encoder),
with the layers `train.freeze` names kept fixed. The run's features and encoder shape must
be the source's (`inherited_settings`, `starting_settings`), except that `model.layers` may
be larger: the source deepened (`deepened`), its new top layers passing on what the layer
below says, so the run starts reading as the source does. `finetune` builds whole
fine-tuning runs on top of this.

Freeze specifications (comma-separated): a layer name (`front`, `encoder_0`,
`ctc_logits`, ...), `encoder` (every recurrent layer), or `encoder:N` (the first N,
nearest the input).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from speechseq import export, models
from speechseq.errors import SpeechseqError
from speechseq.published import resolve_version, trained_files
from speechseq.settings import Run
from speechseq.text import BLANK_ID, TagSet, Vocabulary


def resolve_source(source: str | Path) -> Path:
    """`saved_models/NAME` means its latest version; anything else is used as it is."""
    path = Path(source)
    if path.is_dir() and not (path / "run.json").exists() and not (path / "saved_model.pb").exists():
        return resolve_version(path)
    return path


def inherited_settings(source: str | Path) -> dict:
    """`features.*` and `model.*` settings of a trained model: a run starting from its
    weights must have its features and the shape of its encoder."""
    files = trained_files(resolve_source(source))
    settings: dict = {f"features.{key}": value for key, value in files.features.to_dict().items()}
    return settings | {f"model.{key}": value for key, value in files.settings["model"].items()}


def starting_settings(source: str | Path) -> dict:
    """What a recipe's run needs to start from `source`'s weights: its features, encoder and path."""
    path = resolve_source(source)
    return inherited_settings(path) | {"train.init_from": str(path.resolve())}


def starting_model(run: Run, classes: Vocabulary) -> keras.Model:
    """The model a run with `train.init_from` starts from (`train.fit` builds it so): the
    source model, re-headed for `classes` if they differ from its own, the chosen layers frozen."""
    source = export.load_trained(run.train.init_from)
    _check_same_front(run, source)
    model = source.model
    if run.encoder.layers > int(source.settings["model"]["layers"]):
        model = deepened(model, source, run.encoder)
    if isinstance(classes, TagSet):
        if classes != source.classes:  # a transcriber's encoder, or another tag set: a new head
            model = with_frame_head(model, classes, run.encoder, run.features.feature_dim)
    elif source.task != "ctc":
        raise SpeechseqError(f"{run.train.init_from}: a frame tagger cannot start a transcription run")
    elif classes != source.classes:
        model = with_vocabulary(model, source.classes, classes, run.encoder, run.features.feature_dim)
    freeze(model, run.train.freeze)
    return model


# Encoder settings that shape its weights (dropout and the like may change when training on).
WEIGHT_SHAPING = ("cell", "layers", "units", "subsampling", "conv_channels", "conv_kernel", "layer_norm",
                  "use_bias", "reset_after")


def _check_same_front(run: Run, source) -> None:
    """The run's features and encoder shape must be the source's: its weights fit nothing else,
    and they learnt frames made as the source's features make them."""
    features, encoder = run.features.to_dict(), run.encoder.to_dict()
    different = [f"features.{key}" for key, value in source.features.to_dict().items() if features.get(key) != value]
    different += [f"model.{key}" for key in WEIGHT_SHAPING if key != "layers"
                  and key in source.settings["model"] and encoder[key] != source.settings["model"][key]]
    source_layers = source.settings["model"].get("layers", encoder["layers"])
    if encoder["layers"] < source_layers:
        different.append(f"model.layers (fewer than the source's {source_layers})")
    elif encoder["layers"] > source_layers and (encoder["layer_norm"] or not encoder["use_bias"]):
        different.append("model.layers (more than the source's: deepening needs use_bias and no layer_norm)")
    if different:
        raise SpeechseqError(f"{run.train.init_from}: the run's settings differ from the model it starts from in "
                             f"{', '.join(different)}; use the source's (starting.inherited_settings)")


# Gate biases of a new layer's pass-through: a sigmoid of -3 is about 0.05, of 3 about 0.95.
_SHUT, _OPEN = -3.0, 3.0
_SMALL = 0.1  # a new layer's other weights: its random start, scaled down, to learn from


def deepened(model: keras.Model, source, encoder) -> keras.Model:
    """`model` (trained `source`) with the recurrent layers `encoder` has beyond its own
    added on top: every source layer's weights copied, each new layer set to pass on (as
    tanh of it) what the layer below says, its memory nearly shut, so the deeper model
    starts out reading about as the source does and training grows it from there."""
    feature_dim = source.features.feature_dim
    rebuilt = models.BUILDERS[source.task](feature_dim, source.classes.size, encoder)
    _copy_weights(model, rebuilt, {layer.name for layer in model.layers})
    for index in range(int(source.settings["model"]["layers"]), encoder.layers):
        _pass_through(rebuilt.get_layer(f"encoder_{index}"), encoder.cell)
    return rebuilt


def _pass_through(layer, cell_kind: str) -> None:
    """Set a new bidirectional layer, stacked on one as wide, to pass its input on: each
    direction reads its own half of the input ([forward | backward]) into its candidate (GRU)
    or cell input (LSTM) through an identity, the gates set to take it in and forget the past."""
    for cell, offset in ((layer.forward_layer.cell, 0), (layer.backward_layer.cell, layer.forward_layer.cell.units)):
        units = cell.units
        kernel, recurrent = np.asarray(cell.kernel) * _SMALL, np.asarray(cell.recurrent_kernel) * _SMALL
        bias = np.zeros(cell.bias.shape, np.float32)
        # Keras' gate order: GRU update, reset, candidate; LSTM input, forget, cell, output.
        candidate = slice(2 * units, 3 * units)
        kernel[:, candidate] = 0.0
        kernel[offset:offset + units, candidate] = np.eye(units)
        recurrent[:, candidate] = 0.0
        if cell_kind == "gru":
            (bias[0] if bias.ndim == 2 else bias)[:units] = _SHUT  # update gate: the candidate, not the last state
        else:
            bias[:units], bias[units:2 * units], bias[3 * units:] = _OPEN, _SHUT, _OPEN
        cell.kernel.assign(kernel)
        cell.recurrent_kernel.assign(recurrent)
        cell.bias.assign(bias)


def with_frame_head(model: keras.Model, tags: TagSet, encoder, feature_dim: int) -> keras.Model:
    """A frame tagger for `tags` with `model`'s front end and encoder weights and a fresh head."""
    return _below_the_head(model, models.frame_model(feature_dim, tags.size, encoder))


def _below_the_head(model: keras.Model, rebuilt: keras.Model) -> keras.Model:
    """`rebuilt` with `model`'s weights in every layer but the output heads (left as built)."""
    _copy_weights(model, rebuilt, {layer.name for layer in rebuilt.layers
                                   if layer.name not in ("ctc_logits", "frame_logits")})
    return rebuilt


def _copy_weights(model: keras.Model, rebuilt: keras.Model, names: set[str]) -> None:
    """`model`'s weights into `rebuilt`'s layers of these names (those that have weights)."""
    for layer in rebuilt.layers:
        if layer.weights and layer.name in names:
            layer.set_weights(model.get_layer(layer.name).get_weights())


def with_vocabulary(model: keras.Model, old: Vocabulary, new: Vocabulary, encoder, feature_dim: int) -> keras.Model:
    """A copy of `model` with an output layer for `new`: every other layer's weights
    copied, and the output rows of characters in both vocabularies (and the blank)
    copied from the old output layer."""
    rebuilt = _below_the_head(model, models.ctc_model(feature_dim, new.size, encoder))
    kernel, bias = rebuilt.get_layer("ctc_logits").get_weights()
    old_kernel, old_bias = model.get_layer("ctc_logits").get_weights()
    for new_id, old_id in shared_ids(old, new):
        kernel[:, new_id], bias[new_id] = old_kernel[:, old_id], old_bias[old_id]
    rebuilt.get_layer("ctc_logits").set_weights([kernel, bias])
    return rebuilt


def shared_ids(old: Vocabulary, new: Vocabulary) -> list[tuple[int, int]]:
    """(new id, old id) of the blank and of every character both vocabularies have."""
    old_ids = {symbol: index + 1 for index, symbol in enumerate(old.symbols)}
    pairs = [(BLANK_ID, BLANK_ID)]
    pairs += [(index + 1, old_ids[symbol]) for index, symbol in enumerate(new.symbols) if symbol in old_ids]
    return pairs


def freeze(model: keras.Model, specification: str) -> list[str]:
    """Set `trainable = False` on the layers `specification` names; returns their names."""
    names = [layer.name for layer in model.layers]
    encoder = [name for name in names if name.startswith("encoder_") and name[8:].isdigit()]
    chosen: list[str] = []
    for part in filter(None, (p.strip() for p in specification.split(","))):
        if part == "encoder":
            chosen += encoder
        elif part.startswith("encoder:"):
            depth = int(part.split(":", 1)[1])
            if not 0 < depth <= len(encoder):
                raise SpeechseqError(f"freeze {part!r}: the model has {len(encoder)} encoder layers")
            chosen += sorted(encoder, key=lambda n: int(n[8:]))[:depth]
        elif part in names:
            chosen.append(part)
        else:
            raise SpeechseqError(f"freeze {part!r}: no such layer; layers: {', '.join(n for n in names if n)}")
    for name in chosen:
        model.get_layer(name).trainable = False
    return chosen
