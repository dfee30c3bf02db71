"""speechseq: speech recognition and frame tagging with Keras 3 on TensorFlow."""

from speechseq.audio import SAMPLE_RATE, AudioError, AudioInfo, find_audio, load
from speechseq.corpora import (
    AuditReport,
    CorpusError,
    Segment,
    Utterance,
    audit,
    read_manifest,
    write_manifest,
)
from speechseq.text import BLANK_ID, OutOfVocabularyError, TagSet, Vocabulary

__version__ = "0.1.0"

__all__ = [
    "BLANK_ID",
    "SAMPLE_RATE",
    "AudioError",
    "AudioInfo",
    "AuditReport",
    "CorpusError",
    "OutOfVocabularyError",
    "Segment",
    "TagSet",
    "Utterance",
    "Vocabulary",
    "audit",
    "find_audio",
    "load",
    "read_manifest",
    "write_manifest",
]
