"""Closed-vocabulary CTC decoding: transcripts made only of listed words or phrases.

    grammar = Grammar.from_lines(["zero", "one", "two", ...])     # any sequence of these words
    grammar = Grammar.from_lines(["check my balance", "agent"])   # any sequence of these phrases
    words = GrammarDecoder(vocabulary, grammar).words(log_probs, seconds_per_frame)

A beam search with a language model only prefers known words: with a voice the model
has never heard, "fivese" can still win. This decoder searches the CTC paths that spell
a sequence of the grammar's phrases and nothing else (the Viterbi path through the CTC
topology of a phrase loop, as PocketSphinx searches a JSGF grammar), so every word it
returns is in the list. Between words the model's space is optional, blanks anywhere,
and each word costs `-beta` plus `alpha` times its phrase's log prior.

The search is exact (no pruning): one array operation per frame over the grammar's
states, fast for the closed vocabularies it is for (digits, commands, a phrase list of
a few thousand characters in all). General open-vocabulary decoding stays with
`decoding.BeamSearch` (pyctcdecode, with a KenLM model).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from speechseq.decoding import Word
from speechseq.errors import SpeechseqError
from speechseq.files import write_text
from speechseq.model_card import update_card
from speechseq.lexicon import Lexicon
from speechseq.text import BLANK_ID, Vocabulary


class GrammarError(SpeechseqError):
    """A word list that cannot be decoded with."""


@dataclasses.dataclass(frozen=True)
class Grammar:
    """Phrases (each a tuple of words), any sequence of which may be said, and how often
    each was seen: a phrase's prior is its share of the counts."""

    phrases: tuple[tuple[str, ...], ...]
    counts: tuple[int, ...]

    @classmethod
    def from_lines(cls, lines: Iterable[str], where: str = "the word list") -> Grammar:
        """One word or phrase per line (blank lines and `#` comments skipped); a phrase
        listed N times has N times the prior of one listed once."""
        counts: Counter[tuple[str, ...]] = Counter()
        for line in lines:
            line = line.split("#", 1)[0].strip().lower()
            if line:
                counts[tuple(line.split())] += 1
        if not counts:
            raise GrammarError(f"{where}: no words in it")
        phrases = tuple(sorted(counts))
        return cls(phrases, tuple(counts[p] for p in phrases))

    @classmethod
    def read(cls, path: str | os.PathLike) -> Grammar:
        try:
            text = open(path, encoding="utf-8").read()
        except UnicodeDecodeError:
            raise GrammarError(f"{path}: not a UTF-8 text file of words") from None
        return cls.from_lines(text.splitlines(), where=str(path))

    @property
    def log_priors(self) -> tuple[float, ...]:
        total = sum(self.counts)
        return tuple(math.log(count / total) for count in self.counts)

    @property
    def words(self) -> frozenset[str]:
        return frozenset(word for phrase in self.phrases for word in phrase)

    def to_lines(self) -> list[str]:
        """Lines `from_lines` reads back as this grammar."""
        return [" ".join(phrase) for phrase, count in zip(self.phrases, self.counts) for _ in range(count)]


@dataclasses.dataclass(frozen=True)
class GrammarOptions:
    alpha: float = 1.0  # weight of the phrases' log priors
    beta: float = 0.0  # bonus per word: higher gives more, shorter words


# An export's own word list: assets/grammar.txt, its weights in assets/grammar.json.
GRAMMAR_FILE, WEIGHTS_FILE = "grammar.txt", "grammar.json"
CARD_WORDS = 100  # a longer list is counted in the model card, not written out
CARD_KEY = "grammar"  # the model card's entry for a shipped word list


def ship(version_folder: str | os.PathLike, grammar: Grammar, options: GrammarOptions, about: dict) -> None:
    """Put `grammar` into an export (before it is published): transcription with the export
    then decodes with it by default. `about` (where it came from, dev scores) goes beside
    the weights and into the model card."""
    assets = Path(version_folder) / "assets"
    write_text(assets / GRAMMAR_FILE, "\n".join(grammar.to_lines()) + "\n")
    summary = {"file": GRAMMAR_FILE, "words": sorted(grammar.words), "phrases": len(grammar.phrases),
               **dataclasses.asdict(options), **about}
    write_text(assets / WEIGHTS_FILE, json.dumps(summary, indent=2) + "\n")
    update_card(assets, {CARD_KEY: card_entry(summary)})


