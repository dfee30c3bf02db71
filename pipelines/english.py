"""English from every real voice we have: a CTC recogniser (characters, or phones with --phones) on speechocean762, Kathleen and FSDD.

    .venv/bin/python pipelines/english.py --prepare-only           # build manifests, print the split, exit
    .venv/bin/python pipelines/english.py --out /work/runs/english  # train (re-running resumes), then score
    .venv/bin/python pipelines/english.py --out /work/runs/english --score-only  # score a run stopped early
    .venv/bin/python pipelines/english.py --out /work/runs/english --no-held-out  # train; held-out sets later
    .venv/bin/python pipelines/english.py --synthetic-voices 0 --speed 0.9 1.1 --out runs/english-sp

Training data, all read English:
- speechocean762 (DATA/speechocean762/manifest.jsonl): 125 Mandarin-L1 speakers, children
  and adults of both genders, 2,500 prompts (each read once), 2.9 h of Ogg Opus. Split by
  speaker: the 16 test and 12 dev speakers of pipelines/speechocean762_split.json are held
  out, the other 97 train.
  Their `text` is the prompt, not a verbatim transcript (learners misread and skip words),
  so its WER overstates the model's errors somewhat.
- Kathleen (DATA/kathleen/clips): one U.S. speaker, 1,261 takes of 871 CMU ARCTIC prompts
  (1.05 h), split by prompt as pipelines/sentences.py does: every 10th prompt test, the
  5th of each ten dev.
- FSDD (DATA/fsdd): connected digit strings joined from single-digit clips of 5 speakers
  (`derived.connected_digits`, as pipelines/digits.py, but each clip used once); speaker
  lucas is held out entirely, the others' takes 10-49 train and 5-9 dev.
- `--synthetic-voices N` (default 4) eSpeak NG voices reading the training prompts of
  speechocean762 and Kathleen. Each prompt is read by ONE of the N voices, in turn (not by
  every voice, as sentences.py does): 4 voices reading every prompt would be 5.4 h of
  synthetic speech to 3.3 h of real; one reading each is 1.35 h, under a third of the training audio.
- `--speed 0.9 1.1` (off by default) adds speed-perturbed copies of the real training
  utterances (`derived.speed_perturbed`).
- `--tight 0.3` (off by default) puts in place of that share of the real training
  utterances (chosen at random, seed 0) copies cut to their sound with 0-50 ms kept each
  side (`derived.cut_to_sound`): every speechocean762 and Kathleen take starts with silence,
  and a model that never heard speech at the first sample misreads clips cut tight (FSDD's).
- `--roomy-digits` (off by default) adds one more pass of the FSDD training clips as short
  strings (1-4 digits) with 0.05-0.6 s of edge on each side and, on 70% of them, a white
  noise floor 40-65 dB under the peak: FSDD's strings otherwise have 0.1 s of digital zeros
  at the edges, and a model that only heard those reads a single digit with room around it
  much worse (RESULTS: "Why isolated digits padded with silence read worse").
- `--dictionary-sentences N` (off by default) adds N strings of 4-10 words for the eSpeak
  voices to read (each by one voice, in turn), drawn from PocketSphinx's en-us pronouncing
  dictionary by the square root of each word's unigram probability in its general en-us LM
  (the `peers` extra). They are not sentences: they give the model many more words to spell
  than its 2,975 training prompts hold, which it otherwise learns by heart (Kathleen's
  training takes read at 2.3% CER, her held-out prompts at 27%; 18% of their words are in no
  training prompt).
- `--spliced-kathleen N` (off by default) adds N utterances of Kathleen's own words in new
  orders: her training takes cut at word boundaries found by forced alignment with
  `--splice-model` (default saved_models/english-read/7, a character model, which trained on those takes and reads
  them at 2.3% CER) and joined again as 3-6 runs of 1-3 consecutive words from different takes
  (`speechseq.splicing`). Her voice without her prompts' sentences to learn by heart. Only her
  training takes are cut: dev and held-out prompts stay whole and unseen.
- `--channels 0.5` (off by default) puts in place of that share of all the training utterances
  (chosen at random, seed 1) copies heard through a transmission channel drawn per file: 8 kHz,
  a landline (300-3400 Hz, mu-law), GSM, Opus at about 12 kbit/s or MP3 at about 30 kbit/s
  (`derived.through_channels`). english-read/6, which heard none, loses 6-21 CER points on the
  held-out speakers through them (RESULTS: "Held-out speakers through transmission channels").
- `--reverb 0.3` (off by default) puts in place of that share (seed 2) copies heard in a simulated
  room, RT60 0.2-0.7 s (`derived.in_rooms`, the `rooms` extra), before any channel is drawn.
- `--general-words N` writes work/english/general-words-N.txt: the N words of PocketSphinx's
  en-us dictionary most frequent in its general LM (the `peers` extra), for `speechseq export
  --lm-words`, so the shipped LM knows them beside the training prompts' 2,945 word types.
- `--general-bigrams` writes work/english/general-bigrams.arpa: PocketSphinx's general en-us LM
  as bigrams (the `peers` extra), for `speechseq export --general-lm`, which mixes it into the
  shipped LM (RESULTS: "A general LM mixed into english-read/13's search").
- `--phones` trains a phone model: every manifest spelt in ARPAbet phones (39, no stress) by
  CMU's pronouncing dictionary as PocketSphinx ships it (the `peers` extra; utterances with a
  word it lacks are left out, about 1%), one CTC class per phone (`speechseq.lexicon`). Its
  scores here are phone error rates (greedy); it writes words once exported with `--lm-from`,
  which ships the lexicon and an LM of pronunciations (`speechseq.phone_decoding`). Why: the
  character model spells Kathleen's training prompts at 2.3% CER and her new ones at 27%;
  a phone model leaves spelling to the dictionary (RESULTS: "A phone model with a lexicon").
- `--set train.init_from=saved_models/english-read/5` starts from a trained model's weights
  (an export, a run or a .keras file, as `speechseq finetune`) instead of from scratch.

Vocabulary: the default one (space, a-z, apostrophe; digits as words). The speechocean
prompts are lowercase letters, spaces and apostrophes only: `speechseq audit` passes all
2,500 (no out-of-vocabulary characters, none too short for CTC at subsampling 2).
Kathleen's punctuation is stripped by the vocabulary's normalisation.

Decoding: Opus through `speechseq.audio.load` (soundfile/libsndfile) decodes at about
200 s of audio per second on one core of the 2-core CPU (measured on 50 speechocean files,
189 s of audio: 207x; the whole corpus audits in about 1 minute); FLAC decodes at about
2,000x. With `train.feature_cache=memory` that cost is paid once, in epoch 1.

Dev (early stopping on WER, best checkpoint) is the three dev sets together. After
training, the best checkpoint is scored on the held-out speechocean speakers (all, and per
gender x child/adult group), Kathleen's held-out prompts and FSDD's held-out speaker lucas:
CER and WER go to RUN/results.json, per-speaker rows to RUN/report-speechocean.json.
`--no-held-out` stops after training, so that a decision on dev (`speechseq evaluate`,
`speechseq compare`) is made before anyone sees a held-out figure; `--score-only` then
scores the held-out sets once.
Data is read where it lies (SPEECHSEQ_DATA, or ../shared/data beside the checkout);
manifests, connected digits and synthetic audio go to work/english/.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import re
import time
from pathlib import Path

import numpy as np

# Only the light modules here: --prepare-only and tests/test_english_recipe.py import this
# file without loading TensorFlow (evaluate, metrics, runfile and train import it, in main).
from speechseq import corpora, derived, splicing, synth
from speechseq.derived import DigitSequenceOptions
from speechseq.files import write_text

ROOT = Path(__file__).resolve().parents[1]
DATA = corpora.data_root()
SPEECHOCEAN = DATA / "speechocean762" / "manifest.jsonl"
KATHLEEN = DATA / "kathleen" / "clips"
FSDD = DATA / "fsdd"
FSDD_HELD_OUT = "lucas"
WORK = ROOT / "work" / "english"

# sentences.py's model and training, 30 epochs with early stopping on dev WER. Eight length
# buckets and no utterance over 12 s (38 of 5,981 dropped): one 17 s speechocean clip set the
# top of four buckets, padding the training frames about 2.2x (1.6x with these, estimated
# from the manifest's durations).
DEFAULTS = [
    "train.buckets=8",
    "data.max_seconds=12",
    "features.n_mels=80",
    "model.cell=gru",
    "model.layers=3",
    "model.units=160",
    "model.subsampling=2",
    "model.conv_channels=160",
    "train.epochs=30",
    "train.batch_size=16",
    "train.learning_rate=1.5e-3",
    "train.early_stopping=8",
    "train.feature_cache=memory",
]

CHILD_MAX_AGE = 12  # speechocean762's own line: children are aged 12 or under

# The held-out speechocean762 speakers, shared by every recipe that uses the corpus: see
# the file's "about" for the rule they were chosen by (`speakers_by_rule`).
SPEAKER_SPLIT = json.loads((ROOT / "pipelines" / "speechocean762_split.json").read_text())
TEST_SPEAKERS, DEV_SPEAKERS = tuple(SPEAKER_SPLIT["test"]), tuple(SPEAKER_SPLIT["dev"])
SPLITS = ("train", "dev", "test")


# ---- speechocean762: by speaker ------------------------------------------------------


def speaker_groups(manifest: Path = SPEECHOCEAN) -> dict[str, str]:
    """speaker -> "f child", "m adult", ... from the manifest's `gender` and `age`
    (fields `corpora.read_manifest` does not keep, so read here from the JSON lines)."""
    groups: dict[str, str] = {}
    for number, line in enumerate(manifest.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        entry = json.loads(line)
        group = f"{entry['gender']} {'child' if int(entry['age']) <= CHILD_MAX_AGE else 'adult'}"
        if groups.setdefault(entry["speaker"], group) != group:
            raise corpora.CorpusError(f"{manifest}:{number}: speaker {entry['speaker']} changes group")
    return groups


def speakers_by_rule(groups: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The rule TEST_SPEAKERS and DEV_SPEAKERS were chosen by (see above): (test, dev)."""
    test, dev = [], []
    for group in sorted(set(groups.values())):
        speakers = sorted(s for s, g in groups.items() if g == group)
        k = len(speakers) // 4
        test += [speakers[j * k] for j in range(4)]
        dev += [speakers[j * k + k // 2] for j in range(3)]
    return tuple(test), tuple(dev)


def split_by_speaker(utterances: list[corpora.Utterance]) -> dict[str, list[corpora.Utterance]]:
    """TEST_SPEAKERS -> test, DEV_SPEAKERS -> dev, everyone else -> train."""
    overlap = set(TEST_SPEAKERS) & set(DEV_SPEAKERS)
    if overlap:
        raise ValueError(f"speakers both in test and dev: {sorted(overlap)}")
    splits: dict[str, list[corpora.Utterance]] = {name: [] for name in SPLITS}
    for utterance in utterances:
        side = "test" if utterance.speaker in TEST_SPEAKERS else "dev" if utterance.speaker in DEV_SPEAKERS else "train"
        splits[side].append(utterance)
    return splits


# ---- Kathleen: by prompt -------------------------------------------------------------
# Every 10th prompt test, the 5th of each ten dev (`corpora.split_by_group`), as sentences.py splits it.

def prompt_of(utterance: corpora.Utterance) -> str:
    return corpora.prompt_of_take(utterance)


def split_by_prompt(utterances: list[corpora.Utterance]) -> dict[str, list[corpora.Utterance]]:
    return corpora.split_by_group(utterances, corpora.prompt_of_take)


# ---- the corpus ----------------------------------------------------------------------


# Each clip used once (digits.py strings its training clips 4 times, in 4 orders: here that
# would make a fifth of the corpus digit strings of four speakers). No test takes: the
# held-out speaker is the test.
FSDD_OPTIONS = DigitSequenceOptions(held_out_speaker=FSDD_HELD_OUT, passes=(("train", 1), ("dev", 1)))


def fsdd_splits() -> dict[str, list[corpora.Utterance]]:
    """Connected FSDD digits: train and dev takes of four speakers, test = all of lucas."""
    folder = WORK / f"fsdd-{FSDD_HELD_OUT}-once"
    if not (folder / "held_out.jsonl").exists():  # the same options always make the same files
        derived.connected_digits(FSDD, folder, FSDD_OPTIONS)
    return {"train": corpora.read_manifest(folder / "train.jsonl"),
            "dev": corpora.read_manifest(folder / "dev.jsonl"),
            "test": corpora.read_manifest(folder / "held_out.jsonl")}


# The extra pass of `--roomy-digits`: training takes only, so dev and the held-out speaker stay as they were.
ROOMY_DIGITS = DigitSequenceOptions(held_out_speaker=FSDD_HELD_OUT, passes=(("train", 1),), max_digits=4,
                                    edge=0.05, max_edge=0.6, noise_share=0.7, seed=1)


def roomy_digits() -> list[corpora.Utterance]:
    folder = WORK / f"fsdd-{FSDD_HELD_OUT}-roomy"
    if not (folder / "train.jsonl").exists():
        derived.connected_digits(FSDD, folder, ROOMY_DIGITS)
    return corpora.read_manifest(folder / "train.jsonl")


def synthetic(prompts: list[str], count: int) -> list[corpora.Utterance]:
    """Each prompt read by one of `count` eSpeak NG voices, in turn."""
    voices = synth.voices(count, seed=1)
    synthesizer = synth.Synthesizer()
    utterances = []
    for index, voice in enumerate(voices):
        utterances += synth.synthetic_corpus(prompts[index::count], [voice], WORK / "espeak", synthesizer)
    return utterances


DICTIONARY_WORDS = (4, 10)  # words per dictionary string, fewest and most
WORD = re.compile(r"[a-z]+('[a-z]+)?")  # what the vocabulary spells: letters, one inner apostrophe


LOG_BASE = 1.0001  # PocketSphinx's log-probabilities are in units of log(1.0001)


def pocketsphinx_en_us(option: str):
    """PocketSphinx's en-us model folder and its general LM (an `NGramModel`), which `option`
    reads: the peers extra."""
    try:
        from pocketsphinx import Config, LogMath, NGramModel, get_model_path
    except ImportError:
        raise SystemExit(f"{option} reads PocketSphinx's dictionary and LM: pip install -e '.[peers]'") from None
    folder = Path(get_model_path()) / "en-us"
    return folder, NGramModel(Config(), LogMath(), str(folder / "en-us.lm.bin"))


@functools.cache
def dictionary_words() -> tuple[list[str], np.ndarray]:
    """The words PocketSphinx's en-us pronouncing dictionary spells plainly and its general
    en-us LM knows, with the square root of each one's unigram probability (flattened: more
    of the middle of the vocabulary, less of "the"), normalised to sum to 1."""
    import numpy as np
    model, language_model = pocketsphinx_en_us("--dictionary-sentences")
    words = sorted({line.split(maxsplit=1)[0] for line in
                    (model / "cmudict-en-us.dict").read_text(encoding="utf-8").splitlines() if line.strip()})
    words = [word for word in words if WORD.fullmatch(word)]  # variants ("read(2)") and symbols go
    scores = np.array([language_model.prob([word]) for word in words], dtype=np.float64)
    known = scores > -5e8  # a word the LM never saw scores -2**29
    weights = np.exp(0.5 * np.log(LOG_BASE) * scores[known])
    return [w for w, k in zip(words, known) if k], weights / weights.sum()


def dictionary_sentences(count: int, seed: int = 2) -> list[str]:
    """`count` strings of 4-10 words drawn from `dictionary_words` by their weights."""
    words, weights = dictionary_words()
    rng = np.random.default_rng(seed)
    lengths = rng.integers(DICTIONARY_WORDS[0], DICTIONARY_WORDS[1] + 1, size=count)
    return [" ".join(rng.choice(words, size=length, p=weights)) for length in lengths]


def spliced_kathleen(takes: list[corpora.Utterance], count: int, model: str) -> list[corpora.Utterance]:
    """`count` utterances of Kathleen's words from `takes` in new orders, cut where `model`'s
    forced alignment puts the words' boundaries; kept under work/english/kathleen-spliced."""
    from speechseq.published import resolve_version
    from speechseq.transcribe import Transcriber, TranscriberOptions

    version = resolve_version(model)
    name = f"{version.parent.name}-{version.name}"
    manifest = WORK / "kathleen-spliced" / f"{name}-{count}.jsonl"
    if manifest.exists():  # the same takes, model and count always make the same utterances
        return corpora.read_manifest(manifest)
    pieces = splicing.word_pieces(Transcriber(version, TranscriberOptions(shipped_decoding=False)), takes)
    print(f"spliced Kathleen: {len(pieces)} of {len(takes)} training takes aligned by {version}", flush=True)
    made = splicing.spliced_utterances(pieces, WORK / "kathleen-spliced" / name, count)
    corpora.write_manifest(made, manifest)
    return made


def general_words(count: int) -> Path:
    """A file of the `count` words of `dictionary_words` that its LM finds most frequent, for
    `speechseq export --lm-words` (the shipped LM then knows them beside the training prompts)."""
    words, weights = dictionary_words()
    path = WORK / f"general-words-{count}.txt"
    write_text(path, "\n".join(words[i] for i in np.argsort(-weights, kind="stable")[:count]) + "\n")
    return path


# Run in a child process: pocketsphinx 5.1.1's ARPA writer crashes on its own en-us model (below).
_WRITE_POCKETSPHINX_ARPA = (
    "import sys; from pathlib import Path; from pocketsphinx import NGramModel, get_model_path; "
    "NGramModel.readfile(str(Path(get_model_path()) / 'en-us' / 'en-us.lm.bin'))"
    ".write(sys.argv[1], NGramModel.str_to_type('arpa'))"
)
# The writer puts bigrams out in the order of their second word and its crash cuts off the
# last few dozen, a different number each run: those from this word on are all left out (a
# few hundred), so every run keeps the same ones.
_BIGRAMS_BEFORE = "zu"


def general_bigrams() -> Path:
    """PocketSphinx's general en-us LM as a bigram ARPA file (work/english/general-bigrams.arpa,
    50 MB), for `speechseq export --general-lm`.

    pocketsphinx 5.1.1 cannot write that model: its header counts 6 more bigrams than its
    trie holds, and its ARPA writer crashes once the bigrams are out (cmusphinx/pocketsphinx#502;
    fixed upstream by #501, not in a release here), after writing, on some runs, numbers
    from memory it should not read. So the writer runs in a child process for WHICH bigrams
    there are (all but those whose second word sorts from "zu" on: `written_ngrams`), and
    each one's probability is asked of the model itself (`NGramModel.prob`); back-offs are
    worked out again (`general_lm.Bigrams.from_probabilities`). Its trigrams are left out."""
    import math
    import subprocess
    import sys

    from speechseq.general_lm import Bigrams

    path = WORK / "general-bigrams.arpa"
    if path.exists():
        return path
    _, model = pocketsphinx_en_us("--general-bigrams")
    raw = WORK / "general-bigrams.partial.arpa"
    raw.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", _WRITE_POCKETSPHINX_ARPA, str(raw)], capture_output=True)
    text = raw.read_text(encoding="utf-8", errors="replace") if raw.exists() else ""
    raw.unlink(missing_ok=True)
    words, pairs = written_ngrams(text)
    unit = math.log10(LOG_BASE)
    unigrams = {word: model.prob([word]) * unit for word in words}
    unigrams["<s>"] = -99.0  # a history only
    known = set(unigrams)
    bigrams = {(h, w): model.prob([w, h]) * unit for h, w in pairs if h in known and w in known}
    Bigrams.from_probabilities(unigrams, bigrams).write(path)
    return path


def written_ngrams(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The unigrams and the bigrams whose second word sorts before `_BIGRAMS_BEFORE` (words
    only) of PocketSphinx's ARPA text, which its writer stops writing mid-line; a text that
    stops before that word is refused."""
    lines = text.split("\n")[:-1]  # the last piece is a line cut short, or empty
    order = 0
    words, pairs = [], []
    for line in lines:
        if line.startswith("\\"):
            order = int(line[1]) if line[1:2].isdigit() else 0
            continue
        fields = line.split()
        if order == 1 and len(fields) >= 2:
            words.append(fields[1])
        elif order == 2 and len(fields) >= 3:
            pairs.append((fields[1], fields[2]))
    if not pairs or pairs[-1][1] < _BIGRAMS_BEFORE:
        raise SystemExit(f"PocketSphinx stopped writing its en-us LM's bigrams before {_BIGRAMS_BEFORE!r} "
                         f"({len(pairs)} written); run again")
    return words, [pair for pair in pairs if pair[1] < _BIGRAMS_BEFORE]


def replaced_share(utterances: list[corpora.Utterance], share: float, make_copies, seed: int) -> list[corpora.Utterance]:
    """`utterances` with a random `share` of them (the same ones every build) replaced, in
    place, by what `make_copies` makes of them."""
    chosen = set(random.Random(seed).sample(range(len(utterances)), round(share * len(utterances))))
    copies = iter(make_copies([utterances[i] for i in sorted(chosen)]))
    return [next(copies) if i in chosen else u for i, u in enumerate(utterances)]


def cut_tight(utterances: list[corpora.Utterance], share: float) -> list[corpora.Utterance]:
    """`utterances` with a random `share` of them replaced by copies cut to their sound."""
    return replaced_share(utterances, share, lambda chosen: derived.cut_to_sound(chosen, WORK / "tight"), seed=0)


def in_rooms(utterances: list[corpora.Utterance], share: float) -> list[corpora.Utterance]:
    """`utterances` with a random `share` of them replaced by copies heard in a simulated room
    (RT60 0.2-0.7 s: `derived.in_rooms`; the `rooms` extra)."""
    return replaced_share(utterances, share, lambda chosen: derived.in_rooms(chosen, WORK / "rooms"), seed=2)


def on_channels(utterances: list[corpora.Utterance], share: float) -> list[corpora.Utterance]:
    """`utterances` with a random `share` of them replaced by copies heard through a
    transmission channel (8 kHz, telephone, GSM, low-rate Opus or MP3: `derived.through_channels`)."""
    return replaced_share(utterances, share, lambda chosen: derived.through_channels(chosen, WORK / "channels"), seed=1)


def build(synthetic_voices: int, speed: list[float], tight: float = 0.0, roomy: bool = False,
          dictionary: int = 0, spliced: int = 0, splice_model: str = str(ROOT / "saved_models" / "english-read" / "7"),
          channels: float = 0.0, reverb: float = 0.0) -> dict:
    """Sources' splits, the training and dev manifests, the test sets."""
    sources = {
        "speechocean762": split_by_speaker(corpora.read_manifest(SPEECHOCEAN)),
        "kathleen": split_by_prompt(corpora.transcribed_folder(KATHLEEN, speaker="kathleen")),
        "fsdd": fsdd_splits(),
    }
    real = [u for splits in sources.values() for u in splits["train"]]
    training = cut_tight(real, tight) if tight else list(real)
    extra: dict[str, list[corpora.Utterance]] = {}
    if speed:
        extra["speed copies"] = derived.speed_perturbed(real, speed, WORK / "speed")
        training += extra["speed copies"]
    if roomy:
        extra["FSDD digits in room"] = roomy_digits()
        training += extra["FSDD digits in room"]
    if synthetic_voices:
        prompts = sorted({u.text for name in ("speechocean762", "kathleen") for u in sources[name]["train"]})
        extra[f"eSpeak ({synthetic_voices} voices)"] = synthetic(prompts, synthetic_voices)
        training += extra[f"eSpeak ({synthetic_voices} voices)"]
    if dictionary:
        if not synthetic_voices:
            raise SystemExit("--dictionary-sentences are read by the eSpeak voices: --synthetic-voices must be over 0")
        extra["eSpeak dictionary strings"] = synthetic(dictionary_sentences(dictionary), synthetic_voices)
        training += extra["eSpeak dictionary strings"]
    if spliced:
        extra["Kathleen's words spliced"] = spliced_kathleen(sources["kathleen"]["train"], spliced, splice_model)
        training += extra["Kathleen's words spliced"]
    if reverb:
        training = in_rooms(training, reverb)  # the room first: a talker in a room, then maybe on a line
    if channels:
        training = on_channels(training, channels)  # any of them: a real voice or eSpeak may come down a line
    suffix = ("".join(f"-sp{f:g}" for f in speed) + (f"-tight{tight:g}" if tight else "") + ("-roomy" if roomy else "")
              + (f"-espeak{synthetic_voices}" if synthetic_voices else "") + (f"-dict{dictionary}" if dictionary else "") + (f"-spliced{spliced}" if spliced else "")
              + (f"-reverb{reverb:g}" if reverb else "") + (f"-channels{channels:g}" if channels else ""))
    tests = {
        "speechocean762 held-out speakers": sources["speechocean762"]["test"],
        "kathleen held-out prompts": sources["kathleen"]["test"],
        f"fsdd held-out speaker {FSDD_HELD_OUT}": sources["fsdd"]["test"],
    }
    return {
        "sources": sources,
        "extra": extra,
        "train": corpora.write_manifest(training, WORK / f"train{suffix}.jsonl"),
        "dev": corpora.write_manifest([u for s in sources.values() for u in s["dev"]], WORK / "dev.jsonl"),
        "tests": {name: (items, corpora.write_manifest(items, WORK / f"test-{slug(name)}.jsonl"))
                  for name, items in tests.items()},
    }


def spelt_in_phones(corpus: dict) -> dict:
    """`corpus` with every manifest spelt in phones (work/english/phones/), those utterances left
    out that have a word CMU's dictionary lacks; and the phone vocabulary the run trains on."""
    from speechseq.lexicon import Lexicon, phone_vocabulary, pocketsphinx_dictionary

    lexicon = Lexicon.read(pocketsphinx_dictionary())
    folder = WORK / "phones"

    def spelt(items: list[corpora.Utterance], name: str) -> tuple[list[corpora.Utterance], Path]:
        kept, _ = lexicon.spell_utterances(items)
        if len(kept) < len(items):
            print(f"phones: {len(items) - len(kept)} of {len(items)} utterances of {name} have a word "
                  "the dictionary lacks; left out")
        return kept, corpora.write_manifest(kept, folder / name)

    vocabulary = folder / "vocabulary.json"
    phone_vocabulary().save(vocabulary)
    return corpus | {
        "train": spelt(corpora.read_manifest(corpus["train"]), Path(corpus["train"]).name)[1],
        "dev": spelt(corpora.read_manifest(corpus["dev"]), "dev.jsonl")[1],
        "tests": {name: spelt(items, path.name) for name, (items, path) in corpus["tests"].items()},
        "vocabulary": vocabulary,
    }


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def hours(utterances) -> float:
    return sum(u.duration or 0.0 for u in utterances) / 3600


def describe(corpus: dict, groups: dict[str, str]) -> str:
    """The split by speechocean group, and utterances and hours per source and split."""
    lines = ["speechocean762 speakers per group:", f"  {'group':<10} " + " ".join(f"{s:>6}" for s in SPLITS)]
    speakers = {name: {u.speaker for u in items} for name, items in corpus["sources"]["speechocean762"].items()}
    for group in sorted(set(groups.values())):
        counts = [sum(groups[s] == group for s in speakers[name]) for name in SPLITS]
        lines.append(f"  {group:<10} " + " ".join(f"{c:>6}" for c in counts))
    lines.append(f"  {'all':<10} " + " ".join(f"{len(speakers[name]):>6}" for name in SPLITS))
    lines += ["utterances / hours:", f"  {'source':<22} " + " ".join(f"{s:>15}" for s in SPLITS)]
    for source, splits in corpus["sources"].items():
        lines.append(f"  {source:<22} " + " ".join(
            f"{len(splits[s]):>6} / {hours(splits[s]):5.2f} h" for s in SPLITS))
    for name, items in corpus["extra"].items():
        lines.append(f"  {name:<22} {len(items):>6} / {hours(items):5.2f} h")
    train, dev = corpora.read_manifest(corpus["train"]), corpora.read_manifest(corpus["dev"])
    tests = [u for items, _ in corpus["tests"].values() for u in items]
    lines.append(f"  {'total':<22} " + " ".join(
        f"{len(items):>6} / {hours(items):5.2f} h" for items in (train, dev, tests)))
    lines.append(f"manifests: {corpus['train']}, {corpus['dev']}")
    return "\n".join(lines)


# ---- train and score -----------------------------------------------------------------


def scored(scores) -> dict:
    return {"cer": round(scores.cer, 4), "wer": round(scores.wer, 4), "utterances": scores.n}


def score(out: Path, corpus: dict, groups: dict[str, str]) -> dict:
    from speechseq import evaluate, metrics

    results = {}
    for name, (items, _) in corpus["tests"].items():
        scores = evaluate.score_run(out, items)
        results[name] = scored(scores)
        print(f"{name}: CER {scores.cer:.2%}, WER {scores.wer:.2%} on {scores.n} utterances")
        if name.startswith("speechocean762"):
            # Hypotheses come in the utterances' order (evaluate.score_ctc).
            for group in sorted(set(groups.values())):
                rows = [i for i, u in enumerate(items) if groups[u.speaker] == group]
                references = [scores.references[i] for i in rows]
                hypotheses = [scores.hypotheses[i] for i in rows]
                results[f"{name}, {group}"] = {
                    "cer": round(metrics.character_error_rate(references, hypotheses), 4),
                    "wer": round(metrics.word_error_rate(references, hypotheses), 4),
                    "utterances": len(rows),
                }
                print(f"  {group}: CER {results[f'{name}, {group}']['cer']:.2%}, "
                      f"WER {results[f'{name}, {group}']['wer']:.2%} on {len(rows)} utterances")
            write_text(out / "report-speechocean.json",
                       json.dumps(evaluate.report(items, scores), indent=2) + "\n")
        for reference, hypothesis in list(zip(scores.references, scores.hypotheses))[:3]:
            print(f"  ref: {reference}\n  hyp: {hypothesis}")
    return results


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "english")
    parser.add_argument("--set", action="append", default=[], help="run setting, e.g. train.epochs=5")
    parser.add_argument("--synthetic-voices", type=int, default=4,
                        help="eSpeak NG voices reading the training prompts (each prompt once); 0 = none")
    parser.add_argument("--speed", type=float, nargs="+", default=[],
                        help="speed perturbation of the real training audio, e.g. 0.9 1.1")
    parser.add_argument("--tight", type=float, default=0.0,
                        help="share of the real training utterances replaced by copies cut to their sound, e.g. 0.3")
    parser.add_argument("--roomy-digits", action="store_true",
                        help="one more pass of FSDD's training clips with random edges and a faint noise floor")
    parser.add_argument("--dictionary-sentences", type=int, default=0,
                        help="strings of dictionary words for the eSpeak voices to read (the peers extra)")
    parser.add_argument("--spliced-kathleen", type=int, default=0,
                        help="utterances of Kathleen's training words spliced in new orders")
    parser.add_argument("--splice-model", default=str(ROOT / "saved_models" / "english-read" / "7"),
                        help="CTC export whose forced alignment finds the words to splice")
    parser.add_argument("--channels", type=float, default=0.0,
                        help="share of the training utterances replaced by copies heard through a transmission "
                        "channel (8 kHz, telephone, GSM, Opus, MP3), e.g. 0.5")
    parser.add_argument("--reverb", type=float, default=0.0,
                        help="share of the training utterances replaced by copies heard in a simulated room, e.g. 0.3 "
                        "(the rooms extra)")
    parser.add_argument("--general-words", type=int, default=0,
                        help="also write work/english/general-words-N.txt, the N most frequent words of "
                        "PocketSphinx's en-us dictionary, for `speechseq export --lm-words` (the peers extra)")
    parser.add_argument("--general-bigrams", action="store_true",
                        help="also write work/english/general-bigrams.arpa, PocketSphinx's general en-us LM as "
                        "bigrams, for `speechseq export --general-lm` (the peers extra)")
    parser.add_argument("--phones", action="store_true",
                        help="a phone model: the manifests spelt in phones by CMU's dictionary (the peers extra)")
    parser.add_argument("--prepare-only", action="store_true", help="build the manifests, print the split, exit")
    parser.add_argument("--score-only", action="store_true",
                        help="score the run's best model as it stands (a run stopped early), without training")
    parser.add_argument("--no-held-out", action="store_true",
                        help="train, but leave the held-out sets unscored: decide on dev first, then --score-only")
    args = parser.parse_args(argv)
    if args.no_held_out and args.score_only:
        parser.error("--score-only scores the held-out sets: it cannot go with --no-held-out")

    groups = speaker_groups()
    if speakers_by_rule(groups) != (TEST_SPEAKERS, DEV_SPEAKERS):
        print("note: the speechocean762 manifest no longer gives TEST/DEV_SPEAKERS by their rule; "
              "the listed speakers are held out as written")
    for option, share in (("--tight", args.tight), ("--channels", args.channels), ("--reverb", args.reverb)):
        if not 0 <= share <= 1:
            parser.error(f"{option} is a share in [0, 1], got {share}")
    corpus = build(args.synthetic_voices, args.speed, args.tight, args.roomy_digits, args.dictionary_sentences,
                   args.spliced_kathleen, args.splice_model, args.channels, args.reverb)
    if args.phones:
        corpus = spelt_in_phones(corpus)
    print(describe(corpus, groups), flush=True)
    if args.general_words:
        print(f"general words for the LM: {general_words(args.general_words)}")
    if args.general_bigrams:
        print(f"a general model to mix in: {general_bigrams()}")
    if args.prepare_only:
        return None

    from speechseq import runfile, train

    settings = DEFAULTS + [f"data.train={corpus['train']}", f"data.dev={corpus['dev']}"]
    if args.phones:
        settings += [f"data.vocabulary={corpus['vocabulary']}", "data.digits_as_words=false"]
    settings += args.set
    run = runfile.load(None, settings, args.out)
    started = time.perf_counter()
    if args.score_only:
        if not (args.out / "best.keras").exists():
            raise SystemExit(f"{args.out}: no best.keras to score yet")
        print(f"scoring {args.out}/best.keras without training; resume training with the same command "
              "minus --score-only", flush=True)
    else:
        print(f"training in {args.out}; if it is interrupted, the same command resumes it", flush=True)
        # From a trained model's weights when init_from names one (starting.starting_model).
        train.fit(run)
    minutes = (time.perf_counter() - started) / 60
    if args.no_held_out:
        print(f"trained in {minutes:.1f} min; held-out sets not scored (--no-held-out): decide on dev, then run the "
              "same command with --score-only instead of --no-held-out", flush=True)
        return None
    timing = {"scored_without_training": True} if args.score_only else {"training_minutes_this_session": round(minutes, 1)}
    if args.phones:
        print("a phone model: CER below is the phone error rate and WER that of whole pronunciations "
              "(greedy); export it with --lm-from for words", flush=True)
        timing |= {"scored_in": "phones (CER: phone error rate, WER: pronunciation error rate)"}
    results = timing | score(args.out, corpus, groups)
    write_text(args.out / "results.json", json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
