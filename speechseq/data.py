"""`tf.data` input pipelines: manifest entries -> padded batches with true lengths.

CTC batches are `(features, feature_lengths, labels, label_lengths)`; tagging batches
are `(features, feature_lengths, frame_labels)`. Padding is on the right only (zeros),
and every length is the real one, so losses and cuDNN kernels can ignore padding.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from speechseq import audio
from speechseq.corpora import CorpusError, Utterance
from speechseq.errors import SpeechseqError
from speechseq.features import FeatureConfig, feature_layer
from speechseq.text import OutOfVocabularyError, TagSet, Vocabulary

log = logging.getLogger(__name__)

DEFAULT_BUCKETS = 4  # length buckets: few fixed shapes keep XLA recompiles rare
CACHED_SHUFFLE_BUFFER = 4096  # utterances' features held for shuffling when they are cached


@dataclasses.dataclass(frozen=True)
class SpecAugment:
    """Time and frequency masking (Park et al., 2019), for training batches only."""

    freq_masks: int = 2  # frequency masks per utterance
    freq_width: int = 15  # widest frequency mask, in bands
    time_masks: int = 2  # time masks per utterance
    time_width: int = 20  # widest time mask, in frames
    time_fraction: float = 0.1  # a time mask covers at most this share of the utterance

    def __call__(self, features, lengths):
        """Zero random bands and frame ranges inside each utterance's true length."""
        batch, time, bands = tf.unstack(tf.shape(features))
        keep = tf.ones_like(features[..., :1]) * tf.ones_like(features[:, :1, :])
        frame_index = tf.range(time)[tf.newaxis, :, tf.newaxis]
        band_index = tf.range(bands)[tf.newaxis, tf.newaxis, :]
        for _ in range(self.freq_masks):
            keep *= _random_band_mask(band_index, bands, self.freq_width, batch)
        max_time = tf.minimum(
            self.time_width, tf.cast(self.time_fraction * tf.cast(lengths, tf.float32), tf.int32)
        )
        for _ in range(self.time_masks):
            keep *= _random_band_mask(frame_index, lengths, max_time, batch)
        return features * keep


def _random_band_mask(index, extent, max_width, batch):
    """1.0 outside, 0.0 inside a random [start, start + width) range per utterance."""
    extent = tf.broadcast_to(tf.cast(extent, tf.int32), [batch])
    max_width = tf.broadcast_to(tf.cast(max_width, tf.int32), [batch])
    width = tf.cast(tf.random.uniform([batch]) * tf.cast(max_width + 1, tf.float32), tf.int32)
    room = tf.maximum(extent - width, 0)
    start = tf.cast(tf.random.uniform([batch]) * tf.cast(room + 1, tf.float32), tf.int32)
    start, width = start[:, None, None], width[:, None, None]
    return tf.cast((index < start) | (index >= start + width), tf.float32)


@dataclasses.dataclass(frozen=True)
class AddNoise:
    """Noise added to a `probability` share of training waveforms, inside their true
    lengths, at a signal-to-noise ratio drawn from `snrs` (dB, against the utterance's
    mean power). Each noisy row gets white, pink or brown noise (power falling as 1/f^0,
    1/f, 1/f^2: hiss, rain, rumble), shaped in the frequency domain."""

    snrs: tuple[float, ...] = (0.0, 5.0, 10.0, 20.0)
    probability: float = 0.5

    def __post_init__(self):
        if not self.snrs or not 0 <= self.probability <= 1:
            raise SpeechseqError(f"noise needs at least one SNR and a probability in [0, 1], got {self.snrs}, "
                             f"{self.probability}")

    def __call__(self, waveforms, lengths):
        batch, time = tf.unstack(tf.shape(waveforms))
        real = tf.sequence_mask(lengths, time, dtype=tf.float32)
        count = tf.maximum(tf.cast(lengths, tf.float32), 1.0)
        noise = _coloured_noise(batch, time) * real
        signal_power = tf.reduce_sum(tf.square(waveforms * real), axis=1) / count
        noise_power = tf.reduce_sum(tf.square(noise), axis=1) / count
        snr = tf.gather(tf.constant(self.snrs, tf.float32), tf.random.uniform([batch], 0, len(self.snrs), tf.int32))
        scale = tf.sqrt(signal_power / (tf.maximum(noise_power, 1e-12) * 10.0 ** (snr / 10.0)))
        chosen = tf.cast(tf.random.uniform([batch]) < self.probability, tf.float32)
        return waveforms + (chosen * scale)[:, tf.newaxis] * noise


