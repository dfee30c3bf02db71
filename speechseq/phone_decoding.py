"""Words from a phone model: beam search over pronunciations, then spelling.

    search = PhoneBeamSearch(phone_vocabulary(), BeamOptions(lm="phone-lm.arpa"), lexicon, "lm.arpa")
    words = search.words(log_probs, seconds_per_frame)

Two steps. pyctcdecode searches the phone model's CTC output with a KenLM model whose
"words" are pronunciations (the LM's sentences spelt in phones, `phone_language_model`), so
the search keeps to sequences of the lexicon's pronunciations. Then each pronunciation is
spelt: homophones ("two", "to", "too" share one pronunciation) are told apart by the
ordinary word LM, a small beam over the few spellings each word has. A pronunciation the
lexicon lacks (the search leaves one where the model heard no space between two words) is
read as the sequence of pronunciations it has that the word LM likes best for the phone
edits it takes (`Respelling`), so a transcript holds the lexicon's words only.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

from speechseq.decoding import BeamOptions, BeamSearch, Word
from speechseq.lexicon import Lexicon, LexiconError
from speechseq.text import Vocabulary

_SPELLING_BEAM = 16  # word sequences the spelling search keeps (homophone sets are a handful at most)


@dataclasses.dataclass(frozen=True)
class Part:
    """Phones [start, end) of a heard pronunciation, `edits` from the pronunciations that
    spell `words` (the closest the lexicon has, its order)."""

    start: int
    end: int
    edits: int
    words: tuple[str, ...]


# Respelling's costs in the word LM's units (log10 probability): a phone edit inside a word
# costs as much as a word 10**EDIT_COST times less likely, a phone left out SKIP_EDITS edits;
# without a word LM, a word costs one edit. Chosen on the dev sets (RESULTS: "Pronunciations
# the lexicon lacks"): cheaper skips drop real phones to spare the LM a word.
EDIT_COST = 1.5
SKIP_EDITS = 2
_LONGEST_WORD = 24  # phones in the longest pronunciation a part may match (one of CMU's 134,860 is longer)
_OPTIONS_KEPT = 12  # equally close pronunciations a part keeps for the word LM to choose from
_STRETCHES_KEPT = 100_000  # stretches whose closest pronunciations are remembered
_MOST_EDITS = 2  # the most a part may be from a pronunciation (the deletions index's depth)


def _edits_allowed(phones: int) -> int:
    """Edits a part of this many phones may be from a pronunciation: none for one or two
    phones (every short word is one edit from dozens), one for three or four, then two."""
    return 0 if phones <= 2 else 1 if phones <= 4 else _MOST_EDITS


class Respelling:
    """A phone string the lexicon lacks as `Part`s that its pronunciations could be: every
    stretch within a few edits of one (found by SymSpell's index of phone deletions, checked
    by edit distance), and the whole string as the one pronunciation nearest to it, however
    far. `PhoneBeamSearch` picks the path through them the word LM likes."""

    def __init__(self, spellings: dict[str, tuple[str, ...]]):
        self._spellings = spellings
        self._known = list(spellings)
        self._closest_found: dict[str, tuple[int, tuple[str, ...]]] = {}  # stretches recur

    def parts(self, phones: str) -> list[Part]:
        """What `phones` may be made of, by start; a pronunciation it is is its only part."""
        if phones in self._spellings:
            return [Part(0, len(phones), 0, self._spellings[phones])]
        found = []
        for start in range(len(phones)):
            for end in range(start + 1, min(len(phones), start + _LONGEST_WORD) + 1):
                edits, words = self._closest(phones[start:end])
                if words and (start, end) != (0, len(phones)):
                    found.append(Part(start, end, edits, words))
        whole, edits = self._nearest(phones)
        return [Part(0, len(phones), edits, self._spellings[whole])] + found

    def _closest(self, stretch: str) -> tuple[int, tuple[str, ...]]:
        """The fewest edits from `stretch` to a pronunciation (within `_edits_allowed`), and
        the words those closest pronunciations spell (none: no pronunciation is that close)."""
        if stretch not in self._closest_found:
            if len(self._closest_found) >= _STRETCHES_KEPT:  # a long-running transcriber: start again
                self._closest_found.clear()
            self._closest_found[stretch] = self._search_closest(stretch)
        return self._closest_found[stretch]

    def _search_closest(self, stretch: str) -> tuple[int, tuple[str, ...]]:
        from rapidfuzz.distance import Levenshtein

        allowed = _edits_allowed(len(stretch))
        if allowed == 0:
            return 0, self._spellings.get(stretch, ())
        found = {p for variant in _deletions(stretch, allowed) for p in self._by_deletion.get(variant, ())}
        scored = sorted((Levenshtein.distance(stretch, p), p) for p in found)
        if not scored or scored[0][0] > allowed:
            return 0, ()
        closest = [p for edits, p in scored if edits == scored[0][0]][:_OPTIONS_KEPT]
        return scored[0][0], tuple(dict.fromkeys(w for p in closest for w in self._spellings[p]))

    @functools.cached_property
    def _by_deletion(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for phones in self._known:
            for variant in _deletions(phones, _MOST_EDITS):
                index.setdefault(variant, []).append(phones)
        return index

    def _nearest(self, phones: str) -> tuple[str, int]:
        """The one pronunciation closest to `phones`, however far, and its edits."""
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        found = process.extractOne(phones, self._known, scorer=Levenshtein.distance)
        if found is None:
            raise LexiconError("the lexicon has no pronunciations")  # a lexicon is never empty: a bug
        return found[0], int(found[1])


def _deletions(phones: str, most: int) -> set[str]:
    """`phones` with up to `most` phones deleted (itself included): two strings are within
    `most` edits only if these sets of theirs meet (SymSpell)."""
    found = {phones}
    for _ in range(most):
        found |= {s[:i] + s[i + 1:] for s in found for i in range(len(s))}
    return found


@dataclasses.dataclass(frozen=True)
class _Spelt:
    """A beam of the spelling search: its score, its words so far as (heard word's index,
    part), and the word LM's state after them."""

    score: float
    words: tuple[tuple[int, Part, str], ...]
    state: object


