"""Phone models: CMU's dictionary spells the training text in phones, the export ships a lexicon
and an LM of pronunciations, and what comes out is words of the lexicon (`speechseq.lexicon`,
`speechseq.phone_decoding`)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from speechseq import cli, corpora, grammar, language_model, metrics
from speechseq.general_lm import Bigrams
from speechseq.language_model import build_arpa
from speechseq.lexicon import (ARPABET, WORD_TEXT, Lexicon, LexiconError, arpabet, is_phone_vocabulary,
                               phone_vocabulary, pocketsphinx_dictionary)
from speechseq.phone_decoding import PhoneBeamSearch
from speechseq.published import ExportError, resolve_version
from speechseq.transcribe import Transcriber, TranscriberOptions

ROOT = Path(__file__).resolve().parents[1]
PHONES = ROOT / "saved_models" / "english-read" / "14"  # the shipped phone model
CHARACTERS = ROOT / "saved_models" / "english-read" / "7"  # the character model it follows


def load_recipe():
    spec = importlib.util.spec_from_file_location("english_recipe", ROOT / "pipelines" / "english.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_cmu_dictionary_is_read_with_its_variants_and_without_stress_and_written_back(tmp_path):
    source = tmp_path / "words.dict"
    source.write_text(";;; a comment\nread R IY1 D\nread(2) R EH1 D\nthe DH AH0\nthe(2) DH IY0\ntwo T UW1\n"
                      "to T UW1\n")
    lexicon = Lexicon.read(source)
    assert lexicon.pronunciations["read"] == ("rId", "red")  # main pronunciation first
    assert lexicon.spell("read the") == "rId Hu"
    assert arpabet(lexicon.spell("read the")) == "R IY D | DH AH"
    assert lexicon.phone_words()["tV"] == ("two", "to")  # homophones share a pronunciation
    lexicon.write(tmp_path / "again.dict")
    assert Lexicon.read(tmp_path / "again.dict") == lexicon
    assert Lexicon.read(source, words=["two"]).pronunciations == {"two": ("tV",)}
    assert lexicon.missing("read the zebra read") == ["zebra"]
    with pytest.raises(LexiconError, match="zebra"):
        lexicon.spell("read the zebra")


def test_a_dictionary_with_a_phone_outside_arpabet_is_refused_naming_its_line(tmp_path):
    bad = tmp_path / "bad.dict"
    bad.write_text("cat K AE1 T\ndog D XX G\n")
    with pytest.raises(LexiconError, match=r"bad.dict, line 2: unknown phones \['XX'\]"):
        Lexicon.read(bad)
    with pytest.raises(LexiconError, match="no such pronunciation dictionary"):
        Lexicon.read(tmp_path / "nowhere.dict")
    (tmp_path / "empty.dict").write_text(";;; nothing\n")
    with pytest.raises(LexiconError, match="no pronunciations"):
        Lexicon.read(tmp_path / "empty.dict")


def test_the_phone_vocabulary_has_a_class_for_each_of_the_39_phones_and_the_space():
    vocabulary = phone_vocabulary()
    assert len(ARPABET) == 39 and vocabulary.size == 41  # + the space and the CTC blank
    assert is_phone_vocabulary(vocabulary) and not is_phone_vocabulary(WORD_TEXT)
    assert vocabulary.normalize("Hu kat") == "Hu kat"  # phones keep their case: "H" is DH, "h" is HH


def test_the_recipe_spells_its_manifests_in_phones_and_leaves_out_words_the_dictionary_lacks(tmp_path, monkeypatch):
    english = load_recipe()
    monkeypatch.setattr(english, "WORK", tmp_path)
    clip = ROOT / "samples" / "countdown.wav"
    items = [corpora.Utterance(clip, "Three two one zero"), corpora.Utterance(clip, "three blorptastic")]
    train = corpora.write_manifest(items, tmp_path / "train.jsonl")
    corpus = english.spelt_in_phones({"train": train, "dev": train, "tests": {"held out": (items, train)}})
    spelt = corpora.read_manifest(corpus["train"])
    assert [u.text for u in spelt] == ["TrI tV wun zirA"]
    assert spelt[0].audio == clip
    assert corpus["tests"]["held out"][0][0].text == "TrI tV wun zirA"
    assert is_phone_vocabulary(type(phone_vocabulary()).load(corpus["vocabulary"]))


@pytest.fixture(scope="module")
def shipped():
    lexicon_options = language_model.shipped_lexicon(PHONES)
    assert lexicon_options is not None, f"{PHONES} ships no lexicon"
    return lexicon_options


def test_homophones_are_spelt_as_the_word_lm_prefers_them_in_their_sentence(shipped):
    lexicon = shipped.lexicon
    search = PhoneBeamSearch(phone_vocabulary(), shipped.options, lexicon, shipped.words_lm)
    spell = lambda text: " ".join(search.spell(lexicon.spell(text).split()))  # noqa: E731
    assert spell("i want to go home") == "i want to go home"
    assert spell("two dollars") == "two dollars"
    # Pronunciations it lacks: words run together are read apart, a phone off is forgiven,
    # and what is left is words of the lexicon.
    run_together = lexicon.spell("she had forgotten these things").replace(" ", "")
    assert search.spell([run_together]) == "she had forgotten these things".split()
    assert search.spell([lexicon.spell("remarkable")[:-1] + "z"]) == ["remarkable"]
    assert set(search.spell(["kat", "zzzzgzzk"])) <= set(lexicon.pronunciations)


@pytest.fixture(scope="module")
def held_out_kathleen(kathleen_dir):
    english = load_recipe()
    splits = english.split_by_prompt(corpora.transcribed_folder(kathleen_dir, speaker="kathleen"))
    return splits["test"][::12]  # 12 of her 134 held-out takes, prompts no model trained on


def test_the_phone_model_writes_only_its_lexicon_s_words_and_reads_new_prompts_better(held_out_kathleen):
    phones, characters = Transcriber(PHONES), Transcriber(CHARACTERS)
    assert phones.decoding == "phones" and characters.decoding == "beam"
    files = [u.audio for u in held_out_kathleen]
    references = [WORD_TEXT.normalize(u.text) for u in held_out_kathleen]
    heard = {name: [r.text for r in t.transcribe_files(files)] for name, t in
             {"phones": phones, "characters": characters}.items()}
    lexicon = Lexicon.read(PHONES / "assets" / "lexicon.dict")
    assert all(word in lexicon.pronunciations for text in heard["phones"] for word in text.split())
    wer = {name: metrics.word_error_rate(references, texts) for name, texts in heard.items()}
    assert wer["phones"] < wer["characters"] - 0.03, wer
    # Word times: each word within its file, in order.
    result = phones.transcribe(files[0])
    assert all(0 <= w.start < w.end <= result.duration + 0.05 for w in result.words)
    assert [w.start for w in result.words] == sorted(w.start for w in result.words)


def test_the_shipped_general_model_reads_a_homophone_as_common_english_has_it(kathleen_dir):
    """A dev take of Kathleen's (a prompt no model trained on): with the general model its
    export ships, "for the first time"; with its own LMs alone (their prompts are full of
    digits), at the same weights, "four the first time"."""
    from speechseq import audio

    clip = kathleen_dir / "arctic_a0176_1592713267.flac"
    transcriber = Transcriber(PHONES)
    assert transcriber.transcribe(clip).text == "for the first time in his life he was yearning for a scrap"
    search = language_model.shipped_lexicon(PHONES)
    assert search.options.general_lm and search.general_words_lm
    alone = PhoneBeamSearch(phone_vocabulary(), dataclasses.replace(search.options, general_lm=None),
                            search.lexicon, search.words_lm)
    waveform = audio.load(clip, transcriber.sample_rate)
    log_probs, frames = transcriber.log_probs(waveform[np.newaxis], np.array([waveform.size], np.int32))
    words = alone.words(log_probs[0, : frames[0]], transcriber.seconds_per_frame)
    assert " ".join(w.text for w in words).startswith("four the first time")


def test_tf_serving_gets_words_of_the_lexicon_from_the_phone_model_s_graph(held_out_kathleen):
    from speechseq import audio
    from speechseq.published import open_published
    import numpy as np

    published = open_published(PHONES)
    graph_words = grammar.shipped(published.folder)[0].words
    waveform = audio.load(held_out_kathleen[0].audio, 16000)
    outputs = published.signatures["serving_default"](audio=waveform[np.newaxis],
                                                      audio_length=np.array([waveform.size], np.int32))
    transcript = outputs["transcript"][0].numpy().decode().split()
    assert transcript and set(transcript) <= graph_words
    reference = WORD_TEXT.normalize(held_out_kathleen[0].text)
    assert metrics.word_error_rate([reference], [" ".join(transcript)]) < 0.8


def test_a_grammar_restricts_the_phone_model_to_its_words(held_out_kathleen):
    digits = grammar.Grammar.read(ROOT / "pipelines" / "grammars" / "digits.txt")
    transcriber = Transcriber(PHONES, TranscriberOptions(grammar=digits))
    assert transcriber.decoding == "grammar"
    assert transcriber.transcribe(ROOT / "samples" / "countdown.wav").text == "three two one zero"
    assert set(transcriber.transcribe(held_out_kathleen[0].audio).text.split()) <= digits.words
    unknown = grammar.Grammar.from_lines(["blorptastic"])
    with pytest.raises(grammar.GrammarError, match="not in the lexicon"):
        Transcriber(PHONES, TranscriberOptions(grammar=unknown))


def test_phone_model_exports_and_transcription_refuse_what_they_cannot_do(tmp_path, capsys):
    out = str(tmp_path / "x")
    clip = str(ROOT / "samples" / "countdown.wav")
    bare = tmp_path / "run"  # a phone run of its own: no lexicon, no LM
    bare.mkdir()
    for name in ("features.json", "run.json", "vocabulary.json"):
        shutil.copyfile(PHONES / "assets" / name, bare / name)
    shutil.copyfile(PHONES / "assets.extra" / "model.keras", bare / "model.keras")
    assert cli.main(["export", str(bare), "--out", out, "--samples", clip]) == 2
    assert "hears phones: its export needs --lm-from or --grammar" in capsys.readouterr().err
    assert cli.main(["export", str(PHONES), "--out", out, "--tune-grammar", "dev.jsonl"]) == 2
    assert "decodes with its LM: re-tune that with --tune-lm" in capsys.readouterr().err  # its list is the graph's
    texts = tmp_path / "texts.txt"
    texts.write_text("three two one zero\n")
    assert cli.main(["export", str(CHARACTERS), "--out", out, "--lm-from", str(texts), "--lexicon",
                     str(pocketsphinx_dictionary()), "--samples", clip]) == 2
    assert "--lexicon is for phone models" in capsys.readouterr().err
    from speechseq.decoding import BeamOptions

    with pytest.raises(ExportError, match="hears phones"):
        Transcriber(PHONES, TranscriberOptions(beam=BeamOptions(beam_width=8)))
    assert resolve_version(PHONES) == PHONES


def test_an_exported_phone_run_ships_its_lexicon_lm_general_lm_and_graph_words(tmp_path, capsys, monkeypatch):
    """Re-export the shipped phone model from its Keras file with a small text and a small
    general model: the lexicon, the pronunciation LM, the general model over its words and
    pronunciations and the graph's words are made, tuned, and transcription uses them."""
    from speechseq import tuning

    # Small grids, for time.
    monkeypatch.setattr(tuning, "LM_GRID", {"alpha": (0.5,), "beta": (1.0, 2.0)})
    monkeypatch.setattr(tuning, "GENERAL_GRID", {"alpha": (0.5,), "general_alpha": (0.25, 0.5), "beta": (1.0,)})
    texts = tmp_path / "texts.txt"
    texts.write_text("three two one zero\nfour five six\nthe cat sat on the mat\n")
    general = build_arpa(["three two one zero", "one two three", "the cat sat", "a zebra sat"],
                         tmp_path / "general.arpa", order=2)
    sample = ROOT / "samples" / "countdown.wav"
    dev = corpora.write_manifest([corpora.Utterance(sample, "three two one zero")], tmp_path / "dev.jsonl")
    out = tmp_path / "english"
    assert cli.main(["export", str(PHONES), "--out", str(out), "--lm-from", str(texts), "--tune-lm", str(dev),
                     "--general-lm", str(general), "--general-lm-bigrams", "5", "--samples", str(sample)]) == 0
    printed = capsys.readouterr().out
    assert "12 of its words in the lexicon" in printed and "the graph searches 12 of its words" in printed
    assert "general model from general.arpa: " in printed and ", 5 bigrams" in printed
    assert "weights tuned on 1 dev utterances (2 candidates): alpha 0.5, general 0.5, beta 1" in printed
    assets = out / "1" / "assets"
    # The shipped scores were measured with the shipped LMs: a new LM's export does not claim them.
    assert (PHONES / "assets" / "results.json").exists()
    assert "scores (results.json) were measured with the decoding this export changes: not kept" in printed
    assert not (assets / "results.json").exists()
    assert json.loads((assets / "model_card.json").read_text())["metrics"] == {}
    settings = json.loads((assets / "lm.json").read_text())
    assert settings["lexicon"] == "lexicon.dict" and settings["phone_sentences"] == 3
    assert set(Lexicon.read(assets / "lexicon.dict").pronunciations) == set(texts.read_text().split())
    # The general model knows only the export's words ("a", "zebra" go), and ships gzip'd.
    assert settings["general"] == {"built_from": "general.arpa", "words": 9, "bigrams": 5}
    assert settings["general_alpha"] == 0.5
    assert json.loads((assets / "model_card.json").read_text())["language_model"]["general_alpha"] == 0.5
    general_words = Bigrams.read(assets / "general-lm.arpa.gz")
    assert "zebra" not in general_words.unigrams and len(general_words.bigrams) == 5
    general_phones = Bigrams.read(assets / "general-phone-lm.arpa.gz").unigrams  # pronunciations, not words
    assert "TrI" in general_phones and "three" not in general_phones
    search = language_model.shipped_lexicon(out / "1")
    assert search.options.general_lm.endswith("general-phone-lm.arpa.gz")
    assert search.general_words_lm.endswith("general-lm.arpa.gz")
    assert Transcriber(out).transcribe(ROOT / "samples" / "countdown.wav").text == "three two one zero"
    # --tune-lm alone re-tunes the kept LMs: the search on pronunciations, spelt in words.
    again = corpora.write_manifest([corpora.Utterance(sample, "three two one zero")], tmp_path / "again.jsonl")
    scores = tmp_path / "scores.json"
    scores.write_text('{"countdown": {"wer": 0.0, "utterances": 1}}')
    assert cli.main(["export", str(out / "1"), "--out", str(out), "--tune-lm", str(again), "--samples", str(sample),
                     "--results", str(scores)]) == 0
    assert "the language model it keeps, weights tuned on 1 dev utterances (2 candidates)" in capsys.readouterr().out
    for name in ("general-lm.arpa.gz", "general-phone-lm.arpa.gz"):  # the general model is kept too
        assert (out / "2" / "assets" / name).read_bytes() == (assets / name).read_bytes()
    expected = {"countdown": {"wer": 0.0, "utterances": 1}}
    assert json.loads((out / "2" / "assets" / "results.json").read_text()) == expected
    assert json.loads((out / "2" / "assets" / "model_card.json").read_text())["metrics"] == expected
    retuned = json.loads((out / "2" / "assets" / "lm.json").read_text())
    assert retuned["tuned_on"] == "again.jsonl" and retuned["lexicon"] == "lexicon.dict"
    assert retuned["dev"]["wer"] == 0  # scored in words, as transcribe spells them
    assert (out / "2" / "assets" / "phone-lm.arpa").read_bytes() == (assets / "phone-lm.arpa").read_bytes()


