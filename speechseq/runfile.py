"""Run files: a TOML (or JSON) file plus `section.key=value` overrides -> `train.Run`.

    [data]      train = "work/digits/train.jsonl"   (DataConfig)
    [features]  n_mels = 80                          (FeatureConfig)
    [model]     cell = "gru"                         (EncoderConfig)
    [train]     epochs = 20                          (TrainConfig)

Every key must be a field of its section's dataclass; values are checked against the
field's type, so a typo or a wrong type fails before anything trains. Paths in
`[data]` are relative to the run file's folder.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from speechseq.errors import SpeechseqError
from speechseq.features import FeatureConfig
from speechseq.models import EncoderConfig
from speechseq.settings import DataConfig, Run, TrainConfig

SECTIONS = {"data": DataConfig, "features": FeatureConfig, "model": EncoderConfig, "train": TrainConfig}
PATH_KEYS = ("train", "dev", "vocabulary")  # [data] keys holding paths


class RunFileError(SpeechseqError):
    """A run file or override that does not fit the settings."""


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def _convert(value: Any, kind: Any, where: str) -> Any:
    """`value` as `kind` (int, float, bool, str, or `X | None`), or RunFileError."""
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        if type(None) in options:
            return None
        raise RunFileError(f"{where}: may not be none")
    for option in options:
        if option is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
        elif option is int and not isinstance(value, bool):
            if isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit()):
                return int(value)
        elif option is float and not isinstance(value, bool):
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
        elif option is str and isinstance(value, str):
            return value
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise RunFileError(f"{where}: expected {names}, got {value!r}")


def _parse_override(text: str) -> tuple[str, str, str]:
    key, separator, value = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not separator or not dot:
        raise RunFileError(f"override {text!r}: expected section.key=value, e.g. train.epochs=5")
    return section, name, value.strip()


def _overrides(overrides: Sequence[str] | Mapping[str, Any]) -> list[tuple[str, str, Any, str]]:
    """(section, key, value, where) of `section.key=value` strings, or of a mapping
    `{"section.key": value}` whose values are typed already (checked all the same)."""
    if isinstance(overrides, Mapping):
        found = []
        for key, value in overrides.items():
            section, name, _ = _parse_override(f"{key}=")
            found.append((section, name, value, f"override {key}={value!r}"))
        return found
    return [(*_parse_override(text), f"override {text!r}") for text in overrides]


def as_mapping(overrides: Sequence[str]) -> dict[str, str]:
    """`section.key=value` strings -> {"section.key": "value"} (to merge with typed settings)."""
    return {f"{section}.{name}": value for section, name, value in map(_parse_override, overrides)}


def load(path: str | Path | None, overrides: Sequence[str] | Mapping[str, Any] = (),
         directory: str | Path = "run") -> Run:
    """Read the run file at `path` (or start from defaults), apply `overrides`: strings
    `section.key=value` (as `--set` takes them) or a mapping of `section.key` to values."""
    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    base = Path(".")
    if path is not None:
        path = Path(path)
        base = path.parent
        try:
            text = path.read_text(encoding="utf-8")
            loaded = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as error:
            raise RunFileError(f"{path}: cannot read run file ({error})") from None
        for section, entries in loaded.items():
            if section not in SECTIONS or not isinstance(entries, dict):
                raise RunFileError(f"{path}: unknown section [{section}]; sections: {', '.join(SECTIONS)}")
            for name, value in entries.items():
                values[section][name] = (value, f"{path} [{section}] {name}")
    for section, name, value, where in _overrides(overrides):
        if section not in SECTIONS:
            raise RunFileError(f"{where}: unknown section {section!r}; sections: {', '.join(SECTIONS)}")
        values[section][name] = (value, where)
        if section == "data" and name in PATH_KEYS:  # overrides are relative to the working folder
            values[section][name] = (str(Path(value).absolute()) if value else "", where)

    built = {}
    for section, cls in SECTIONS.items():
        types_by_name = _field_types(cls)
        settings = {}
        for name, (value, where) in values[section].items():
            if name not in types_by_name:
                raise RunFileError(f"{where}: unknown key; [{section}] takes {', '.join(types_by_name)}")
            settings[name] = _convert(value, types_by_name[name], where)
            if section == "data" and name in PATH_KEYS and settings[name] and not where.startswith("override"):
                settings[name] = str((base / settings[name]).absolute())
        try:
            built[section] = cls(**settings)
        except ValueError as error:
            raise RunFileError(f"[{section}]: {error}") from None
    if not built["data"].train:
        raise RunFileError("no training manifest: set [data] train, or --set data.train=FILE")
    return Run(Path(directory), built["data"], built["features"], built["model"], built["train"])
