"""Pronunciations: words spelt in phones, for models that hear phones and leave spelling
to a dictionary.

    lexicon = Lexicon.read(pocketsphinx_dictionary())    # CMU's dictionary, 134k words
    lexicon.spell("fort churchill")                      # "fOrt cRcil": one character per phone
    lexicon.phone_words()["fOrt"]                        # ("foret", "fort", "forte")

A character CTC model trained on a few hours of speech spells the words it has heard and
guesses at the rest (RESULTS: "Why Kathleen's held-out prompts read so much worse"); a
phone model learns 39 sounds, and the words come from the dictionary and a language model
(`phone_decoding`). The phone set is ARPAbet without stress, as CMU's dictionary and
PocketSphinx use it; each phone travels as one character (`ARPABET`), so a phone model is a
`Vocabulary` like any other (a CTC class per phone, a space between words) and every
part of training, export and serving works on it unchanged.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from speechseq.corpora import Utterance
from speechseq.errors import SpeechseqError
from speechseq.files import write_text
from speechseq.text import Vocabulary

# Each phone's character. Consonants and five vowels keep a letter of their usual spelling
# (a model started from a character model's weights keeps those output rows: `starting`).
ARPABET = {
    "B": "b", "D": "d", "F": "f", "G": "g", "HH": "h", "JH": "j", "K": "k", "L": "l", "M": "m", "N": "n",
    "P": "p", "R": "r", "S": "s", "T": "t", "V": "v", "W": "w", "Y": "y", "Z": "z",
    "AE": "a", "EH": "e", "IH": "i", "AA": "o", "AH": "u", "CH": "c", "NG": "q", "SH": "x",
    "TH": "T", "DH": "H", "ZH": "Z", "AO": "O", "AW": "W", "AY": "Y", "ER": "R", "EY": "E", "IY": "I",
    "OW": "A", "OY": "C", "UH": "U", "UW": "V",
}
_PHONE_OF = {character: phone for phone, character in ARPABET.items()}
_VARIANT = re.compile(r"\(\d+\)$")  # CMU marks a word's 2nd, 3rd... pronunciation "word(2)"

# How a phone model's transcripts and references are written: lower-case words, digits as words.
WORD_TEXT = Vocabulary(digits_as_words=True)


class LexiconError(SpeechseqError):
    """A pronunciation dictionary that cannot be read, or words it does not have."""


def phone_vocabulary() -> Vocabulary:
    """The CTC classes of a phone model: the 39 phones' characters and the space between words."""
    return Vocabulary(symbols=(" ", *sorted(ARPABET.values())), lowercase=False, digits_as_words=False)


def is_phone_vocabulary(vocabulary: Vocabulary) -> bool:
    return vocabulary == phone_vocabulary()


def transcript_text(vocabulary: Vocabulary) -> Vocabulary:
    """How the transcripts of a model with `vocabulary` are written and its references
    normalised: a phone model writes words (`WORD_TEXT`), a character model its own symbols."""
    return WORD_TEXT if is_phone_vocabulary(vocabulary) else vocabulary


def arpabet(phones: str) -> str:
    """A phone string ("fOrt") as ARPAbet ("F AO R T"), words separated by " | "."""
    return " | ".join(" ".join(_PHONE_OF[c] for c in word) for word in phones.split())


@dataclasses.dataclass(frozen=True)
class Lexicon:
    """Each word's pronunciations as phone strings (one character per phone), the first the
    dictionary's main one."""

    pronunciations: Mapping[str, tuple[str, ...]]

    @classmethod
    def read(cls, path: str | os.PathLike, words: Iterable[str] | None = None) -> Lexicon:
        """A dictionary in CMU's format: `word PH PH ...` per line, `word(2) ...` for another
        pronunciation, stress digits ignored, `;;;` comments. `words`: keep only these."""
        wanted = set(words) if words is not None else None
        found: dict[str, list[str]] = {}
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise LexiconError(f"{path}: no such pronunciation dictionary") from None
        except UnicodeDecodeError:
            raise LexiconError(f"{path}: not a UTF-8 text file") from None
        for number, line in enumerate(lines, 1):
            parts = line.split()
            if not parts or line.startswith(";;;"):
                continue
            word = _VARIANT.sub("", parts[0]).lower()
            if wanted is not None and word not in wanted:
                continue
            phones = [phone.rstrip("012") for phone in parts[1:]]
            unknown = [phone for phone in phones if phone not in ARPABET]
            if not phones or unknown:
                problem = f"unknown phones {unknown}" if unknown else "no phones"
                raise LexiconError(f"{path}, line {number}: {problem} in {line.strip()!r}")
            found.setdefault(word, []).append("".join(ARPABET[phone] for phone in phones))
        if not found:
            raise LexiconError(f"{path}: no pronunciations in it" + (" for the words asked" if wanted else ""))
        return cls({word: tuple(dict.fromkeys(spellings)) for word, spellings in found.items()})

    def write(self, path: str | os.PathLike) -> None:
        """CMU's format, ARPAbet phones: `read` gives this lexicon back."""
        lines = []
        for word in sorted(self.pronunciations):
            for index, phones in enumerate(self.pronunciations[word]):
                name = word if index == 0 else f"{word}({index + 1})"
                lines.append(f"{name} {' '.join(_PHONE_OF[c] for c in phones)}")
        write_text(Path(path), "\n".join(lines) + "\n")

    def missing(self, text: str) -> list[str]:
        """Words of normalised `text` the lexicon does not have, in order, each once."""
        return list(dict.fromkeys(w for w in text.split() if w not in self.pronunciations))

    def spell(self, text: str) -> str:
        """Normalised `text` in phones (each word's main pronunciation), words separated by spaces."""
        missing = self.missing(text)
        if missing:
            raise LexiconError(f"not in the pronunciation dictionary: {', '.join(missing)}")
        return " ".join(self.pronunciations[w][0] for w in text.split())

    def spell_utterances(self, utterances: Sequence[Utterance]) -> tuple[list[Utterance], list[str]]:
        """The utterances (transcripts as written) whose every word the lexicon has, each
        transcript in phones; and the words it lacks, sorted, each once."""
        spelt, missing = [], set()
        for utterance in utterances:
            words = WORD_TEXT.normalize(utterance.text)
            lacking = self.missing(words)
            missing.update(lacking)
            if not lacking:
                spelt.append(dataclasses.replace(utterance, text=self.spell(words)))
        return spelt, sorted(missing)

    def phone_words(self) -> dict[str, tuple[str, ...]]:
        """Each pronunciation -> the words it spells (homophones share one), the lexicon's order."""
        spelt: dict[str, list[str]] = {}
        for word, pronunciations in self.pronunciations.items():
            for phones in pronunciations:
                spelt.setdefault(phones, []).append(word)
        return {phones: tuple(words) for phones, words in spelt.items()}


def pocketsphinx_dictionary() -> Path:
    """CMU's pronouncing dictionary as PocketSphinx's wheel ships it (the peers extra)."""
    try:
        from pocketsphinx import get_model_path
    except ImportError:
        raise LexiconError("the pronunciation dictionary comes with PocketSphinx: "
                           "pip install -e '.[peers]', or pass a dictionary of your own") from None
    return Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
