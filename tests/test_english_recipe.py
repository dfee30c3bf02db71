"""pipelines/english.py holds speechocean762 speakers out: checked on the real manifest, no training."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, TINY_RUN
from speechseq import audio, channels, corpora
from speechseq.text import Vocabulary

ROOT = Path(__file__).resolve().parents[1]
SPEECHOCEAN = DATA / "speechocean762" / "manifest.jsonl"


def load_recipe():
    spec = importlib.util.spec_from_file_location("english_recipe", ROOT / "pipelines" / "english.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def english():
    if not SPEECHOCEAN.is_file():
        pytest.skip(f"no speechocean762 manifest at {SPEECHOCEAN}")
    return load_recipe()


def test_speechocean_test_speakers_are_held_out_of_training(english):
    groups = english.speaker_groups(SPEECHOCEAN)
    splits = english.split_by_speaker(corpora.read_manifest(SPEECHOCEAN))
    speakers = {name: {u.speaker for u in items} for name, items in splits.items()}
    test = set(english.TEST_SPEAKERS)

    assert len(test) == len(english.TEST_SPEAKERS) >= 15
    assert speakers["test"] == test  # every listed speaker is in the manifest, and no one else is test
    assert speakers["dev"] == set(english.DEV_SPEAKERS)
    assert not test & speakers["train"] and not test & speakers["dev"]
    assert not speakers["dev"] & speakers["train"]
    assert not [u for u in splits["train"] if u.speaker in test]
    assert sum(len(items) for items in splits.values()) == len(corpora.read_manifest(SPEECHOCEAN))
    # Children and adults of both genders in the held-out test: four of each group.
    assert {groups[s] for s in test} == {"f child", "f adult", "m child", "m adult"}
    for group in ("f child", "f adult", "m child", "m adult"):
        assert sum(groups[s] == group for s in test) >= 3, group


def test_listed_speakers_follow_the_stated_rule(english):
    assert english.speakers_by_rule(english.speaker_groups(SPEECHOCEAN)) == (
        english.TEST_SPEAKERS, english.DEV_SPEAKERS)


def test_kathleen_split_keeps_each_prompt_on_one_side(english, kathleen_dir):
    splits = english.split_by_prompt(corpora.transcribed_folder(kathleen_dir, speaker="kathleen"))
    sides = {name: {english.prompt_of(u) for u in items} for name, items in splits.items()}
    assert not sides["test"] & sides["train"] and not sides["dev"] & sides["train"]
    assert not sides["test"] & sides["dev"] and len(sides["test"]) >= 80


def test_tight_copies_replace_the_share_asked_for_in_place(english, tmp_path, monkeypatch):
    monkeypatch.setattr(english, "WORK", tmp_path)
    takes = corpora.read_manifest(SPEECHOCEAN)[:10]
    mixed = english.cut_tight(takes, 0.3)
    replaced = [i for i, (old, new) in enumerate(zip(takes, mixed)) if old.audio != new.audio]
    assert len(mixed) == 10 and len(replaced) == 3
    assert all(mixed[i].audio.parent == tmp_path / "tight" and mixed[i].duration < takes[i].duration for i in replaced)
    assert [u.text for u in mixed] == [u.text for u in takes]  # same utterances, same order
    assert english.cut_tight(takes, 0.3) == mixed  # the same share every build


def test_roomy_digits_are_one_more_pass_of_the_training_takes_only(english, tmp_path, monkeypatch):
    monkeypatch.setattr(english, "WORK", tmp_path)
    roomy = english.roomy_digits()
    training_clips = [c for c in corpora.fsdd_clips(english.FSDD)
                      if c.speaker != english.FSDD_HELD_OUT and c.take in range(10, 50)]
    assert sum(len(u.segments) for u in roomy) == len(training_clips)  # each training take once, no other
    assert english.FSDD_HELD_OUT not in {u.speaker for u in roomy}
    assert max(len(u.segments) for u in roomy) == 4 and min(u.segments[0].start for u in roomy) >= 0.05


def test_dictionary_strings_are_plain_words_drawn_by_their_frequency(english):
    strings = english.dictionary_sentences(300)
    assert strings == english.dictionary_sentences(300)  # the same strings every build
    assert all(4 <= len(s.split()) <= 10 for s in strings)
    words = Counter(w for s in strings for w in s.split())
    vocabulary = Vocabulary()
    assert all(vocabulary.encode(word) for word in words)  # nothing the recogniser cannot spell
    assert words.most_common(1)[0][0] in ("the", "of", "and", "to", "a", "in")  # frequent words more often
    assert len(words) > 0.6 * sum(words.values())  # flattened: mostly different words, not "the the of"


def test_general_words_are_the_most_frequent_ones_first(english, tmp_path, monkeypatch):
    monkeypatch.setattr(english, "WORK", tmp_path)
    listed = english.general_words(2000).read_text().split()
    assert len(listed) == len(set(listed)) == 2000
    assert listed[0] == "the" and {"of", "and", "people", "because"} <= set(listed)
    assert not {"zucchini", "aardvark"} & set(listed)  # rare words are past the first 2,000


def test_spliced_kathleen_uses_her_training_words_only_and_is_built_once(english, kathleen_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(english, "WORK", tmp_path)
    split = english.split_by_prompt(corpora.transcribed_folder(kathleen_dir, speaker="kathleen"))
    takes = split["train"][:8]
    model = str(ROOT / "saved_models" / "english-read" / "5")
    spliced = english.spliced_kathleen(takes, 6, model)
    vocabulary = Vocabulary()
    training_words = {w for u in takes for w in vocabulary.normalize(u.text).split()}
    assert len(spliced) == 6 and all(set(u.text.split()) <= training_words for u in spliced)
    assert all(u.audio.parent == tmp_path / "kathleen-spliced" / "english-read-5" for u in spliced)

    def realign(*_):
        raise AssertionError("aligned again although the manifest was there")
    monkeypatch.setattr(english.splicing, "word_pieces", realign)
    again = english.spliced_kathleen(takes, 6, model)
    assert [(u.audio, u.text) for u in again] == [(u.audio, u.text) for u in spliced]


def test_channel_copies_replace_the_share_asked_for_and_keep_their_times(english, tmp_path, monkeypatch):
    monkeypatch.setattr(english, "WORK", tmp_path)
    takes = corpora.read_manifest(SPEECHOCEAN)[:10]
    mixed = english.on_channels(takes, 0.4)
    replaced = [i for i, (old, new) in enumerate(zip(takes, mixed)) if old.audio != new.audio]
    assert len(mixed) == 10 and len(replaced) == 4
    assert [u.text for u in mixed] == [u.text for u in takes] and [u.duration for u in mixed] == [u.duration for u in takes]
    lines = {mixed[i].audio.parent.name for i in replaced}
    assert all(mixed[i].audio.parent.parent == tmp_path / "channels" for i in replaced) and lines <= set(channels.CHANNELS)
    for i in replaced:  # the copy is the take through its channel, as long as the take
        heard, take = audio.load(mixed[i].audio), audio.load(takes[i].audio)
        assert heard.size == take.size
        expected = channels.through(take, mixed[i].audio.parent.name)
        assert np.abs(heard - expected).max() < 2e-4  # 16-bit rounding
    assert english.on_channels(takes, 0.4) == mixed  # the same share and channels every build


def test_room_copies_replace_the_share_asked_for_and_ring_on(english, tmp_path, monkeypatch):
    monkeypatch.setattr(english, "WORK", tmp_path)
    takes = corpora.read_manifest(SPEECHOCEAN)[:5]
    mixed = english.in_rooms(takes, 0.4)
    replaced = [i for i, (old, new) in enumerate(zip(takes, mixed)) if old.audio != new.audio]
    assert len(replaced) == 2 and all(mixed[i].audio.parent == tmp_path / "rooms" for i in replaced)
    assert [u.text for u in mixed] == [u.text for u in takes] and [u.duration for u in mixed] == [u.duration for u in takes]
    for i in replaced:
        dry, wet = audio.load(takes[i].audio), audio.load(mixed[i].audio)
        assert wet.size == dry.size
        # Aligned (the direct sound where it was) and reverberant (a smeared envelope).
        envelope = [np.convolve(np.abs(x), np.ones(160) / 160, "same")[::160] for x in (dry, wet)]
        shifts = range(-5, 6)
        agreement = [np.corrcoef(np.roll(envelope[1], s), envelope[0])[0, 1] for s in shifts]
        assert abs(shifts[int(np.argmax(agreement))]) <= 1, agreement
        assert np.corrcoef(wet, dry)[0, 1] < 0.95  # not the same samples: a room's echoes
    assert english.in_rooms(takes, 0.4) == mixed


def test_no_held_out_trains_and_leaves_the_held_out_sets_to_score_only(english, tmp_path, monkeypatch, capsys):
    """The recipe run as a dev decision needs it: trained with --no-held-out, nothing is scored on
    the held-out speakers (nothing printed, no results.json) until --score-only scores them."""
    groups = english.speaker_groups(SPEECHOCEAN)
    split = english.split_by_speaker(corpora.read_manifest(SPEECHOCEAN))
    held_out = [next(u for u in split["test"] if groups[u.speaker] == group) for group in sorted(set(groups.values()))]
    few = {"train": split["train"][:6], "dev": split["dev"][:2], "test": held_out}
    corpus = {"sources": {"speechocean762": few}, "extra": {},
              "train": corpora.write_manifest(few["train"], tmp_path / "train.jsonl"),
              "dev": corpora.write_manifest(few["dev"], tmp_path / "dev.jsonl"),
              "tests": {"speechocean762 held-out speakers": (held_out, tmp_path / "test.jsonl")}}
    monkeypatch.setattr(english, "build", lambda *options: corpus)  # a few real takes, not the whole corpus
    scored = []
    monkeypatch.setattr(english, "score", lambda *args, score=english.score: scored.append(1) or score(*args))
    out = tmp_path / "run"
    tiny = [f"--set={s}" for s in TINY_RUN + ["train.epochs=1", "train.steps_per_epoch=2", "train.batch_size=3",
                                              "train.jit_compile=false"]]

    assert english.main(["--out", str(out), "--no-held-out", *tiny]) is None
    printed = capsys.readouterr().out
    assert "held-out sets not scored (--no-held-out)" in printed and "held-out speakers:" not in printed
    assert scored == [] and not (out / "results.json").exists() and (out / "best.keras").exists()
    assert len((out / "log.csv").read_text().splitlines()) == 2  # it trained its one epoch

    results = english.main(["--out", str(out), "--score-only", *tiny])
    assert scored == [1] and json.loads((out / "results.json").read_text()) == results
    assert results["speechocean762 held-out speakers"]["utterances"] == len(held_out) == 4
    with pytest.raises(SystemExit):
        english.main(["--out", str(out), "--score-only", "--no-held-out"])
    assert "cannot go with --no-held-out" in capsys.readouterr().err


def test_a_bigram_dump_cut_mid_line_keeps_the_same_whole_lines_and_too_short_a_one_is_refused(english):
    """PocketSphinx 5.1.1's ARPA writer crashes on its en-us model once the bigrams are out,
    a few dozen lines from their end and on some runs with numbers it should not have read:
    only words count, and only bigrams whose second word sorts before "zu", so every run
    keeps the same ones."""
    head = "\\data\\\nngram 1=3\nngram 2=4\nngram 3=9\n\n\\1-grams:\n"
    unigrams = "-1.0\t<s>\t-0.5\n-2.0\tfor\t-0.1\n-98765.25\tthe\t-0.3\n-3\tzulu\t0\n"
    bigrams = "\n\\2-grams:\n-0.1\t<s>\tfor\t0.0\n-0.2\tfor\tthe\t0.0\n-9e9\tthe\tzulu\t0\n-1\tzulu\tzu"
    words, pairs = english.written_ngrams(head + unigrams + bigrams)
    assert words == ["<s>", "for", "the", "zulu"] and pairs == [("<s>", "for"), ("for", "the")]
    with pytest.raises(SystemExit, match="stopped writing its en-us LM's bigrams before 'zu' \\(2 written\\)"):
        english.written_ngrams(head + unigrams + bigrams.split("-9e9")[0] + "-9e")
