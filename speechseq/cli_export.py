"""`speechseq export`: a trained run published as a TF Serving version, with what its decoding ships."""

from __future__ import annotations

from pathlib import Path

from speechseq import audio, corpora
from speechseq.errors import SpeechseqError
from speechseq.files import read_json_object, read_user_text
from speechseq.lexicon import is_phone_vocabulary, transcript_text

def add_export(commands) -> None:
    export = commands.add_parser("export", help="export a trained model for TF Serving")
    export.add_argument("model", type=Path, help="run directory, .keras file in one, or an export version")
    export.add_argument("--out", type=Path, required=True, help="saved_models/NAME: versions go in numbered folders")
    export.add_argument("--version", type=int, help="version number (default: the next free one)")
    export.add_argument("--verify", action="store_true",
                        help="reload in a fresh process and compare with the Keras model before publishing")
    export.add_argument("--samples", nargs="+", metavar="AUDIO",
                        help="audio to verify and warm up with (default: the run's dev manifest)")
    export.add_argument("--card", type=Path, help="JSON merged into the model card (license, data attribution)")
    export.add_argument("--results", type=Path, metavar="SCORES.json",
                        help="this export's scores (a JSON object, e.g. WER and CER on held-out sets, measured "
                        "with the decoding it ships) for assets/results.json and the card's metrics")
    export.add_argument("--tune-smoothing", type=Path, metavar="DEV.jsonl",
                        help="tagging models: pick the smoothing on these utterances' segments and ship it")
    export.add_argument("--grammar", type=Path, metavar="WORDS.txt",
                        help="transcription models: ship this word or phrase list; transcribe decodes with it by default")
    export.add_argument("--tune-grammar", type=Path, metavar="DEV.jsonl",
                        help="pick the weights (alpha, beta) of --grammar, or of the word list the model keeps "
                        "(a run fine-tuned from an export, a re-export), on these utterances")
    export.add_argument("--lm-from", type=Path, metavar="TEXTS",
                        help="transcription models: ship an n-gram model of these texts (a manifest's, or one "
                        "sentence per line); transcribe beam-searches with it by default")
    export.add_argument("--lm-order", type=int, default=3, help="with --lm-from: the n of the n-grams")
    export.add_argument("--tune-lm", type=Path, metavar="DEV.jsonl",
                        help="pick the weights (alpha, beta) of --lm-from, or of the LM the model keeps "
                        "(a run fine-tuned from an export, a re-export), on these utterances")
    export.add_argument("--lm-words", type=Path, metavar="WORDS.txt",
                        help="with --lm-from: words (one per line) the model knows beyond its texts, each seen once")
    export.add_argument("--lm-beam", type=int,
                        help="with --lm-from: beams the shipped search keeps and is tuned with (default 32)")
    export.add_argument("--general-lm", type=Path, metavar="ARPA",
                        help="mix this general bigram model (ARPA, gzip'd or not) into the LM the export ships or "
                        "keeps: transcribe then weighs both (its weight is tuned by --tune-lm)")
    export.add_argument("--general-lm-bigrams", type=int, metavar="N",
                        help="with --general-lm: keep only the N bigrams that matter most (a smaller export)")
    export.add_argument("--lexicon", type=Path, metavar="DICT",
                        help="phone models, with --lm-from or --grammar: pronunciations in CMU's format (default: "
                        "CMU's dictionary from PocketSphinx, the peers extra); the export ships those of its words")
    export.set_defaults(run=cmd_export)