def test_a_phone_model_exported_with_a_word_list_decodes_only_its_words_in_speechseq_and_tf_serving(
        tmp_path, capsys, monkeypatch):
    """digits from the phone model: the export ships the list and its words' pronunciations,
    tunes the weights, and every way of reading it (default, --no-lm's graph, TF Serving's
    signature) answers with the list's words."""
    import numpy as np

    from speechseq import audio, tuning
    from speechseq.published import open_published

    monkeypatch.setattr(tuning, "GRAMMAR_GRID", {"alpha": (0.0, 0.5), "beta": (0.0,)})  # a small grid, for time
    sample = ROOT / "samples" / "countdown.wav"
    dev = corpora.write_manifest([corpora.Utterance(sample, "three two one zero")], tmp_path / "dev.jsonl")
    digits = ROOT / "pipelines" / "grammars" / "digits.txt"
    out = tmp_path / "digits"
    assert cli.main(["export", str(PHONES), "--out", str(out), "--grammar", str(digits), "--tune-grammar", str(dev),
                     "--samples", str(sample)]) == 0
    assert "weights tuned on 1 dev utterances (3 candidates)" in capsys.readouterr().out
    assets = out / "1" / "assets"
    assert not (assets / "lm.json").exists()
    words = grammar.Grammar.read(digits).words
    assert set(Lexicon.read(assets / "lexicon.dict").pronunciations) == words
    shipped_grammar = json.loads((assets / "grammar.json").read_text())
    assert shipped_grammar["lexicon"] == "lexicon.dict" and shipped_grammar["dev"]["wer"] == 0.0
    listed, no_lm = Transcriber(out), Transcriber(out, TranscriberOptions(shipped_decoding=False))
    assert (listed.decoding, no_lm.decoding) == ("grammar", "phones")
    assert listed.transcribe(sample).text == "three two one zero"
    greedy = no_lm.transcribe(sample).text  # greedy phones read as the list's words: close, not exact
    assert set(greedy.split()) <= words and metrics.word_error_rate(["three two one zero"], [greedy]) <= 0.5
    waveform = audio.load(sample, 16000)
    served = open_published(out / "1").signatures["serving_default"](
        audio=waveform[np.newaxis], audio_length=np.array([waveform.size], np.int32))
    assert served["transcript"][0].numpy().decode() == "three two one zero"
    # Re-exported as it is, it keeps its list and lexicon.
    assert cli.main(["export", str(out / "1"), "--out", str(out), "--samples", str(sample)]) == 0
    assert Transcriber(out).transcribe(sample).text == "three two one zero"
    assert set(Lexicon.read(out / "2" / "assets" / "lexicon.dict").pronunciations) == words
    # A word the dictionary cannot say is named before anything is written.
    odd = tmp_path / "odd.txt"
    odd.write_text("three\nblorptastic\n")
    assert cli.main(["export", str(PHONES), "--out", str(tmp_path / "odd"), "--grammar", str(odd),
                     "--samples", str(sample)]) == 2
    assert "has no pronunciation of blorptastic" in capsys.readouterr().err
    assert not list((tmp_path / "odd").iterdir())  # nothing published, no staging left