def card_entry(summary: dict) -> dict:
    """A shipped list's summary (grammar.json) as the model card gives it: a card to read,
    not a dictionary, so a long list is counted there and listed in its file."""
    if len(summary["words"]) > CARD_WORDS:
        return summary | {"words": f"{len(summary['words'])} words, listed in assets/{GRAMMAR_FILE}"}
    return summary


def shipped_about(version_folder: str | os.PathLike) -> dict:
    """What the export's grammar.json says of its list beyond the list and its weights
    (where it came from, its lexicon, what the weights were tuned on)."""
    summary = json.loads((Path(version_folder) / "assets" / WEIGHTS_FILE).read_text())
    made = {"file", "words", "phrases", *(field.name for field in dataclasses.fields(GrammarOptions))}
    return {key: value for key, value in summary.items() if key not in made}


def shipped_decoder(version_folder: str | os.PathLike, vocabulary: Vocabulary) -> GrammarDecoder | None:
    """A decoder of the export's own grammar with its weights, or None if it ships none (a
    phone model's grammar names the lexicon that says how its words sound)."""
    found = shipped(version_folder)
    if not found:
        return None
    return GrammarDecoder(vocabulary, *found, lexicon=shipped_lexicon(version_folder))


def shipped_lexicon(version_folder: str | os.PathLike) -> Lexicon | None:
    """The lexicon a phone model's shipped grammar is heard through; None if it names none."""
    assets = Path(version_folder) / "assets"
    if not (assets / WEIGHTS_FILE).exists():
        return None
    lexicon_file = json.loads((assets / WEIGHTS_FILE).read_text()).get("lexicon")
    return Lexicon.read(assets / lexicon_file) if lexicon_file else None


def shipped(version_folder: str | os.PathLike) -> tuple[Grammar, GrammarOptions] | None:
    """The export's own grammar and its weights, or None if it ships none."""
    assets = Path(version_folder) / "assets"
    if not (assets / WEIGHTS_FILE).exists():
        return None
    summary = json.loads((assets / WEIGHTS_FILE).read_text())
    options = GrammarOptions(alpha=float(summary["alpha"]), beta=float(summary["beta"]))
    return Grammar.read(assets / summary["file"]), options


# Each token node is followed by a blank node. Scores are kept in one array laid out as
# [token nodes | their blank nodes | the initial blank | junctions | an always -inf slot].
# A junction is the best of a set of nodes at the previous frame (where phrases end),
# computed once per frame, so that every phrase's start need not list every phrase's end.
_FAN_IN = 6  # most predecessors a node has (self, token before, its blank, space, its blank, ...)


@dataclasses.dataclass(frozen=True)
class SearchTables:
    """The search of a `GrammarDecoder` as arrays, for running it elsewhere (the graph of an
    export: `grammar_graph`). Scores live in one vector laid out as in `GrammarDecoder`."""

    symbols: np.ndarray  # [emitting] label id each emitting node reads
    word_of: np.ndarray  # [emitting] index into `word_texts` of each letter node, -1 elsewhere
    word_starts: np.ndarray  # [emitting] bool: the first letter of a word
    word_texts: tuple[str, ...]
    start_weights: np.ndarray  # [emitting] added at frame 0: where a path may begin, -inf elsewhere
    junction_sources: np.ndarray  # [junctions, width] nodes each junction takes the best of
    table: np.ndarray  # [emitting, fan-in] each node's predecessors (junctions and the -inf slot too)
    weights: np.ndarray  # [emitting, fan-in] what each step costs
    finals: np.ndarray  # nodes a path may end on

    @property
    def junction(self) -> int:
        return self.symbols.size  # the first junction's slot


