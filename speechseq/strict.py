"""Settings dataclasses built from dicts (JSON, TOML, model cards) that refuse unknown keys,
so that a typo or a setting from a newer speechseq fails by name instead of being dropped."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from speechseq.errors import SpeechseqError

T = TypeVar("T")


def from_dict(cls: type[T], values: dict[str, Any], what: str) -> T:
    """`cls(**values)`, or a `SpeechseqError` naming the keys `cls` has no field for."""
    unknown = set(values) - {field.name for field in dataclasses.fields(cls)}
    if unknown:
        raise SpeechseqError(f"unknown {what} settings: {', '.join(sorted(unknown))}")
    return cls(**values)
