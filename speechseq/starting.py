"""Runs that start from a trained model's weights instead of random ones (`train.init_from`).

`train.fit` builds such a run's model with `starting_model`: the source's model, re-headed
when the run's classes differ from its own (a new vocabulary keeps the rows of the
characters both share; a frame tagger gets a fresh frame head on a recogniser's encoder),
with the layers `train.freeze` names kept fixed. The run's features and encoder shape must
be the source's (`inherited_settings`, `starting_settings`). `finetune` builds whole
fine-tuning runs on top of this.

Freeze specifications (comma-separated): a layer name (`front`, `encoder_0`,
`ctc_logits`, ...), `encoder` (every recurrent layer), or `encoder:N` (the first N,
nearest the input).
"""

from __future__ import annotations

from pathlib import Path

import keras

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
    different += [f"model.{key}" for key in WEIGHT_SHAPING
                  if key in source.settings["model"] and encoder[key] != source.settings["model"][key]]
    if different:
        raise SpeechseqError(f"{run.train.init_from}: the run's settings differ from the model it starts from in "
                             f"{', '.join(different)}; use the source's (starting.inherited_settings)")


def with_frame_head(model: keras.Model, tags: TagSet, encoder, feature_dim: int) -> keras.Model:
    """A frame tagger for `tags` with `model`'s front end and encoder weights and a fresh head."""
    return _below_the_head(model, models.frame_model(feature_dim, tags.size, encoder))


def _below_the_head(model: keras.Model, rebuilt: keras.Model) -> keras.Model:
    """`rebuilt` with `model`'s weights in every layer but the output heads (left as built)."""
    for layer in rebuilt.layers:
        if layer.weights and layer.name not in ("ctc_logits", "frame_logits"):
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return rebuilt


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
