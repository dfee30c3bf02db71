"""tf.data pipelines on real connected-digit audio: batches, true lengths, labels, options."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from conftest import fsdd_clip
from speechseq import audio, corpora, data, derived
from speechseq.corpora import Segment, Utterance
from speechseq.derived import DigitSequenceOptions
from speechseq.errors import SpeechseqError
from speechseq.features import FeatureConfig, LogMel
from speechseq.text import TagSet, Vocabulary

CONFIG = FeatureConfig()
VOCABULARY = Vocabulary()


@pytest.fixture(scope="module")
def utterances(fsdd_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    options = DigitSequenceOptions(passes=(("test", 1),))
    manifest = derived.connected_digits(fsdd_dir, out, options)["test"]
    return corpora.read_manifest(manifest)[:24]


def _collect(dataset):
    return [tuple(t.numpy() for t in batch) for batch in dataset]


def test_ctc_batches_carry_true_lengths_and_right_padding(utterances):
    options = data.PipelineOptions(batch_size=5, buckets=3)
    batches = _collect(data.ctc_dataset(utterances, VOCABULARY, CONFIG, options))
    assert sum(b[0].shape[0] for b in batches) == len(utterances)
    by_text = {}
    layer = LogMel(CONFIG)
    for features, feature_lengths, labels, label_lengths in batches:
        assert features.shape[2] == CONFIG.n_mels
        assert features.shape[1] == feature_lengths.max()
        for f, n, l, m in zip(features, feature_lengths, labels, label_lengths):
            assert not f[n:].any() and not l[m:].any(), "padding is zeros on the right"
            by_text.setdefault(VOCABULARY.decode(l[:m]), []).append((f[:n], n))
    # Every utterance comes out once, with the frames of the layer called directly on it.
    for utterance in utterances[:4]:
        waveform = audio.load(utterance.audio)
        direct, length = layer(tf.constant(waveform[None]), tf.constant([waveform.size]))
        matches = [f for f, n in by_text[utterance.text] if n == int(length[0])]
        assert any(np.allclose(f, direct[0, : int(length[0])], atol=1e-4) for f in matches)


def test_bucketing_groups_similar_lengths(utterances):
    plain = _collect(data.ctc_dataset(utterances, VOCABULARY, CONFIG, data.PipelineOptions(batch_size=4, buckets=1)))
    bucketed = _collect(data.ctc_dataset(utterances, VOCABULARY, CONFIG, data.PipelineOptions(batch_size=4, buckets=4)))
    padding = lambda batches: sum(b[0].shape[0] * b[0].shape[1] - b[1].sum() for b in batches)
    assert padding(bucketed) < padding(plain)


def test_pad_to_boundaries_gives_few_fixed_shapes(utterances):
    """XLA compiles once per shape: every batch shape must come from a small fixed set."""
    options = data.PipelineOptions(batch_size=4, buckets=3, pad_to_boundaries=True, drop_remainder=True)
    boundaries = data.bucket_boundaries(data.frame_counts(utterances, CONFIG), 3)
    batches = _collect(data.ctc_dataset(utterances, VOCABULARY, CONFIG, options))
    assert {b[0].shape[1] for b in batches} <= {b - 1 for b in boundaries}
    assert {b[0].shape[0] for b in batches} == {4}, "partial batches are dropped"
    longest = max(len(VOCABULARY.encode(u.text)) for u in utterances)
    assert {b[2].shape[1] for b in batches} == {longest}, "labels keep one width"


def test_shuffle_changes_order_between_epochs_but_not_content(utterances):
    options = data.PipelineOptions(batch_size=4, buckets=1, shuffle=True, seed=3)
    dataset = data.ctc_dataset(utterances, VOCABULARY, CONFIG, options)
    epochs = [[VOCABULARY.decode(l[:m]) for b in _collect(dataset) for l, m in zip(b[2], b[3])] for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == sorted(VOCABULARY.normalize(u.text) for u in utterances)
    assert epochs[0] != epochs[1]


def _features_by_text(batches):
    return {VOCABULARY.decode(l[:m]): f[:n] for b in batches for f, n, l, m in zip(*b)}


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_cached_features_are_computed_once_and_rebatched_every_epoch(utterances, tmp_path, where):
    # Copies of the audio, deleted after the first epoch: later epochs must not read it.
    copies = []
    for index, utterance in enumerate(utterances[:16]):
        copy = tmp_path / f"{index}.wav"
        copy.write_bytes(utterance.audio.read_bytes())
        copies.append(Utterance(copy, utterance.text, utterance.speaker, utterance.duration))
    cache = "" if where == "memory" else str(tmp_path / "features")
    options = data.PipelineOptions(batch_size=4, buckets=1, shuffle=True, seed=1, cache=cache)
    dataset = data.ctc_dataset(copies, VOCABULARY, CONFIG, options)
    iterator = iter(dataset.repeat())
    steps = data.batches_per_epoch(copies, CONFIG, options)
    first = [tuple(t.numpy() for t in next(iterator)) for _ in range(steps)]
    for copy in copies:
        copy.audio.unlink()
    second = [tuple(t.numpy() for t in next(iterator)) for _ in range(steps)]
    if where == "disk":
        assert list(tmp_path.glob("features*")), "cache files are written"
    uncached = _collect(data.ctc_dataset(utterances[:16], VOCABULARY, CONFIG, data.PipelineOptions(batch_size=4)))
    expected = _features_by_text(uncached)
    for epoch in (first, second):
        got = _features_by_text(epoch)
        assert sorted(got) == sorted(expected), "every utterance once per epoch"
        for text, frames in got.items():
            np.testing.assert_allclose(frames, expected[text], atol=1e-3)  # batch-dependent rounding
    compositions = [[sorted(VOCABULARY.decode(l[:m]) for l, m in zip(b[2], b[3])) for b in epoch]
                    for epoch in (first, second)]
    assert compositions[0] != compositions[1], "batches are re-formed every epoch"


def test_sharding_for_distribution_splits_utterances_without_overlap(utterances):
    texts = {u.text for u in utterances}
    assert len(texts) == len(utterances), "the fixture's transcripts tell its utterances apart"
    shards = []
    for index in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=index)
        dataset = data.ctc_dataset(utterances, VOCABULARY, CONFIG, data.PipelineOptions(batch_size=4, buckets=1), context)
        shards.append([VOCABULARY.decode(labels[:m]) for _, _, batch_labels, batch_label_lengths in _collect(dataset)
                       for labels, m in zip(batch_labels, batch_label_lengths)])
    assert [len(shard) for shard in shards] == [len(utterances) // 2] * 2
    first, second = map(set, shards)
    assert not first & second, "no utterance in both shards"
    assert first | second == texts, "together they hold every utterance"


def test_spec_augment_masks_only_inside_true_lengths(utterances):
    options = data.PipelineOptions(batch_size=8, buckets=1, augment=data.SpecAugment(freq_width=10, time_width=10))
    clean = _collect(data.ctc_dataset(utterances, VOCABULARY, CONFIG, data.PipelineOptions(batch_size=8, buckets=1)))
    masked = _collect(data.ctc_dataset(utterances, VOCABULARY, CONFIG, options))
    changed = 0
    for (a, n, *_), (b, m, *_) in zip(clean, masked):
        np.testing.assert_array_equal(n, m)
        differs = a != b
        changed += differs.sum()
        assert np.all((b == a) | (b == 0)), "masking only zeroes values"
        for row, length in zip(differs, n):
            assert not row[length:].any()
    assert changed > 0


def test_a_file_that_breaks_after_the_audit_is_skipped_not_fatal(utterances, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEjunk")
    entries = list(utterances[:5]) + [Utterance(broken, "one", "x", 0.5)]
    batches = _collect(data.ctc_dataset(entries, VOCABULARY, CONFIG, data.PipelineOptions(batch_size=2, buckets=1)))
    assert sum(b[0].shape[0] for b in batches) == 5


def test_out_of_vocabulary_transcript_is_refused_with_its_file(utterances):
    entries = [Utterance(fsdd_clip(1), "ünë", "x", 0.5)]
    with pytest.raises(corpora.CorpusError, match="1_jackson_0.wav: .*'ü'"):
        data.ctc_dataset(entries, VOCABULARY, CONFIG)


@pytest.mark.parametrize("sample_rate, hop_ms", [(16000, 10.0), (8000, 10.0), (16000, 12.5), (22050, 10.0), (8000, 16.0)])
def test_segment_edges_land_on_the_frames_whose_centres_they_hold(sample_rate, hop_ms):
    config = FeatureConfig(sample_rate=sample_rate, hop_ms=hop_ms, window_ms=hop_ms * 2, n_fft=1024)
    hop = config.hop_length
    # Edges exactly on frame centres, and one sample either side of them.
    sample = 1 / sample_rate
    starts = [3 * hop * sample, (10 * hop - 1) * sample]
    ends = [7 * hop * sample, (15 * hop + 1) * sample]
    labels = data.frame_labels(starts, ends, [1, 2], 20, config, background_id=0).numpy()
    expected = [0] * 3 + [1] * 4 + [0] * 3 + [2] * 6 + [0] * 4
    np.testing.assert_array_equal(labels, expected)


def test_tagging_batches_label_each_frame_from_segments(utterances):
    tags = TagSet.with_background(corpora.DIGIT_WORDS, background="silence")
    batches = _collect(data.tagging_dataset(utterances[:6], tags, CONFIG, data.PipelineOptions(batch_size=3, buckets=1)))
    seen = 0
    for features, lengths, frame_labels in batches:
        assert frame_labels.shape == features.shape[:2]
        for labels, n in zip(frame_labels, lengths):
            runs = [tags.label(l) for i, l in enumerate(labels[:n]) if i == 0 or l != labels[i - 1]]
            words = [r for r in runs if r != "silence"]
            assert runs[0] == runs[-1] == "silence"  # the 0.1 s edges
            assert " ".join(words) in {u.text for u in utterances[:6]}
            seen += 1
    assert seen == 6


def test_tagging_refuses_labels_outside_the_tag_set():
    tags = TagSet.with_background(["speech"], background="silence")
    entry = [Utterance(fsdd_clip(1), segments=(Segment(0.0, 0.2, "music"),))]
    with pytest.raises(corpora.CorpusError, match="label not in the tag set"):
        data.tagging_dataset(entry, tags, CONFIG)


@pytest.mark.parametrize("drop_remainder", [False, True])
@pytest.mark.parametrize("shards", [1, 2])
def test_batches_per_epoch_is_exact(utterances, drop_remainder, shards):
    options = data.PipelineOptions(batch_size=5, buckets=3, drop_remainder=drop_remainder, shuffle=True)
    for shard in range(shards):
        context = tf.distribute.InputContext(shards, shard) if shards > 1 else None
        dataset = data.ctc_dataset(utterances, VOCABULARY, CONFIG, options, context)
        assert sum(1 for _ in dataset) == data.batches_per_epoch(utterances, CONFIG, options, shards, shard)


def test_feature_dataset_needs_no_transcripts(utterances):
    silent = [Utterance(u.audio, "", u.speaker, u.duration) for u in utterances[:6]]
    batches = _collect(data.feature_dataset(silent, CONFIG, data.PipelineOptions(batch_size=3, buckets=1)))
    assert [len(b) for b in batches] == [2, 2]
    assert sum(b[0].shape[0] for b in batches) == 6


def test_noise_goes_inside_true_lengths_at_the_snr_asked_in_three_colours():
    clip = audio.load(fsdd_clip(4, "george", 1))
    waveforms, lengths = audio.pad_batch([clip, clip[:4000]] * 15)
    noisy = data.AddNoise(snrs=(10.0,), probability=1.0)(tf.constant(waveforms), tf.constant(lengths)).numpy()
    low_to_high = []
    for row, n in enumerate(lengths):
        added = noisy[row, :n] - waveforms[row, :n]
        assert 10 * np.log10(np.mean(waveforms[row, :n] ** 2) / np.mean(added**2)) == pytest.approx(10.0, abs=0.01)
        assert not noisy[row, n:].any()  # padding stays silent
        power = np.abs(np.fft.rfft(added)) ** 2
        low_to_high.append(power[1 : len(power) // 8].mean() / power[len(power) // 2 :].mean())
    # White noise is flat (ratio near 1); pink and brown put far more power low.
    assert min(low_to_high) < 2 and max(low_to_high) > 100
    kept = data.AddNoise((10.0,), probability=0.0)(tf.constant(waveforms), tf.constant(lengths)).numpy()
    np.testing.assert_array_equal(kept, waveforms)
    with pytest.raises(SpeechseqError, match="probability"):
        data.AddNoise((), 0.5)
