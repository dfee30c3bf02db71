"""New word orders in a real voice: takes cut at their words' boundaries and joined again.

    pieces = word_pieces(transcriber, takes)                  # each take's words, by forced alignment
    spliced = spliced_utterances(pieces, "work/spliced", count=1500)   # WAVs + manifest entries

Why: a recogniser that hears one speaker read a few hundred prompts, many of them twice,
learns the prompts' text by heart (RESULTS: "Why Kathleen's held-out prompts read so much
worse than her training takes": 2.3% CER on her training takes, 27% on new prompts in the
same voice). Synthetic voices reading new text did not help there; her own words in orders
no prompt has keep the voice and take away the sentences to learn.

A take's words are timed by forced alignment with a CTC model (the best path through that
take's transcript alone, `grammar.GrammarDecoder`), and cut halfway between one word's last
letter and the next word's first: CTC spans start about right and end early (RESULTS: "Forced
alignment of connected digits"), so the true boundary lies in between. A spliced utterance is
runs of 1-3 consecutive words from different takes, each faded in and out over a few
milliseconds so the joins do not click.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile

from speechseq import audio
from speechseq.corpora import CorpusError, Utterance
from speechseq.files import atomic_path
from speechseq.grammar import Grammar, GrammarDecoder, GrammarError

FADE_SECONDS = 0.005


@dataclasses.dataclass(frozen=True)
class WordPiece:
    """One word of a take and the stretch of its audio that holds it."""

    audio: Path
    speaker: str
    start: float  # seconds
    end: float
    text: str


def cut_points(starts: Sequence[float], ends: Sequence[float], duration: float) -> list[float]:
    """Where to cut a take whose words span `starts[i]`-`ends[i]`: its start, halfway between
    each word's end and the next word's start, and its end (len(starts) + 1 points)."""
    between = [(end + start) / 2 for end, start in zip(ends[:-1], starts[1:])]
    return [0.0, *between, duration]


def word_pieces(transcriber, takes: Sequence[Utterance]) -> list[list[WordPiece]]:
    """Each take's words as pieces of its audio, in order, timed by `transcriber`'s forced
    alignment to the take's own text. A take whose alignment does not give back its words
    (the phrase said twice, or a word the model cannot spell) is left out."""
    vocabulary = transcriber.vocabulary
    aligned = []
    for take in takes:
        words = vocabulary.normalize(take.text).split()
        if not words:
            continue
        waveform = audio.load(take.audio, transcriber.sample_rate)
        log_probs, frames = transcriber.log_probs(waveform[np.newaxis], np.array([waveform.size]))
        try:
            decoder = GrammarDecoder(vocabulary, Grammar.from_lines([" ".join(words)]))
        except GrammarError:  # a character the model cannot spell
            continue
        timed = decoder.words(log_probs[0, : frames[0]], transcriber.seconds_per_frame)
        if [w.text for w in timed] != words:
            continue
        cuts = cut_points([w.start for w in timed], [w.end for w in timed], waveform.size / transcriber.sample_rate)
        aligned.append([WordPiece(Path(take.audio), take.speaker, start, end, word)
                        for word, start, end in zip(words, cuts, cuts[1:])])
    return aligned


def _faded(samples: np.ndarray, rate: int) -> np.ndarray:
    fade = min(len(samples) // 2, round(FADE_SECONDS * rate))
    if fade == 0:
        return samples
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade, dtype=np.float32))
    out = samples.astype(np.float32, copy=True)
    out[:fade] *= ramp
    out[-fade:] *= ramp[::-1]
    return out


def spliced_utterances(takes: Sequence[Sequence[WordPiece]], out_dir: str | os.PathLike, count: int,
                       runs: tuple[int, int] = (3, 6), run_words: tuple[int, int] = (1, 3), seed: int = 0,
                       sample_rate: int = audio.SAMPLE_RATE) -> list[Utterance]:
    """`count` utterances, each `runs` (at least, at most) runs of `run_words` consecutive words
    taken from takes drawn at random, as 16-bit WAVs `out_dir/spliced-SEED-N.wav`.

    The same takes, count and seed always give the same utterances; files that exist already
    are kept. Each utterance's speaker is its first run's (meant for one speaker's takes)."""
    usable = [take for take in takes if take]
    if not usable:
        raise CorpusError("no aligned takes to splice words from")
    if count < 0 or not 1 <= runs[0] <= runs[1] or not 1 <= run_words[0] <= run_words[1]:
        raise CorpusError(f"cannot splice {count} utterances of {runs} runs of {run_words} words")
    folder = Path(out_dir)
    rng = random.Random(seed)
    cache: dict[Path, np.ndarray] = {}
    made = []
    for index in range(count):
        chosen = []
        for _ in range(rng.randint(*runs)):
            take = rng.choice(usable)
            length = min(len(take), rng.randint(*run_words))
            first = rng.randrange(len(take) - length + 1)
            chosen.append(take[first:first + length])
        spans = [(round(run[0].start * sample_rate), round(run[-1].end * sample_rate)) for run in chosen]
        target = folder / f"spliced-{seed}-{index:05d}.wav"
        if not target.exists():
            parts = []
            for run, (begin, end) in zip(chosen, spans):
                source = run[0].audio
                if source not in cache:
                    cache[source] = audio.load(source, sample_rate)
                parts.append(_faded(cache[source][begin:end], sample_rate))
            with atomic_path(target) as temporary:
                soundfile.write(temporary, np.concatenate(parts), sample_rate, subtype="PCM_16", format="WAV")
        seconds = sum(end - begin for begin, end in spans) / sample_rate
        text = " ".join(piece.text for run in chosen for piece in run)
        made.append(Utterance(audio=target.absolute(), text=text, speaker=chosen[0][0].speaker, duration=seconds))
    return made
