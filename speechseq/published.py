"""Published models, opened for use: resolve `saved_models/NAME[/VERSION]`, read what an
export's or a run's outputs mean, and load an export's graph for inference.

Inference (`transcribe`, `tag`) needs only this module: nothing here builds or writes an export.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import tensorflow as tf

from speechseq.errors import SpeechseqError
from speechseq.features import FeatureConfig
from speechseq.text import TagSet, Vocabulary


class ExportError(SpeechseqError):
    """An export that cannot be made, with the reason."""


# ---- a trained model's files -------------------------------------------------------------


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


# ---- versions --------------------------------------------------------------------------


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
