"""Label parsed records: join with the segments CSV (CSV wins) and expand labels over the ontology."""
from __future__ import annotations

import collections
import dataclasses
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.core import deadletter, stats
from transforms.core.layout import segment_id
from transforms.core.ontology import Vocabulary
from transforms.core.schema import (CLIPS, FRAME_TYPE, LABELS_FROM_CSV, LABELS_FROM_SHARD, LABELS_NONE,
                                    SOURCE_COMPUTED, SOURCE_RELEASED, UNLABELLED)
from transforms.core.segments_csv import SegmentIndex
from transforms.core.sequence_example import Records

# The clips columns before the explode by label adds ``is_primary``.
SEGMENT_SCHEMA = pa.schema([f for f in CLIPS.schema if f.name != 'is_primary'])


@dataclasses.dataclass
class Labelled:
    segments: pa.Table       # SEGMENT_SCHEMA, one row per good record, in input order
    dead_letters: list[dict]
    stats: dict


def embedding_array(frame_offsets: np.ndarray, frames: np.ndarray) -> pa.ListArray:
    """Ragged uint8 frames [total, 128] as list<binary(128)>, without copying the frame bytes."""
    frames = np.ascontiguousarray(frames, np.uint8)
    values = pa.FixedSizeBinaryArray.from_buffers(FRAME_TYPE, len(frames), [None, pa.py_buffer(frames)])
    return pa.ListArray.from_arrays(pa.array(frame_offsets.astype(np.int32)), values)


@dataclasses.dataclass(frozen=True)
class Computed:
    """Provenance of embeddings this project computed from audio (as opposed to Google's shards)."""
    model_fingerprint: str
    audio_sha256: Sequence[str]     # per input position
    keep_unlabelled: bool = False   # keep clips with no CSV row, labels [] (partition 'unlabelled')


def label_records(records: Records, split: str, sources: Sequence[str], source_index: np.ndarray,
                  record_index: np.ndarray, vocab: Vocabulary, index: SegmentIndex | None,
                  computed: Computed | None = None) -> Labelled:
    """Labels records of one split.

    ``sources[source_index[p]]`` and ``record_index[p]`` name the shard and record of input position p
    (``records.position``). Labels come from the CSV row with the same (video_id, start ms) when there is
    one, else from the record's label indices. Dead-lettered: an out-of-range label index, a segment
    seen twice, a segment with no labels. Guarantee: ``len(segments) + len(dead_letters) == len(records)``.
    With ``computed``, the records are embeddings of audio files: rows say so, stats go under 'computed'
    and dead letters have stage 'label-audio'.
    """
    stats_root = 'computed' if computed else 'splits'
    n = len(records)
    class_mids = vocab.class_index.mids
    n_classes = len(class_mids)
    starts = np.round(records.start_time * 1000).astype(np.int64)
    if index is not None:
        csv_rows, csv_slice = index.lookup(records.video_id, starts)
        csv_labels = csv_slice['labels'].to_pylist()
        csv_start = csv_slice['start_time_seconds'].to_pylist()
        csv_end = csv_slice['end_time_seconds'].to_pylist()
    else:
        csv_rows = np.full(n, -1, np.int64)
    st: dict = {}
    bad: list[dict] = []
    keep = np.zeros(n, bool)
    out_labels, out_start, out_end, out_label_source = [], [], [], []
    seen: set[tuple[str, int]] = set()
    agree = disagree = 0
    lo_hi = records.label_offsets
    values = records.label_values
    in_range = (values >= 0) & (values < n_classes)
    owner = np.repeat(np.arange(n), np.diff(lo_hi))
    has_bad_index = np.bincount(owner[~in_range], minlength=n) > 0
    # Plain lists: the loop below is per record, and numpy scalar access costs more than the work.
    flat_mids = np.asarray(class_mids, dtype=object)[np.where(in_range, values, 0)].tolist()
    offsets = lo_hi.tolist()
    starts_ms = starts.tolist()
    bad_index = has_bad_index.tolist()
    rows_of = csv_rows.tolist()
    end_times = records.end_time.tolist()

    def reject(i: int, reason: str, error: str) -> None:
        pos = int(records.position[i])
        bad.append(deadletter.dead_letter(
            deadletter.LABEL_AUDIO if computed else deadletter.LABEL_RECORD, reason, sources[source_index[pos]],
            error, record_index=None if computed else int(record_index[pos]), split=split,
            video_id=records.video_id[i], start_time_seconds=starts_ms[i] / 1000.0))

    for i, vid in enumerate(records.video_id):
        lo, hi = offsets[i], offsets[i + 1]
        if bad_index[i]:
            reject(i, 'unknown-label-index', f'label indices {values[lo:hi][~in_range[lo:hi]].tolist()} '
                                             f'outside the class index (0..{n_classes - 1})')
            continue
        key = (vid, starts_ms[i])
        if key in seen:
            reject(i, 'duplicate-segment', f'segment {vid} at {starts_ms[i] / 1000:g} s already read')
            continue
        shard_labels = tuple(flat_mids[lo:hi])
        row = rows_of[i]
        if row >= 0:
            labels = tuple(csv_labels[row])
            if computed:
                pass  # audio has no labels of its own to compare with
            elif frozenset(labels) == frozenset(shard_labels):
                agree += 1
            else:
                disagree += 1
                examples = st.setdefault('label_disagreements', [])
                if len(examples) < stats.MAX_EXAMPLES:
                    examples.append({'split': split, 'video_id': vid, 'start_ms': key[1], 'csv': list(labels),
                                     'shard': list(shard_labels)})
            out_start.append(csv_start[row])
            out_end.append(csv_end[row])
            out_label_source.append(LABELS_FROM_CSV)
        else:
            if not shard_labels and not (computed and computed.keep_unlabelled):
                reject(i, 'no-labels', 'no segments CSV row for this segment' if computed else
                       'the record has no label indices and no segments CSV row')
                continue
            labels = shard_labels
            out_start.append(key[1] / 1000.0)
            out_end.append(end_times[i])
            out_label_source.append(LABELS_FROM_SHARD if labels else LABELS_NONE)
        seen.add(key)
        keep[i] = True
        out_labels.append(labels)
    kept = records.select(keep) if not keep.all() else records
    expanded = [vocab.expand(ls) for ls in out_labels]
    names = _Names(vocab)
    labels_array = pa.array(out_labels, pa.list_(pa.string()))
    expanded_array = pa.array(expanded, pa.list_(pa.string()))
    kept_pos = kept.position
    segments = pa.table({
        'segment_id': pa.array([segment_id(v, s) for v, s in zip(kept.video_id, starts[keep].tolist())],
                               pa.string()),
        'video_id': pa.array(kept.video_id, pa.string()),
        'start_time_seconds': pa.array(out_start, pa.float64()),
        'end_time_seconds': pa.array(out_end, pa.float64()),
        'labels': labels_array,
        'label_names': names.of(labels_array),
        'labels_with_ancestors': expanded_array,
        'labels_with_ancestors_names': names.of(expanded_array),
        'label_source': pa.array(out_label_source, pa.string()),
        'num_frames': pa.array(kept.num_frames.astype(np.int32)),
        'embedding': embedding_array(kept.frame_offsets, kept.frames),
        'embedding_source': pa.array([SOURCE_COMPUTED if computed else SOURCE_RELEASED] * len(kept), pa.string()),
        'model_fingerprint': (pa.array([computed.model_fingerprint] * len(kept), pa.string()) if computed
                              else pa.nulls(len(kept), pa.string())),
        'audio_sha256': (pa.array([computed.audio_sha256[p] for p in kept_pos.tolist()], pa.string())
                         if computed else pa.nulls(len(kept), pa.string())),
        'source_file': pa.array([sources[j] for j in source_index[kept_pos]], pa.string()),
        'source_record': (pa.nulls(len(kept), pa.int64()) if computed
                          else pa.array(record_index[kept_pos].astype(np.int64))),
    }, schema=SEGMENT_SCHEMA)
    if index is not None and not computed:
        stats.bump(st, stats_root, split, 'labels_agree', agree)
        stats.bump(st, stats_root, split, 'labels_disagree', disagree)
    segment_stats(st, split, labels_array, expanded_array, out_label_source, kept.num_frames, stats_root)
    return Labelled(segments, bad, st)


