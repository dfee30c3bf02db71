"""n-gram language models: built from training text, shipped with an export, used by default."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import kenlm
import pytest

from speechseq import cli, corpora, language_model, metrics, tuning
from speechseq.decoding import BeamSearch
from speechseq.language_model import LanguageModelError, build_arpa, kenlm_layout
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


def test_bad_language_model_requests_are_refused(tmp_path, capsys):
    clip = str(ROOT / "samples" / "countdown.wav")
    out = str(tmp_path / "x")
    assert cli.main(["export", str(SENTENCES), "--out", out, "--tune-lm", "dev.jsonl"]) == 2
    assert "give the texts too" in capsys.readouterr().err
    assert cli.main(["export", str(SENTENCES), "--out", out, "--lm-from", clip, "--samples", clip]) == 2
    assert "not a UTF-8 text file" in capsys.readouterr().err
    assert not (tmp_path / "x" / "1").exists()
