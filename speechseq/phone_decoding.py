"""Words from a phone model: beam search over pronunciations, then spelling.

    search = PhoneBeamSearch(phone_vocabulary(), BeamOptions(lm="phone-lm.arpa"), lexicon, "lm.arpa")
    words = search.words(log_probs, seconds_per_frame)

Two steps. pyctcdecode searches the phone model's CTC output with a KenLM model whose
"words" are pronunciations (the LM's sentences spelt in phones, `phone_language_model`), so
the search keeps to sequences of the lexicon's pronunciations. Then each pronunciation is
spelt: homophones ("two", "to", "too" share one pronunciation) are told apart by the
ordinary word LM, a small beam over the few spellings each word has. A pronunciation the
lexicon lacks (the search may still leave one, at a cost) becomes the nearest that it has,
so a transcript holds the lexicon's words only.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Sequence

import numpy as np

from speechseq.decoding import BeamOptions, BeamSearch, Word
from speechseq.lexicon import Lexicon, LexiconError
from speechseq.text import Vocabulary

_SPELLING_BEAM = 16  # spellings kept per word; homophone sets are small (at most a handful)


class PhoneBeamSearch:
    """`BeamSearch` over a phone model's log-probabilities with an LM of pronunciations,
    its words spelt by `lexicon` and the word LM at `words_lm`."""

    def __init__(self, vocabulary: Vocabulary, options: BeamOptions, lexicon: Lexicon, words_lm: str):
        import kenlm

        self._phones = BeamSearch(vocabulary, options)
        self._spellings = lexicon.phone_words()
        self._known = list(self._spellings)
        self._words_lm = kenlm.Model(words_lm)

    def words(self, log_probs: np.ndarray, seconds_per_frame: float) -> list[Word]:
        """Best beam of `log_probs` [frames, classes] (true frames only) as timed, spelt words."""
        found = self._phones.words(log_probs, seconds_per_frame)
        spelt = self.spell(w.text for w in found)
        return [dataclasses.replace(word, text=text) for word, text in zip(found, spelt)]

    def spell(self, pronunciations: Iterable[str]) -> list[str]:
        """The spelling of each pronunciation that the word LM likes best in its sentence."""
        import kenlm

        start = kenlm.State()
        self._words_lm.BeginSentenceWrite(start)
        beams: list[tuple[float, list[str], kenlm.State]] = [(0.0, [], start)]
        for phones in pronunciations:
            options = self._spellings.get(phones) or self._spellings[self._nearest(phones)]
            extended = []
            for score, words, state in beams:
                for word in options:
                    after = kenlm.State()
                    extended.append((score + self._words_lm.BaseScore(state, word, after), words + [word], after))
            extended.sort(key=lambda beam: -beam[0])
            beams = extended[:_SPELLING_BEAM]
        return beams[0][1]

    def _nearest(self, phones: str) -> str:
        close = difflib.get_close_matches(phones, self._known, n=1, cutoff=0.0)
        if not close:
            raise LexiconError("the lexicon has no pronunciations")  # a lexicon is never empty: a bug
        return close[0]


def phone_sentences(sentences: Sequence[str], lexicon: Lexicon) -> tuple[list[str], int]:
    """`sentences` (normalised words) spelt in phones, for a pronunciation LM; those with a
    word the lexicon lacks are left out (their count is returned with them)."""
    spelt = [lexicon.spell(s) for s in sentences if not lexicon.missing(s)]
    return spelt, len(sentences) - len(spelt)