def cmd_export(args) -> int:
    """Export a run (or .keras model) as a TF Serving version; optionally verify it first."""
    from speechseq import export, serving, verify
    from speechseq.language_model import LEXICON_FILE

    if (args.lm_words or args.lm_beam is not None) and not args.lm_from:
        raise SpeechseqError("--lm-words and --lm-beam shape the model of --lm-from: give the texts too")
    if args.general_lm_bigrams is not None and not args.general_lm:
        raise SpeechseqError("--general-lm-bigrams prunes the model of --general-lm: give the model too")
    if args.general_lm_bigrams is not None and args.general_lm_bigrams < 1:
        raise SpeechseqError(f"--general-lm-bigrams must be at least 1, got {args.general_lm_bigrams}")
    if args.general_lm and args.grammar:
        raise SpeechseqError("--general-lm mixes into an n-gram LM; --grammar ships a closed word list instead")
    if args.lm_beam is not None and args.lm_beam < 1:
        raise SpeechseqError(f"--lm-beam must be at least 1, got {args.lm_beam}")
    listed_words = _word_list(args.lm_words) if args.lm_words else []
    if args.grammar and args.lm_from:
        raise SpeechseqError("ship --grammar (a closed word list) or --lm-from (an open n-gram model), not both")
    if args.lexicon and not (args.lm_from or args.grammar):
        raise SpeechseqError("--lexicon spells the words of --lm-from or --grammar: give the texts or the word list too")
    card = read_json_object(args.card, "a model card") if args.card else None
    results = read_json_object(args.results, "a results file") if args.results else None
    trained = export.load_trained(args.model)
    _check_retuning(args, trained.folder)
    phones = trained.task == "ctc" and is_phone_vocabulary(trained.classes)
    # A phone export re-exported (or a run fine-tuned from one) keeps its lexicon and what
    # decodes with it (`export.DECODING_FILES`); a run of its own has none.
    if phones and not (args.lm_from or args.grammar or (trained.folder / LEXICON_FILE).exists()):
        raise SpeechseqError(f"{args.model} hears phones: its export needs --lm-from or --grammar (the words it "
                             "may write; their pronunciations with --lexicon)")
    if args.lexicon and not phones:
        raise SpeechseqError(f"--lexicon is for phone models; {args.model} spells characters")
    checked: dict = {}

    def finish(staging: Path) -> None:
        # Decoding first: a word list goes into the graph, which the warmup records and
        # the verification then run.
        if (args.grammar or args.lm_from) and trained.task != "ctc":
            raise SpeechseqError("--grammar and --lm-from are for transcription models; this one tags frames")
        if args.grammar or args.lm_from:  # a new way to decode replaces what the source shipped
            export.drop_decoding(staging)
        if (args.grammar or args.lm_from or args.tune_grammar or args.tune_lm or args.general_lm) \
                and export.is_export(trained.folder):
            # An export's scores were measured with its own decoding, which this one changes.
            checked["scores_dropped"] = export.drop_scores(staging)
        if results is not None:
            export.record_scores(staging, results)
        if args.grammar:
            _ship_grammar(args, trained, staging, checked)
            export.save_graph(trained, staging)
        if args.lm_from:
            _ship_language_model(args, trained, staging, checked, listed_words)
        if args.general_lm:
            _ship_general_language_model(args, staging, checked)
        if args.tune_grammar and not args.grammar:
            _retune_grammar(args, trained, staging, checked)
        if args.tune_lm and (args.general_lm or not args.lm_from):
            _retune_language_model(args, staging, checked)
        files = [str(p) for p in audio.find_audio(*args.samples)] if args.samples else _sample_files(trained)
        wavs = [p for p in files if p.lower().endswith(".wav")][:4]
        examples = _warmup_examples(trained, files[:1], wavs[:1])
        serving.write_warmup(staging, args.out.name, examples)
        if wavs:
            signature = "transcribe_wav" if trained.task == "ctc" else "tag_wav"
            body = serving.rest_request(signature, wavs=[Path(w).read_bytes() for w in wavs])
            checked["request"] = serving.write_rest_request(staging, body).name
        if args.verify:
            result = verify.verify(staging, trained, files)
            checked["verification"] = result
            if not result.ok:
                raise export.ExportError(f"the export fails verification, nothing was published: {result.problems()}")
            checked["signatures"] = serving.describe(staging)
        if args.tune_smoothing:
            if trained.task != "frames":
                raise SpeechseqError("--tune-smoothing is for frame tagging models; this one transcribes")
            from speechseq import tuning

            checked["tuned"] = tuning.tune(staging, corpora.read_manifest(args.tune_smoothing))
            tuning.write(checked["tuned"], staging, str(args.tune_smoothing))

    target = export.write_version(trained, args.out, args.version, card, finish)
    print(f"exported {args.model} -> {target}")
    if "verification" in checked:
        result = checked["verification"]
        print(f"verified in a fresh process on {len(result.files)} files: same outputs "
              f"(max |difference| {result.max_difference:.1e}); every signature runs in a TF1 session "
              f"as TF Serving loads it (max |difference| {result.session_difference:.1e})\n")
        print(checked["signatures"])
    if "tuned" in checked:
        tuned = checked["tuned"]
        print(f"smoothing tuned on {tuned.utterances} dev utterances ({tuned.candidates} candidates): "
              f"{tuned.smoothing}; frame F1 {tuned.dev_with_defaults['frame_f1']:.3f} -> {tuned.dev['frame_f1']:.3f}, "
              f"segment F1 {tuned.dev_with_defaults['segment_f1']:.3f} -> {tuned.dev['segment_f1']:.3f}")
    if "decoding" in checked:
        print(checked["decoding"])
    if checked.get("scores_dropped") and results is None:
        print(f"{args.model}'s scores (results.json) were measured with the decoding this export changes: not "
              "kept; score this export (speechseq evaluate) and export it again with --results")
    if "request" in checked:
        request = target / "assets.extra" / checked["request"]
        print(f"serve it: docker run -p 8501:8501 -v {args.out.resolve()}:/models/{args.out.name} "
              f"-e MODEL_NAME={args.out.name} tensorflow/serving")
        print("then send a request:")
        print("  " + serving.curl_command(args.out.name, request))
    return 0