def _coloured_noise(batch, time):
    """[batch, time] noise; each row white, pink or brown at random."""
    white = tf.random.normal([batch, time])
    spectrum = tf.signal.rfft(white)
    bins = tf.shape(spectrum)[1]
    frequency = tf.maximum(tf.cast(tf.range(bins), tf.float32), 1.0)  # in bins; DC as the first bin
    exponent = tf.cast(tf.random.uniform([batch, 1], 0, 3, tf.int32), tf.float32) / 2.0  # 0, 1/2, 1
    gain = tf.pow(frequency[tf.newaxis, :], -exponent)  # amplitude, so power falls as 1/f^(2 * exponent)
    return tf.signal.irfft(spectrum * tf.cast(gain, spectrum.dtype), fft_length=[time])


def frame_labels(starts, ends, label_ids, num_frames, config: FeatureConfig, background_id: int):
    """Label of each frame: the first segment whose [start, end) holds the frame's centre.

    `starts`/`ends` (seconds) and `label_ids` are [segments] or [batch, segments];
    the result is [frames] or [batch, frames]. Frame t is centred on sample t * hop
    (librosa `center=True`). Segment edges are rounded to the nearest sample first,
    so an edge that falls exactly on a frame centre is decided by integers, not by
    float rounding. Frames no segment covers get `background_id`.
    """

    def one_more(values):
        """An empty [0, 0) segment more keeps the arg-max below defined with no segments."""
        return tf.pad(values, [[0, 0]] * (values.shape.rank - 1) + [[0, 1]])

    def samples(seconds):
        seconds = tf.cast(seconds, tf.float64) if tf.is_tensor(seconds) else tf.constant(seconds, tf.float64)
        return tf.cast(tf.round(one_more(seconds) * config.sample_rate), tf.int64)[..., tf.newaxis, :]

    label_ids = one_more(tf.cast(label_ids, tf.int32))
    centres = (tf.range(tf.cast(num_frames, tf.int64)) * config.hop_length)[:, tf.newaxis]
    inside = (centres >= samples(starts)) & (centres < samples(ends))  # [..., frames, segments]
    first = tf.argmax(tf.cast(inside, tf.int32), axis=-1, output_type=tf.int32)
    covered = tf.reduce_any(inside, axis=-1)
    chosen = tf.gather(label_ids, first, axis=-1, batch_dims=label_ids.shape.rank - 1)
    return tf.where(covered, chosen, background_id)


LONG_FILE_SECONDS = 20.0  # batches of files this long are decoded on several threads


def _decode_batch(paths: np.ndarray, seconds: float, sample_rate: int):
    """Decode a batch of files -> right-padded waveforms, lengths, and which decoded.

    Runs inside `tf.numpy_function`, one call per batch (not per file), so Python's
    per-call cost is paid once per batch. Batches of long files (`seconds` each) are
    decoded on threads: libsndfile and soxr release the GIL, and there are few batches
    to run side by side. For short files threads only fight over the GIL. A file that fails
    (it changed after the audit, say) is logged by name and masked out, and the rest
    of the batch goes on.
    """

    def load(path: bytes) -> np.ndarray:
        try:
            return audio.load(path.decode(), sample_rate)
        except audio.AudioError as error:
            log.warning("skipping %s", error)
            return np.zeros(0, np.float32)

    if seconds < LONG_FILE_SECONDS or len(paths) < 2:
        waveforms = [load(path) for path in paths]
    else:
        with ThreadPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1)) as pool:
            waveforms = list(pool.map(load, paths))
    lengths = np.array([w.size for w in waveforms], np.int32)
    batch = np.empty((len(waveforms), max(lengths.max(initial=0), 1)), np.float32)
    for row, waveform in zip(batch, waveforms):
        row[: waveform.size] = waveform
        row[waveform.size :] = 0.0
    return batch, lengths, lengths > 0


