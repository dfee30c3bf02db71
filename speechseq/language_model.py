"""n-gram language models for beam search: built from a model's training text, shipped with its export.

    build_arpa(sentences, "lm.arpa", order=3)              # arpabo's estimate, KenLM's layout
    ship(version_folder, "lm.arpa", BeamOptions(alpha=0.5, beta=1.0), about={...})
    options = shipped(version_folder)                      # BeamOptions with the shipped LM, or None
    reweigh(version_folder, alpha, beta, about={...})      # new weights for the LM it holds

The estimate is arpabo's (Kneser-Ney or Good-Turing back-off, pure Python, by the author
of CMU Sphinx's own arpabo). Its ARPA file differs from what KenLM (and so pyctcdecode)
reads in layout only: a comment line before `\\data\\` and spaces where KenLM wants tabs
between an n-gram's log-probability, its words and its back-off. `build_arpa` writes
the same numbers in KenLM's layout.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from speechseq.decoding import BeamOptions
from speechseq.errors import SpeechseqError
from speechseq.files import write_text
from speechseq.model_card import update_card
from speechseq.general_lm import Bigrams
from speechseq.lexicon import Lexicon

LM_FILE, SETTINGS_FILE = "lm.arpa", "lm.json"
CARD_KEY = "language_model"  # the model card's entry for a shipped LM (its settings)
# A phone model's export also ships its words' pronunciations and an LM of them (`phone_decoding`).
PHONE_LM_FILE, LEXICON_FILE = "phone-lm.arpa", "lexicon.dict"
# A general model mixed in (`general_lm`): of words, and for a phone model of pronunciations.
GENERAL_LM_FILE, GENERAL_PHONE_LM_FILE = "general-lm.arpa.gz", "general-phone-lm.arpa.gz"
_SECTION = re.compile(r"^\\(\d+)-grams:$")


class LanguageModelError(SpeechseqError):
    """Text an n-gram model cannot be built from."""


def build_arpa(sentences: Iterable[str], path: str | os.PathLike, order: int = 3,
               smoothing: str = "kneser_ney", words: Iterable[str] = ()) -> Path:
    """An ARPA n-gram model of `sentences` (one string each, words split at spaces).

    `words`: words the model should know beyond its sentences, each one not in them
    counted once as a unigram (arpabo's word file). Why: a model of a few thousand
    training prompts gives every other word the unknown word's probability, so the beam
    search respells a word it never saw as known ones; with a general vocabulary it may
    keep it (RESULTS: "A general vocabulary in the shipped LM")."""
    from arpabo import ArpaBoLM

    lines = [" ".join(sentence.split()) for sentence in sentences]
    lines = [line for line in lines if line]
    if not lines:
        raise LanguageModelError("no words to build a language model from")
    model = ArpaBoLM(max_order=order, smoothing_method=smoothing, unicode_norm=False)
    model.read_corpus(io.StringIO("\n".join(lines) + "\n"))
    words = [word for word in words if word]
    if words:
        # arpabo reads listed words from a file only: hand it one beside the output.
        listed = Path(path).with_name(f".{Path(path).name}.words")
        listed.write_text("\n".join(words) + "\n", encoding="utf-8")
        try:
            model.read_word_file(str(listed))
        finally:
            listed.unlink()
    model.compute()
    written = io.StringIO()
    model.write(written)
    write_text(Path(path), kenlm_layout(written.getvalue()))
    return Path(path)


def kenlm_layout(arpa: str) -> str:
    """An ARPA text with what precedes `\\data\\` dropped and each n-gram line tab-separated
    (log-probability, the n words, the back-off if any), as KenLM requires."""
    start = arpa.find("\\data\\")
    if start < 0:
        raise LanguageModelError("not an ARPA model: no \\data\\ section")
    out, order = [], 0
    for line in arpa[start:].splitlines():
        section = _SECTION.match(line.strip())
        if section:
            order = int(section.group(1))
        elif line.startswith("\\"):
            order = 0
        elif order and line.strip():
            fields = line.split()
            line = "\t".join([fields[0], " ".join(fields[1:order + 1]), *fields[order + 1:]])
        out.append(line)
    return "\n".join(out) + "\n"


def ship(version_folder: str | os.PathLike, arpa: str | os.PathLike, options: BeamOptions, about: dict,
         phones: tuple[str | os.PathLike, Lexicon] | None = None) -> None:
    """Put the model `arpa` into an export (before it is published): transcription with the
    export then beam-searches with it by default. `about` goes beside the weights and into
    the model card. A phone model's export also takes `phones`: the LM of pronunciations
    its search runs on and the lexicon that spells them (`arpa` then chooses spellings)."""
    assets = Path(version_folder) / "assets"
    shutil.copyfile(arpa, assets / LM_FILE)
    settings = {"file": LM_FILE, "beam_width": options.beam_width, "alpha": options.alpha,
                "beta": options.beta}
    if phones:
        phone_arpa, lexicon = phones
        shutil.copyfile(phone_arpa, assets / PHONE_LM_FILE)
        lexicon.write(assets / LEXICON_FILE)
        settings |= {"phone_lm": PHONE_LM_FILE, "lexicon": LEXICON_FILE, "lexicon_words": len(lexicon.pronunciations)}
    _write_settings(assets, settings | about)


def ship_general(version_folder: str | os.PathLike, general: Bigrams, lexicon: Lexicon | None, weight: float,
                 about: dict) -> None:
    """Put a general model (`general_lm.Bigrams`, over the export's words) beside the LM an
    export ships, mixed in with `weight` (`BeamOptions.general_alpha`); a phone model's
    export (`lexicon`) also gets it over pronunciations, for its search."""
    assets = Path(version_folder) / "assets"
    settings = json.loads((assets / SETTINGS_FILE).read_text())
    general.write(assets / GENERAL_LM_FILE)
    settings |= {"general_lm": GENERAL_LM_FILE, "general_alpha": weight, "general": about}
    if lexicon is not None:
        general.by_pronunciation(lexicon).write(assets / GENERAL_PHONE_LM_FILE)
        settings["general_phone_lm"] = GENERAL_PHONE_LM_FILE
    _write_settings(assets, settings)


def reweigh(version_folder: str | os.PathLike, alpha: float, beta: float, about: dict,
            general_alpha: float | None = None) -> None:
    """New weights for the LM an export already holds (kept from the export or run it was
    made from), with `about` (what they were tuned on) replacing what the old ones said."""
    assets = Path(version_folder) / "assets"
    settings = json.loads((assets / SETTINGS_FILE).read_text())
    weights = {"alpha": alpha, "beta": beta} | ({} if general_alpha is None else {"general_alpha": general_alpha})
    _write_settings(assets, settings | weights | about)


def _write_settings(assets: Path, settings: dict) -> None:
    write_text(assets / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n")
    update_card(assets, {CARD_KEY: settings})


def shipped(version_folder: str | os.PathLike) -> BeamOptions | None:
    """Beam search with the export's own language model and weights, or None if it ships none."""
    assets = Path(version_folder) / "assets"
    if not (assets / SETTINGS_FILE).exists():
        return None
    settings = json.loads((assets / SETTINGS_FILE).read_text())
    options = dataclasses.replace(BeamOptions(), lm=str(assets / settings["file"]), beam_width=int(settings["beam_width"]),
                                  alpha=float(settings["alpha"]), beta=float(settings["beta"]))
    if "general_lm" in settings:
        options = dataclasses.replace(options, general_lm=str(assets / settings["general_lm"]),
                                      general_alpha=float(settings["general_alpha"]))
    return options


@dataclasses.dataclass(frozen=True)
class PhoneSearch:
    """What a phone model export decodes with (`phone_decoding.PhoneBeamSearch`'s arguments)."""

    options: BeamOptions  # its pronunciation LM (and general one) with the shipped weights
    lexicon: Lexicon
    words_lm: str  # the word LM that spells
    general_words_lm: str | None  # the general word LM mixed into spelling, if it ships one


def shipped_lexicon(version_folder: str | os.PathLike) -> PhoneSearch | None:
    """A phone model export's search; None if it ships no lexicon."""
    options = shipped(version_folder)
    assets = Path(version_folder) / "assets"
    if options is None:
        return None
    settings = json.loads((assets / SETTINGS_FILE).read_text())
    if "lexicon" not in settings:
        return None
    general_phones = settings.get("general_phone_lm")
    search = dataclasses.replace(options, lm=str(assets / settings["phone_lm"]),
                                 general_lm=str(assets / general_phones) if general_phones else None)
    return PhoneSearch(search, Lexicon.read(assets / settings["lexicon"]), options.lm,
                       options.general_lm if general_phones else None)