def _ship_grammar(args, trained, staging: Path, checked: dict) -> None:
    """--grammar (and --tune-grammar): the word list transcription decodes with by default."""
    from speechseq import grammar, tuning
    from speechseq.language_model import LEXICON_FILE

    words = grammar.Grammar.read(args.grammar)
    about, lexicon = {"source": args.grammar.name}, None
    if is_phone_vocabulary(trained.classes):
        lexicon, source = _grammar_lexicon(args, words, staging)
        about |= {"lexicon": LEXICON_FILE, "lexicon_from": source.name}
    if not args.tune_grammar:
        grammar.ship(staging, words, grammar.GrammarOptions(), about)
        checked["decoding"] = f"grammar: {len(words.words)} words from {args.grammar.name}, default weights"
        return
    tuned = tuning.tune_grammar(staging, corpora.read_manifest(args.tune_grammar), words, lexicon)
    grammar.ship(staging, words, grammar.GrammarOptions(tuned.alpha, tuned.beta),
                 about | tuned.about(args.tune_grammar.name))
    checked["decoding"] = f"grammar: {len(words.words)} words from {args.grammar.name}, " + _tuned(tuned)


def _check_retuning(args, source: Path) -> None:
    """--tune-grammar or --tune-lm alone re-tune what the source keeps: its word list or LM."""
    from speechseq.grammar import WEIGHTS_FILE
    from speechseq.language_model import SETTINGS_FILE

    keeps_lm = (source / SETTINGS_FILE).exists()
    if args.tune_grammar and not args.grammar:
        # A phone model that keeps an LM keeps a word list for its graph only: it transcribes with the LM.
        if keeps_lm and not args.lm_from:
            raise SpeechseqError(f"--tune-grammar tunes a word list's weights; {args.model} decodes with its LM: "
                                 "re-tune that with --tune-lm")
        if args.lm_from or not (source / WEIGHTS_FILE).exists():
            raise SpeechseqError(f"--tune-grammar tunes the weights of --grammar, or of the word list {args.model} "
                                 "decodes with; it decodes with none: give the word list too")
    if args.tune_lm and not args.lm_from:
        if args.grammar or not keeps_lm:
            raise SpeechseqError(f"--tune-lm tunes the weights of --lm-from, or of the LM {args.model} keeps; "
                                 "it keeps none: give the texts too")


