"""Models and losses: shapes, padding-proof outputs, cuDNN settings, saving, true-length CTC."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from speechseq import losses, metrics, models
from speechseq.errors import SpeechseqError
from speechseq.models import EncoderConfig

TINY = dict(layers=2, units=12, conv_channels=8, dropout=0.0)


def _batch(rng, lengths, dim=10):
    features = rng.standard_normal((len(lengths), max(lengths), dim)).astype(np.float32)
    for row, length in zip(features, lengths):
        row[length:] = 0.0
    return features, np.array(lengths, np.int32)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("subsampling", [1, 2, 4])
def test_outputs_for_an_utterance_do_not_depend_on_its_batch_padding(cell, subsampling):
    config = EncoderConfig(cell=cell, subsampling=subsampling, **TINY)
    features, lengths = _batch(np.random.default_rng(0), [41, 17, 30])
    for model, time_of in [
        (models.ctc_model(10, 7, config), lambda n: int(models.output_lengths(n, subsampling))),
        (models.frame_model(10, 3, config), lambda n: n),
    ]:
        batched = model([features, lengths]).numpy()
        assert batched.shape[1] == time_of(41)
        for index, length in enumerate(lengths):
            alone = model([features[index : index + 1, :length], lengths[index : index + 1]]).numpy()
            assert alone.shape[1] == time_of(length)
            np.testing.assert_allclose(batched[index, : time_of(length)], alone[0], atol=1e-5)


def test_ctc_outputs_are_log_probabilities_and_frame_outputs_probabilities():
    config = EncoderConfig(**TINY)
    features, lengths = _batch(np.random.default_rng(1), [20, 9])
    log_probs = models.ctc_model(10, 5, config)([features, lengths]).numpy()
    np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, atol=1e-5)
    probs = models.frame_model(10, 4, config)([features, lengths]).numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("subsampling", [1, 4])
def test_keras_save_and_reload_reproduce_outputs_exactly(tmp_path, subsampling):
    config = EncoderConfig(cell="gru", subsampling=subsampling, layer_norm=True, **TINY)
    features, lengths = _batch(np.random.default_rng(2), [25, 12])
    for name, model in [("ctc", models.ctc_model(10, 6, config)), ("frames", models.frame_model(10, 3, config))]:
        model.save(tmp_path / f"{name}.keras")
        reloaded = keras.saving.load_model(tmp_path / f"{name}.keras", safe_mode=True)
        np.testing.assert_array_equal(model([features, lengths]), reloaded([features, lengths]))


def test_default_settings_keep_cudnn_eligible_and_each_breaking_setting_is_named():
    assert models.cudnn_problems(EncoderConfig()) == []
    assert models.cudnn_problems(EncoderConfig(cell="gru")) == []
    broken = EncoderConfig(cell="gru", recurrent_dropout=0.2, reset_after=False, activation="relu")
    problems = models.cudnn_problems(broken)
    assert [p.split("=")[0] for p in problems] == ["activation", "recurrent_dropout", "reset_after"]
    with pytest.warns(UserWarning, match="recurrent_dropout=0.2"):
        models.ctc_model(10, 5, EncoderConfig(recurrent_dropout=0.2, **TINY))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models.ctc_model(10, 5, EncoderConfig(**TINY))


def test_encoder_config_rejects_bad_settings():
    with pytest.raises(SpeechseqError, match="cell"):
        EncoderConfig(cell="rnn")
    with pytest.raises(SpeechseqError, match="subsampling"):
        EncoderConfig(subsampling=3)
    with pytest.raises(SpeechseqError, match="unknown encoder settings: unit"):
        EncoderConfig.from_dict({"unit": 3})


def test_ctc_loss_of_a_padded_batch_is_the_sum_of_unpadded_losses():
    rng = np.random.default_rng(3)
    time_lengths, label_rows = [30, 12, 21], [[1, 2, 2, 3], [4], [5, 1, 5]]
    log_probs = tf.nn.log_softmax(rng.standard_normal((3, 30, 6)).astype(np.float32)).numpy()
    for row, length in zip(log_probs, time_lengths):
        row[length:] = rng.standard_normal((30 - length, 6))  # garbage where padding is
    labels = np.zeros((3, 4), np.int32)
    for row, ids in zip(labels, label_rows):
        row[: len(ids)] = ids
    label_lengths = [len(ids) for ids in label_rows]
    batched = losses.ctc_losses(log_probs, labels, label_lengths, time_lengths).numpy()
    alone = [
        float(losses.ctc_losses(log_probs[i : i + 1, :t], [ids], [len(ids)], [t])[0])
        for i, (t, ids) in enumerate(zip(time_lengths, label_rows))
    ]
    np.testing.assert_allclose(batched, alone, rtol=1e-5)
    packed = losses.pack_ctc_targets(labels, label_lengths, time_lengths)
    mean = losses.CTCLoss()(packed, log_probs)
    np.testing.assert_allclose(float(mean) * 3, sum(alone), rtol=1e-5)
    # Keras' own CTC scores the padding: the reason these losses exist.
    assert not np.isclose(float(keras.losses.CTC()(labels, log_probs)) * 3, sum(alone), rtol=1e-3)


def test_ctc_loss_matches_a_hand_computed_alignment_sum():
    # Two frames, label [1]: paths "1 1", "1 blank", "blank 1" -> p = p1a*p1b + p1a*p0b + p0a*p1b.
    probs = np.array([[[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]]], np.float32)
    expected = -np.log(0.7 * 0.3 + 0.7 * 0.5 + 0.2 * 0.3)
    got = losses.ctc_losses(np.log(probs), [[1]], [1], [2]).numpy()[0]
    assert got == pytest.approx(expected, rel=1e-5)


def test_infeasible_ctc_loss_is_zero_not_inf():
    log_probs = np.log(np.full((1, 2, 4), 0.25, np.float32))
    assert losses.ctc_losses(log_probs, [[1, 2, 3]], [3], [2]).numpy()[0] == 0.0


def test_masked_frame_cross_entropy_ignores_padding_and_applies_class_weights():
    probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]], [[0.6, 0.4], [0.3, 0.7], [0.1, 0.9]]], np.float32)
    labels = losses.frame_targets(np.array([[0, 1, 1], [1, 1, 0]]), [2, 3]).numpy()
    assert labels.tolist() == [[0, 1, -1], [1, 1, 0]]
    real = [(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 1), (1, 2, 0)]
    nll = [-np.log(probs[b, t, c]) for b, t, c in real]
    assert float(losses.MaskedFrameCrossEntropy()(labels, probs)) == pytest.approx(np.mean(nll), rel=1e-5)
    weights = [1.0, 3.0]
    weighted = sum(weights[c] * n for (b, t, c), n in zip(real, nll)) / sum(weights[c] for *_, c in real)
    got = float(losses.MaskedFrameCrossEntropy(weights)(labels, probs))
    assert got == pytest.approx(weighted, rel=1e-5)
    # As Keras reloads it with a saved model (a finished run is reopened this way).
    reloaded = keras.losses.deserialize(keras.losses.serialize(losses.MaskedFrameCrossEntropy(weights)))
    assert float(reloaded(labels, probs)) == pytest.approx(weighted, rel=1e-5)
    accuracy = metrics.MaskedFrameAccuracy()
    accuracy.update_state(labels, probs)
    assert float(accuracy.result()) == pytest.approx(3 / 5)  # (1,0) and (1,2) are wrong


def test_word_and_character_error_rates():
    assert metrics.word_error_rate(["one two three"], ["one too three"]) == pytest.approx(1 / 3)
    assert metrics.character_error_rate(["abcd"], ["abd"]) == pytest.approx(1 / 4)


def test_feasibility_counts_a_blank_between_repeated_labels():
    log_probs = np.log(np.full((2, 3, 4), 0.25, np.float32))
    # [1, 1] needs 3 frames (1 blank 1): feasible in 3; [1, 1, 1] needs 5: not.
    got = losses.ctc_losses(log_probs, [[1, 1, 0], [1, 1, 1]], [2, 3], [3, 3]).numpy()
    assert got[0] > 0 and got[1] == 0.0


def test_mixed_precision_model_computes_in_float16_and_returns_float32():
    config = EncoderConfig(**TINY)
    model = models.ctc_model(10, 6, config, dtype="mixed_float16")
    features, lengths = _batch(np.random.default_rng(4), [16, 9])
    log_probs = model([features, lengths])
    assert log_probs.dtype == "float32"
    assert model.get_layer("encoder_0").compute_dtype == "float16"
    model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam()), loss=losses.CTCLoss())
    targets = losses.pack_ctc_targets(np.array([[1, 2], [3, 0]]), [2, 1], models.output_lengths(lengths, 1))
    history = model.fit({"features": features, "feature_lengths": lengths}, targets, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("cell, task", [("lstm", "ctc"), ("gru", "ctc"), ("gru", "frames")])
def test_a_deepened_encoder_starts_out_giving_its_source_s_outputs(cell, task):
    # starting.deepened's new top layer passes on what the layer below says (as its tanh):
    # the frames' best classes stay the source's, where a random new layer would scramble them.
    import types

    from speechseq import starting

    shape = dict(cell=cell, units=32, subsampling=2, conv_channels=32, dropout=0.0)
    build = models.ctc_model if task == "ctc" else models.frame_model
    keras.utils.set_random_seed(0)
    source = build(10, 12, EncoderConfig(layers=2, **shape))
    trained = types.SimpleNamespace(features=types.SimpleNamespace(feature_dim=10), task=task,
                                    classes=types.SimpleNamespace(size=12), settings={"model": {"layers": 2}})
    deeper = starting.deepened(source, trained, EncoderConfig(layers=3, **shape))
    assert len(deeper.get_layer("encoder_2").get_weights()) == len(source.get_layer("encoder_1").get_weights())
    features, lengths = _batch(np.random.default_rng(0), [60, 45])
    before = np.asarray(source(models.model_inputs(features, lengths)))
    after = np.asarray(deeper(models.model_inputs(features, lengths)))
    assert np.mean(before.argmax(-1) == after.argmax(-1)) > 0.85
    assert np.abs(before - after).max() < 0.2
