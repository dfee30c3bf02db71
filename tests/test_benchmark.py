"""`speechseq benchmark` and the benchmark charts: training curves, speed and memory."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from speechseq import benchmark, cli, plots
from speechseq.errors import SpeechseqError

ROOT = Path(__file__).resolve().parents[1]

LOG = """epoch,loss,val_cer,val_loss,val_wer
0,60.0,0.46,24.0,0.97
1,16.0,0.18,10.8,0.39
1,15.0,0.17,10.0,0.37
2,9.7,0.12,8.2,0.25
3,7.5,0.0"""  # epoch 1 repeated (a resumed run), the last line half-written (still training)


def _run(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "log.csv").write_text(text)
    return folder


def test_read_log_keeps_complete_epochs_once(tmp_path):
    log = plots._read_log(_run(tmp_path, "digits", LOG) / "log.csv")
    assert log["epoch"].tolist() == [0, 1, 2]
    assert log["val_wer"].tolist() == [0.97, 0.37, 0.25]  # the later row of the repeated epoch


def test_training_curves_png(tmp_path):
    ctc = _run(tmp_path, "digits", LOG)
    tagging = _run(tmp_path, "tagging", "epoch,loss,val_loss\n0,1.8,1.2\n1,0.9,0.8\n")
    target = plots.training_curves([ctc, tagging], tmp_path / "curves.png")
    with Image.open(target) as image:
        assert image.format == "PNG" and image.size == (1200, 540)  # two panels: loss, error rates
        assert np.asarray(image.convert("L")).std() > 10  # lines drawn, not a blank page
    with Image.open(plots.training_curves([tagging], tmp_path / "loss.png")) as image:
        assert image.size == (1200, 320)  # no val_wer/val_cer: the loss panel only


def test_training_curves_without_epochs_is_an_error(tmp_path):
    with pytest.raises(SpeechseqError, match="no complete epoch"):
        plots.training_curves([_run(tmp_path, "empty", "epoch,loss\n")], tmp_path / "x.png")


def test_speed_and_memory_png(tmp_path):
    series = {"40 short files": [(18.0, 9.0, 700.0)], "one long file each": [(60.0, 8.0, 750.0), (600.0, 20.0, 760.0)]}
    with Image.open(plots.speed_and_memory(series, tmp_path / "rtf.png", "title")) as image:
        assert image.size == (1200, 540)
        assert np.asarray(image.convert("L")).std() > 10  # points and labels drawn, not a blank page


def test_quick_features_benchmark_writes_machine_and_table(tmp_path, capfd):
    results = tmp_path / "quick.md"
    assert cli.main(["benchmark", "--only", "features", "--results", str(results)]) == 0
    text = results.read_text()
    assert text.startswith("# speechseq quick benchmark, ")
    assert text.count(f"Machine: {benchmark.machine()}") == 2  # the file's header and the script's section
    rows = [line for line in text.splitlines() if line.startswith("| FSDD, 500 short clips")]
    assert len(rows) == 1 and rows[0].split("|")[2].strip().endswith("x")
    assert "features: ok" in capfd.readouterr().out


def test_failed_benchmark_is_reported(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(benchmark, "FOLDER", tmp_path)
    (tmp_path / "train.py").write_text("import sys; print('training'); sys.exit(3)\n")
    assert cli.main(["benchmark", "--only", "train", "--results", str(tmp_path / "q.md")]) == 1
    out, err = capfd.readouterr()
    assert "training" in out and "train: FAILED (exit 3)" in out
    assert "failed: train" in err


def test_peers_skipped_without_pocketsphinx(tmp_path, monkeypatch, capfd):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "pocketsphinx" else find_spec(name, *rest))
    assert cli.main(["benchmark", "--only", "peers", "peers_english", "--results", str(tmp_path / "q.md")]) == 0
    out = capfd.readouterr().out
    assert "peers: skipped: pocketsphinx is not installed" in out
    assert "peers_english: skipped: pocketsphinx is not installed" in out


def test_vad_peers_skipped_without_webrtcvad(tmp_path, monkeypatch, capfd):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "webrtcvad" else find_spec(name, *rest))
    assert cli.main(["benchmark", "--only", "vad_peers", "--results", str(tmp_path / "q.md")]) == 0
    assert "vad_peers: skipped: webrtcvad, silero-vad or onnxruntime is not installed" in capfd.readouterr().out


def test_vad_peers_scores_frames_as_the_tagging_evaluation_does(fsdd_dir, tmp_path):
    """The peers benchmark's common 10 ms grid gives our model the figure `evaluate` gives it
    (a grid off by a frame or a hop would not), a perfect system 1 and a deaf one 0."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import vad_peers

    from speechseq import corpora, evaluate, scenes

    held_out = scenes.fsdd_speakers(fsdd_dir, ["lucas"], range(50))
    manifest = scenes.build(held_out, tmp_path, scenes.SceneOptions(scenes_per_speaker=4, snrs=(10.0,), seed=4))
    utterances = corpora.read_manifest(manifest)
    model = str(ROOT / "saved_models" / "voice-activity")
    outputs = vad_peers.Speechseq(model).outputs([u.audio for u in utterances])
    raw = next(hypotheses for name, hypotheses in outputs.items() if name.endswith("raw frames"))
    f1, _ = vad_peers.score(utterances, raw)
    assert f1 == pytest.approx(evaluate.score_tagging(model, utterances)["per_class_f1"]["speech"], abs=1e-4)
    assert vad_peers.score(utterances, [list(u.segments) for u in utterances]) == (1.0, 1.0)
    assert vad_peers.score(utterances, [[] for _ in utterances])[0] == 0.0


def test_missing_benchmarks_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(benchmark, "FOLDER", tmp_path / "benchmarks")
    assert cli.main(["benchmark", "--only", "features"]) == 2
    assert "no benchmarks folder" in capsys.readouterr().err


def test_quick_figures_stay_out_of_results_md(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(benchmark, "FOLDER", tmp_path)  # a stand-in: a regression must not wipe the real report
    (tmp_path / "RESULTS.md").write_text("# full results\n")
    assert cli.main(["benchmark", "--only", "features", "--results", str(tmp_path / "RESULTS.md")]) == 2
    assert "quick figures do not go into" in capsys.readouterr().err
    assert (tmp_path / "RESULTS.md").read_text() == "# full results\n"


def test_gpu_benchmark_runs_its_checks_and_table_with_the_cpu_standing_in(tmp_path):
    """benchmarks/gpu.py is run when a GPU is lent; until then its logic runs here."""
    import subprocess
    import sys

    results = tmp_path / "gpu.md"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "gpu.py"), "--cpu", "--steps", "1",
                           "--seconds", "3", "--results", str(results),
                           # a small model: the script's logic is under test here, not its figures
                           "--set", "model.units=16", "--set", "model.layers=1", "--set", "model.conv_channels=16"],
                          cwd=root, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    text = results.read_text()
    assert "cuDNN GRU kernel: not checked: no GPU; cuDNN LSTM kernel: not checked: no GPU" in text
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| variant") and "---" not in line]
    assert [row[0] for row in rows] == ["recipe model (cuDNN where it applies)", "generic recurrent loop (no cuDNN)",
                                        "mixed precision", "mirrored over 2 devices"]
    # batch_size is per replica: the mirrored row's steps take 16 utterances on each of 2 devices.
    assert [row[1] for row in rows] == ["16", "16", "16", "32"]
    assert all(float(row[2]) > 0 for row in rows) and rows[0][4] == "1.00"
