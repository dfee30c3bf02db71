"""Closed-vocabulary decoding: only the grammar's words, exactly the best path, on real audio."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import fsdd_clip, kathleen_clip
from speechseq import audio, cli, corpora, derived, grammar, metrics
from speechseq.decoding import BeamOptions
from speechseq.errors import SpeechseqError
from speechseq.grammar import Grammar, GrammarDecoder, GrammarError, GrammarOptions
from speechseq.text import BLANK_ID, DIGIT_WORDS, Vocabulary
from speechseq.transcribe import Transcriber, TranscriberOptions

ROOT = Path(__file__).resolve().parents[1]
DIGITS_MODEL = ROOT / "saved_models" / "digits" / "4"  # ships the digit grammar
GREEDY = TranscriberOptions(shipped_decoding=False)
DIGITS_GRAMMAR = ROOT / "pipelines" / "grammars" / "digits.txt"
VOCABULARY = Vocabulary(digits_as_words=True)


def spelled(text: str, frames_per_symbol: int = 3, sharpness: float = 8.0, rng=None) -> np.ndarray:
    """Log-probabilities [frames, classes] whose best path spells `text`: each symbol for a
    few frames with a blank after it, other classes given noise."""
    rng = rng or np.random.default_rng(0)
    ids = []
    for symbol_id in VOCABULARY.encode(text):
        ids += [symbol_id] * frames_per_symbol + [BLANK_ID]
    logits = rng.normal(0, 1, (len(ids), VOCABULARY.size))
    logits[np.arange(len(ids)), ids] += sharpness
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def decoded(decoder: GrammarDecoder, log_probs: np.ndarray) -> str:
    return " ".join(word.text for word in decoder.words(log_probs, 0.02))


def path_score(log_probs: np.ndarray, labels: list[int]) -> float:
    """Log-probability of one frame-level label path."""
    return float(log_probs[np.arange(len(labels)), labels].sum())


def test_the_best_path_through_the_grammar_is_found_with_its_times():
    grammar = Grammar.from_lines(DIGIT_WORDS)
    decoder = GrammarDecoder(VOCABULARY, grammar, GrammarOptions(alpha=0.0, beta=0.0))
    log_probs = spelled("three two one one zero")  # "one one": a repeated word needs its own start
    words = decoder.words(log_probs, 0.02)
    assert [w.text for w in words] == ["three", "two", "one", "one", "zero"]
    # "three" is 5 letters of 4 frames each (3 + blank), then the space: the second word
    # starts at frame 24 (20 for "three", 4 for the space).
    assert words[0].start == 0.0 and words[0].end == pytest.approx(19 * 0.02)
    assert words[1].start == pytest.approx(24 * 0.02)
    assert all(0.5 < w.confidence <= 1.0 for w in words)


def test_a_misspelling_is_read_as_the_nearest_word_of_the_grammar():
    decoder = GrammarDecoder(VOCABULARY, Grammar.from_lines(DIGIT_WORDS), GrammarOptions(0.0, 0.0))
    assert decoded(decoder, spelled("nive")) == "nine"  # greedy would print these as they are
    assert decoded(decoder, spelled("tvo sevem")) == "two seven"
    assert decoded(decoder, spelled("fivee")) == "five"


def test_phrase_lists_keep_their_words_in_order():
    grammar = Grammar.from_lines(["check my balance", "talk to an agent", "talk to an agent"])
    assert dict(zip(grammar.phrases, grammar.counts))[("talk", "to", "an", "agent")] == 2
    decoder = GrammarDecoder(VOCABULARY, grammar)
    assert decoded(decoder, spelled("check my balans")) == "check my balance"
    assert decoded(decoder, spelled("talk two an agent talk to an agent")) == "talk to an agent talk to an agent"
    # Words of a phrase cannot be said out of order or alone.
    assert decoded(decoder, spelled("my balance")) in {"check my balance", ""}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), frames=st.integers(1, 40))
def test_whatever_the_model_says_only_grammar_words_come_out(seed, frames):
    grammar = Grammar.from_lines(["yes", "no", "stop"])
    decoder = GrammarDecoder(VOCABULARY, grammar, GrammarOptions(alpha=1.0, beta=2.0))
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (frames, VOCABULARY.size))
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    words = decoder.words(log_probs, 0.02)
    assert {w.text for w in words} <= grammar.words
    assert all(0 <= w.start < w.end <= frames * 0.02 + 1e-9 for w in words)


def test_the_path_found_is_the_best_one_the_grammar_allows():
    """Against brute force: every labelling of 6 frames with blank, space, "a" and "b" whose
    CTC collapse is a sequence of the words "a" and "ab" (single spaces optional between
    them and at either end); the decoder must find the letters of the most likely one."""
    vocabulary = Vocabulary(symbols=tuple(" ab"))
    decoder = GrammarDecoder(vocabulary, Grammar.from_lines(["a", "ab"]), GrammarOptions(alpha=0.0, beta=0.0))
    language = re.compile(r"^ ?(?:(?:ab|a) ?)*$")
    for seed in range(12):
        rng = np.random.default_rng(seed)
        logits = rng.normal(0, 2, (6, vocabulary.size))
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        best_text, best_score = None, -np.inf
        for labels in itertools.product(range(vocabulary.size), repeat=6):
            collapsed = [k for i, k in enumerate(labels) if k != BLANK_ID and (i == 0 or k != labels[i - 1])]
            text = vocabulary.decode(collapsed)
            score = path_score(log_probs, list(labels))
            if language.match(text) and score > best_score:
                best_text, best_score = text, score
        assert decoded(decoder, log_probs).replace(" ", "") == best_text.replace(" ", ""), seed


@pytest.fixture(scope="module")
def lucas(fsdd_dir, tmp_path_factory) -> list[corpora.Utterance]:
    """Connected digits of lucas, a speaker the digits model never heard."""
    from speechseq.derived import DigitSequenceOptions

    folder = tmp_path_factory.mktemp("lucas")
    made = derived.connected_digits(fsdd_dir, folder, DigitSequenceOptions(held_out_speaker="lucas"))
    return corpora.read_manifest(made["held_out"])[:24]


def test_on_a_voice_the_model_never_heard_the_digit_grammar_cuts_word_errors(lucas):
    files = [u.audio for u in lucas]
    references = [VOCABULARY.normalize(u.text) for u in lucas]
    greedy = Transcriber(DIGITS_MODEL, GREEDY)
    constrained = Transcriber(DIGITS_MODEL, TranscriberOptions(grammar=Grammar.read(DIGITS_GRAMMAR)))
    assert (greedy.decoding, constrained.decoding) == ("greedy", "grammar")
    greedy_texts = [r.text for r in greedy.transcribe_files(files)]
    grammar_results = list(constrained.transcribe_files(files))
    greedy_wer = metrics.word_error_rate(references, greedy_texts)
    grammar_wer = metrics.word_error_rate(references, [r.text for r in grammar_results])
    assert any(set(t.split()) - set(DIGIT_WORDS) for t in greedy_texts)  # greedy spells non-words here
    assert grammar_wer < greedy_wer - 0.05
    assert all(set(r.text.split()) <= set(DIGIT_WORDS) | {"oh"} for r in grammar_results)


def test_grammar_word_times_match_the_greedy_ones_where_the_words_agree():
    clip = ROOT / "samples" / "phone-number.wav"
    greedy = Transcriber(DIGITS_MODEL, GREEDY).transcribe(clip)
    constrained = Transcriber(DIGITS_MODEL, TranscriberOptions(grammar=Grammar.read(DIGITS_GRAMMAR))).transcribe(clip)
    assert constrained.text == greedy.text == "five five five zero one nine eight"
    for ours, theirs in zip(constrained.words, greedy.words):
        assert abs(ours.start - theirs.start) <= 0.041 and abs(ours.end - theirs.end) <= 0.081


def test_speech_outside_the_grammar_comes_out_in_its_words_only(kathleen_dir):
    grammar = Grammar.read(DIGITS_GRAMMAR)
    transcriber = Transcriber(DIGITS_MODEL, TranscriberOptions(grammar=grammar))
    noise = np.random.default_rng(0).normal(0, 0.1, 16000 * 3).astype(np.float32)
    sentence = audio.load(kathleen_clip("for the twentieth time that evening the two men shook hands"), 16000)
    for result in [transcriber.transcribe(sentence), transcriber.transcribe(noise),
                   transcriber.transcribe(fsdd_clip(7, "lucas", 3))]:
        assert set(result.text.split()) <= grammar.words


def test_an_export_ships_a_tuned_grammar_and_transcribes_with_it_by_default(lucas, tmp_path, capsys):
    dev = corpora.write_manifest(lucas[:8], tmp_path / "dev.jsonl")
    out = tmp_path / "digits"
    assert grammar.shipped(DIGITS_MODEL) is not None
    # Re-exported without one, a version keeps its grammar (--grammar FILE ships another:
    # test_language_model, test_phones); --tune-grammar alone re-tunes the kept list's weights.
    kept = grammar.shipped(DIGITS_MODEL)
    assert cli.main(["export", str(DIGITS_MODEL), "--out", str(out), "--samples", str(ROOT / "samples" / "countdown.wav")]) == 0
    assert grammar.shipped(out / "1") == kept
    assert cli.main(["export", str(DIGITS_MODEL), "--out", str(out),
                     "--tune-grammar", str(dev), "--samples", str(ROOT / "samples" / "countdown.wav")]) == 0
    assert "grammar: the 11 words it keeps, weights tuned on 8 dev utterances" in capsys.readouterr().out
    assets = out / "2" / "assets"
    summary = json.loads((assets / "grammar.json").read_text())
    assert grammar.shipped(out / "2")[0] == kept[0]  # the list stays
    assert summary["words"] == sorted(set(DIGIT_WORDS) | {"oh"})
    assert summary["utterances"] == 8 and summary["source"] == "digits.txt"  # tuned on these 8, the list still the source's
    assert summary["dev"]["wer"] <= summary["dev_with_defaults"]["wer"] <= summary["dev_greedy"]["wer"]
    card = json.loads((assets / "model_card.json").read_text())
    assert (card["grammar"]["alpha"], card["grammar"]["beta"]) == (summary["alpha"], summary["beta"])
    assert Transcriber(out).decoding == "grammar"
    assert Transcriber(out, TranscriberOptions(shipped_decoding=False)).decoding == "greedy"
    assert Transcriber(out, TranscriberOptions(beam=BeamOptions(beam_width=4))).decoding == "beam"

    # The command line: the shipped grammar by default, --no-lm for the greedy graph.
    misheard = fsdd_clip(4, "lucas", 0)
    assert cli.main(["transcribe", str(misheard), "--model", str(out)]) == 0
    assert set(capsys.readouterr().out.split()) <= set(summary["words"])
    assert cli.main(["transcribe", str(misheard), "--model", str(out), "--no-lm"]) == 0
    assert capsys.readouterr().out.strip() == Transcriber(DIGITS_MODEL, GREEDY).transcribe(misheard).text


def test_a_long_shipped_list_is_counted_in_the_model_card_and_kept_whole_beside_it(tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "model_card.json").write_text('{"name": "x"}')
    words = Grammar.from_lines([f"w{'a' * (i % 7)}{'b' * (i // 7)}" for i in range(150)])
    grammar.ship(tmp_path, words, GrammarOptions(), {"source": "test"})
    card = json.loads((assets / "model_card.json").read_text())
    assert card["grammar"]["words"] == "150 words, listed in assets/grammar.txt"
    assert json.loads((assets / "grammar.json").read_text())["words"] == sorted(words.words)
    assert grammar.shipped(tmp_path)[0].words == words.words


def test_tf_serving_gets_the_shipped_grammar_s_words_from_the_graph_as_transcribe_finds_them(lucas, tmp_path, capsys):
    # An export that ships a word list searches it in its graph: run as TF Serving runs it
    # (a TF1 session), serving_default's words and times are those of the host's search
    # on the same log-probs, and nothing else; the token outputs stay the greedy characters.
    from speechseq import serving

    out = tmp_path / "digits"
    assert cli.main(["export", str(DIGITS_MODEL), "--out", str(out), "--verify",
                     "--samples", str(ROOT / "samples")]) == 0
    assert "verified in a fresh process" in capsys.readouterr().out
    waveforms = [audio.load(u.audio) for u in lucas[:6]] + [np.zeros(8000, np.float32)]
    padded, lengths = audio.pad_batch(waveforms)
    transcriber = Transcriber(out / "1")
    log_probs, frames = transcriber.log_probs(padded, lengths)
    host = grammar.shipped_decoder(out / "1", transcriber.vocabulary)
    greedy = Transcriber(out / "1", GREEDY).transcribe_arrays(waveforms)
    with serving.SessionModel(out / "1") as session:
        served = session.run("serving_default", {"audio": padded, "audio_length": lengths.astype(np.int32)})
    for row, expected_greedy in enumerate(greedy):
        expected = host.words(log_probs[row, : frames[row]], transcriber.seconds_per_frame)
        count = int(served["word_count"][row])
        assert [w.decode() for w in served["words"][row, :count]] == [w.text for w in expected]
        assert served["transcript"][row].decode() == " ".join(w.text for w in expected)
        assert np.allclose(served["word_start"][row, :count], [w.start for w in expected], atol=1e-5)
        assert np.allclose(served["word_end"][row, :count], [w.end for w in expected], atol=1e-5)
        assert np.allclose(served["word_confidence"][row, :count], [w.confidence for w in expected], atol=1e-4)
        tokens = "".join(t.decode() for t in served["tokens"][row, : served["token_count"][row]])
        assert " ".join(tokens.split()) == expected_greedy.text
    texts = [t.decode() for t in served["transcript"]]
    assert texts[-1] == "" and all(texts[:-1])  # the silent row says nothing
    assert set(" ".join(texts).split()) <= set(DIGIT_WORDS) | {"oh"}
    assert metrics.word_error_rate([u.text for u in lucas[:6]], texts[:-1]) < 0.5


def test_bad_word_lists_are_refused_in_plain_words(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing but a comment\n\n")
    with pytest.raises(GrammarError, match="empty.txt: no words in it"):
        Grammar.read(empty)
    with pytest.raises(GrammarError, match="'café' has 'é', which the model cannot spell"):
        GrammarDecoder(VOCABULARY, Grammar.from_lines(["café"]))
    clip = str(ROOT / "samples" / "countdown.wav")
    assert cli.main(["transcribe", clip, "--model", str(DIGITS_MODEL), "--grammar", str(empty)]) == 2
    assert "empty.txt: no words in it" in capsys.readouterr().err
    assert cli.main(["transcribe", clip, "--model", str(DIGITS_MODEL), "--grammar", str(DIGITS_GRAMMAR),
                     "--beam", "8"]) == 2
    assert "does not go with --beam" in capsys.readouterr().err
    with pytest.raises(SpeechseqError, match="not both"):
        TranscriberOptions(beam=BeamOptions(), grammar=Grammar.from_lines(["yes"]))
