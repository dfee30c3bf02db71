"""A grammar's Viterbi search in TensorFlow ops, for exports that ship a word list.

`speechseq transcribe` decodes such an export on the host (`grammar.GrammarDecoder`); a TF
Serving client has only the graph. This runs the same search over the same tables
(`GrammarDecoder.search_tables`) inside the graph, so the export's `serving_default` gives
the grammar's words too, with their times: a digits model served as it is cannot answer
"thry two onez erro". One step per frame over every row of the batch at once; rows end
at their own lengths. Standard ops only (gather, argmax, a while loop), so TF Serving's
stock model server runs it.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from speechseq.grammar import GrammarDecoder


class GraphGrammar:
    """`GrammarDecoder`'s search as a function of batched log-probs, for a traced signature."""

    def __init__(self, decoder: GrammarDecoder):
        tables = decoder.search_tables()
        self._emitting = tables.symbols.size
        self._junction = tables.junction
        self._junctions, self._width = tables.junction_sources.shape
        self._fan_in = tables.table.shape[1]
        self._symbols = tf.constant(tables.symbols, tf.int32)
        self._word_of = tf.constant(tables.word_of, tf.int32)
        self._word_starts = tf.constant(tables.word_starts)
        self._word_texts = tf.constant(list(tables.word_texts))
        self._start_weights = tf.constant(tables.start_weights, tf.float32)
        self._junction_sources = tf.constant(tables.junction_sources.reshape(-1), tf.int32)
        self._table = tf.constant(tables.table, tf.int32)
        self._table_flat = tf.constant(tables.table.reshape(-1), tf.int32)
        self._weights = tf.constant(tables.weights, tf.float32)
        self._finals = tf.constant(tables.finals, tf.int32)

    def __call__(self, log_probs, lengths, seconds_per_frame: float) -> dict:
        """log_probs [batch, frames, classes], lengths [batch] -> the words of each row:
        ragged `words` (strings), `word_start`, `word_end` (seconds), `word_confidence`."""
        lengths = tf.cast(lengths, tf.int32)
        # One frame more than the longest row, so that a batch of silent rows (0 frames)
        # still has a frame 0 to start from; frames at or past a row's length are ignored.
        emit = tf.gather(tf.pad(log_probs, [[0, 0], [0, 1], [0, 0]]), self._symbols, axis=2)  # [B, T, nodes]
        path = self._best_paths(emit, lengths)
        return self._words(path, emit, lengths, seconds_per_frame)

    def _best_paths(self, emit, lengths):
        """[batch, frames] node of each frame on each row's best path."""
        batch, frames = tf.shape(emit)[0], tf.shape(emit)[1]
        nodes = tf.range(self._emitting, dtype=tf.int32)
        impossible = tf.fill([batch, 1], -np.inf)
        unset = tf.fill([batch, self._junctions + 1], -np.inf)  # junctions not yet computed, and the -inf slot
        junction_rows = tf.range(self._junctions, dtype=tf.int32) * self._width
        fan_rows = nodes * self._fan_in

        def step(t, score, back):
            at_junctions = tf.reshape(tf.gather(tf.concat([score, unset], axis=1), self._junction_sources, axis=1),
                                      [batch, self._junctions, self._width])
            junction_from = tf.gather(self._junction_sources,
                                      junction_rows + tf.argmax(at_junctions, axis=2, output_type=tf.int32))
            slots = tf.concat([score, tf.reduce_max(at_junctions, axis=2), impossible], axis=1)
            candidates = tf.gather(slots, self._table, axis=1) + self._weights  # [B, nodes, fan-in]
            chosen = tf.gather(self._table_flat, fan_rows + tf.argmax(candidates, axis=2, output_type=tf.int32))
            # A junction stands for the node it was taken from.
            through = chosen >= self._junction
            taken = tf.gather(junction_from, tf.clip_by_value(chosen - self._junction, 0, self._junctions - 1),
                              batch_dims=1)
            chosen = tf.where(through, taken, chosen)
            active = (t < lengths)[:, tf.newaxis]
            score = tf.where(active, tf.reduce_max(candidates, axis=2) + emit[:, t], score)
            return t + 1, score, back.write(t, tf.where(active, chosen, nodes[tf.newaxis]))

        score = emit[:, 0] + self._start_weights
        back = tf.TensorArray(tf.int32, size=frames, element_shape=[None, self._emitting])
        back = back.write(0, tf.broadcast_to(nodes, [batch, self._emitting]))
        _, score, back = tf.while_loop(lambda t, *_: t < frames, step, (tf.constant(1), score, back))
        last = tf.gather(self._finals, tf.argmax(tf.gather(score, self._finals, axis=1), axis=1, output_type=tf.int32))

        def earlier(node, back_t):  # the node one frame before, on the path through `node`
            return tf.gather(back_t, node[:, tf.newaxis], batch_dims=1)[:, 0]

        before = tf.scan(earlier, back.stack()[1:], initializer=last, reverse=True)  # frames 0 .. T-2
        return tf.transpose(tf.concat([before, last[tf.newaxis]], axis=0))

    def _words(self, path, emit, lengths, seconds_per_frame: float) -> dict:
        """A word starts where the path enters a word's first letter from elsewhere, and
        spans its letters' frames (not trailing blanks): as `GrammarDecoder` reads its path."""
        frames = tf.shape(path)[1]
        valid = tf.range(frames)[tf.newaxis] < lengths[:, tf.newaxis]
        previous = tf.concat([tf.fill([tf.shape(path)[0], 1], -1), path[:, :-1]], axis=1)
        starts = valid & tf.gather(self._word_starts, path) & (path != previous)
        letter = valid & (tf.gather(self._word_of, path) >= 0)
        counts = tf.reduce_sum(tf.cast(starts, tf.int32), axis=1)
        in_row = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1  # each frame's word, counted in its row
        occurrence = tf.cumsum(counts, exclusive=True)[:, tf.newaxis] + in_row  # counted over the batch
        letter = letter & (in_row >= 0)
        total = tf.reduce_sum(counts)
        at_start = tf.where(starts)  # [words, 2]: (row, frame), in order
        letter_ids = tf.boolean_mask(occurrence, letter)
        letter_frames = tf.boolean_mask(tf.broadcast_to(tf.range(frames), tf.shape(path)), letter)
        posterior = tf.exp(tf.gather(emit, path, batch_dims=2))
        end = tf.math.unsorted_segment_max(letter_frames + 1, letter_ids, total)
        confidence = tf.math.unsorted_segment_mean(tf.boolean_mask(posterior, letter), letter_ids, total)
        texts = tf.gather(self._word_texts, tf.gather_nd(tf.gather(self._word_of, path), at_start))

        def ragged(values):
            return tf.RaggedTensor.from_row_lengths(values, tf.cast(counts, tf.int64))

        return {
            "words": ragged(texts),
            "word_start": ragged(tf.cast(at_start[:, 1], tf.float32) * seconds_per_frame),
            "word_end": ragged(tf.cast(end, tf.float32) * seconds_per_frame),
            "word_confidence": ragged(confidence),
        }
