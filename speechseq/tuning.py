"""Tune an exported model's post-processing on dev audio, and ship the choice with it:
a tagger's smoothing, a transcriber's grammar weights (`tune_grammar`).

The posteriors -> segments step (median filter, hysteresis, minimum segment and gap,
`segments.SmoothingOptions`) suits one model and not another: a sharp model loses its
edges to a wide median filter, a hesitant one needs a lower onset. So an export can
carry its own choice in `assets/smoothing.json`, which `Tagger` uses unless told
otherwise (`segments.shipped_smoothing`). The choice is made on held-in dev
utterances with reference segments: each file is run through the model once, then
every candidate in the grid smooths the same posteriors and is scored by the F1 of
its foreground frames (mean over the labels) plus its segment F1 (onset and offset
within a collar). The defaults are always a candidate, and win ties.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speechseq import decoding, metrics, segments
from speechseq.corpora import Utterance
from speechseq.errors import SpeechseqError
from speechseq.files import write_text
from speechseq.grammar import Grammar, GrammarOptions
from speechseq.lexicon import Lexicon, transcript_text
from speechseq.model_card import update_card
from speechseq.segments import SMOOTHING_FILE, SmoothingOptions

GRID = {
    "median_frames": (1, 3, 5, 9),
    "onset": (0.3, 0.4, 0.5, 0.6, 0.7),  # two labels only: the hysteresis thresholds
    "offset": (0.2, 0.3, 0.35, 0.4, 0.5, 0.6),
    "min_segment": (0.05, 0.1, 0.2),
    "min_gap": (0.1, 0.2),
}


@dataclasses.dataclass(frozen=True)
class Tuned:
    smoothing: SmoothingOptions
    dev: dict  # its frame and segment F1 on the dev utterances
    dev_with_defaults: dict  # the same with `SmoothingOptions()`
    utterances: int
    candidates: int


def candidates(labels: int) -> list[SmoothingOptions]:
    """The defaults, then the grid (with more than two labels the thresholds play no part)."""
    grid = GRID if labels == 2 else {**GRID, "onset": (SmoothingOptions.onset,), "offset": (SmoothingOptions.offset,)}
    found = [SmoothingOptions()]
    for values in itertools.product(*grid.values()):
        settings = dict(zip(grid, values))
        if settings["offset"] <= settings["onset"]:
            found.append(SmoothingOptions(**settings))
    return list(dict.fromkeys(found))


def tune(model, utterances: Sequence[Utterance], collar: float = 0.1) -> Tuned:
    """The best candidate smoothing for exported tagger `model` on `utterances`."""
    from speechseq.tag import Tagger

    if not utterances or not any(u.segments for u in utterances):
        raise SpeechseqError("tuning the smoothing needs dev utterances with reference segments")
    tagger = Tagger(model)
    tags = tagger.tags
    runs = []
    for utterance, result in zip(utterances, tagger.tag_files(u.audio for u in utterances)):
        if isinstance(result, Exception):
            raise result
        reference = segments.segment_frames(utterance.segments, len(result.probabilities), tags, tagger.features)
        runs.append((result.probabilities, reference, utterance.segments))

    def score(options: SmoothingOptions) -> dict:
        files = []
        for probabilities, reference, truth in runs:
            ids = segments.smooth(probabilities, tags.background_id, options, tagger.seconds_per_frame)
            found = segments.tagged_segments(ids, probabilities, tags.labels, tags.background,
                                             tagger.seconds_per_frame)
            files.append((reference, ids, truth, found))
        scores = metrics.tagging_scores(files, tags.size, collar)
        return {"frame_f1": round(scores.foreground_f1(tags.background_id), 4),
                "segment_f1": round(scores.segment_f1, 4)}

    options = candidates(tags.size)
    scored = [(score(candidate), candidate) for candidate in options]
    best_score, best = max(scored, key=lambda pair: pair[0]["frame_f1"] + pair[0]["segment_f1"])  # first wins ties
    return Tuned(best, best_score, scored[0][0], len(utterances), len(options))


def write(tuned: Tuned, version_folder: str | Path, tuned_on: str) -> Path:
    """Put `tuned` into an export (before it is published): assets/smoothing.json and the card."""
    assets = Path(version_folder) / "assets"
    summary = {"options": dataclasses.asdict(tuned.smoothing), "tuned_on": tuned_on, "utterances": tuned.utterances,
               "candidates": tuned.candidates, "dev": tuned.dev, "dev_with_defaults": tuned.dev_with_defaults}
    write_text(assets / SMOOTHING_FILE, json.dumps(summary, indent=2) + "\n")
    update_card(assets, {"smoothing": summary})
    return assets / SMOOTHING_FILE



# ---- a transcriber's decoding weights: a grammar's, a language model's ----------------

GRAMMAR_GRID = {"alpha": (0.0, 0.5, 1.0, 2.0, 4.0), "beta": (-6.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0)}
LM_GRID = {"alpha": (0.0, 0.25, 0.5, 0.75, 1.0, 1.5), "beta": (0.0, 0.5, 1.0, 2.0, 3.0)}
# With a general model mixed in, the two LMs' weights together (RESULTS: "A general LM mixed
# into english-read/13's search": the best on dev sat at 0.25 + 0.25; each candidate costs a
# full decode of the dev set, so the grid stays small).
GENERAL_GRID = {"alpha": (0.25, 0.5, 0.75), "general_alpha": (0.25, 0.5, 0.75), "beta": (0.0, 1.0, 2.0, 3.0)}


@dataclasses.dataclass(frozen=True)
class TunedWeights:
    alpha: float
    beta: float
    dev: dict  # WER and CER with these weights on the dev utterances
    dev_with_defaults: dict  # the same with the decoder's default weights
    dev_greedy: dict  # the export's greedy decoding, for comparison
    utterances: int
    candidates: int
    general_alpha: float | None = None  # a general model's weight, when one is mixed in

    def about(self, tuned_on: str) -> dict:
        """What an export ships beside the weights (`grammar.ship`, `language_model.ship`)."""
        return {"tuned_on": tuned_on, "utterances": self.utterances, "candidates": self.candidates,
                "dev": self.dev, "dev_with_defaults": self.dev_with_defaults, "dev_greedy": self.dev_greedy}


def _tune_weights(model, utterances: Sequence[Utterance], grid: dict, defaults, decoder_for,
                  greedy_decoder=None) -> TunedWeights:
    """The weights of `grid` (alpha, beta and any other the decoder takes, by name) with the
    lowest dev WER for the decoders `decoder_for(vocabulary, **weights)` makes; `defaults`
    holds their values in the grid's order. Each file runs through the exported model once; every candidate decodes
    the same log-probabilities. Candidates nearest the defaults come first and the first
    of equal WERs wins: on a small dev set the WER ties often, and a tie is no reason to
    move the weights far. `greedy_decoder`: what the greedy baseline is (default: greedy
    CTC decoding of the model's own symbols)."""
    from speechseq import audio
    from speechseq.transcribe import Transcriber, TranscriberOptions

    if not utterances:
        raise SpeechseqError("tuning decoding weights needs dev utterances with transcripts")
    transcriber = Transcriber(model, TranscriberOptions(shipped_decoding=False))
    vocabulary = transcriber.vocabulary
    references = [transcript_text(vocabulary).normalize(u.text) for u in utterances]
    outputs = []
    for utterance in utterances:
        waveform = audio.load(utterance.audio, transcriber.sample_rate)
        log_probs, frames = transcriber.log_probs(waveform[np.newaxis], np.array([waveform.size], np.int32))
        outputs.append(log_probs[0, : int(frames[0])])

    def rates(hypotheses: list[str]) -> dict:
        return {"wer": round(metrics.word_error_rate(references, hypotheses), 4),
                "cer": round(metrics.character_error_rate(references, hypotheses), 4)}

    def decoded(decoder) -> dict:
        return rates([" ".join(w.text for w in decoder.words(lp, transcriber.seconds_per_frame)) for lp in outputs])

    if greedy_decoder is not None:
        greedy = decoded(greedy_decoder(vocabulary))
    else:
        greedy = rates([" ".join(vocabulary.decode(ids).split()) for ids in
                        (decoding.ctc_greedy(lp[np.newaxis], [len(lp)])[0] for lp in outputs)])
    # Candidates are value tuples in the grid's key order; `defaults` is one of them.
    candidates = sorted(set(itertools.product(*grid.values())) | {defaults},
                        key=lambda values: (sum(abs(v - d) for v, d in zip(values, defaults)), values))
    scored = [(decoded(decoder_for(vocabulary, **dict(zip(grid, values)))), values) for values in candidates]
    best_score, best = min(scored, key=lambda pair: pair[0]["wer"])
    weights = dict(zip(grid, best))
    return TunedWeights(weights["alpha"], weights["beta"], best_score, scored[0][0], greedy, len(utterances),
                        len(candidates), weights.get("general_alpha"))


def tune_grammar(model, utterances: Sequence[Utterance], words: Grammar, lexicon: Lexicon | None = None) -> TunedWeights:
    """The grammar weights (`GRAMMAR_GRID`) with the lowest WER of exported transcriber
    `model` decoding only `words`, on `utterances`; a phone model hears them as `lexicon`
    says them (its greedy baseline: its greedy phones read as the lexicon's words)."""
    from speechseq.grammar import GrammarDecoder

    defaults = GrammarOptions()

    def grammar_decoder(vocabulary, alpha: float, beta: float) -> GrammarDecoder:
        return GrammarDecoder(vocabulary, words, GrammarOptions(alpha, beta), lexicon=lexicon)

    greedy = None
    if lexicon is not None:
        from speechseq.decoding import BeamOptions
        from speechseq.phone_decoding import PhoneBeamSearch

        def greedy(vocabulary) -> PhoneBeamSearch:
            return PhoneBeamSearch(vocabulary, BeamOptions(beam_width=1), lexicon, None)

    return _tune_weights(model, utterances, GRAMMAR_GRID, (defaults.alpha, defaults.beta), grammar_decoder, greedy)


def tune_language_model(model, utterances: Sequence[Utterance], arpa: str, beam_width: int = 32,
                        spelling: tuple[Lexicon, str] | None = None,
                        general: tuple[str, str | None] | None = None) -> TunedWeights:
    """The language model weights (`LM_GRID`) with the lowest WER of exported transcriber
    `model` beam-searching with KenLM model `arpa`, on `utterances`. A phone model's search
    runs on a pronunciation LM and spells its words with `spelling` (lexicon, word LM).
    `general`: a general model mixed into the search (and the one mixed into spelling),
    whose weight is tuned too (`GENERAL_GRID`)."""
    from speechseq.decoding import BeamOptions, BeamSearch

    defaults = BeamOptions()
    grid, start = LM_GRID, (defaults.alpha, defaults.beta)
    mixed = {}
    if general is not None:
        # The general model starts with as much say as the task's own.
        grid, start = GENERAL_GRID, (defaults.alpha, defaults.alpha, defaults.beta)
        mixed = {"general_lm": general[0]}

    def options(alpha: float, beta: float, general_alpha: float = 0.0) -> BeamOptions:
        return BeamOptions(beam_width=beam_width, lm=arpa, alpha=alpha, beta=beta, general_alpha=general_alpha,
                           **mixed)

    if spelling is None:
        def beam_search(vocabulary, **weights) -> BeamSearch:
            return BeamSearch(vocabulary, options(**weights))

        return _tune_weights(model, utterances, grid, start, beam_search)

    from speechseq.phone_decoding import PhoneBeamSearch

    general_words = general[1] if general else None

    def phone_search(vocabulary, **weights) -> PhoneBeamSearch:
        return PhoneBeamSearch(vocabulary, options(**weights), *spelling, general_words_lm=general_words)

    def without_lm(vocabulary) -> PhoneBeamSearch:
        return PhoneBeamSearch(vocabulary, BeamOptions(beam_width=1), *spelling)

    return _tune_weights(model, utterances, grid, start, phone_search, without_lm)