def _retune_grammar(args, trained, staging: Path, checked: dict) -> None:
    """--tune-grammar alone: new weights for the word list the export keeps (a run fine-tuned
    from an export keeps weights tuned for the voices the export heard, not the new one)."""
    from speechseq import export, grammar, tuning

    words, _ = grammar.shipped(staging)
    tuned = tuning.tune_grammar(staging, corpora.read_manifest(args.tune_grammar), words,
                                grammar.shipped_lexicon(staging))
    grammar.ship(staging, words, grammar.GrammarOptions(tuned.alpha, tuned.beta),
                 grammar.shipped_about(staging) | tuned.about(args.tune_grammar.name))
    export.save_graph(trained, staging)  # the graph searches the list with its weights
    checked["decoding"] = f"grammar: the {len(words.words)} words it keeps, " + _tuned(tuned)


def _retune_language_model(args, staging: Path, checked: dict) -> None:
    """--tune-lm alone: new weights for the LM the export keeps (a phone model's search runs
    on its pronunciation LM and spells with its word LM, as `speechseq transcribe` does)."""
    from speechseq import language_model, tuning

    phones = language_model.shipped_lexicon(staging)  # a phone model's search, or None
    search = phones.options if phones else language_model.shipped(staging)
    general = (search.general_lm, phones.general_words_lm if phones else None) if search.general_lm else None
    tuned = tuning.tune_language_model(staging, corpora.read_manifest(args.tune_lm), search.lm, search.beam_width,
                                       spelling=(phones.lexicon, phones.words_lm) if phones else None, general=general)
    language_model.reweigh(staging, tuned.alpha, tuned.beta, tuned.about(args.tune_lm.name), tuned.general_alpha)
    what = "the language model it ships" if args.lm_from else "the language model it keeps"
    _note_decoding(checked, f"{what}, " + _tuned(tuned))


def _ship_general_language_model(args, staging: Path, checked: dict) -> None:
    """--general-lm: a general bigram model over the words of the LM the export ships or
    keeps, mixed into its search (`general_lm`); a phone model's also over pronunciations."""
    from pyctcdecode.language_model import load_unigram_set_from_arpa

    from speechseq import language_model
    from speechseq.general_lm import Bigrams

    task = language_model.shipped(staging)
    if task is None:
        raise SpeechseqError(f"--general-lm mixes into the n-gram LM an export ships: {args.model} keeps none; "
                             "give --lm-from too")
    phones = language_model.shipped_lexicon(staging)
    words = phones.lexicon.pronunciations if phones else load_unigram_set_from_arpa(task.lm)
    general = Bigrams.read(args.general_lm).within(words)
    if args.general_lm_bigrams:
        general = general.pruned(args.general_lm_bigrams)
    about = {"built_from": args.general_lm.name, "words": len(general.unigrams), "bigrams": len(general.bigrams)}
    language_model.ship_general(staging, general, phones.lexicon if phones else None, task.alpha, about)
    note = f"general model from {args.general_lm.name}: {about['words']} words, {about['bigrams']} bigrams"
    _note_decoding(checked, note)


def _note_decoding(checked: dict, note: str) -> None:
    """Add `note` to what the export prints of its decoding (after what an earlier step said)."""
    checked["decoding"] = f"{checked['decoding']}; {note}" if "decoding" in checked else note


def _grammar_lexicon(args, words, staging: Path):
    """A phone model's grammar words as `--lexicon` says them, shipped beside the grammar."""
    from speechseq.language_model import LEXICON_FILE
    from speechseq.lexicon import Lexicon, pocketsphinx_dictionary

    source = args.lexicon or pocketsphinx_dictionary()
    lexicon = Lexicon.read(source, words=words.words)
    missing = sorted(words.words - set(lexicon.pronunciations))
    if missing:
        raise SpeechseqError(f"{args.grammar}: {source} has no pronunciation of {', '.join(missing)}; "
                             "the phone model cannot hear them (add them to a dictionary of your own, --lexicon)")
    lexicon.write(staging / "assets" / LEXICON_FILE)
    return lexicon, source