class PhoneBeamSearch:
    """`BeamSearch` over a phone model's log-probabilities with an LM of pronunciations,
    its words spelt by `lexicon` and the word LM at `words_lm` (None: no word LM; of
    homophones, the lexicon's first). With a general model (`options.general_lm` of
    pronunciations for the search, `general_words_lm` of words for spelling), spelling
    mixes the two word LMs in the search's proportion."""

    def __init__(self, vocabulary: Vocabulary, options: BeamOptions, lexicon: Lexicon, words_lm: str | None,
                 edit_cost: float = EDIT_COST, general_words_lm: str | None = None):
        self._phones = BeamSearch(vocabulary, options)
        self._respelling = Respelling(lexicon.phone_words())
        self._edit_cost = edit_cost
        self._word_lms: list = []  # (KenLM model, weight) pairs whose weights sum to 1
        self._new_state = None  # kenlm.State, kept so the spelling loop imports nothing
        if words_lm is not None:
            import kenlm

            self._new_state = kenlm.State
            self._word_lms = [(kenlm.Model(words_lm), 1.0)]
            if general_words_lm is not None and options.general_lm is not None:
                share = options.general_alpha / (options.alpha + options.general_alpha or 1.0)
                self._word_lms = [(self._word_lms[0][0], 1 - share), (kenlm.Model(general_words_lm), share)]

    def words(self, log_probs: np.ndarray, seconds_per_frame: float) -> list[Word]:
        """Best beam of `log_probs` [frames, classes] (true frames only) as timed, spelt words;
        a heard word read as several shares its time by their phones."""
        heard = self._phones.words(log_probs, seconds_per_frame)
        timed = []
        for index, part, text in self._spelt([word.text for word in heard]):
            word = heard[index]
            seconds_per_phone = (word.end - word.start) / len(word.text)
            timed.append(dataclasses.replace(word, text=text, start=word.start + part.start * seconds_per_phone,
                                             end=word.start + part.end * seconds_per_phone))
        return timed

    def spell(self, pronunciations: Sequence[str]) -> list[str]:
        """Words for `pronunciations`: each one's spelling that the word LM likes best in its
        sentence; one the lexicon lacks may become several words, or none."""
        return [text for _, _, text in self._spelt(pronunciations)]

    def _spelt(self, pronunciations: Sequence[str]) -> tuple[tuple[int, Part, str], ...]:
        """The words (with where each was heard) of the best path through every heard
        pronunciation's parts: word LM score (or a word's cost) less `edit_cost` an edit.
        Each heard pronunciation is a small lattice, its phone positions the nodes."""
        beams = [_Spelt(0.0, (), self._start_state())]
        for index, phones in enumerate(pronunciations):
            parts = self._respelling.parts(phones)
            known = parts[0].edits == 0 and parts[0].end == len(phones)
            starting: dict[int, list[Part]] = {}
            for part in parts:
                starting.setdefault(part.start, []).append(part)
            at: dict[int, list[_Spelt]] = {0: beams}
            for position in range(len(phones)):
                here = sorted(at.pop(position, []), key=lambda beam: -beam.score)[:_SPELLING_BEAM]
                if not here:
                    continue
                if not known:  # a phone the model added, left out
                    at.setdefault(position + 1, []).extend(
                        dataclasses.replace(beam, score=beam.score - self._edit_cost * SKIP_EDITS) for beam in here)
                for part in starting.get(position, ()):
                    for beam in here:
                        for word in part.words:
                            score, state = self._word_score(beam.state, word)
                            at.setdefault(part.end, []).append(_Spelt(
                                beam.score + score - self._edit_cost * part.edits,
                                beam.words + ((index, part, word),), state))
            beams = sorted(at[len(phones)], key=lambda beam: -beam.score)[:_SPELLING_BEAM]
        return beams[0].words

    def _start_state(self):
        if not self._word_lms:
            return ()
        states = tuple(self._new_state() for _ in self._word_lms)
        for (model, _), state in zip(self._word_lms, states):
            model.BeginSentenceWrite(state)
        return states

    def _word_score(self, states, word: str):
        """log10 P(word | states) (the word LMs' weighted sum) and the states after it;
        without a word LM, one edit's cost."""
        if not self._word_lms:
            return -self._edit_cost, ()
        after = tuple(self._new_state() for _ in self._word_lms)
        score = sum(weight * model.BaseScore(state, word, next_state)
                    for (model, weight), state, next_state in zip(self._word_lms, states, after))
        return score, after


def phone_sentences(sentences: Sequence[str], lexicon: Lexicon) -> tuple[list[str], int]:
    """`sentences` (normalised words) spelt in phones, for a pronunciation LM; those with a
    word the lexicon lacks are left out (their count is returned with them)."""
    spelt = [lexicon.spell(s) for s in sentences if not lexicon.missing(s)]
    return spelt, len(sentences) - len(spelt)
