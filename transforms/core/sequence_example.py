"""AudioSet ``tf.train.SequenceExample`` records to numpy columns, many records per TensorFlow call.

Parsing one record at a time in Python costs ~26 us; TensorFlow's batched parser costs ~5 us a record,
so records are parsed in chunks and a chunk that fails is bisected to name the bad records.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from transforms.core.schema import EMBEDDING_DIM

CHUNK = 1 << 17  # records per TensorFlow call: a whole shard group, so no concatenation


def _tf():
    import tensorflow as tf  # deferred: importing TensorFlow costs seconds
    return tf


@dataclasses.dataclass
class Records:
    """Parsed records as columns. Ragged fields are (offsets[n+1], values)."""
    position: np.ndarray         # int64 [n]: index of each record in the parsed input
    video_id: list[str]
    start_time: np.ndarray       # float64 [n]
    end_time: np.ndarray         # float64 [n]
    label_offsets: np.ndarray    # int64 [n+1]
    label_values: np.ndarray     # int64: class indices
    frame_offsets: np.ndarray    # int64 [n+1]
    frames: np.ndarray           # uint8 [total_frames, 128]

    def __len__(self) -> int:
        return len(self.position)

    @property
    def num_frames(self) -> np.ndarray:
        return np.diff(self.frame_offsets)

    def labels_of(self, i: int) -> np.ndarray:
        return self.label_values[self.label_offsets[i]:self.label_offsets[i + 1]]

    def select(self, keep: np.ndarray) -> 'Records':
        """The records where ``keep`` (bool [n]) is true, in order."""
        keep = np.asarray(keep, dtype=bool)
        label_values, label_offsets = _select_ragged(self.label_offsets, self.label_values, keep)
        frames, frame_offsets = _select_ragged(self.frame_offsets, self.frames, keep)
        return Records(self.position[keep], [v for v, k in zip(self.video_id, keep) if k],
                       self.start_time[keep], self.end_time[keep], label_offsets, label_values,
                       frame_offsets, frames)

    @staticmethod
    def concat(parts: Sequence['Records']) -> 'Records':
        if not parts:
            return empty_records()
        if len(parts) == 1:
            return parts[0]
        return Records(
            np.concatenate([p.position for p in parts]),
            [v for p in parts for v in p.video_id],
            np.concatenate([p.start_time for p in parts]),
            np.concatenate([p.end_time for p in parts]),
            _concat_offsets([p.label_offsets for p in parts]),
            np.concatenate([p.label_values for p in parts]),
            _concat_offsets([p.frame_offsets for p in parts]),
            np.concatenate([p.frames for p in parts]))


def empty_records() -> Records:
    z = np.zeros(0, np.int64)
    return Records(z, [], np.zeros(0), np.zeros(0), np.zeros(1, np.int64), z, np.zeros(1, np.int64),
                   np.zeros((0, EMBEDDING_DIM), np.uint8))


def _select_ragged(offsets: np.ndarray, values: np.ndarray, keep: np.ndarray):
    lengths = np.diff(offsets)
    value_mask = np.repeat(keep, lengths)
    new_offsets = np.zeros(int(keep.sum()) + 1, np.int64)
    np.cumsum(lengths[keep], out=new_offsets[1:])
    return values[value_mask], new_offsets


def _concat_offsets(parts: list[np.ndarray]) -> np.ndarray:
    out, base = [np.zeros(1, np.int64)], 0
    for o in parts:
        out.append(o[1:] + base)
        base += int(o[-1])
    return np.concatenate(out)


@dataclasses.dataclass(frozen=True)
class BadRecord:
    position: int
    reason: str
    error: str


def _specs():
    tf = _tf()
    context = {
        'video_id': tf.io.FixedLenFeature([], tf.string),
        'start_time_seconds': tf.io.FixedLenFeature([], tf.float32),
        'end_time_seconds': tf.io.FixedLenFeature([], tf.float32, default_value=math.nan),
        'labels': tf.io.RaggedFeature(tf.int64),
    }
    sequence = {'audio_embedding': tf.io.RaggedFeature(tf.string)}
    return context, sequence


def _parse_chunk(payloads: Sequence[bytes], first_position: int) -> tuple[Records, list[BadRecord]]:
    tf = _tf()
    context_spec, sequence_spec = _specs()
    ctx, seq, _ = tf.io.parse_sequence_example(
        tf.constant(list(payloads), tf.string), context_features=context_spec, sequence_features=sequence_spec)
    n = len(payloads)
    frames_ragged = seq['audio_embedding']
    frame_lengths = tf.strings.length(frames_ragged.flat_values).numpy()
    frames_per_record = frames_ragged.row_lengths().numpy().astype(np.int64)
    raw_ids = ctx['video_id'].numpy()
    bad: list[BadRecord] = []
    keep = np.ones(n, dtype=bool)
    frame_owner = np.repeat(np.arange(n), frames_per_record)
    for i in np.unique(frame_owner[frame_lengths != EMBEDDING_DIM]):
        sizes = sorted(set(frame_lengths[frame_owner == i].tolist()) - {EMBEDDING_DIM})
        bad.append(BadRecord(first_position + int(i), 'bad-frame-size',
                             f'audio_embedding frames of {sizes} bytes; expected {EMBEDDING_DIM}'))
        keep[i] = False
    video_ids = []
    for i, raw in enumerate(raw_ids):
        try:
            vid = raw.decode('utf-8')
        except UnicodeDecodeError:
            vid = ''
        video_ids.append(vid)
        if not keep[i]:
            continue
        if not vid or vid != vid.strip():
            bad.append(BadRecord(first_position + i, 'bad-video-id', f'video_id {raw!r} is empty or not text'))
            keep[i] = False
        elif frames_per_record[i] == 0:
            bad.append(BadRecord(first_position + i, 'no-frames', 'record has no audio_embedding frames'))
            keep[i] = False
    if keep.all() and len(frame_lengths):
        # Every frame is 128 bytes: let TensorFlow copy them into one uint8 array.
        frames = tf.io.decode_raw(frames_ragged.flat_values, tf.uint8).numpy()
    else:
        flat = frames_ragged.flat_values.numpy()[np.repeat(keep, frames_per_record)]
        frames = (np.frombuffer(b''.join(flat), np.uint8).reshape(-1, EMBEDDING_DIM) if len(flat)
                  else np.zeros((0, EMBEDDING_DIM), np.uint8))
    frame_offsets = np.zeros(int(keep.sum()) + 1, np.int64)
    np.cumsum(frames_per_record[keep], out=frame_offsets[1:])
    labels = ctx['labels']
    label_values, label_offsets = _select_ragged(
        labels.row_splits.numpy().astype(np.int64), labels.flat_values.numpy().astype(np.int64), keep)
    records = Records(
        position=np.arange(first_position, first_position + n, dtype=np.int64)[keep],
        video_id=[v for v, k in zip(video_ids, keep) if k],
        start_time=ctx['start_time_seconds'].numpy().astype(np.float64)[keep],
        end_time=ctx['end_time_seconds'].numpy().astype(np.float64)[keep],
        label_offsets=label_offsets,
        label_values=label_values,
        frame_offsets=frame_offsets,
        frames=frames)
    return records, bad


def _parse_or_bisect(payloads: Sequence[bytes], first: int) -> tuple[list[Records], list[BadRecord]]:
    tf = _tf()
    try:
        records, bad = _parse_chunk(payloads, first)
        return [records], bad
    except tf.errors.InvalidArgumentError as e:
        if len(payloads) == 1:
            message = (e.message or str(e)).strip().splitlines()[0]
            return [], [BadRecord(first, 'unparseable-record', f'not an AudioSet SequenceExample: {message}')]
    half = len(payloads) // 2
    left, left_bad = _parse_or_bisect(payloads[:half], first)
    right, right_bad = _parse_or_bisect(payloads[half:], first + half)
    return left + right, left_bad + right_bad


def parse_records(payloads: Sequence[bytes]) -> tuple[Records, list[BadRecord]]:
    """Parses serialized AudioSet SequenceExamples.

    Returns the good records as columns (``position`` says which input each came from) and one
    :class:`BadRecord` per input that is not a valid AudioSet record (unparseable, missing video_id or
    start time, frames not 128 bytes, no frames). A missing ``end_time_seconds`` becomes start + frames.
    """
    parts: list[Records] = []
    bad: list[BadRecord] = []
    for lo in range(0, len(payloads), CHUNK):
        got, got_bad = _parse_or_bisect(payloads[lo:lo + CHUNK], lo)
        parts.extend(got)
        bad.extend(got_bad)
    records = Records.concat(parts)
    missing_end = np.isnan(records.end_time)
    if missing_end.any():
        records.end_time[missing_end] = records.start_time[missing_end] + records.num_frames[missing_end]
    bad.sort(key=lambda b: b.position)
    return records, bad


def encode(video_id: str, start: float, end: float, labels: Sequence[int], frames: np.ndarray) -> bytes:
    """Serializes one record in the release schema (used to make fixtures and synthetic corpora)."""
    from tensorflow.core.example import example_pb2
    ex = example_pb2.SequenceExample()
    ctx = ex.context.feature
    ctx['video_id'].bytes_list.value.append(video_id.encode('utf-8'))
    ctx['start_time_seconds'].float_list.value.append(start)
    ctx['end_time_seconds'].float_list.value.append(end)
    ctx['labels'].int64_list.value.extend(int(x) for x in labels)
    feature_list = ex.feature_lists.feature_list['audio_embedding']
    for frame in np.asarray(frames, np.uint8).reshape(-1, EMBEDDING_DIM):
        feature_list.feature.add().bytes_list.value.append(frame.tobytes())
    return ex.SerializeToString()
