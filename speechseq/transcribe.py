"""Transcribe audio with an exported model: files of any length, in batches.

    transcriber = Transcriber("saved_models/digits")       # its latest version
    result = transcriber.transcribe("call.wav")            # or a waveform array
    print(result.text, [(w.text, w.start) for w in result.words])

Long audio is cut into overlapping windows, read from disk one at a time, so memory
stays flat whatever the file's length. Each word is kept from the window in whose
own part (the window minus half the overlap at each inner edge) its middle lies:
own parts tile the audio, so a word at a boundary is neither cut nor counted twice
as long as it is shorter than half the overlap.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from collections.abc import Iterable, Iterator

import numpy as np

from speechseq import audio, decoding, grammar, language_model, windowing
from speechseq.decoding import BeamOptions, Word
from speechseq.errors import SpeechseqError
from speechseq.grammar import Grammar, GrammarOptions
from speechseq.lexicon import is_phone_vocabulary
from speechseq.phone_decoding import PhoneBeamSearch
from speechseq.windowing import WindowOptions

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TranscriberOptions:
    """How audio is cut, batched and decoded."""

    window_seconds: float = 30.0  # longest piece of audio the model sees at once
    overlap_seconds: float = 4.0  # shared by neighbouring windows (> twice the longest word)
    batch_size: int = 8  # windows per model call
    beam: BeamOptions | None = None  # beam search (pyctcdecode), optionally with a KenLM model
    grammar: Grammar | None = None  # decode only these words or phrases (`grammar.GrammarDecoder`)
    grammar_options: GrammarOptions | None = None  # its weights; None: the export's tuned ones
    # No beam or grammar given: decode as the export says, with the word list or language
    # model it ships (`grammar.shipped`, `language_model.shipped`); False, or an export
    # that ships neither: greedy decoding inside the exported graph.
    shipped_decoding: bool = True

    def windows(self) -> WindowOptions:
        return WindowOptions(self.window_seconds, self.overlap_seconds, self.batch_size)

    def __post_init__(self):
        self.windows()  # checks the windowing settings
        if self.beam and self.grammar:
            raise SpeechseqError("choose beam search or a grammar, not both")


@dataclasses.dataclass(frozen=True)
class Transcript:
    """What was said in one file (or array), with word times."""

    text: str
    words: tuple[Word, ...]
    duration: float  # seconds of audio
    source: str  # the file, or "<array N>" for the Nth waveform given
    model: str  # the export's model name
    version: int  # and version

    def to_dict(self) -> dict:
        return {
            "file": self.source,
            "text": self.text,
            "words": [dataclasses.asdict(w) | {"start": round(w.start, 3), "end": round(w.end, 3),
                                               "confidence": round(w.confidence, 4)} for w in self.words],
            "duration": round(self.duration, 3),
            "model": self.model,
            "version": self.version,
        }


class Transcriber:
    """An exported transcription model, ready to turn audio into `Transcript`s."""

    def __init__(self, model: str | os.PathLike, options: TranscriberOptions = TranscriberOptions()):
        from speechseq.published import ExportError, open_published

        self.published = open_published(model)
        if self.published.task != "ctc":
            raise ExportError(f"{self.published.folder} is not a transcription model (no vocabulary.json)")
        self.options = options
        self.windows = options.windows()  # how audio is cut and batched (checked once)
        self.vocabulary = self.published.classes
        self.features = self.published.features
        subsampling = self.published.settings["model"]["subsampling"]
        self.seconds_per_frame = self.features.seconds_per_frame(subsampling)
        self._decoder = self._choose_decoder(options)

    def _choose_decoder(self, options: TranscriberOptions):
        """Beam search or grammar decoding on the exported log-probabilities; None = greedy in the graph."""
        if is_phone_vocabulary(self.vocabulary):
            return self._phone_decoder(options)
        if options.beam:
            return decoding.BeamSearch(self.vocabulary, options.beam)
        folder = self.published.folder
        shipped = grammar.shipped(folder) if options.shipped_decoding or options.grammar else None
        words = options.grammar or (shipped[0] if shipped else None)
        if words is not None:
            weights = options.grammar_options or (shipped[1] if shipped else GrammarOptions())
            return grammar.GrammarDecoder(self.vocabulary, words, weights)
        beam = language_model.shipped(folder) if options.shipped_decoding else None
        if beam and importlib.util.find_spec("kenlm") is None:
            log.warning("%s ships a language model, which needs the kenlm package (pip install 'speechseq[lm]'): "
                        "decoding greedily without it", folder)
            return None
        return decoding.BeamSearch(self.vocabulary, beam) if beam else None

    def _phone_decoder(self, options: TranscriberOptions):
        """A phone model writes words through the lexicon and LMs it ships (`phone_decoding`):
        with `shipped_decoding=False` (--no-lm) its search keeps one beam and no LM, and the
        word LM only tells homophones apart; a grammar's words must be in its lexicon. An
        export that ships a word list and no LM (digits) decodes with the list, or with
        --no-lm greedily in its graph, which searches the list too."""
        from speechseq.published import ExportError

        folder = self.published.folder
        if options.beam:
            raise ExportError(f"{folder} hears phones: it decodes with the lexicon and LM it ships "
                              "(a beam search with a language model of your own is for character models)")
        shipped = language_model.shipped_lexicon(folder)
        lexicon = shipped.lexicon if shipped else grammar.shipped_lexicon(folder)
        if lexicon is None:
            if options.shipped_decoding or options.grammar:
                raise ExportError(f"{folder} hears phones but ships no lexicon (export it with --lm-from or --grammar)")
            return None  # greedy phones: only an export being made (its tuning reads log-probabilities)
        if options.grammar:  # any sequence of these words, each heard as the lexicon says it
            return grammar.GrammarDecoder(self.vocabulary, options.grammar,
                                          options.grammar_options or GrammarOptions(), lexicon=lexicon)
        if shipped is None:  # a word list and no LM (digits); --no-lm: greedy phones read as its words
            if options.shipped_decoding:  # the list's words heard through the lexicon just read
                return grammar.GrammarDecoder(self.vocabulary, *grammar.shipped(folder), lexicon=lexicon)
            return PhoneBeamSearch(self.vocabulary, decoding.BeamOptions(beam_width=1), lexicon, None)
        if importlib.util.find_spec("kenlm") is None:
            raise ExportError(f"{folder} hears phones: its words need the kenlm package (pip install 'speechseq[lm]')")
        if not options.shipped_decoding:
            return PhoneBeamSearch(self.vocabulary, decoding.BeamOptions(beam_width=1), lexicon, shipped.words_lm)
        return PhoneBeamSearch(self.vocabulary, shipped.options, lexicon, shipped.words_lm,
                               general_words_lm=shipped.general_words_lm)

    @property
    def decoding(self) -> str:
        """How transcripts are decoded: "greedy", "beam", "grammar" or "phones" (`phone_decoding`)."""
        if self._decoder is None:
            return "greedy"
        if isinstance(self._decoder, PhoneBeamSearch):
            return "phones"
        return "beam" if isinstance(self._decoder, decoding.BeamSearch) else "grammar"

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    def transcribe(self, source: str | os.PathLike | np.ndarray, sample_rate: int | None = None) -> Transcript:
        """One file or waveform (float, mono; give `sample_rate` if not the model's)."""
        if isinstance(source, np.ndarray):
            return next(self.transcribe_arrays([source], sample_rate))
        result = next(self.transcribe_files([source]))
        if isinstance(result, audio.AudioError):
            raise result
        return result

    def transcribe_arrays(self, waveforms: Iterable[np.ndarray], sample_rate: int | None = None) -> Iterator[Transcript]:
        """Mono float waveforms (at `sample_rate`, default the model's), batched together."""
        sources = windowing.array_sources(waveforms, self.windows, self.sample_rate, sample_rate)
        yield from windowing.run(sources, self.options.batch_size, self._transcribe_batch, self._result)

    def transcribe_files(self, paths: Iterable[str | os.PathLike]) -> Iterator[Transcript | audio.AudioError]:
        """A result per path, in order: a `Transcript`, or the `AudioError` that stopped it."""
        sources = windowing.file_sources(paths, self.windows, self.sample_rate,
                                         self.features.window_ms / 1000)
        yield from windowing.run(sources, self.options.batch_size, self._transcribe_batch, self._result)

    def _transcribe_batch(self, batch: list[windowing.Window]) -> None:
        """One model call; each window keeps the words whose middle lies in its own part."""
        padded, lengths = audio.pad_batch([window.waveform for window in batch])
        words_per_window = (
            self._decoded_words(padded, lengths) if self._decoder else self._greedy_words(padded, lengths)
        )
        for window, words in zip(batch, words_per_window):
            own_start, own_end = window.owned(self.windows, self.sample_rate)
            for word in words:
                word = dataclasses.replace(word, start=word.start + window.start, end=word.end + window.start)
                middle = (word.start + word.end) / 2
                if own_start <= middle < own_end or (window.last and middle >= own_end):
                    window.pending.parts.append(word)

    def _greedy_words(self, padded, lengths) -> list[list[Word]]:
        outputs = self.published.signatures["serving_default"](audio=padded, audio_length=lengths)
        tokens = outputs["tokens"].numpy()
        counts = outputs["token_count"].numpy()
        starts, ends = outputs["token_start"].numpy(), outputs["token_end"].numpy()
        confidences = outputs["token_confidence"].numpy()
        return [
            decoding.words_from_tokens([t.decode() for t in tokens[i, :n]], starts[i, :n], ends[i, :n], confidences[i, :n])
            for i, n in enumerate(counts)
        ]

    def _decoded_words(self, padded, lengths) -> list[list[Word]]:
        log_probs, frames = self.log_probs(padded, lengths)
        return [self._decoder.words(log_probs[i, :n], self.seconds_per_frame) for i, n in enumerate(frames)]

    def log_probs(self, padded: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The export's CTC log-probabilities [batch, frames, classes] and true frames [batch]."""
        outputs = self.published.signatures["audio_log_probs"](audio=padded, audio_length=lengths)
        return outputs["log_probs"].numpy(), outputs["output_lengths"].numpy()

    def _result(self, item: windowing.Pending) -> Transcript:
        words = tuple(without_seam_doubles(sorted(item.parts, key=lambda w: w.start)))
        return Transcript(
            text=" ".join(w.text for w in words),
            words=words,
            duration=item.duration,
            source=item.source,
            model=self.published.name,
            version=self.published.version,
        )


def without_seam_doubles(words: list[Word]) -> list[Word]:
    """`words` (in time order) without the doubles a window seam can leave: a word heard by
    both windows, its middle placed on each one's own side of the seam. Of two words that
    overlap by half the shorter one or more, the surer stays; a smaller overlap is trimmed."""
    kept: list[Word] = []
    for word in words:
        if kept and word.start < kept[-1].end:
            previous = kept[-1]
            overlap = min(previous.end, word.end) - word.start
            if overlap >= 0.5 * min(previous.end - previous.start, word.end - word.start):
                if word.confidence > previous.confidence:
                    kept[-1] = word
                continue
            kept[-1] = dataclasses.replace(previous, end=word.start)
        kept.append(word)
    return kept
