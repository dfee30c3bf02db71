"""n-gram language models: built from training text, shipped with an export, used by default."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import kenlm
import pytest
from pyctcdecode.language_model import MultiLanguageModel

from speechseq import cli, corpora, language_model, metrics, tuning
from speechseq.decoding import BeamSearch
from speechseq.general_lm import Bigrams
from speechseq.language_model import LanguageModelError, build_arpa, kenlm_layout
from speechseq.text import Vocabulary
from speechseq.transcribe import Transcriber, TranscriberOptions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "pipelines"))

import english  # noqa: E402  (pipelines/english.py: Kathleen's split by prompt, no TensorFlow)

SENTENCES = ROOT / "saved_models" / "english-read" / "2"  # Kathleen's sentences, ships no LM


def test_a_built_model_loads_in_kenlm_and_prefers_what_it_was_built_from(tmp_path):
    path = build_arpa(["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"], tmp_path / "lm.arpa")
    model = kenlm.Model(str(path))
    assert model.order == 3
    assert model.score("the cat sat on the mat") > model.score("mat the on sat cat the")
    assert model.score("the dog sat") > model.score("the dog cat")
    with pytest.raises(LanguageModelError, match="no words"):
        build_arpa(["", "  "], tmp_path / "empty.arpa")


def test_the_layout_is_kenlm_s_tabs_and_the_numbers_are_kept():
    arpabo_text = ("Corpus: 2 sentences\n\n\\data\\\nngram 1=2\nngram 2=1\n\n\\1-grams:\n-0.3010 <s> -0.2000\n"
                   "-0.3010 yes 0.0000\n\n\\2-grams:\n-0.1000 <s> yes\n\n\\end\\\n")
    lines = kenlm_layout(arpabo_text).splitlines()
    assert lines[0] == "\\data\\"
    assert "-0.3010\t<s>\t-0.2000" in lines and "-0.1000\t<s> yes" in lines
    with pytest.raises(LanguageModelError, match="no \\\\data\\\\"):
        kenlm_layout("Corpus: nothing\n")


def test_listed_words_become_known_to_the_model_beside_its_sentences(tmp_path):
    sentences = ["the cat sat on the mat", "the dog sat on the log"]
    plain = kenlm.Model(str(build_arpa(sentences, tmp_path / "plain.arpa")))
    listed = kenlm.Model(str(build_arpa(sentences, tmp_path / "listed.arpa", words=["zebra", "quietly", "cat"])))
    assert "zebra" not in plain and "zebra" in listed and "quietly" in listed
    assert listed.score("the zebra sat") > plain.score("the zebra sat") + 20  # no longer the unknown word's -100
    assert listed.score("the cat sat") > listed.score("the zebra sat")  # a word once listed stays rare
    assert abs(listed.score("the cat sat") - plain.score("the cat sat")) < 1.0  # a listed word it has: no change
    assert not list(tmp_path.glob(".*"))  # arpabo's word file is gone


@pytest.fixture(scope="module")
def kathleen(kathleen_dir, tmp_path_factory) -> dict:
    """Kathleen's split by prompt, as english-read was trained: train texts, 12 held-out takes."""
    splits = english.split_by_prompt(corpora.transcribed_folder(kathleen_dir, speaker="kathleen"))
    folder = tmp_path_factory.mktemp("kathleen")
    return {"train": corpora.write_manifest(splits["train"], folder / "train.jsonl"),
            "dev": splits["dev"][:4], "test": splits["test"][:12]}