class GrammarDecoder:
    """Viterbi decoding of CTC log-probabilities over a `Grammar`'s phrase loop."""

    def __init__(self, vocabulary: Vocabulary, grammar: Grammar, options: GrammarOptions = GrammarOptions(),
                 lexicon: Lexicon | None = None):
        """`lexicon`: the model hears phones; each word is searched as its main pronunciation."""
        self.grammar, self.options, self.lexicon = grammar, options, lexicon
        if " " not in vocabulary.symbols:
            raise GrammarError("the model's vocabulary has no space: it cannot separate words")
        space = vocabulary.symbols.index(" ") + 1
        symbols: list[int] = []  # label id of each token node
        word_of: list[int] = []  # index into self._word_texts of each token node; -1 for spaces
        self._word_texts: list[str] = []
        predecessors: list[list[tuple[int, float]]] = []  # token nodes' non-junction predecessors
        first_chars: list[tuple[int, float]] = []  # (node, entry weight) of each phrase's first letter
        phrase_ends: list[int] = []  # last letter of each phrase

        def add(symbol: int, word: int) -> int:
            symbols.append(symbol)
            word_of.append(word)
            predecessors.append([])
            return len(symbols) - 1

        for phrase, log_prior in zip(grammar.phrases, grammar.log_priors):
            previous_end, previous_space = None, None
            for position, word in enumerate(phrase):
                if lexicon is not None:
                    if word not in lexicon.pronunciations:
                        raise GrammarError(f"the word {word!r} is not in the lexicon: the model cannot hear it")
                    ids = vocabulary.encode(lexicon.pronunciations[word][0])
                else:
                    missing = sorted(set(word) - set(vocabulary.symbols))
                    if missing:
                        raise GrammarError(f"the word {word!r} has {', '.join(map(repr, missing))}, "
                                           "which the model cannot spell")
                    ids = vocabulary.encode(word)
                self._word_texts.append(word)
                nodes = [add(i, len(self._word_texts) - 1) for i in ids]
                bonus = options.beta
                if position == 0:
                    first_chars.append((nodes[0], bonus + options.alpha * log_prior))
                else:  # from the previous word: directly or through a space
                    predecessors[nodes[0]] += [(previous_end, bonus), (previous_space, bonus)]
                for before, node in zip(nodes, nodes[1:]):
                    predecessors[node].append((before, 0.0))
                previous_end = nodes[-1]
                if position < len(phrase) - 1:
                    previous_space = add(space, -1)
                    predecessors[previous_space].append((previous_end, 0.0))
            phrase_ends.append(previous_end)
        gap = add(space, -1)  # the space between phrases (or before the first)

        n = len(symbols)
        self._n = n
        initial = 2 * n
        self._symbols = np.asarray(symbols + [BLANK_ID] * (n + 1), np.int64)  # emitting nodes
        self._word_of = np.asarray(word_of, np.int64)
        self._first_chars = np.asarray([node for node, _ in first_chars], np.int64)
        self._first_weights = np.asarray([weight for _, weight in first_chars], np.float32)
        ends = np.asarray(phrase_ends, np.int64)
        # Junctions: into a phrase after a blank or the gap's space; into the gap's space
        # from a phrase's end; and straight from a phrase's last letter into the next one's
        # first, one junction per first letter (CTC: only from an end that differs from it).
        first_symbols = sorted({symbols[node] for node, _ in first_chars})
        junction_sources = [np.concatenate([ends + n, [gap, gap + n, initial]]),
                            np.concatenate([ends, ends + n, [initial]])]
        junction_sources += [ends[np.asarray(symbols)[ends] != symbol] for symbol in first_symbols]
        self._junction = 2 * n + 1  # index of the first junction
        self._impossible = self._junction + len(junction_sources)  # the -inf slot
        width = max(len(sources) for sources in junction_sources)
        self._junction_sources = np.full((len(junction_sources), width), self._impossible, np.int64)
        for row, sources in enumerate(junction_sources):
            self._junction_sources[row, : len(sources)] = sources
        into_phrases, into_gap = self._junction, self._junction + 1
        direct = {symbol: self._junction + 2 + k for k, symbol in enumerate(first_symbols)}

        # Dense predecessor table over all emitting nodes: [nodes, _FAN_IN] indices, weights.
        table = np.full((2 * n + 1, _FAN_IN), self._impossible, np.int64)
        weights = np.full((2 * n + 1, _FAN_IN), -np.inf, np.float32)

        def put(node: int, sources: list[tuple[int, float]]):
            if len(sources) > _FAN_IN:
                raise AssertionError("grammar node with too many predecessors")  # a bug, not input
            for column, (source, weight) in enumerate(sources):
                table[node, column], weights[node, column] = source, weight

        for node in range(n):
            sources = [(node, 0.0)]
            for before, weight in predecessors[node]:
                sources.append((before + n, weight))  # from the blank after `before`
                if symbols[before] != symbols[node]:  # CTC: a repeat needs a blank between
                    sources.append((before, weight))
            put(node, sources)
            put(node + n, [(node + n, 0.0), (node, 0.0)])
        for node, weight in first_chars:
            put(node, [(node, 0.0), (into_phrases, weight), (direct[symbols[node]], weight)])
        put(gap, [(gap, 0.0), (into_gap, 0.0)])
        put(initial, [(initial, 0.0)])
        self._table, self._weights = table, weights
        self._initial = initial
        self._finals = np.concatenate([ends, ends + n, [gap, gap + n, initial]])
        first_node_of_word: dict[int, int] = {}
        for node, word in enumerate(word_of):
            if word >= 0:
                first_node_of_word.setdefault(word, node)
        self._word_starts = frozenset(first_node_of_word.values())
        # Frame 0: the initial blank, any phrase's first letter, or the gap's space.
        self._start_weights = np.full(self._symbols.size, -np.inf, np.float32)
        self._start_weights[[initial, gap]] = 0.0
        self._start_weights[self._first_chars] = self._first_weights

    def search_tables(self) -> SearchTables:
        emitting = self._symbols.size
        word_of = np.full(emitting, -1, np.int64)
        word_of[: self._n] = self._word_of
        word_starts = np.zeros(emitting, bool)
        word_starts[sorted(self._word_starts)] = True
        return SearchTables(self._symbols, word_of, word_starts, tuple(self._word_texts), self._start_weights,
                            self._junction_sources, self._table, self._weights, self._finals)

    def words(self, log_probs: np.ndarray, seconds_per_frame: float) -> list[Word]:
        """The best phrase sequence for `log_probs` [frames, classes] (true frames only)."""
        log_probs = np.asarray(log_probs, np.float32)
        frames = log_probs.shape[0]
        if frames == 0:
            return []
        emit = log_probs[:, self._symbols]  # [frames, emitting nodes]
        n_emitting = self._symbols.size
        score = np.full(self._impossible + 1, -np.inf, np.float32)
        score[:n_emitting] = emit[0] + self._start_weights
        back = np.empty((frames, n_emitting), np.int64)
        back[0] = np.arange(n_emitting)
        rows, junction_rows = np.arange(n_emitting), np.arange(len(self._junction_sources))
        for t in range(1, frames):
            at_junctions = score[self._junction_sources]
            best_source = np.argmax(at_junctions, axis=1)
            score[self._junction: self._impossible] = at_junctions[junction_rows, best_source]
            junction_from = self._junction_sources[junction_rows, best_source]
            candidates = score[self._table] + self._weights
            best = np.argmax(candidates, axis=1)
            chosen = self._table[rows, best]
            # A junction stands for the node it was taken from.
            through = chosen >= self._junction
            chosen[through] = junction_from[chosen[through] - self._junction]
            back[t] = chosen
            score[:n_emitting] = candidates[rows, best] + emit[t]
        node = int(self._finals[np.argmax(score[self._finals])])
        path = np.empty(frames, np.int64)
        for t in range(frames - 1, -1, -1):
            path[t] = node
            node = int(back[t, node])
        return self._timed_words(path, log_probs, seconds_per_frame)

    def _timed_words(self, path: np.ndarray, log_probs: np.ndarray, seconds_per_frame: float) -> list[Word]:
        """Word occurrences on the best path: a word starts where the path enters its
        first letter from elsewhere; it spans its letters' frames (not trailing blanks)."""
        words: list[Word] = []
        current: list[int] = []  # frames of the current word's letters
        current_word, previous = -1, -1
        posterior = np.exp(log_probs[np.arange(path.size), self._symbols[path]])
        for t, node in enumerate(path):
            word = int(self._word_of[node]) if node < self._n else -1
            starts_word = word >= 0 and node != previous and (
                word != current_word or node in self._word_starts)
            if starts_word or (word < 0 and node < self._n):  # a new word, or a space
                self._close(words, current, current_word, posterior, seconds_per_frame)
                current, current_word = [], word
            if word >= 0:
                current.append(t)
            previous = int(node)
        self._close(words, current, current_word, posterior, seconds_per_frame)
        return words

    def _close(self, words: list[Word], frames: Sequence[int], word: int, posterior, seconds_per_frame) -> None:
        if word < 0 or not frames:
            return
        words.append(Word(self._word_texts[word], frames[0] * seconds_per_frame,
                          (frames[-1] + 1) * seconds_per_frame, float(posterior[frames].mean())))
