"""Vocabulary and tag sets: normalisation, ids, the fixed blank, JSON."""

from __future__ import annotations

import json

import pytest

from speechseq.errors import SpeechseqError
from speechseq.text import BLANK_ID, DIGIT_WORDS, OutOfVocabularyError, TagSet, Vocabulary


def test_blank_is_id_zero_and_symbols_follow():
    vocabulary = Vocabulary()
    assert BLANK_ID == 0
    assert vocabulary.size == len(vocabulary.symbols) + 1 == 29
    assert vocabulary.encode("a b") == [2, 1, 3]  # ' ' is symbol 0 -> id 1, 'a' -> 2
    assert BLANK_ID not in vocabulary.encode("the quick brown fox jumps over the lazy dog's")
    assert vocabulary.id_to_symbol(BLANK_ID) == "<blank>"


def test_normalisation_of_real_transcripts():
    vocabulary = Vocabulary()
    assert vocabulary.normalize("Author of the danger trail, Philip Steels, etc.") == (
        "author of the danger trail philip steels etc"
    )
    assert vocabulary.normalize("O\u2019Brien had been a clean-living  young man.") == (
        "o'brien had been a clean living young man"
    )
    assert vocabulary.normalize('"Not at this particular case, Tom," apologized Whittemore.') == (
        "not at this particular case tom apologized whittemore"
    )


def test_digits_become_words_only_when_asked():
    assert Vocabulary(digits_as_words=True).normalize("Call 911, now") == "call nine one one now"
    with pytest.raises(OutOfVocabularyError) as caught:
        Vocabulary().encode("Room 101")
    assert caught.value.characters == ["0", "1"]


def test_out_of_vocabulary_characters_are_reported_not_dropped():
    vocabulary = Vocabulary()
    with pytest.raises(OutOfVocabularyError, match="'é'") as caught:
        vocabulary.encode("café crème")
    assert caught.value.characters == ["è", "é"]
    assert vocabulary.out_of_vocabulary("naïve") == {"ï"}


def test_encode_decode_round_trip():
    vocabulary = Vocabulary(digits_as_words=True)
    for text in ["three one four", "it's 2 o'clock", "  spaced   out  "]:
        normal = vocabulary.normalize(text)
        assert vocabulary.decode(vocabulary.encode(text)) == normal
    assert vocabulary.decode([BLANK_ID, 21, BLANK_ID, 16]) == "to"


def test_from_texts_builds_the_smallest_alphabet():
    vocabulary = Vocabulary.from_texts(DIGIT_WORDS)
    assert "".join(vocabulary.symbols) == "efghinorstuvwxz"
    for word in DIGIT_WORDS:
        assert vocabulary.decode(vocabulary.encode(word)) == word


def test_json_round_trip_records_the_blank(tmp_path):
    vocabulary = Vocabulary(symbols=tuple(" abc'"), digits_as_words=True)
    vocabulary.save(tmp_path / "vocabulary.json")
    saved = json.loads((tmp_path / "vocabulary.json").read_text())
    assert saved["blank_id"] == BLANK_ID and saved["kind"] == "characters"
    assert Vocabulary.load(tmp_path / "vocabulary.json") == vocabulary
    saved["blank_id"] = 5
    (tmp_path / "other.json").write_text(json.dumps(saved))
    with pytest.raises(SpeechseqError, match="blank at 5"):
        Vocabulary.load(tmp_path / "other.json")


def test_bad_vocabularies_are_refused():
    with pytest.raises(SpeechseqError, match="repeat"):
        Vocabulary(symbols=tuple("aba"))
    with pytest.raises(SpeechseqError, match="single characters"):
        Vocabulary(symbols=("ab", "c"))


def test_tag_set_ids_background_and_json(tmp_path):
    tags = TagSet.with_background(["speech", "music", "speech"], background="silence")
    assert tags.labels == ("silence", "music", "speech")
    assert tags.background_id == 0 and tags.id("speech") == 2 and tags.label(1) == "music"
    with pytest.raises(OutOfVocabularyError):
        tags.id("noise")
    tags.save(tmp_path / "tags.json")
    assert TagSet.load(tmp_path / "tags.json") == tags
    with pytest.raises(SpeechseqError, match="not a character vocabulary"):
        Vocabulary.load(tmp_path / "tags.json")
    with pytest.raises(SpeechseqError, match="background"):
        TagSet(labels=("a", "b"), background="c")
