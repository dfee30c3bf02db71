"""From model outputs to labels: CTC greedy decoding and per-frame arg-max."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from speechseq.text import BLANK_ID, Vocabulary


def ctc_greedy(log_probs: np.ndarray, lengths: Sequence[int]) -> list[list[int]]:
    """Best class per frame, repeats merged, blanks dropped: one id list per utterance."""
    best = np.asarray(log_probs).argmax(axis=-1)
    decoded = []
    for path, length in zip(best, lengths):
        path = path[: int(length)]
        keep = np.ones(path.shape, bool)
        keep[1:] = path[1:] != path[:-1]
        decoded.append([int(i) for i in path[keep] if i != BLANK_ID])
    return decoded


def ctc_greedy_texts(log_probs: np.ndarray, lengths: Sequence[int], vocabulary: Vocabulary) -> list[str]:
    """Greedy CTC transcripts."""
    return [vocabulary.decode(ids) for ids in ctc_greedy(log_probs, lengths)]


def frame_tags(probs: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    """Most likely tag id for each real frame of each utterance."""
    best = np.asarray(probs).argmax(axis=-1)
    return [row[: int(length)] for row, length in zip(best, lengths)]
