"""From model outputs to labels: CTC greedy and beam search, word times, frame arg-max.

The greedy alignment is written in TensorFlow so that an exported model runs the very
same code inside its graph; in Python it runs eagerly. Beam search, with an optional
KenLM language model, goes through pyctcdecode on the log-probabilities.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from speechseq.errors import SpeechseqError
from speechseq.text import BLANK_ID, Vocabulary


@dataclasses.dataclass(frozen=True)
class Word:
    """One recognised word and where it was heard."""

    text: str
    start: float  # seconds from the start of the audio
    end: float  # seconds
    confidence: float  # mean posterior of the word's tokens, 0-1


@dataclasses.dataclass(frozen=True)
class Alignment:
    """Greedy CTC tokens of a batch, each a RaggedTensor [batch, (tokens)]."""

    ids: tf.RaggedTensor  # token ids (never the blank)
    first_frame: tf.RaggedTensor  # first output frame of the token
    end_frame: tf.RaggedTensor  # one past its last frame
    confidence: tf.RaggedTensor  # mean posterior of the token over its frames


def greedy_alignment(log_probs, lengths) -> Alignment:
    """The CTC greedy path of each utterance as tokens with their frame spans.

    `log_probs` [batch, time, classes], `lengths` [batch] true output frames. Frames
    with the same best class in a row form a run; runs of a non-blank class are the
    tokens. Core TensorFlow ops only: it runs eagerly and inside exported graphs.
    """
    log_probs = tf.convert_to_tensor(log_probs, tf.float32)
    lengths = tf.cast(lengths, tf.int64)
    best = tf.RaggedTensor.from_tensor(tf.argmax(log_probs, axis=-1, output_type=tf.int64), lengths=lengths)
    posterior = tf.RaggedTensor.from_tensor(tf.exp(tf.reduce_max(log_probs, axis=-1)), lengths=lengths)
    position = tf.ragged.range(lengths).values
    ids = best.values
    previous = tf.concat([tf.constant([-1], tf.int64), ids[:-1]], axis=0)
    starts_run = tf.logical_or(ids != previous, position == 0)
    run = tf.cumsum(tf.cast(starts_run, tf.int64)) - 1  # run index of every frame
    runs = tf.reduce_sum(tf.cast(starts_run, tf.int64))
    label = tf.math.unsorted_segment_max(ids, run, runs)
    first = tf.math.unsorted_segment_min(position, run, runs)
    end = tf.math.unsorted_segment_max(position, run, runs) + 1
    confidence = tf.math.unsorted_segment_mean(posterior.values, run, runs)
    row = tf.math.unsorted_segment_min(best.value_rowids(), run, runs)
    token = label != BLANK_ID
    rows = tf.boolean_mask(row, token)

    def per_utterance(values):
        return tf.RaggedTensor.from_value_rowids(tf.boolean_mask(values, token), rows, nrows=tf.size(lengths, tf.int64))

    return Alignment(per_utterance(label), per_utterance(first), per_utterance(end), per_utterance(confidence))


def ctc_greedy(log_probs: np.ndarray, lengths: Sequence[int]) -> list[list[int]]:
    """Best class per frame, repeats merged, blanks dropped: one id list per utterance."""
    return greedy_alignment(log_probs, np.asarray(lengths)).ids.to_list()


def ctc_greedy_texts(log_probs: np.ndarray, lengths: Sequence[int], vocabulary: Vocabulary) -> list[str]:
    """Greedy CTC transcripts."""
    return [vocabulary.decode(ids) for ids in ctc_greedy(log_probs, lengths)]


def words_from_tokens(
    symbols: Sequence[str],
    starts: Sequence[float],
    ends: Sequence[float],
    confidences: Sequence[float],
) -> list[Word]:
    """Characters with times (seconds) -> words: a space token ends a word."""
    words, current = [], []
    for symbol, start, end, confidence in [*zip(symbols, starts, ends, confidences), (" ", 0.0, 0.0, 0.0)]:
        if symbol != " ":
            current.append((symbol, start, end, confidence))
        elif current:
            words.append(Word(
                text="".join(c[0] for c in current),
                start=float(current[0][1]),
                end=float(current[-1][2]),
                confidence=float(np.mean([c[3] for c in current])),
            ))
            current = []
    return words


@dataclasses.dataclass(frozen=True)
class BeamOptions:
    """CTC beam search, optionally with a KenLM language model (shallow fusion)."""

    beam_width: int = 32  # hypotheses kept per frame
    lm: str | None = None  # KenLM model file (.arpa or .bin); None = no language model
    alpha: float = 0.5  # language model weight
    beta: float = 1.0  # bonus per word (balances the LM's preference for short outputs)
    hotwords: tuple[str, ...] = ()  # words or phrases to favour
    hotword_weight: float = 10.0  # how strongly
    general_lm: str | None = None  # a general model mixed in log-linearly (`general_lm`); None = lm alone
    general_alpha: float = 0.0  # its weight beside `alpha`


class BeamSearch:
    """pyctcdecode's beam search over one utterance's log-probabilities."""

    def __init__(self, vocabulary: Vocabulary, options: BeamOptions = BeamOptions()):
        import pyctcdecode

        # pyctcdecode marks the blank as "" and splits words at " ".
        labels = ["" if i == BLANK_ID else vocabulary.id_to_symbol(i) for i in range(vocabulary.size)]
        if options.lm is not None:
            try:
                import kenlm  # noqa: F401 - pyctcdecode needs it for any language model
            except ImportError:
                raise SpeechseqError("--lm needs the kenlm package: pip install -e '.[lm]'") from None
        self.options = options
        if options.lm is not None and options.general_lm is not None:
            self._decoder = _mixed_decoder(labels, options)
        else:
            self._decoder = pyctcdecode.build_ctcdecoder(
                labels, kenlm_model_path=options.lm, alpha=options.alpha, beta=options.beta
            )

    def words(self, log_probs: np.ndarray, seconds_per_frame: float) -> list[Word]:
        """Best beam of `log_probs` [frames, classes] (true frames only) as timed words."""
        log_probs = np.asarray(log_probs, np.float32)
        if log_probs.shape[0] == 0:
            return []
        beams = self._decoder.decode_beams(
            log_probs,
            beam_width=self.options.beam_width,
            hotwords=list(self.options.hotwords) or None,
            hotword_weight=self.options.hotword_weight,
        )
        posterior = np.exp(log_probs.max(axis=-1))
        words = []
        _, _, word_frames, _, _ = beams[0]  # text, LM state, words with frame spans, scores
        for text, (first, end) in word_frames:
            end = max(end, first + 1)
            words.append(Word(text, first * seconds_per_frame, end * seconds_per_frame,
                              float(posterior[first:end].mean())))
        return words


def _mixed_decoder(labels: list[str], options: BeamOptions):
    """pyctcdecode's search scoring each word by alpha log p_lm + general_alpha log p_general
    + beta. `MultiLanguageModel` averages its models' scores, so each weight is doubled. The
    general model adds no unknown-word penalty: the task's LM keeps the search to its words,
    and a word the general model lacks is left to it."""
    import kenlm
    import pyctcdecode
    from pyctcdecode.language_model import LanguageModel, MultiLanguageModel, load_unigram_set_from_arpa

    words = load_unigram_set_from_arpa(options.lm)  # the general model's own are never asked: no penalty
    task = LanguageModel(kenlm.Model(options.lm), words, alpha=2 * options.alpha, beta=options.beta)
    general = LanguageModel(kenlm.Model(options.general_lm), words, alpha=2 * options.general_alpha,
                            beta=options.beta, unk_score_offset=0.0)
    alphabet = pyctcdecode.Alphabet.build_alphabet(labels)
    return pyctcdecode.BeamSearchDecoderCTC(alphabet, MultiLanguageModel([task, general]))


def frame_tags(probs: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    """Most likely tag id for each real frame of each utterance."""
    best = np.asarray(probs).argmax(axis=-1)
    return [row[: int(length)] for row, length in zip(best, lengths)]