def _padded(rows: Sequence[Sequence], dtype) -> np.ndarray:
    """Variable-length rows -> one zero-padded [rows, longest] array (tf.data slices it)."""
    array = np.zeros((len(rows), max((len(r) for r in rows), default=0)), dtype)
    for index, row in enumerate(rows):
        array[index, : len(row)] = row
    return array


def bucket_boundaries(frame_counts: Sequence[int], buckets: int) -> list[int]:
    """Boundaries splitting `frame_counts` into `buckets` groups of similar size.

    The last boundary is past the longest utterance, so every batch can be padded to
    its bucket's boundary (one fixed shape per bucket).
    """
    counts = np.asarray(frame_counts)
    inner = np.quantile(counts, np.linspace(0, 1, buckets + 1)[1:-1]) if buckets > 1 else []
    return sorted({int(b) + 1 for b in inner} | {int(counts.max()) + 1})


def bucket_batch_sizes(boundaries: Sequence[int], options: PipelineOptions) -> list[int]:
    """Batch size per bucket: `batch_size`, cut so a batch pads to <= `max_batch_frames`."""
    if options.max_batch_frames is None:
        return [options.batch_size] * len(boundaries)
    return [max(1, min(options.batch_size, options.max_batch_frames // b)) for b in boundaries]


def frame_counts(utterances: Sequence[Utterance], config: FeatureConfig) -> list[int]:
    """Frames each utterance will have, from its manifest duration (or its header).

    A file whose header cannot be read counts as one frame: decoding it fails, and the
    pipeline logs it by name and drops it, as it does any file that breaks after the audit.
    """
    return [int(config.num_frames(int(_seconds(u) * config.sample_rate))) for u in utterances]


def _seconds(utterance: Utterance) -> float:
    if utterance.duration:
        return utterance.duration
    try:
        return audio.info(utterance.audio).duration
    except audio.AudioError:
        return 0.0


def batches_per_epoch(
    utterances: Sequence[Utterance], config: FeatureConfig, options: PipelineOptions, shards: int = 1, shard: int = 0
) -> int:
    """Batches one shard of a pipeline gives per epoch: exact, since buckets are known up front."""
    counts = frame_counts(utterances, config)
    boundaries = bucket_boundaries(counts, max(options.buckets, 1))
    sizes = bucket_batch_sizes(boundaries, options)
    bucket_of = np.searchsorted(np.asarray(boundaries[:-1]), np.asarray(counts)[shard::shards], side="right")
    per_bucket = [int((bucket_of == b).sum()) for b in range(len(boundaries))]
    if options.drop_remainder:
        return sum(n // size for n, size in zip(per_bucket, sizes))
    return sum(-(-n // size) for n, size in zip(per_bucket, sizes))


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
    """How batches are formed."""

    batch_size: int = 16  # utterances per batch (per replica's input pipeline), at most
    max_batch_frames: int | None = None  # padded frames per batch, at most: long buckets get smaller batches
    shuffle: bool = False  # reshuffle every epoch (training)
    seed: int = 0  # shuffle seed
    buckets: int = DEFAULT_BUCKETS  # length buckets; 1 = plain padded batches
    pad_to_boundaries: bool = False  # pad each bucket to a fixed length (for XLA)
    drop_remainder: bool = False  # drop each bucket's last, smaller batch (fixed batch size for XLA)
    cache: str | None = None  # keep each utterance's features: "" = in memory, else a file prefix
    augment: SpecAugment | None = None  # SpecAugment for training
    noise: AddNoise | None = None  # waveform noise for training (with `cache`, drawn once and kept)
    deterministic: bool = True  # keep batch order under parallel decoding


def _pipeline(
    utterances: Sequence[Utterance],
    targets: dict,
    config: FeatureConfig,
    options: PipelineOptions,
    make_batch,
    input_context: tf.distribute.InputContext | None,
) -> tf.data.Dataset:
    """The shared pipeline.

    Utterances are bucketed by their known length *before* decoding, so each batch is
    decoded by one Python call and its features are computed in one vectorised call.
    `make_batch(frames, frame_lengths, targets)` shapes a batch for its task; the
    targets are padded with zeros on the right by the bucketing.

    With `options.cache`, each utterance's features are computed once, kept (in memory
    or in files) and re-batched every epoch: later epochs skip decoding and features
    but still get new batch compositions.
    """
    if not utterances:
        raise CorpusError("no utterances to build a dataset from")
    counts = frame_counts(utterances, config)
    boundaries = bucket_boundaries(counts, max(options.buckets, 1))
    elements = {"audio": [str(u.audio) for u in utterances], "frames": counts, **targets}
    dataset = tf.data.Dataset.from_tensor_slices(elements)
    if input_context is not None and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)

    def bucketed(dataset, length_of, sizes, drop_remainder):
        return dataset.bucket_by_sequence_length(
            element_length_func=length_of,
            bucket_boundaries=boundaries[:-1],
            bucket_batch_sizes=sizes,
            drop_remainder=drop_remainder,
        )

    features = feature_layer(config)

    def with_features(batch):
        seconds = tf.cast(tf.reduce_max(batch["frames"]), tf.float64) / config.frames_per_second
        waveforms, lengths, decoded = tf.numpy_function(
            lambda paths, seconds: _decode_batch(paths, float(seconds), config.sample_rate),
            [batch["audio"], seconds], [tf.float32, tf.int32, tf.bool], stateful=False,
        )
        waveforms.set_shape([None, None])
        lengths.set_shape([None])
        decoded.set_shape([None])
        if options.noise is not None:
            waveforms = options.noise(waveforms, lengths)
        frames, frame_lengths = features(waveforms, lengths)
        kept = {key: tf.boolean_mask(value, decoded) for key, value in batch.items()}
        return tf.boolean_mask(frames, decoded), tf.boolean_mask(frame_lengths, decoded), kept

    sizes = bucket_batch_sizes(boundaries, options)
    if options.cache is None:
        if options.shuffle:  # new batch compositions every epoch
            dataset = dataset.shuffle(len(utterances), options.seed, reshuffle_each_iteration=True)
        dataset = bucketed(dataset, lambda element: element["frames"], sizes, options.drop_remainder)
        dataset = dataset.map(with_features, num_parallel_calls=tf.data.AUTOTUNE, deterministic=options.deterministic)
    else:
        # Features once per utterance (batched by length for speed, in a fixed order),
        # cut to their true length and kept; the batches are formed afterwards.
        dataset = bucketed(dataset, lambda element: element["frames"], [options.batch_size] * len(boundaries), False)
        dataset = dataset.map(with_features, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.unbatch().map(lambda frames, length, element: (frames[:length], length, element))
        dataset = dataset.cache(options.cache)
        if options.shuffle:
            dataset = dataset.shuffle(min(len(utterances), CACHED_SHUFFLE_BUFFER), options.seed,
                                      reshuffle_each_iteration=True)
        dataset = bucketed(dataset, lambda frames, length, element: element["frames"], sizes, options.drop_remainder)
    dataset = dataset.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=options.deterministic)
    dataset = dataset.filter(lambda frames, *rest: tf.shape(frames)[0] > 0)
    if options.pad_to_boundaries:
        dataset = dataset.map(_pad_to_boundary(boundaries), num_parallel_calls=tf.data.AUTOTUNE)
    if options.augment is not None:
        augment = options.augment
        dataset = dataset.map(
            lambda frames, lengths, *rest: (augment(frames, lengths), lengths, *rest),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    data_options = tf.data.Options()
    # Let one batch's feature ops use every core (tf.data's default is one): long
    # files come in few batches, so parallel batches alone leave cores idle.
    data_options.threading.max_intra_op_parallelism = 0
    # Under tf.distribute, shard by element (our source is one tensor, not files).
    data_options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF
        if input_context is not None
        else tf.data.experimental.AutoShardPolicy.DATA
    )
    return dataset.with_options(data_options).prefetch(tf.data.AUTOTUNE)


def _pad_to_boundary(boundaries: list[int]):
    """Pad the time axis of features (and frame labels) up to the batch's bucket boundary."""
    limits = tf.constant(boundaries, tf.int32)

    def pad(frames, lengths, *rest):
        time = tf.shape(frames)[1]
        bucket = tf.minimum(tf.searchsorted(limits, [time], side="right")[0], len(boundaries) - 1)
        target = tf.maximum(limits[bucket] - 1, time)  # a bucket holds lengths < its boundary
        frames = tf.pad(frames, [[0, 0], [0, target - time], [0, 0]])
        if len(rest) == 1:  # frame labels share the time axis
            rest = (tf.pad(rest[0], [[0, 0], [0, target - time]]),)
        return (frames, lengths, *rest)

    return pad


def feature_dataset(
    utterances: Sequence[Utterance],
    config: FeatureConfig,
    options: PipelineOptions = PipelineOptions(),
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Batches of `(features, feature_lengths)` alone: no transcript or label needed."""

    def make_batch(frames, frame_lengths, batch):
        return frames, frame_lengths

    return _pipeline(utterances, {}, config, options, make_batch, input_context)


def ctc_dataset(
    utterances: Sequence[Utterance],
    vocabulary: Vocabulary,
    config: FeatureConfig,
    options: PipelineOptions = PipelineOptions(),
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Batches of `(features, feature_lengths, labels, label_lengths)` for CTC."""
    encoded = []
    for utterance in utterances:
        try:
            encoded.append(vocabulary.encode(utterance.text))
        except OutOfVocabularyError as error:
            raise CorpusError(f"{utterance.audio}: {error}") from None
    targets = {"labels": _padded(encoded, np.int32), "label_lengths": [len(ids) for ids in encoded]}

    def make_batch(frames, frame_lengths, batch):
        label_lengths = batch["label_lengths"]
        labels = batch["labels"]  # padded to the longest transcript of all: a fixed shape
        if not options.pad_to_boundaries:  # shapes vary anyway: pad to this batch's longest
            labels = labels[:, : tf.reduce_max(label_lengths)]
        return frames, frame_lengths, labels, label_lengths

    return _pipeline(utterances, targets, config, options, make_batch, input_context)


def tagging_dataset(
    utterances: Sequence[Utterance],
    tags: TagSet,
    config: FeatureConfig,
    options: PipelineOptions = PipelineOptions(),
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Batches of `(features, feature_lengths, frame_labels)` from the entries' segments."""
    columns = {"starts": [], "ends": [], "segment_labels": []}
    for utterance in utterances:
        try:
            columns["segment_labels"].append([tags.id(s.label) for s in utterance.segments])
        except OutOfVocabularyError as error:
            raise CorpusError(f"{utterance.audio}: label not in the tag set: {error}") from None
        columns["starts"].append([s.start for s in utterance.segments])
        columns["ends"].append([s.end for s in utterance.segments])
    targets = {
        "starts": _padded(columns["starts"], np.float64),
        "ends": _padded(columns["ends"], np.float64),
        "segment_labels": _padded(columns["segment_labels"], np.int32),
    }

    def make_batch(frames, frame_lengths, batch):
        # Segment lists are padded with [0, 0) segments, which cover no frame.
        labels = frame_labels(
            batch["starts"], batch["ends"], batch["segment_labels"],
            tf.shape(frames)[1], config, tags.background_id,
        )
        return frames, frame_lengths, labels

    return _pipeline(utterances, targets, config, options, make_batch, input_context)
