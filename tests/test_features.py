"""Features are a layer: librosa-exact, the same in ds.map and batched, padding-proof."""

from __future__ import annotations

import dataclasses

import keras
import librosa
import numpy as np
import pytest
import tensorflow as tf

from conftest import fsdd_clip, kathleen_clip
from speechseq import audio
from speechseq.errors import SpeechseqError
from speechseq.features import MFCC, FeatureConfig, LogMel, feature_layer

# Largest difference from librosa we accept, in natural-log units of mel power
# (float32 FFTs on both sides; measured at most 4e-5 on FSDD and Kathleen clips).
LOG_MEL_TOLERANCE = 2e-4
RAW = dict(normalize=False)  # compare raw log-mel, without per-utterance normalisation


def librosa_log_mel(waveform, config: FeatureConfig):
    mel = librosa.feature.melspectrogram(
        y=waveform, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        win_length=config.win_length, window="hann", center=True, pad_mode="constant",
        power=2.0, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax,
    )
    return np.log(np.maximum(mel, config.log_floor)).T  # [frames, n_mels]


def compute(layer, waveform):
    frames, length = layer(tf.constant(waveform[None]), tf.constant([waveform.size]))
    return frames[0, : int(length[0])].numpy()


@pytest.mark.parametrize(
    "config",
    [
        FeatureConfig(**RAW),
        FeatureConfig(sample_rate=8000, window_ms=32, hop_ms=16, n_fft=256, n_mels=40, fmax=3800, **RAW),
        FeatureConfig(window_ms=20, hop_ms=12.5, n_fft=400, n_mels=64, fmin=0, **RAW),
    ],
    ids=["default-16k", "8k-n256", "odd-hop"],
)
@pytest.mark.parametrize("clip", ["fsdd-0", "fsdd-7-nicolas", "kathleen"])
def test_log_mel_matches_librosa_on_real_audio(config, clip):
    path = {
        "fsdd-0": fsdd_clip(0),
        "fsdd-7-nicolas": fsdd_clip(7, "nicolas", 3),
        "kathleen": kathleen_clip("author of the danger trail philip steels etc"),
    }[clip]
    waveform = audio.load(path, config.sample_rate)
    ours = compute(LogMel(config), waveform)
    reference = librosa_log_mel(waveform, config)
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= LOG_MEL_TOLERANCE


def test_mfcc_matches_librosa_dct_of_the_same_log_mel():
    config = FeatureConfig(n_mfcc=13, **RAW)
    waveform = audio.load(fsdd_clip(4, "george", 2))
    ours = compute(feature_layer(config), waveform)
    reference = librosa.feature.mfcc(S=librosa_log_mel(waveform, config).T, n_mfcc=13, norm="ortho").T
    assert isinstance(feature_layer(config), MFCC)
    assert ours.shape == reference.shape == (reference.shape[0], 13)
    assert np.abs(ours - reference).max() <= LOG_MEL_TOLERANCE * np.sqrt(config.n_mels)


def _clips():
    return [audio.load(fsdd_clip(d, "lucas", d)) for d in range(5)]


def test_direct_call_equals_unbatched_and_batched_ds_map():
    layer = LogMel(FeatureConfig())
    clips = _clips()
    direct = [compute(layer, w) for w in clips]

    lengths = [w.size for w in clips]
    dataset = tf.data.Dataset.from_generator(
        lambda: ((w, np.int32(w.size)) for w in clips),
        output_signature=(tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.int32)),
    )
    unbatched = [f[: int(n)].numpy() for f, n in dataset.map(layer)]
    batched = [
        f[: int(n)].numpy()
        for frames, frame_lengths in dataset.padded_batch(2).map(layer)
        for f, n in zip(frames, frame_lengths)
    ]
    assert [d.shape[0] for d in direct] == [1 + n // 160 for n in lengths]
    for a, b, c in zip(direct, unbatched, batched):
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(a, c, atol=1e-5)


@pytest.mark.parametrize("config", [FeatureConfig(), FeatureConfig(**RAW), FeatureConfig(n_mfcc=20)])
def test_padding_and_garbage_past_the_length_do_not_change_real_frames(config):
    layer = feature_layer(config)
    waveform = audio.load(fsdd_clip(2, "yweweler", 9))
    alone = compute(layer, waveform)
    padded = np.concatenate([waveform, np.random.default_rng(0).uniform(-1, 1, 5000)]).astype(np.float32)
    frames, length = layer(tf.constant(padded[None]), tf.constant([waveform.size]))
    assert int(length[0]) == alone.shape[0]
    np.testing.assert_allclose(frames[0, : alone.shape[0]].numpy(), alone, atol=1e-5)
    assert not frames[0, alone.shape[0]:].numpy().any(), "frames past the length must be zero"


def test_normalisation_gives_zero_mean_unit_variance_over_true_frames():
    waveform = audio.load(fsdd_clip(9, "jackson", 1))
    frames = compute(LogMel(FeatureConfig()), waveform)
    np.testing.assert_allclose(frames.mean(axis=0), 0, atol=1e-3)
    active = frames.std(axis=0) > 0.1  # bands above 4 kHz are empty in 8 kHz recordings
    np.testing.assert_allclose(frames.std(axis=0)[active], 1, atol=1e-2)
    assert active.mean() > 0.75


@pytest.mark.parametrize("layer_class, config", [(LogMel, FeatureConfig(n_mels=40)), (MFCC, FeatureConfig(n_mfcc=13))])
def test_config_round_trip_and_keras_save_reload(tmp_path, layer_class, config):
    layer = layer_class(config)
    clone = layer_class.from_config(layer.get_config())
    assert clone.config == config

    waveforms = keras.Input(shape=(None,), dtype="float32")
    lengths = keras.Input(shape=(), dtype="int32")
    frames, frame_lengths = layer(waveforms, lengths)
    model = keras.Model([waveforms, lengths], [frames, frame_lengths])
    model.save(tmp_path / "features.keras")
    reloaded = keras.saving.load_model(tmp_path / "features.keras")
    clip = audio.load(fsdd_clip(6))[None]
    expected = model([clip, np.array([clip.shape[1]])])
    got = reloaded([clip, np.array([clip.shape[1]])])
    np.testing.assert_array_equal(expected[0], got[0])
    assert [type(l) for l in reloaded.layers if isinstance(l, LogMel)] == [layer_class]


def test_feature_config_rejects_impossible_settings_and_round_trips_json(tmp_path):
    with pytest.raises(SpeechseqError, match="longer than n_fft"):
        FeatureConfig(window_ms=50, n_fft=512)
    with pytest.raises(SpeechseqError, match="n_mfcc"):
        FeatureConfig(n_mfcc=100, n_mels=40)
    with pytest.raises(SpeechseqError, match="unknown feature settings: nmels"):
        FeatureConfig.from_dict({"nmels": 40})
    config = dataclasses.replace(FeatureConfig(), n_mels=64, fmax=7000.0)
    config.save(tmp_path / "features.json")
    assert FeatureConfig.load(tmp_path / "features.json") == config