def _ship_language_model(args, trained, staging: Path, checked: dict, listed_words: list[str]) -> None:
    """--lm-from (and --tune-lm, --lm-words): an n-gram model of these texts (knowing the
    listed words too), for beam search by default. A phone model's export also gets the
    pronunciations of those words and the same model over them (`phone_decoding`)."""
    from speechseq import language_model, tuning
    from speechseq.decoding import BeamOptions

    source = args.lm_from
    beams = args.lm_beam or BeamOptions.beam_width
    phones = is_phone_vocabulary(trained.classes)
    words_text = transcript_text(trained.classes)
    if source.suffix == ".jsonl":
        texts = [words_text.normalize(u.text) for u in corpora.read_manifest(source)]
    else:
        texts = [words_text.normalize(line) for line in read_user_text(source).splitlines()]
    texts = list(dict.fromkeys(t for t in texts if t))  # each sentence once: takes of one prompt are one text
    # Spelt as the texts are (the vocabulary's normalisation), or a listed word could never match.
    listed_words = list(dict.fromkeys(w for word in listed_words for w in words_text.normalize(word).split()))
    arpa = language_model.build_arpa(texts, staging / "lm-building.arpa", order=args.lm_order, words=listed_words)
    about = {"built_from": source.name, "sentences": len(texts), "order": args.lm_order,
             "estimate": "arpabo, Kneser-Ney back-off"}
    built = f"language model: order {args.lm_order} from {len(texts)} sentences"
    known = {word for sentence in texts for word in sentence.split()}
    if listed_words:
        # Listed words the texts already have change nothing: the card counts those that are new.
        new = sum(word not in known for word in listed_words)
        about |= {"words_from": args.lm_words.name, "words_listed": len(listed_words), "words_new": new}
        built += f" and {len(listed_words)} listed words ({new} not in them)"
    search_lm, shipped_phones = arpa, None
    if phones:
        lexicon, phone_arpa, spelt = _pronunciations(args, texts, known | set(listed_words), staging)
        about |= spelt
        built += (f"; {spelt['lexicon_words']} of its words in the lexicon, pronunciation LM from "
                  f"{spelt['phone_sentences']} sentences")
        search_lm, shipped_phones = phone_arpa, (phone_arpa, lexicon)
    if args.tune_lm and not args.general_lm:  # with a general model, tuned once both are in
        tuned = tuning.tune_language_model(staging, corpora.read_manifest(args.tune_lm), str(search_lm), beams,
                                           spelling=(shipped_phones[1], str(arpa)) if phones else None)
        options = BeamOptions(beam_width=beams, alpha=tuned.alpha, beta=tuned.beta)
        about |= tuned.about(args.tune_lm.name)
        checked["decoding"] = f"{built}, " + _tuned(tuned)
    else:
        options = BeamOptions(beam_width=beams)
        checked["decoding"] = built if args.tune_lm else f"{built}, default weights"
    language_model.ship(staging, arpa, options, about, phones=shipped_phones)
    arpa.unlink()
    if shipped_phones:
        shipped_phones[0].unlink()
        _note_decoding(checked, _ship_graph_words(trained, staging, texts, listed_words, shipped_phones[1]))


# The graph's word search (TF Serving's transcript) is exact, one step per frame over every
# word's phones: the LM's sentence words and this many of the listed words keep it near
# 0.1 of real time on 2 cores (RESULTS: "A phone model with a lexicon").
GRAPH_LISTED_WORDS = 2000


