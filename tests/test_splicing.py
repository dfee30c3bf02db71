"""Kathleen's words cut at their forced-alignment boundaries and joined in new orders."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile

from speechseq import corpora, splicing
from speechseq.metrics import character_error_rate
from speechseq.text import Vocabulary
from speechseq.transcribe import Transcriber, TranscriberOptions

ROOT = Path(__file__).resolve().parents[1]
ALIGNER = ROOT / "saved_models" / "english-read" / "5"  # trained on these takes: it aligns them well


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber(ALIGNER, TranscriberOptions(shipped_decoding=False))


@pytest.fixture(scope="module")
def pieces(transcriber, kathleen_dir):
    takes = corpora.transcribed_folder(kathleen_dir, speaker="kathleen")[:12]
    return takes, splicing.word_pieces(transcriber, takes)


def test_cuts_fall_halfway_between_one_word_s_end_and_the_next_word_s_start():
    assert splicing.cut_points([0.2, 1.0, 1.6], [0.6, 1.4, 2.0], 2.5) == [0.0, 0.8, 1.5, 2.5]
    assert splicing.cut_points([0.3], [0.9], 1.2) == [0.0, 1.2]


def test_each_take_becomes_its_own_words_in_order_covering_its_audio(pieces):
    takes, aligned = pieces
    assert len(aligned) == len(takes)  # the model that trained on them aligns every one
    for take, words in zip(takes, aligned):
        assert " ".join(w.text for w in words) == Vocabulary().normalize(take.text)
        assert words[0].start == 0.0 and words[-1].end == pytest.approx(soundfile.info(take.audio).duration)
        assert all(a.end == b.start and a.start < a.end for a, b in zip(words, words[1:]))


def test_spliced_utterances_say_their_new_text(pieces, transcriber, tmp_path):
    _, aligned = pieces
    made = splicing.spliced_utterances(aligned, tmp_path, count=8, seed=3)
    takes_text = [" ".join(w.text for w in words) for words in aligned]
    assert not any(u.text in takes_text for u in made)  # new word orders, not the prompts again
    for utterance in made:
        assert utterance.speaker == "kathleen"
        assert soundfile.info(utterance.audio).duration == pytest.approx(utterance.duration, abs=1e-3)
    heard = [t.text for t in transcriber.transcribe_files([u.audio for u in made])]
    own = character_error_rate([u.text for u in made], heard)
    # Each clip read against its own text, and against the next clip's: the audio says its text.
    others = character_error_rate([u.text for u in made[1:] + made[:1]], heard)
    assert own < 0.3 and own < others / 2, (own, others, heard)


def test_the_same_takes_and_seed_make_the_same_utterances_and_keep_written_files(pieces, tmp_path):
    _, aligned = pieces
    first = splicing.spliced_utterances(aligned, tmp_path, count=4, seed=5)
    stamps = [u.audio.stat().st_mtime_ns for u in first]
    again = splicing.spliced_utterances(aligned, tmp_path, count=4, seed=5)
    assert [u.text for u in again] == [u.text for u in first]
    assert [u.audio.stat().st_mtime_ns for u in again] == stamps
    assert [u.text for u in splicing.spliced_utterances(aligned, tmp_path / "other", count=4, seed=6)] != \
        [u.text for u in first]


def test_nothing_to_splice_is_refused_in_plain_words(tmp_path):
    with pytest.raises(corpora.CorpusError, match="no aligned takes"):
        splicing.spliced_utterances([], tmp_path, count=3)
    with pytest.raises(corpora.CorpusError, match="cannot splice"):
        splicing.spliced_utterances([[splicing.WordPiece(Path("a.wav"), "x", 0.0, 1.0, "a")]], tmp_path, count=3,
                                    runs=(0, 2))
