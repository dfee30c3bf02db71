"""speechseq compare: two models on one manifest, the difference and its interval over speakers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speechseq import cli, comparison, corpora, evaluate, metrics
from conftest import fsdd_clip

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "yweweler")


def _utterances(per_speaker: int) -> list[corpora.Utterance]:
    return [corpora.Utterance(Path(f"{s}-{i}.wav"), "one two three", s) for s in SPEAKERS for i in range(per_speaker)]


def test_a_difference_made_by_one_speaker_is_not_called_a_difference():
    """Twenty utterances of one speaker of five read better: pooled over utterances that looks
    sure, but drawn by speaker the difference vanishes whenever that speaker is not drawn."""
    utterances = _utterances(20)
    references = [u.text for u in utterances]
    baseline = ["one two" if u.speaker == "george" else u.text for u in utterances]
    values = comparison.compare(utterances, baseline, references, references)
    row = values["wer"]
    assert row["difference"] == pytest.approx(-20 / 300)
    low, high = row["interval"]
    assert low < 0 and high == 0, row["interval"]
    assert (row["better"], row["worse"], row["same"]) == (1, 0, 4)
    assert comparison.verdict(row).startswith("no clear difference")
    # Drawn by utterance (for one speaker's prompts), the same twenty utterances are a clear difference.
    by_utterance = comparison.compare(utterances, baseline, references, references, by="utterance")["wer"]
    assert by_utterance["interval"][1] < 0 and by_utterance["better"] == 20


def test_a_difference_on_every_speaker_is_called_one_and_a_model_against_itself_is_not():
    utterances = _utterances(4)
    references = [u.text for u in utterances]
    worse = ["one two" if i % 2 else u.text for i, u in enumerate(utterances)]  # two misses per speaker
    values = comparison.compare(utterances, references, worse, references)
    for rate in ("wer", "cer"):
        assert values[rate]["interval"][0] > 0 and values[rate]["worse"] == 5
        assert comparison.verdict(values[rate]).startswith("candidate worse")
    same = comparison.compare(utterances, worse, worse, references)
    assert same["wer"]["difference"] == 0 and same["wer"]["interval"] == [0.0, 0.0]
    assert same["wer"]["same"] == 5


def test_compare_cli_scores_both_models_on_real_audio_as_evaluate_does_and_reads_its_reports(tmp_path, capsys):
    """digits/4 against digits/6 on isolated FSDD digits of the five speakers: decoded by compare,
    and read back from `evaluate --json` reports, the same figures."""
    utterances = [corpora.Utterance(fsdd_clip(d, s, 7), word, s)
                  for s in SPEAKERS for d, word in ((1, "one"), (4, "four"), (8, "eight"))]
    manifest = corpora.write_manifest(utterances, tmp_path / "few.jsonl")
    old, new = ROOT / "saved_models" / "digits" / "4", ROOT / "saved_models" / "digits" / "6"
    reports = {}
    for model in (old, new):
        assert cli.main(["evaluate", "--model", str(model), "--manifest", str(manifest), "--json"]) == 0
        reports[model] = tmp_path / f"{model.name}.json"
        reports[model].write_text(capsys.readouterr().out)
    assert cli.main(["compare", str(old), str(new), "--manifest", str(manifest), "--json", "--draws", "500"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert values["n"] == 15 and values["speakers"] == 5 and values["draws"] == 500
    for model, key in ((old, "baseline"), (new, "candidate")):
        report = json.loads(reports[model].read_text())
        assert [row["hypothesis"] for row in report["utterances"]]  # every utterance's transcript is kept
        assert values["wer"][key] == pytest.approx(report["wer"]) and values["cer"][key] == pytest.approx(report["cer"])
    row = values["wer"]
    assert row["difference"] == pytest.approx(row["candidate"] - row["baseline"])
    assert row["interval"][0] <= row["difference"] <= row["interval"][1]
    assert row["better"] + row["worse"] + row["same"] == 5
    # Two saved reports: no manifest, no decoding, the same figures.
    assert cli.main(["compare", str(reports[old]), str(reports[new]), "--json", "--draws", "500"]) == 0
    from_reports = json.loads(capsys.readouterr().out)
    assert {k: from_reports[k] for k in ("wer", "cer", "n", "speakers")} == \
        {k: values[k] for k in ("wer", "cer", "n", "speakers")}
    # A report beside a model, in words.
    assert cli.main(["compare", str(reports[old]), str(new), "--manifest", str(manifest), "--draws", "500"]) == 0
    printed = capsys.readouterr().out
    assert "15 utterances, 5 speakers" in printed and "WER" in printed and "CER" in printed
    assert cli.main(["compare", str(old), str(new), "--manifest", str(manifest), "--draws", "5"]) == 2
    assert "--draws must be at least 100" in capsys.readouterr().err


def test_compare_names_a_report_it_cannot_pair(tmp_path, capsys):
    """Reports of other utterances, files that are not reports, a model without a manifest: one
    line that names the file, before anything is decoded."""
    def report(utterances) -> Path:
        path = tmp_path / f"report-{len(utterances)}.json"
        path.write_text(json.dumps(evaluate.report(utterances, evaluate._scores([u.text for u in utterances],
                                                                               [u.text for u in utterances]))))
        return path

    utterances = _utterances(2)
    whole, part = report(utterances), report(utterances[:4])
    other_manifest = corpora.write_manifest(utterances[:4], tmp_path / "other.jsonl")
    not_a_report = tmp_path / "card.json"
    not_a_report.write_text(json.dumps({"metrics": {}}))
    digits = str(ROOT / "saved_models" / "digits" / "6")
    for argv, message in (
        ([str(whole), str(part)], "are not scored on the same utterances"),
        ([str(whole), str(whole), "--manifest", str(other_manifest)], f"{whole}: its utterances are not"),
        ([str(not_a_report), str(whole)], f"{not_a_report}: not a `speechseq evaluate --json` report"),
        ([digits, str(whole)], "--manifest is needed to score a model"),
        ([str(whole), str(tmp_path / "typo.json")], "typo.json: no such report"),
    ):
        assert cli.main(["compare", *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv
