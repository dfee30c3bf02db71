"""Text <-> ids: the character `Vocabulary` (owner of the CTC blank) and `TagSet`.

The CTC blank is id 0 in every speechseq model (`BLANK_ID`), the convention of
Keras' `ctc_loss`/`ctc_decode` (`mask_index=0`). Decoders that default to the last
class, like `tf.nn.ctc_greedy_decoder`, must be given `blank_index=BLANK_ID`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence

from speechseq.errors import SpeechseqError
from speechseq.files import write_text

BLANK_ID = 0  # CTC blank: fixed for every vocabulary, recorded in saved JSON
BLANK = "<blank>"  # how the blank is shown
ENGLISH = " abcdefghijklmnopqrstuvwxyz'"  # default alphabet: space, letters, apostrophe
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Typographic variants folded before anything else.
_EQUIVALENTS = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_SPACES = re.compile(r"\s+")


class OutOfVocabularyError(SpeechseqError):
    """Characters a vocabulary cannot encode, listed rather than silently dropped."""

    def __init__(self, text: str, characters: Iterable[str]):
        self.text = text
        self.characters = sorted(set(characters))
        shown = " ".join(repr(c) for c in self.characters)
        super().__init__(f"characters outside the vocabulary: {shown} in {text!r}")


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Characters for CTC: symbol i has id i + 1; id 0 is the blank."""

    symbols: tuple[str, ...] = tuple(ENGLISH)  # one character each, ids 1..len
    lowercase: bool = True  # fold case before encoding
    digits_as_words: bool = False  # "42" -> "four two" (each digit spoken)
    strip_punctuation: bool = True  # punctuation not in `symbols` -> space

    def __post_init__(self):
        object.__setattr__(self, "symbols", tuple(self.symbols))
        bad = [s for s in self.symbols if len(s) != 1]
        if bad:
            raise SpeechseqError(f"vocabulary symbols must be single characters, got {bad}")
        if len(set(self.symbols)) != len(self.symbols):
            raise SpeechseqError("vocabulary symbols repeat")

    @property
    def size(self) -> int:
        """Number of classes a CTC output layer needs (symbols + blank)."""
        return len(self.symbols) + 1

    @property
    def _ids(self) -> dict[str, int]:
        return {symbol: index + 1 for index, symbol in enumerate(self.symbols)}

    def normalize(self, text: str) -> str:
        """The transcript as the model should spell it (may still hold OOV characters)."""
        text = unicodedata.normalize("NFKC", text).translate(_EQUIVALENTS)
        if self.lowercase:
            text = text.lower()
        if self.digits_as_words:
            text = re.sub(r"\d", lambda m: f" {DIGIT_WORDS[int(m.group())]} ", text)
        if self.strip_punctuation:
            text = "".join(
                " " if unicodedata.category(c).startswith("P") and c not in self.symbols else c
                for c in text
            )
        if " " in self.symbols:
            text = _SPACES.sub(" ", text).strip()
        return text

    def out_of_vocabulary(self, text: str) -> set[str]:
        """Characters of the normalised `text` that have no id."""
        ids = self._ids
        return {c for c in self.normalize(text) if c not in ids}

    def encode(self, text: str) -> list[int]:
        """Normalise and map to ids; raises `OutOfVocabularyError` listing what is missing."""
        normal = self.normalize(text)
        ids = self._ids
        missing = [c for c in normal if c not in ids]
        if missing:
            raise OutOfVocabularyError(text, missing)
        return [ids[c] for c in normal]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text, skipping blanks (no CTC collapsing: see `decoding`)."""
        return "".join(self.symbols[i - 1] for i in ids if i != BLANK_ID)

    def id_to_symbol(self, index: int) -> str:
        return BLANK if index == BLANK_ID else self.symbols[index - 1]

    @classmethod
    def from_texts(cls, texts: Iterable[str], **options) -> Vocabulary:
        """The smallest vocabulary that spells every normalised text."""
        probe = cls(symbols=(), **options)
        characters = set().union(*(set(probe.normalize(t)) for t in texts))
        return cls(symbols=tuple(sorted(characters)), **options)

    def to_dict(self) -> dict:
        return {
            "kind": "characters",
            "blank_id": BLANK_ID,
            "symbols": list(self.symbols),
            "lowercase": self.lowercase,
            "digits_as_words": self.digits_as_words,
            "strip_punctuation": self.strip_punctuation,
        }

    @classmethod
    def from_dict(cls, values: dict) -> Vocabulary:
        if values.get("kind") != "characters":
            raise SpeechseqError(f"not a character vocabulary (kind={values.get('kind')!r})")
        if values.get("blank_id") != BLANK_ID:
            raise SpeechseqError(
                f"vocabulary puts the CTC blank at {values.get('blank_id')}, speechseq at {BLANK_ID}"
            )
        return cls(
            symbols=tuple(values["symbols"]),
            lowercase=values["lowercase"],
            digits_as_words=values["digits_as_words"],
            strip_punctuation=values["strip_punctuation"],
        )

    def save(self, path) -> None:
        _write_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> Vocabulary:
        return cls.from_dict(_read_json(path))


@dataclasses.dataclass(frozen=True)
class TagSet:
    """Labels for per-frame tagging: label i has id i; unlabelled time gets `background`."""

    labels: tuple[str, ...]  # every label, the background included
    background: str  # label of time that no segment covers

    def __post_init__(self):
        object.__setattr__(self, "labels", tuple(self.labels))
        if len(set(self.labels)) != len(self.labels):
            raise SpeechseqError("tag labels repeat")
        if self.background not in self.labels:
            raise SpeechseqError(f"background label {self.background!r} is not among the labels")

    @classmethod
    def with_background(cls, labels: Sequence[str], background: str = "silence") -> TagSet:
        """`background` first (id 0), then the other labels sorted."""
        rest = sorted(set(labels) - {background})
        return cls(labels=(background, *rest), background=background)

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def background_id(self) -> int:
        return self.labels.index(self.background)

    def id(self, label: str) -> int:
        try:
            return self.labels.index(label)
        except ValueError:
            raise OutOfVocabularyError(label, [label]) from None

    def label(self, index: int) -> str:
        return self.labels[index]

    def to_dict(self) -> dict:
        return {"kind": "tags", "labels": list(self.labels), "background": self.background}

    @classmethod
    def from_dict(cls, values: dict) -> TagSet:
        if values.get("kind") != "tags":
            raise SpeechseqError(f"not a tag set (kind={values.get('kind')!r})")
        return cls(labels=tuple(values["labels"]), background=values["background"])

    def save(self, path) -> None:
        _write_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> TagSet:
        return cls.from_dict(_read_json(path))


def _write_json(path, values: dict) -> None:
    write_text(path, json.dumps(values, indent=2, ensure_ascii=False) + "\n")


def _read_json(path) -> dict:
    with open(path, encoding="utf-8") as file:
        return json.load(file)
