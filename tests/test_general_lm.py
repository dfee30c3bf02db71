"""A general bigram model mixed into a task's LM: read, cut to a lexicon's words, pruned,
re-keyed by pronunciation, written for KenLM, and weighed beside the task's LM in the search."""

from __future__ import annotations

import math

import kenlm
import numpy as np
import pytest

from speechseq.decoding import BeamOptions, BeamSearch
from speechseq.general_lm import Bigrams, GeneralModelError
from speechseq.language_model import build_arpa
from speechseq.lexicon import Lexicon
from speechseq.text import Vocabulary

# A small general model: "for the" is common, "four the" is not; "four" and "for" sound alike.
GENERAL = """\\data\\
ngram 1=8
ngram 2=6

\\1-grams:
-0.8\t</s>\t0.0
-99\t<s>\t-0.3
-0.9\tthe\t-0.2
-1.2\tfor\t-0.25
-1.6\tfour\t-0.1
-1.3\ttime\t-0.1
-1.8\tfirst\t-0.2
-2.5\tzebra\t0.0

\\2-grams:
-0.5\t<s> for
-0.2\tfor the
-1.5\tfour the
-0.7\tthe first
-0.3\tfirst time
-0.4\ttime </s>

\\end\\
"""
WORDS = ["for", "four", "the", "first", "time", "zebra"]


@pytest.fixture
def general_path(tmp_path):
    path = tmp_path / "general.arpa"
    path.write_text(GENERAL)
    return path


def next_word_mass(model: kenlm.Model, history: str, words) -> float:
    """The probability `model` gives all of `words` (and the sentence's end) after `history`."""
    total = 0.0
    for word in [*words, "</s>"]:
        state, after = kenlm.State(), kenlm.State()
        model.NullContextWrite(state)
        model.BaseScore(state, history, after)
        total += 10 ** model.BaseScore(after, word, kenlm.State())
    return total


def test_a_model_cut_to_a_lexicon_s_words_sums_to_one_after_each_history(general_path, tmp_path):
    cut = Bigrams.read(general_path).within(["for", "four", "the", "first", "time"])
    assert "zebra" not in cut.unigrams and "<s>" in cut.unigrams and "</s>" in cut.unigrams
    path = cut.write(tmp_path / "cut.arpa.gz")  # gzip'd, as an export ships it
    model = kenlm.Model(str(path))
    for history in ["for", "four", "the", "first", "time"]:
        assert next_word_mass(model, history, cut.unigrams.keys() - {"<s>", "</s>", "<unk>"}) == pytest.approx(1, abs=1e-4)
    # A word the general model lacks is as likely as its rarest word, not ruled out.
    assert model.score("zebra", bos=False, eos=False) == pytest.approx(min(model.score(w, bos=False, eos=False)
                                                                           for w in ["for", "four", "the", "first", "time"]))
    assert Bigrams.read(path).bigrams == pytest.approx(cut.bigrams, abs=1e-5)


def test_pruning_keeps_the_bigrams_that_move_the_model_most(general_path):
    model = Bigrams.read(general_path)
    kept = model.pruned(3)
    assert len(kept.bigrams) == 3
    # "for the" (likely history, far above its back-off) stays; "four the" (rare, below it) goes.
    assert ("for", "the") in kept.bigrams and ("four", "the") not in kept.bigrams
    # A history that lost bigrams backs off to cover the mass they had.
    lost = {h for h, _ in model.bigrams} - {h for h, _ in kept.bigrams}
    assert all(h not in kept.backoffs for h in lost)
    assert model.pruned(100) is model


def test_by_pronunciation_homophones_share_one_entry_and_their_mass(general_path):
    lexicon = Lexicon({"for": ("fOr",), "four": ("fOr",), "the": ("D@",), "first": ("f3st",), "time": ("taIm",)})
    model = Bigrams.read(general_path).within(lexicon.pronunciations)
    spoken = model.by_pronunciation(lexicon)
    assert set(spoken.unigrams) == {"fOr", "D@", "f3st", "taIm", "<s>", "</s>"}
    both = math.log10(10 ** model.unigrams["for"] + 10 ** model.unigrams["four"])
    assert spoken.unigrams["fOr"] == pytest.approx(both)
    # After the pronunciation, what follows its likelier spelling ("for") follows it.
    assert spoken.bigrams["fOr", "D@"] == pytest.approx(model.bigrams["for", "the"])
    assert spoken.bigrams["<s>", "fOr"] == pytest.approx(model.bigrams["<s>", "for"])


def test_files_a_general_model_cannot_come_from_are_refused_by_name(tmp_path):
    trigram = tmp_path / "big.arpa"
    trigram.write_text(GENERAL.replace("ngram 2=6\n", "ngram 2=6\nngram 3=1\n"))
    with pytest.raises(GeneralModelError, match="big.arpa: a general model must be of order 1 or 2"):
        Bigrams.read(trigram)
    text = tmp_path / "notes.txt"
    text.write_text("just some words\n")
    with pytest.raises(GeneralModelError, match="notes.txt: not an ARPA language model"):
        Bigrams.read(text)
    broken = tmp_path / "broken.arpa"
    broken.write_text(GENERAL.replace("-0.2\tfor the", "often\tfor the"))
    with pytest.raises(GeneralModelError, match=r"broken.arpa, line 17: not an 2-gram line"):
        Bigrams.read(broken)
    with pytest.raises(GeneralModelError, match="missing.arpa: no such language model file"):
        Bigrams.read(tmp_path / "missing.arpa")


def test_the_search_weighs_the_general_model_beside_the_task_s_own(general_path, tmp_path):
    """Audio a little more like "four" than "for" before "the": the task's LM (which counts
    each once) leaves it "four"; with the general model mixed in, "for the" wins."""
    task = build_arpa(["four", "for", "the", "first", "time"], tmp_path / "task.arpa", order=2)
    general = Bigrams.read(general_path).write(tmp_path / "general.arpa.gz")
    vocabulary = Vocabulary()
    ids = {symbol: index + 1 for index, symbol in enumerate(vocabulary.symbols)}  # 0 is the blank
    # Per frame: f, o, then "u" (0.6) or nothing, r, space, t, h, e.
    frames = []

    def frame(probabilities: dict[str, float]):
        row = np.full(vocabulary.size, 1e-6)
        for symbol, p in probabilities.items():
            row[ids.get(symbol, 0)] = p
        frames.append(row / row.sum())

    for symbol in "fo":
        frame({symbol: 1.0})
    frame({"u": 0.6, "": 0.4})
    for symbol in "r the":
        frame({symbol: 1.0})
    log_probs = np.log(np.array(frames, np.float32))
    with_task = BeamSearch(vocabulary, BeamOptions(beam_width=16, lm=str(task), alpha=0.5, beta=0.0))
    mixed = BeamSearch(vocabulary, BeamOptions(beam_width=16, lm=str(task), alpha=0.5, beta=0.0,
                                               general_lm=str(general), general_alpha=0.5))
    assert [w.text for w in mixed.words(log_probs, 0.02)] == ["for", "the"]
    unmixed = [w.text for w in with_task.words(log_probs, 0.02)]
    assert unmixed == ["four", "the"]
    without_general = [w.text for w in BeamSearch(vocabulary, BeamOptions(
        beam_width=16, lm=str(task), alpha=0.5, beta=0.0, general_lm=str(general), general_alpha=0.0)).words(log_probs, 0.02)]
    assert without_general == unmixed
