"""Audio loading on real recordings, and one clear error per kind of bad file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import fsdd_clip, kathleen_clip, write_wav
from speechseq import audio
from speechseq.audio import AudioError

SENTENCE = "author of the danger trail philip steels etc"


def test_fsdd_wav_is_resampled_from_8k_to_16k():
    path = fsdd_clip(3)
    original, rate = soundfile.read(path, dtype="float32")
    assert rate == 8000
    waveform = audio.load(path)
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert waveform.size == 2 * original.size
    assert np.abs(waveform).max() <= 1.0
    # Same energy before and after resampling: it is the same sound.
    assert np.mean(waveform**2) == pytest.approx(np.mean(original**2), rel=0.05)


def test_kathleen_flac_at_native_rate_is_unchanged():
    path = kathleen_clip(SENTENCE)
    original, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000
    np.testing.assert_array_equal(audio.load(path), original)
    assert audio.info(path).duration == pytest.approx(original.size / 16000)


@pytest.mark.parametrize("container", ["WAV", "FLAC", "OGG", "MP3"])
def test_every_supported_container_decodes_to_the_same_sound(tmp_path, container):
    original, rate = soundfile.read(kathleen_clip(SENTENCE), dtype="float32")
    path = tmp_path / f"clip.{container.lower()}"
    soundfile.write(path, original, rate, format=container)
    waveform = audio.load(path)
    # Lossy codecs (and MP3's encoder delay) change samples, not the signal's envelope.
    assert abs(waveform.size - original.size) < 0.1 * rate
    envelope = lambda x: np.sqrt(np.convolve(x[: original.size] ** 2, np.ones(1600) / 1600, "valid"))
    n = min(waveform.size, original.size) - 1600
    correlation = np.corrcoef(envelope(waveform)[:n], envelope(original)[:n])[0, 1]
    assert correlation > 0.9


def test_stereo_is_mixed_to_mono_and_44k_resampled(tmp_path):
    mono, _ = soundfile.read(fsdd_clip(5), dtype="float32")
    left_right = np.stack([mono, 0.5 * mono], axis=1)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, left_right, 8000, subtype="FLOAT")
    np.testing.assert_allclose(audio.load(path, 8000), 0.75 * mono, atol=1e-6)
    assert audio.load(path, 44100).size == pytest.approx(mono.size * 44100 / 8000, abs=2)


def _bad_files(tmp_path):
    """name -> (path, words expected in the reason)."""
    good, _ = soundfile.read(fsdd_clip(1), dtype="int16")
    write_wav(tmp_path / "good.wav", good, 8000)
    data = (tmp_path / "good.wav").read_bytes()
    files = {}

    def add(name, content, *words):
        path = tmp_path / name
        path.write_bytes(content)
        files[name] = (path, words)

    files["missing.wav"] = (tmp_path / "missing.wav", ("not found",))
    add("empty.wav", b"", "empty")
    add("truncated_header.wav", data[:20], "cannot decode")
    add("text.wav", b"this is a text file, not a RIFF header\n" * 4, "cannot decode")
    add("random.flac", os.urandom(4096), "cannot decode")
    add("unsupported.m4a", b"\x00\x00\x00\x20ftypM4A " + os.urandom(2000), "cannot decode")
    zero = tmp_path / "zero_frames.wav"
    soundfile.write(zero, np.zeros((0,), np.int16), 8000, subtype="PCM_16")
    files["zero_frames.wav"] = (zero, ("no audio samples",))
    for name, value in [("nan.wav", np.nan), ("inf.wav", np.inf)]:
        samples = np.zeros(800, np.float32)
        samples[400] = value
        files[name] = (write_wav(tmp_path / name, samples, 8000, "FLOAT"), ("NaN or infinite",))
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    files["folder.wav"] = (folder, ("directory",))
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    files["loop.wav"] = (loop, ("cannot open",))
    return files


@pytest.mark.parametrize(
    "name",
    ["missing.wav", "empty.wav", "truncated_header.wav", "text.wav", "random.flac",
     "unsupported.m4a", "zero_frames.wav", "nan.wav", "inf.wav", "folder.wav", "loop.wav"],
)
def test_bad_file_gets_one_line_error_naming_it(tmp_path, name):
    path, words = _bad_files(tmp_path)[name]
    with pytest.raises(AudioError) as caught:
        audio.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    for word in words:
        assert word in caught.value.reason


def test_unreadable_file_is_reported():
    folder = Path(tempfile.mkdtemp())  # not under tmp_path, whose parents only root may enter
    try:
        folder.chmod(0o755)
        path = write_wav(folder / "locked.wav", np.zeros(800, np.int16), 8000)
        path.chmod(0)
        if os.geteuid() != 0:
            with pytest.raises(AudioError, match="permission denied"):
                audio.load(path)
            return
        # Root reads any file: ask as the unprivileged user nobody, in a child that drops
        # root after its imports (the interpreter lives where only root may go).
        script = ("import os\nfrom speechseq import audio\nos.setgid(65534)\nos.setuid(65534)\n"
                  f"try:\n    audio.load({str(path)!r})\nexcept audio.AudioError as error:\n    print(error)\n")
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert done.stdout.strip() == f"{path}: permission denied", done.stderr[-2000:]
    finally:
        shutil.rmtree(folder)


def test_find_audio_takes_files_folders_and_globs(tmp_path):
    for name in ["a.wav", "b.flac", "notes.txt", "sub/c.mp3"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert audio.find_audio(tmp_path) == [tmp_path / "a.wav", tmp_path / "b.flac", tmp_path / "sub/c.mp3"]
    assert audio.find_audio(f"{tmp_path}/*.wav") == [tmp_path / "a.wav"]
    # A file named directly is kept, so that a bad one is reported rather than skipped.
    assert audio.find_audio(tmp_path / "notes.txt") == [tmp_path / "notes.txt"]