def test_fine_tuning_a_phone_model_spells_its_manifests_with_the_shipped_lexicon(tmp_path):
    from speechseq import finetune

    clip = ROOT / "samples" / "countdown.wav"
    manifest = corpora.write_manifest([corpora.Utterance(clip, "Three two one zero")], tmp_path / "new.jsonl")
    run = finetune.make_run(finetune.FinetuneOptions(source=str(PHONES), manifest=str(manifest), dev=str(manifest)),
                            tmp_path / "run")
    assert [u.text for u in corpora.read_manifest(run.data.train)] == ["TrI tV wun zirA"]
    # The run keeps the export's lexicon, LMs and word list: its export decodes as the source's.
    for name in ("lexicon.dict", "lm.json", "lm.arpa", "phone-lm.arpa", "grammar.txt", "grammar.json"):
        assert (tmp_path / "run" / name).read_bytes() == (PHONES / "assets" / name).read_bytes(), name
    assert [u.text for u in corpora.read_manifest(run.data.dev)] == ["TrI tV wun zirA"]
    assert is_phone_vocabulary(type(phone_vocabulary()).load(run.data.vocabulary))
    unknown = corpora.write_manifest([corpora.Utterance(clip, "three blorptastic")], tmp_path / "odd.jsonl")
    with pytest.raises(LexiconError, match=r"odd.jsonl: the model's lexicon has no pronunciation of blorptastic"):
        finetune.make_run(finetune.FinetuneOptions(source=str(PHONES), manifest=str(unknown)), tmp_path / "run2")