def test_an_export_ships_a_language_model_of_its_training_text_and_beam_searches_with_it(
        kathleen, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tuning, "LM_GRID", {"alpha": (0.5, 1.0), "beta": (1.0, 2.0)})  # a small grid, for time
    dev = corpora.write_manifest(kathleen["dev"], tmp_path / "dev.jsonl")
    out = tmp_path / "english"
    assert cli.main(["export", str(SENTENCES), "--out", str(out), "--lm-from", str(kathleen["train"]),
                     "--tune-lm", str(dev), "--samples", str(kathleen["dev"][0].audio)]) == 0
    assert "weights tuned on 4 dev utterances (4 candidates)" in capsys.readouterr().out
    assets = out / "1" / "assets"
    settings = json.loads((assets / "lm.json").read_text())
    assert settings["order"] == 3 and settings["sentences"] > 600  # distinct training prompts
    assert json.loads((assets / "model_card.json").read_text())["language_model"]["alpha"] == settings["alpha"]
    assert language_model.shipped(out / "1").lm == str(assets / "lm.arpa")

    with_lm, greedy = Transcriber(out), Transcriber(out, TranscriberOptions(shipped_decoding=False))
    assert (with_lm.decoding, greedy.decoding) == ("beam", "greedy")
    files = [u.audio for u in kathleen["test"]]
    references = [with_lm.vocabulary.normalize(u.text) for u in kathleen["test"]]
    greedy_wer = metrics.word_error_rate(references, [r.text for r in greedy.transcribe_files(files)])
    lm_wer = metrics.word_error_rate(references, [r.text for r in with_lm.transcribe_files(files)])
    assert lm_wer < greedy_wer - 0.05, (greedy_wer, lm_wer)  # prompts it never saw, spelt as words

    # --no-lm on the command line is the greedy graph.
    assert cli.main(["transcribe", str(files[0]), "--model", str(out), "--no-lm"]) == 0
    assert capsys.readouterr().out.strip() == greedy.transcribe(files[0]).text
    assert isinstance(with_lm._decoder, BeamSearch)

    # Re-exported, the version keeps its LM; given a word list instead, it ships the list alone.
    sample = str(kathleen["dev"][0].audio)
    assert cli.main(["export", str(out / "1"), "--out", str(out), "--samples", sample]) == 0
    assert (out / "2" / "assets" / "lm.arpa").read_bytes() == (assets / "lm.arpa").read_bytes()
    assert language_model.shipped(out / "2").alpha == settings["alpha"] and Transcriber(out).decoding == "beam"
    # --tune-lm alone re-tunes the kept LM's weights (here on a new speaker's two takes).
    speaker = corpora.write_manifest(kathleen["dev"][2:], tmp_path / "speaker.jsonl")
    assert cli.main(["export", str(out / "2"), "--out", str(out), "--tune-lm", str(speaker), "--samples", sample]) == 0
    assert "the language model it keeps, weights tuned on 2 dev utterances" in capsys.readouterr().out
    retuned = json.loads((out / "3" / "assets" / "lm.json").read_text())
    assert (out / "3" / "assets" / "lm.arpa").read_bytes() == (assets / "lm.arpa").read_bytes()
    assert retuned["tuned_on"] == "speaker.jsonl" and retuned["utterances"] == 2
    assert retuned["sentences"] == settings["sentences"] and retuned["alpha"] in (0.5, 1.0)
    card = json.loads((out / "3" / "assets" / "model_card.json").read_text())
    assert card["language_model"] == retuned
    # A general model mixed into a character model's kept LM: over the LM's words, with as much say untuned.
    general = build_arpa(["she said that the man was here", "the zebra was here"], tmp_path / "general.arpa", order=2)
    assert cli.main(["export", str(out / "3"), "--out", str(out), "--general-lm", str(general), "--samples", sample]) == 0
    assert "general model from general.arpa: " in capsys.readouterr().out
    mixed = language_model.shipped(out / "4")
    assert mixed.general_lm == str(out / "4" / "assets" / "general-lm.arpa.gz") and mixed.general_alpha == mixed.alpha
    assert "zebra" not in Bigrams.read(mixed.general_lm).unigrams  # not a word of its LM
    assert not (out / "4" / "assets" / "general-phone-lm.arpa.gz").exists()  # a phone model's only
    with_general = Transcriber(out / "4")
    assert isinstance(with_general._decoder._decoder._language_model, MultiLanguageModel)
    assert with_general.transcribe(files[0]).text
    digits = str(ROOT / "pipelines" / "grammars" / "digits.txt")
    assert cli.main(["export", str(out / "4"), "--out", str(out), "--grammar", digits, "--samples", sample]) == 0
    assert language_model.shipped(out / "5") is None and Transcriber(out).decoding == "grammar"
    assert "language_model" not in json.loads((out / "5" / "assets" / "model_card.json").read_text())
    assert not (out / "5" / "assets" / "general-lm.arpa.gz").exists()  # a word list replaces every LM


