"""Export a trained model as a SavedModel that stock TF Serving runs as it is.

Raw audio in, text (or frame tags) out: the feature layer, the Keras model and the
greedy CTC decoder all live in the graph (the serving modules of `serving`), built
from core TensorFlow ops only; an export that ships a word list searches it in the
graph too (`grammar_graph`). Opening an export for inference is `published`'s. A
version is written to `saved_models/NAME/.N.partial-*` and renamed to
`saved_models/NAME/N` in one step once complete, so TF Serving (which watches for
numeric folder names) never sees half of one.

Layout of a version folder:
    saved_model.pb, variables/         the graph and its weights
    assets/vocabulary.json | tags.json what the outputs mean (blank id recorded)
    assets/features.json               how audio becomes frames
    assets/model_card.json             sample rate, architecture, data, metrics, license
    assets/run.json                    the training settings
    assets/grammar.txt, grammar.json   a word list and its weights, if it ships one
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

import keras
import tensorflow as tf

from speechseq import grammar, language_model, models
from speechseq.features import FeatureConfig
from speechseq.files import current_umask, write_text
from speechseq.lexicon import is_phone_vocabulary
from speechseq.model_card import card_path, update_card
from speechseq.published import ExportError, task_of, trained_files, versions
from speechseq.segments import SMOOTHING_FILE
from speechseq.serving import serving_module
from speechseq.text import TagSet, Vocabulary


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


# ---- versions and the atomic write -------------------------------------------------------


def model_card(trained: Trained, name: str, version: int, extra: dict | None = None) -> dict:
    """What a user of the export needs to know about it, for `assets/model_card.json`."""
    settings = trained.settings
    card = {
        "name": name,
        "version": version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "task": _task_description(trained),
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
    earlier = _json_file(card_path(trained.folder))
    card |= {key: value for key, value in earlier.items() if key not in card or key == "license"}
    if earlier:
        card["exported_from"] = f"{earlier.get('name')}/{earlier.get('version')} (the same weights)"
    if (trained.folder / SMOOTHING_FILE).exists():  # a re-export ships the same smoothing
        card["smoothing"] = _json_file(trained.folder / SMOOTHING_FILE)
    card |= _kept_decoding(trained.folder)
    if settings["train"].get("init_from"):
        card["fine_tuned"] = {
            "from": settings["train"]["init_from"],
            "on": settings["data"]["train"],
            "frozen": settings["train"].get("freeze", ""),
            "before_and_after": _json_file(trained.folder / "report.json"),
        }
    return card | (extra or {})


def _kept_decoding(folder: Path) -> dict:
    """The card's account of the word list and LM a run fine-tuned from an export keeps
    (a re-export's earlier card has it too): the export decodes with them."""
    kept = {}
    if (folder / language_model.SETTINGS_FILE).exists():
        kept[language_model.CARD_KEY] = _json_file(folder / language_model.SETTINGS_FILE)
    if (folder / grammar.WEIGHTS_FILE).exists():
        kept[grammar.CARD_KEY] = grammar.card_entry(_json_file(folder / grammar.WEIGHTS_FILE))
    return kept


def _task_description(trained: Trained) -> str:
    if trained.task != "ctc":
        return "frame tagging"
    if is_phone_vocabulary(trained.classes):
        return "transcription (phone CTC; words through the lexicon it ships)"
    return "transcription (character CTC)"


def _training_data(trained: Trained) -> dict:
    audit_file = trained.folder / "audit.json"
    summary = json.loads(audit_file.read_text()) if audit_file.exists() else {}
    return {
        split: {key: summary.get(split, {}).get(key) for key in ("good", "hours", "speakers")}
        | {"manifest": trained.settings["data"].get(split)}
        for split in ("train", "dev")
        if trained.settings["data"].get(split)
    }


SCORES_FILE = "results.json"  # a model's measured scores; the card's "metrics"


def _metrics(folder: Path) -> dict:
    return _json_file(folder / SCORES_FILE)


def is_export(folder: Path) -> bool:
    """Whether `folder` (a `Trained`'s) is a published version's assets, not a run."""
    return card_path(folder).exists()


def drop_scores(version_folder: Path) -> bool:
    """Remove the scores an export being made kept from its source (and its card's metrics);
    whether there were any."""
    assets = Path(version_folder) / "assets"
    had = (assets / SCORES_FILE).exists()
    (assets / SCORES_FILE).unlink(missing_ok=True)
    update_card(assets, {"metrics": {}})
    return had


def record_scores(version_folder: Path, scores: dict) -> None:
    """Give an export being made these scores: its results.json and its card's metrics."""
    assets = Path(version_folder) / "assets"
    write_text(assets / SCORES_FILE, json.dumps(scores, indent=2) + "\n")
    update_card(assets, {"metrics": scores})


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
        _write_assets(trained, staging, name=root.name, version=version, card=card)
        save_graph(trained, staging)
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


def save_graph(trained: Trained, folder: str | os.PathLike) -> None:
    """Write the SavedModel of `trained` into `folder` (its assets stay as they are). If the
    folder ships a word list (`grammar.ship`), the graph searches it too: TF Serving's
    transcript is then the list's words, as `speechseq transcribe` decodes by default."""
    from speechseq.grammar_graph import GraphGrammar

    decoder = grammar.shipped_decoder(folder, trained.classes) if trained.task == "ctc" else None
    words = GraphGrammar(decoder) if decoder else None
    module = serving_module(trained, words)
    tf.saved_model.save(module, str(folder), signatures=module.signatures())


def _write_assets(trained: Trained, folder: Path, name: str, version: int, card: dict | None) -> None:
    assets, extra = folder / "assets", folder / "assets.extra"
    assets.mkdir(exist_ok=True)
    extra.mkdir(exist_ok=True)
    trained.classes.save(assets / ("tags.json" if trained.task == "frames" else "vocabulary.json"))
    trained.features.save(assets / "features.json")
    (assets / "run.json").write_text(json.dumps(trained.settings, indent=2) + "\n")
    card_path(assets).write_text(json.dumps(model_card(trained, name, version, card), indent=2) + "\n")
    for kept in (SCORES_FILE, "audit.json", "report.json", SMOOTHING_FILE, *DECODING_FILES):
        # re-exports, and exports of runs fine-tuned from an export, keep them (a grammar or an
        # LM given to the export replaces them all: `drop_decoding`)
        if (trained.folder / kept).exists():
            shutil.copyfile(trained.folder / kept, assets / kept)
    trained.model.save(extra / "model.keras")  # loaded uncompiled: weights without optimizer state


# What an export decodes with beyond its graph: a word list (and a phone model's lexicon
# for it), an n-gram LM (and a phone model's lexicon and pronunciation LM).
DECODING_FILES = (grammar.GRAMMAR_FILE, grammar.WEIGHTS_FILE, language_model.LEXICON_FILE, language_model.LM_FILE,
                  language_model.SETTINGS_FILE, language_model.PHONE_LM_FILE, language_model.GENERAL_LM_FILE,
                  language_model.GENERAL_PHONE_LM_FILE)


def drop_decoding(version_folder: Path) -> None:
    """Remove the decoding files an export being made kept from its source, and what its
    model card says of them."""
    assets = Path(version_folder) / "assets"
    for name in DECODING_FILES:
        (assets / name).unlink(missing_ok=True)
    update_card(assets, drop=(grammar.CARD_KEY, language_model.CARD_KEY))


def _sync_tree(folder: Path) -> None:
    """Flush every file to disk before the rename publishes them."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as file:
                os.fsync(file.fileno())


__all__ = ["DECODING_FILES", "SCORES_FILE", "ExportError", "Trained", "drop_decoding", "drop_scores", "is_export", "load_trained",
           "model_card", "record_scores", "write_version"]