def _ship_graph_words(trained, staging: Path, texts: list[str], listed_words: list[str], lexicon) -> str:
    """A phone model's words for its graph: TF Serving has no LM, so the graph searches a
    word list (the LM's sentence words, each as often as they say it, and the first
    `GRAPH_LISTED_WORDS` listed words once) and its transcript is words, not phones."""
    from speechseq import export, grammar
    from speechseq.language_model import LEXICON_FILE

    said = [word for sentence in texts for word in sentence.split() if word in lexicon.pronunciations]
    extra = [word for word in listed_words[:GRAPH_LISTED_WORDS] if word in lexicon.pronunciations]
    words = grammar.Grammar.from_lines(said + extra, where=str(staging))
    grammar.ship(staging, words, grammar.GrammarOptions(),
                 {"source": "the LM's words", "lexicon": LEXICON_FILE,
                  "used_by": "the graph's transcript (TF Serving); speechseq transcribe searches with the LM"})
    export.save_graph(trained, staging)
    return f"the graph searches {len(words.phrases)} of its words"


def _pronunciations(args, texts: list[str], words: set[str], staging: Path):
    """A phone model's lexicon (the LM's words that `--lexicon` has) and its pronunciation LM."""
    from speechseq import language_model
    from speechseq.lexicon import Lexicon, pocketsphinx_dictionary
    from speechseq.phone_decoding import phone_sentences

    source = args.lexicon or pocketsphinx_dictionary()
    lexicon = Lexicon.read(source, words=words)
    sentences, left_out = phone_sentences(texts, lexicon)
    if not sentences:
        raise SpeechseqError(f"{args.lm_from}: no sentence has all its words in the lexicon")
    listed = [phones for spellings in lexicon.pronunciations.values() for phones in spellings]
    arpa = language_model.build_arpa(sentences, staging / "phone-lm-building.arpa", order=args.lm_order,
                                     words=listed)
    about = {"lexicon_from": source.name,
             "lexicon_words": len(lexicon.pronunciations),
             "words_without_pronunciation": len(words) - len(lexicon.pronunciations),
             "phone_sentences": len(sentences), "sentences_left_out": left_out}
    return lexicon, arpa, about


def _tuned(tuned) -> str:
    general = "" if tuned.general_alpha is None else f", general {tuned.general_alpha:g}"
    return (f"weights tuned on {tuned.utterances} dev utterances ({tuned.candidates} candidates): alpha "
            f"{tuned.alpha:g}{general}, beta {tuned.beta:g}; dev WER greedy {tuned.dev_greedy['wer']:.2%} -> {tuned.dev['wer']:.2%}")


def _word_list(path: Path) -> list[str]:
    """--lm-words: one word per line, read and checked before any model is loaded; each once."""
    if not path.is_file():
        raise SpeechseqError(f"{path}: no such word list")
    words = [line.strip() for line in read_user_text(path).splitlines()]
    if any(len(word.split()) > 1 for word in words):
        raise SpeechseqError(f"{path}: a word list has one word per line (a line holds several)")
    words = list(dict.fromkeys(word for word in words if word))
    if not words:
        raise SpeechseqError(f"{path}: the word list has no words")
    return words


def _sample_files(trained) -> list[str]:
    """A few files of the run's dev (else train) manifest, to verify and warm up with."""
    for split in ("dev", "train"):
        manifest = trained.settings["data"].get(split)
        if manifest and Path(manifest).exists():
            return [str(u.audio) for u in corpora.read_manifest(manifest)[:4]]
    raise SpeechseqError("no manifest of the run can be read: name audio files with --samples")


def _warmup_examples(trained, files: list[str], wavs: list[str]) -> dict:
    import numpy as np

    waveform = audio.load(files[0], trained.features.sample_rate) if files else np.zeros(16000, np.float32)
    inputs = {"audio": waveform[np.newaxis], "audio_length": np.array([waveform.size], np.int32)}
    if trained.task == "frames":
        examples = {"tag": inputs}
        if wavs:
            examples["tag_wav"] = {"wav": np.array([Path(wavs[0]).read_bytes()], object)}
        return examples
    examples = {"serving_default": inputs}
    if wavs:
        examples["transcribe_wav"] = {"wav": np.array([Path(wavs[0]).read_bytes()], object)}
    return examples


def add_commands(commands) -> None:
    add_export(commands)