def test_a_word_list_in_the_shipped_model_lets_the_search_keep_words_no_training_prompt_has(
        kathleen, tmp_path, capsys):
    references = [Vocabulary().normalize(u.text) for u in kathleen["test"]]
    trained_words = {w for u in corpora.read_manifest(kathleen["train"]) for w in Vocabulary().normalize(u.text).split()}
    new_words = sorted({w for r in references for w in r.split()} - trained_words)
    assert len(new_words) >= 5  # held-out prompts say words that no training prompt has
    words = tmp_path / "words.txt"
    known = sorted(trained_words)[:3]  # listed but already in the texts: not new
    words.write_text("\n".join(new_words + known) + "\n")
    runs = {}
    for name, extra in {"texts": [], "texts and words": ["--lm-words", str(words), "--lm-beam", "64"]}.items():
        out = tmp_path / name.replace(" ", "-")
        assert cli.main(["export", str(SENTENCES), "--out", str(out), "--lm-from", str(kathleen["train"]),
                         "--samples", str(kathleen["dev"][0].audio), *extra]) == 0
        runs[name] = Transcriber(out)
    settings = json.loads((tmp_path / "texts-and-words" / "1" / "assets" / "lm.json").read_text())
    assert settings["beam_width"] == 64
    assert settings["words_listed"] == len(new_words) + len(known) and settings["words_new"] == len(new_words)
    assert "and %d listed words (%d not in them)" % (len(new_words) + 3, len(new_words)) in capsys.readouterr().out
    files = [u.audio for u in kathleen["test"]]
    heard = {name: [r.text for r in t.transcribe_files(files)] for name, t in runs.items()}
    kept = {name: sum(w in set(h.split()) for h, r in zip(texts, references) for w in set(r.split()) & set(new_words))
            for name, texts in heard.items()}
    assert kept["texts"] == 0  # a model of the training texts alone never spells them
    assert kept["texts and words"] >= 2, heard
    assert metrics.word_error_rate(references, heard["texts and words"]) < metrics.word_error_rate(references, heard["texts"])


def test_bad_language_model_requests_are_refused(tmp_path, capsys):
    clip = str(ROOT / "samples" / "countdown.wav")
    out = str(tmp_path / "x")
    assert cli.main(["export", str(SENTENCES), "--out", out, "--tune-lm", "dev.jsonl"]) == 2
    assert "give the texts too" in capsys.readouterr().err  # it keeps no LM to re-tune
    assert cli.main(["export", str(SENTENCES), "--out", out, "--tune-grammar", "dev.jsonl"]) == 2
    assert "give the word list too" in capsys.readouterr().err
    assert cli.main(["export", str(SENTENCES), "--out", out, "--lm-from", clip, "--samples", clip]) == 2
    assert "not a UTF-8 text file" in capsys.readouterr().err
    assert cli.main(["export", str(SENTENCES), "--out", out, "--lm-words", clip]) == 2
    assert "shape the model of --lm-from" in capsys.readouterr().err
    assert cli.main(["export", str(SENTENCES), "--out", out, "--lm-from", clip, "--lm-words", "nowhere.txt"]) == 2
    assert "nowhere.txt: no such word list" in capsys.readouterr().err
    assert cli.main(["export", str(SENTENCES), "--out", out, "--lm-from", clip, "--lm-words", clip]) == 2
    assert f"{clip}: not a UTF-8 text file" in capsys.readouterr().err
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("one\ntwo three\n")
    assert cli.main(["export", str(SENTENCES), "--out", out, "--lm-from", clip, "--lm-words", str(phrases)]) == 2
    assert "one word per line" in capsys.readouterr().err
    assert cli.main(["export", str(SENTENCES), "--out", out, "--lm-from", clip, "--lm-beam", "0"]) == 2
    assert "--lm-beam must be at least 1" in capsys.readouterr().err
    general = build_arpa(["the cat sat"], tmp_path / "general.arpa", order=2)
    assert cli.main(["export", str(SENTENCES), "--out", out, "--general-lm-bigrams", "5"]) == 2
    assert "prunes the model of --general-lm: give the model too" in capsys.readouterr().err
    assert cli.main(["export", str(SENTENCES), "--out", out, "--general-lm", str(general),
                     "--general-lm-bigrams", "0"]) == 2
    assert "--general-lm-bigrams must be at least 1" in capsys.readouterr().err
    assert cli.main(["export", str(SENTENCES), "--out", out, "--general-lm", str(general), "--grammar", str(phrases)]) == 2
    assert "--grammar ships a closed word list instead" in capsys.readouterr().err
    assert cli.main(["export", str(SENTENCES), "--out", out, "--general-lm", str(general), "--samples", clip]) == 2
    assert "keeps none; give --lm-from too" in capsys.readouterr().err  # nothing to mix it into
    assert not (tmp_path / "x" / "1").exists()
