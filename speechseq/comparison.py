"""Is one model better than another on these speakers? Two models' scores, paired by speaker.

Test sets here are split by speaker, and one or two speakers can move a set's error rate by
several points (benchmarks/RESULTS.md: "english-read/10", and the candidate after it, whose
dev and held-out speakers disagreed by 4.8 WER points). So the difference between two models
gets a 95% interval from a bootstrap over speakers: draw as many speakers as there are, with
replacement, pool their errors and reference lengths for each model, take the difference;
repeat. An interval that holds 0 says these speakers cannot tell the two models apart. A set
of one speaker's prompts (Kathleen's) is drawn by utterance instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from speechseq import metrics
from speechseq.corpora import Utterance

RATES = {"wer": "WER", "cer": "CER"}
UNITS = ("speaker", "utterance")  # what the bootstrap draws: one speaker's set is drawn by utterance


def group_counts(utterances: Sequence[Utterance], references: Sequence[str], hypotheses: Sequence[str],
                 by: str = "speaker") -> dict[str, dict[str, np.ndarray]]:
    """Per speaker (or utterance), sorted, and rate: [errors, reference length] summed."""
    counts: dict[str, dict[str, np.ndarray]] = {}
    for index, (utterance, reference, hypothesis) in enumerate(zip(utterances, references, hypotheses, strict=True)):
        group = (utterance.speaker or "(unknown)") if by == "speaker" else f"{index:08d}"
        rows = counts.setdefault(group, {rate: np.zeros(2) for rate in RATES})
        rows["wer"] += (metrics.word_errors(reference, hypothesis), len(reference.split()))
        rows["cer"] += (metrics.character_errors(reference, hypothesis), len(reference))
    return dict(sorted(counts.items()))


def compare(utterances: Sequence[Utterance], baseline_hypotheses: Sequence[str], candidate_hypotheses: Sequence[str],
            references: Sequence[str], draws: int = 2000, seed: int = 0, by: str = "speaker") -> dict:
    """The two models' pooled WER and CER on `utterances`, the candidate's difference from the
    baseline with its 95% interval over speakers (or utterances, `by`) resampled, and how many
    of them each way."""
    if by not in UNITS:
        raise ValueError(f"by must be one of {UNITS}, got {by!r}")
    baseline = group_counts(utterances, references, baseline_hypotheses, by)
    candidate = group_counts(utterances, references, candidate_hypotheses, by)
    groups = list(baseline)
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(groups), size=(draws, len(groups)))  # the same draws for both rates
    values: dict = {"n": len(utterances), "speakers": len({u.speaker for u in utterances}), "drawn_by": by,
                    "groups": len(groups), "draws": draws}
    for rate in RATES:
        a = np.array([baseline[g][rate] for g in groups])  # [groups, (errors, length)]
        b = np.array([candidate[g][rate] for g in groups])
        lengths = np.maximum(a[:, 1], 1)
        pooled_a, pooled_b = a[:, 0].sum() / lengths.sum(), b[:, 0].sum() / lengths.sum()
        resampled = (b[drawn, 0].sum(axis=1) - a[drawn, 0].sum(axis=1)) / lengths[drawn].sum(axis=1)
        low, high = np.percentile(resampled, [2.5, 97.5])
        per_group = b[:, 0] / lengths - a[:, 0] / lengths
        values[rate] = {
            "baseline": float(pooled_a), "candidate": float(pooled_b), "difference": float(pooled_b - pooled_a),
            "interval": [float(low), float(high)],
            "better": int((per_group < 0).sum()), "worse": int((per_group > 0).sum()),
            "same": int((per_group == 0).sum()),
        }
    return values


def verdict(row: dict) -> str:
    """One rate's comparison in words."""
    low, high = row["interval"]
    if low > 0:
        return "candidate worse (the interval is above 0)"
    if high < 0:
        return "candidate better (the interval is below 0)"
    return "no clear difference (the interval holds 0)"


def format_comparison(values: dict) -> str:
    """`compare` as a table for people."""
    unit = values["drawn_by"]
    lines = [f"baseline:  {values['baseline_model']}", f"candidate: {values['candidate_model']}",
             f"{values['n']} utterances, {values['speakers']} speaker{'' if values['speakers'] == 1 else 's'}, "
             f"95% intervals from {values['draws']} draws of the {unit}s", "",
             f"{'':<5} {'baseline':>9} {'candidate':>9} {'difference':>10} {'95% interval':>18}  "
             f"{f'{unit}s better/worse/same':<28} verdict"]
    for rate, name in RATES.items():
        row = values[rate]
        low, high = row["interval"]
        interval = f"[{100 * low:+.2f}, {100 * high:+.2f}]"
        counts = f"{row['better']} / {row['worse']} / {row['same']}"
        lines.append(f"{name:<5} {row['baseline']:>9.2%} {row['candidate']:>9.2%} {100 * row['difference']:>+10.2f} "
                     f"{interval:>18}  {counts:<28} {verdict(row)}")
    if values["groups"] < 2:
        lines += ["", f"one {unit}: the interval has no spread to measure" +
                  (" (one speaker's set: --by utterance)" if unit == "speaker" else "")]
    return "\n".join(lines)
