"""A general-English bigram model, mixed into a task's own LM when an export decodes.

    general = Bigrams.read("general.arpa").within(lexicon.pronunciations).pruned(300_000)
    general.write("general-lm.arpa")                                # beside the word LM (spelling)
    general.by_pronunciation(lexicon).write("general-phone-lm.arpa")  # beside the pronunciation LM (search)

Why: an LM of a model's training prompts knows their word orders and little else, so on
new sentences it lets "four the first time" stand; a general model knows "for the first
time" (RESULTS: "A general LM mixed into english-read/13's search"). The two are mixed
log-linearly at search time (pyctcdecode's `MultiLanguageModel`, `decoding.BeamSearch`),
each with its own weight, so the task's prompts keep their say.

No maintained Python library prunes an ARPA model or re-keys one by pronunciation (SRILM
and pocolm are not on PyPI; arpabo estimates from counts; `arpa` only reads), so this
module does both for bigram models, the order PocketSphinx's general model can be had in.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path

from speechseq.errors import SpeechseqError
from speechseq.files import atomic_path, write_text
from speechseq.lexicon import Lexicon

SENTENCE_MARKS = ("<s>", "</s>")
UNKNOWN = "<unk>"
_IMPOSSIBLE = -99.0  # ARPA's log10 probability of <s>, which is only ever a history
_COUNT = re.compile(r"^ngram (\d+)=(\d+)$")
_SECTION = re.compile(r"^\\(\d+)-grams:$")


class GeneralModelError(SpeechseqError):
    """An ARPA file that cannot serve as a general bigram model."""


@dataclasses.dataclass(frozen=True)
class Bigrams:
    """A back-off bigram model: log10 probabilities, and each history's log10 back-off."""

    unigrams: dict[str, float]
    backoffs: dict[str, float]
    bigrams: dict[tuple[str, str], float]  # (history, word) -> log10 p(word | history)

    @classmethod
    def read(cls, path: str | os.PathLike) -> Bigrams:
        """An ARPA model of order 1 or 2 (a higher order is refused: its bigrams alone are
        not a bigram model)."""
        path = Path(path)
        try:
            if path.suffix == ".gz":
                with gzip.open(path, "rt", encoding="utf-8") as file:
                    lines = file.read().splitlines()
            else:
                lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise GeneralModelError(f"{path}: no such language model file") from None
        except (UnicodeDecodeError, gzip.BadGzipFile, EOFError):
            raise GeneralModelError(f"{path}: not a UTF-8 ARPA text file (or a gzip'd one)") from None
        if "\\data\\" not in (line.strip() for line in lines):
            raise GeneralModelError(f"{path}: not an ARPA language model (no \\data\\ section)")
        orders = [int(m.group(1)) for m in (_COUNT.match(line.strip()) for line in lines) if m]
        if not orders or max(orders) > 2:
            raise GeneralModelError(f"{path}: a general model must be of order 1 or 2 (bigrams), this one is of "
                                    f"order {max(orders, default=0)}")
        unigrams, backoffs, bigrams = {}, {}, {}
        order = 0
        for number, line in enumerate(lines, 1):
            text = line.strip()
            section = _SECTION.match(text)
            if section:
                order = int(section.group(1))
                continue
            if not text or text.startswith("\\") or not order:
                continue
            fields = text.split()
            try:
                log_p = float(fields[0])
                backoff = float(fields[order + 1]) if len(fields) > order + 1 else 0.0
            except (ValueError, IndexError):
                raise GeneralModelError(f"{path}, line {number}: not an {order}-gram line: {text!r}") from None
            if len(fields) not in (order + 1, order + 2):
                raise GeneralModelError(f"{path}, line {number}: not an {order}-gram line: {text!r}")
            if order == 1:
                unigrams[fields[1]], backoffs[fields[1]] = log_p, backoff
            else:
                bigrams[fields[1], fields[2]] = log_p
        if not unigrams:
            raise GeneralModelError(f"{path}: no unigrams")
        return cls(unigrams, backoffs, bigrams)

    @classmethod
    def from_probabilities(cls, unigrams: dict[str, float], bigrams: dict[tuple[str, str], float]) -> Bigrams:
        """The model of these log10 probabilities, each history's back-off worked out."""
        return _renormalised(unigrams, bigrams)

    def within(self, words: Iterable[str]) -> Bigrams:
        """The model over `words` only (and the sentence marks): unigrams renormalised,
        back-offs recomputed for the bigrams kept."""
        keep = set(words) | set(SENTENCE_MARKS)
        unigrams = {w: p for w, p in self.unigrams.items() if w in keep}
        mass = sum(10 ** p for p in unigrams.values() if p > _IMPOSSIBLE)
        if not mass:
            raise GeneralModelError("the general model knows none of the lexicon's words")
        shift = -math.log10(mass)
        unigrams = {w: (p if p <= _IMPOSSIBLE else p + shift) for w, p in unigrams.items()}
        bigrams = {hw: p for hw, p in self.bigrams.items() if hw[0] in unigrams and hw[1] in unigrams}
        return _renormalised(unigrams, bigrams)

    def pruned(self, keep: int) -> Bigrams:
        """The `keep` bigrams that move the model most: p(h) p(w|h) log(p(w|h) / (bo(h) p(w))),
        what dropping one would cost in relative entropy (Stolcke's criterion, back-off
        weights held fixed); back-offs recomputed for those kept."""
        if keep >= len(self.bigrams):
            return self
        history_p = {w: 10 ** p for w, p in self.unigrams.items() if p > _IMPOSSIBLE}
        history_p["<s>"] = history_p.get("</s>", 0.0)  # a sentence starts as often as one ends

        def cost(item):
            (history, word), log_p = item
            return history_p.get(history, 0.0) * 10 ** log_p * (
                log_p - self.backoffs.get(history, 0.0) - self.unigrams[word])

        kept = dict(sorted(self.bigrams.items(), key=cost, reverse=True)[:keep])
        return _renormalised(self.unigrams, kept)

    def by_pronunciation(self, lexicon: Lexicon) -> Bigrams:
        """The model over the lexicon's pronunciations (each word's first): a pronunciation
        is as likely as its spellings together, and follows a history as they follow its
        likeliest spelling. What `phone_decoding`'s search hears is pronunciations."""
        spoken = {w: lexicon.pronunciations[w][0] for w in self.unigrams if w in lexicon.pronunciations}
        spoken |= {mark: mark for mark in SENTENCE_MARKS if mark in self.unigrams}
        unigrams: dict[str, float] = {}
        likeliest: dict[str, str] = {}  # pronunciation -> its likeliest spelling, the history it stands for
        for word, phones in spoken.items():
            p = self.unigrams[word]
            if phones not in likeliest or p > self.unigrams[likeliest[phones]]:
                likeliest[phones] = word
            unigrams[phones] = _log_sum(unigrams[phones], p) if phones in unigrams else p
        histories = set(likeliest.values())
        bigrams: dict[tuple[str, str], float] = {}
        for (history, word), p in self.bigrams.items():
            if history in histories and word in spoken:
                key = (spoken[history], spoken[word])
                bigrams[key] = _log_sum(bigrams[key], p) if key in bigrams else p
        return _renormalised(unigrams, bigrams)

    def write(self, path: str | os.PathLike) -> Path:
        """KenLM's ARPA layout, with an unknown word as likely as the rarest known one (so a
        word the general model lacks is left to the task's LM, not ruled out)."""
        unigrams = dict(self.unigrams)
        if UNKNOWN not in unigrams:
            unigrams[UNKNOWN] = min(p for p in unigrams.values() if p > _IMPOSSIBLE)
        lines = ["\\data\\", f"ngram 1={len(unigrams)}"] + ([f"ngram 2={len(self.bigrams)}"] if self.bigrams else [])
        lines += ["", "\\1-grams:"]
        lines += [f"{p:.6f}\t{w}\t{self.backoffs.get(w, 0.0):.6f}" for w, p in sorted(unigrams.items())]
        if self.bigrams:
            lines += ["", "\\2-grams:"]
            lines += [f"{p:.6f}\t{h} {w}" for (h, w), p in sorted(self.bigrams.items())]
        text = "\n".join(lines + ["", "\\end\\", ""])
        if str(path).endswith(".gz"):  # KenLM reads gzip'd ARPA: a third of the size in an export
            with atomic_path(path) as temporary, gzip.open(temporary, "wt", encoding="utf-8") as file:
                file.write(text)
        else:
            write_text(Path(path), text)
        return Path(path)


def _log_sum(a: float, b: float) -> float:
    high, low = max(a, b), min(a, b)
    return high + math.log10(1 + 10 ** (low - high))


def _renormalised(unigrams: dict[str, float], bigrams: dict[tuple[str, str], float]) -> Bigrams:
    """The model with each history's back-off making its distribution sum to one:
    (1 - its bigrams' probability) / (1 - their words' unigram probability)."""
    listed, their_unigrams = {}, {}
    for (history, word), p in bigrams.items():
        listed[history] = listed.get(history, 0.0) + 10 ** p
        their_unigrams[history] = their_unigrams.get(history, 0.0) + 10 ** unigrams[word]
    backoffs = {h: math.log10(max(1e-9, 1 - listed[h]) / max(1e-9, 1 - their_unigrams[h])) for h in listed}
    return Bigrams(dict(unigrams), backoffs, dict(bigrams))
