"""Shared test data: the real corpora beside the checkout, and layouts built from them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile  # noqa: E402

from speechseq.corpora import data_root  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = data_root()
FSDD = DATA / "fsdd"
KATHLEEN = DATA / "kathleen"

# Run settings of a tiny recurrent model that learns a few clips in seconds on a CPU.
TINY_RUN = [
    "features.n_mels=40",
    "model.cell=gru",
    "model.layers=2",
    "model.units=48",
    "model.dropout=0.0",
    "train.spec_augment=false",
    "train.buckets=1",
    "train.warmup_steps=20",
    "train.learning_rate=3e-3",
    "train.batch_size=10",
]

FIXTURES = Path(__file__).parent / "fixtures"

# Kathleen clips whose sentences the corpus-layout fixtures use, in fixture order.
KATHLEEN_SENTENCES = {
    "author of the danger trail philip steels etc": "arctic_a0001_1592748574",
    "not at this particular case tom apologized whittemore": "arctic_a0002_1592748530",
    "for the twentieth time that evening the two men shook hands": "arctic_a0003_1592748500",
}


def pytest_configure(config):
    if not FSDD.is_dir() or not KATHLEEN.is_dir():
        raise pytest.UsageError(f"the shared corpora are missing: expected {FSDD} and {KATHLEEN}")


# The modules that take longest (`pytest --durations=0`, summed per file), slowest first.
# xdist hands out whole files (--dist loadfile): started first, they leave the short
# files to fill both workers at the end, instead of one worker finishing a long file alone.
SLOWEST_FIRST = ("test_distributed.py", "test_finetune.py", "test_tf_serving_load.py", "test_export.py",
                 "test_train.py", "test_phones.py", "test_benchmark.py", "test_grammar.py", "test_tagging.py")


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        name = item.path.name
        return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    return FSDD


@pytest.fixture(scope="session")
def kathleen_dir() -> Path:
    return KATHLEEN / "clips"


def fsdd_clip(digit: int, speaker: str = "jackson", take: int = 0) -> Path:
    return FSDD / "recordings" / f"{digit}_{speaker}_{take}.wav"


def kathleen_clip(sentence: str) -> Path:
    stem = KATHLEEN_SENTENCES[sentence]
    matches = sorted((KATHLEEN / "clips").glob(f"{stem}*.flac"))
    assert matches, f"no Kathleen clip {stem}"
    return matches[0]


@pytest.fixture(scope="session")
def librispeech_tree(tmp_path_factory) -> Path:
    """The LibriSpeech fixture with FLAC audio of the same sentences beside its transcripts."""
    root = tmp_path_factory.mktemp("librispeech")
    shutil.copytree(FIXTURES / "librispeech", root, dirs_exist_ok=True)
    for transcript in root.rglob("*.trans.txt"):
        for line in transcript.read_text().splitlines():
            utterance_id, text = line.split(" ", 1)
            shutil.copy(kathleen_clip(text.lower()), transcript.parent / f"{utterance_id}.flac")
    return root


@pytest.fixture(scope="session")
def common_voice_tree(tmp_path_factory) -> Path:
    """The Common Voice fixture with MP3 clips encoded from the matching Kathleen clips."""
    root = tmp_path_factory.mktemp("commonvoice")
    shutil.copy(FIXTURES / "commonvoice" / "train.tsv", root / "train.tsv")
    (root / "clips").mkdir()
    sentences = list(KATHLEEN_SENTENCES)
    for index, name in enumerate(["common_voice_en_100.mp3", "common_voice_en_101.mp3"]):
        samples, rate = soundfile.read(kathleen_clip(sentences[index]), dtype="float32")
        soundfile.write(root / "clips" / name, samples, rate, format="MP3")
    return root


@pytest.fixture(scope="session")
def ten_digits(tmp_path_factory) -> Path:
    """A manifest of ten real clips, one per digit, from two speakers."""
    from speechseq import corpora
    from speechseq.text import DIGIT_WORDS

    utterances = [
        corpora.Utterance(fsdd_clip(d, "jackson" if d % 2 else "george", 1), DIGIT_WORDS[d], "x")
        for d in range(10)
    ]
    return corpora.write_manifest(utterances, tmp_path_factory.mktemp("ten") / "ten.jsonl")


def write_wav(path: Path, samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    soundfile.write(path, samples, rate, subtype=subtype, format="WAV")
    return path