class _Names:
    """Display names for list<string> MID columns, mapped in Arrow rather than per element in Python."""

    def __init__(self, vocab: Vocabulary):
        self.mids = pa.array(list(vocab.names), pa.string())
        self.names = pa.array(list(vocab.names.values()), pa.string())

    def of(self, mids: pa.ListArray) -> pa.ListArray:
        found = pc.index_in(mids.values, value_set=self.mids)
        names = pc.fill_null(self.names.take(found), '')
        return pa.ListArray.from_arrays(mids.offsets, names)


def segment_stats(st: dict, split: str, labels: pa.ListArray, expanded: pa.ListArray, label_source: list[str],
                  num_frames: np.ndarray, root: str = 'splits') -> None:
    """Per-split counts of segments, label sources, frames and classes (direct and with ancestors).

    ``positive`` counts segment-label pairs of both sources (a clip without labels counts once, under
    ``unlabelled``): the number of clips rows the split must get.
    """
    stats.bump(st, root, split, 'segments_out', len(labels))
    for src, c in collections.Counter(label_source).items():
        stats.bump(st, root, split, 'label_source', src, c)
    for k, c in zip(*np.unique(np.asarray(num_frames), return_counts=True)):
        stats.bump(st, root, split, 'num_frames', str(int(k)), int(c))
    unlabelled = int((pc.list_value_length(labels).to_numpy(zero_copy_only=False) == 0).sum()) if len(labels) else 0
    if unlabelled:
        stats.bump(st, 'positive', split, UNLABELLED, unlabelled)
    for name, mids in (('positive', labels), ('with_ancestors', expanded)):
        counts = pc.value_counts(pc.list_flatten(mids))
        target = st.setdefault(name, {}).setdefault(split, {})
        for mid, c in zip(counts.field('values').to_pylist(), counts.field('counts').to_pylist()):
            target[mid] = target.get(mid, 0) + c
