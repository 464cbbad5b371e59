"""Label parsed records: join with the segments CSV (CSV wins) and expand labels over the ontology.

Everything here works on whole columns (numpy, Arrow); nothing loops over records in Python, so the cost
per record stays in the microseconds at the full release's 2M records.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audioset_beam.schema import (CLIPS, EMBEDDING_DIM, FRAME_LABELS, LABELS_FROM_CSV, LABELS_FROM_SHARD,
                                  LABELS_NONE, SOURCE_COMPUTED, SOURCE_RELEASED, STRONG_EVENTS, UNLABELLED)
from transforms.core import deadletter, keys, stats
from transforms.core.deadletter import Stage
from transforms.core.ontology import Vocabulary
from transforms.core.segments_csv import SegmentIndex
from transforms.core.sequence_example import Records
from transforms.core.strong import COMPUTED_HOP, RELEASED_HOP, StrongIndex

# Columns the writer adds: ``is_primary`` (the explode by label) and ``sampling_weight`` (it needs the
# whole split's label counts, known only after CheckSegments).
WRITER_COLUMNS = ('is_primary', 'sampling_weight')
# The clips columns of a labelled segment, before the writer adds WRITER_COLUMNS.
SEGMENT_SCHEMA = pa.schema([f for f in CLIPS.schema if f.name not in WRITER_COLUMNS])
# Agreement of a record's own labels with its CSV row (``Labelled.agree``).
AGREE, DISAGREE, NOT_COMPARED = 1, 0, -1


@dataclasses.dataclass
class Labelled:
    segments: pa.Table       # SEGMENT_SCHEMA, one row per good record, in input order
    dead_letters: list[dict]
    stats: dict
    csv_row: np.ndarray      # int64 per segment: its row in the CSV table, -1 if none
    agree: np.ndarray        # int8 per segment: AGREE, DISAGREE or NOT_COMPARED
    # int64 per segment: its segment number in the strong index (-1: none, or no strong labels), and the
    # number of its strong events attached (the others started after its end).
    strong_row: np.ndarray | None = None
    strong_attached: np.ndarray | None = None
    # Strong events that could not be attached (not records: they never count against records in).
    strong_dead_letters: list = dataclasses.field(default_factory=list)


def embedding_array(frame_offsets: np.ndarray, frames: np.ndarray) -> pa.BinaryArray:
    """Ragged uint8 frames [total, 128] as one binary value per segment (its frames concatenated), without
    copying the frame bytes: ``np.frombuffer(value, np.uint8).reshape(-1, 128)`` gives them back."""
    frames = np.ascontiguousarray(frames, np.uint8)
    offsets = (np.asarray(frame_offsets, np.int64) * EMBEDDING_DIM).astype(np.int32)
    return pa.BinaryArray.from_buffers(pa.binary(), len(offsets) - 1,
                                       [None, pa.py_buffer(offsets), pa.py_buffer(frames)])


@dataclasses.dataclass(frozen=True)
class Computed:
    """Provenance of embeddings this project computed from audio (as opposed to Google's shards)."""
    model_fingerprint: str
    audio_sha256: Sequence[str]     # per input position
    keep_unlabelled: bool = False   # keep clips with no CSV row, labels [] (partition 'unlabelled')


def _set_hash(owner: np.ndarray, codes: np.ndarray, n: int, weights: np.ndarray) -> np.ndarray:
    """An order-free hash of each owner's set of codes (codes already unique within an owner)."""
    counts = np.bincount(owner, minlength=n)
    ends = np.cumsum(counts)
    with np.errstate(over='ignore'):
        cs = np.concatenate([[np.uint64(0)], np.cumsum(weights[codes], dtype=np.uint64)])
        return cs[ends] - cs[ends - counts]


def label_records(records: Records, split: str, sources: Sequence[str], source_index: np.ndarray,
                  record_index: np.ndarray, vocab: Vocabulary, index: SegmentIndex | None,
                  computed: Computed | None = None, byte_offset: np.ndarray | None = None,
                  dedupe: bool = False, strong: StrongIndex | None = None,
                  strong_split: str | None = None) -> Labelled:
    """Labels records of one split.

    ``sources[source_index[p]]``, ``record_index[p]`` (-1: unknown) and ``byte_offset[p]`` name the shard,
    record and byte of input position p (``records.position``). Labels come from the CSV row with the same
    (video_id, start ms) when there is one, else from the record's label indices (each index once).
    Dead-lettered: an out-of-range label index, a segment with no labels, and with ``dedupe`` a segment
    seen before in this batch (released records are checked over the whole split later, see
    ``check.check_split``). Guarantee: ``len(segments) + len(dead_letters) == len(records)``.
    With ``computed``, the records are embeddings of audio files: rows say so, segment stats go under
    'computed' and dead letters have stage 'label-audio'. With ``strong`` (the StrongIndex of the AudioSet
    Strong split ``strong_split`` this split belongs to), segments in it get ``strong_events`` and the
    per-frame columns (released frames 1 s apart, computed ones 0.96 s); the others get nulls.
    """
    n = len(records)
    class_mids = vocab.class_index.mids
    n_classes = len(class_mids)
    starts = keys.start_ms(records.start_time)
    video_ids = pa.array(records.video_id, pa.string())
    seg_ids = keys.segment_ids(video_ids, starts)
    csv_rows = index.lookup_keys(seg_ids) if index is not None and n else np.full(n, -1, np.int64)
    if index is not None and n:
        csv_rows, starts = _join_within_tolerance(index, video_ids, records.start_time, starts, csv_rows)
        seg_ids = keys.segment_ids(video_ids, starts)
    has_csv = csv_rows >= 0

    # The record's own labels: class indices, each once, in record order.
    values, offsets = records.label_values, records.label_offsets
    owner = np.repeat(np.arange(n), np.diff(offsets))
    in_range = (values >= 0) & (values < n_classes)
    bad_index = np.bincount(owner[~in_range], minlength=n) > 0
    first = keys.first_in_rows(owner, np.where(in_range, values, 0), n_classes) & in_range
    shard_owner, shard_codes = owner[first], values[first]
    shard_counts = np.bincount(shard_owner, minlength=n)
    reject = np.zeros(n, bool)
    reasons: dict[int, tuple[str, str]] = {}
    for i in np.flatnonzero(bad_index).tolist():
        lo, hi = offsets[i], offsets[i + 1]
        reasons[i] = ('unknown-label-index', f'label indices {values[lo:hi][~in_range[lo:hi]].tolist()} outside '
                                             f'the class index (0..{n_classes - 1})')
    reject |= bad_index
    unlabelled_ok = computed is not None and computed.keep_unlabelled
    no_labels = ~has_csv & (shard_counts == 0) & ~reject
    if not unlabelled_ok:
        for i in np.flatnonzero(no_labels).tolist():
            reasons[i] = ('no-labels', 'no segments CSV row for this segment' if computed else
                          'the record has no label indices and no segments CSV row')
        reject |= no_labels
    if dedupe:
        repeat = ~keys.first_occurrences(seg_ids) & ~reject
        for i in np.flatnonzero(repeat).tolist():
            reasons[i] = ('duplicate-segment', f'segment {records.video_id[i]} at {starts[i] / 1000:g} s '
                                               'already read')
        reject |= repeat
    keep = ~reject

    shard_lists = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(shard_counts)]).astype(np.int32)),
        pa.array(np.asarray(class_mids, object)[shard_codes] if len(shard_codes) else [], pa.string()))
    st: dict = {}
    agree = np.full(n, NOT_COMPARED, np.int8)
    if index is not None and n:
        csv_table = index.table
        safe_rows = pa.array(np.where(has_csv, csv_rows, 0))
        csv_labels = csv_table['labels'].take(safe_rows).combine_chunks() if len(csv_table) else \
            pa.nulls(n, pa.list_(pa.string()))
        labels = pc.if_else(pa.array(has_csv), csv_labels, shard_lists)
        start_out = np.where(has_csv, csv_table['start_time_seconds'].take(safe_rows).to_numpy()
                             if len(csv_table) else 0.0, starts / 1000.0)
        end_out = np.where(has_csv, csv_table['end_time_seconds'].take(safe_rows).to_numpy()
                           if len(csv_table) else 0.0, records.end_time)
        if not computed:
            agree = _agreement(vocab, csv_labels, has_csv, shard_owner, shard_codes, n)
            for i in np.flatnonzero((agree == DISAGREE) & keep)[:stats.MAX_EXAMPLES].tolist():
                examples = st.setdefault('label_disagreements', [])
                examples.append({'split': split, 'video_id': records.video_id[i], 'start_ms': int(starts[i]),
                                 'csv': csv_labels[i].as_py(), 'shard': shard_lists[i].as_py()})
    else:
        labels = shard_lists
        start_out, end_out = starts / 1000.0, records.end_time
    label_source = np.where(has_csv, LABELS_FROM_CSV, np.where(shard_counts > 0, LABELS_FROM_SHARD, LABELS_NONE))

    bad = []
    for i, (reason, error) in sorted(reasons.items()):
        pos = int(records.position[i])
        rec = int(record_index[pos]) if not computed and record_index[pos] >= 0 else None
        off = int(byte_offset[pos]) if byte_offset is not None and byte_offset[pos] >= 0 else None
        bad.append(deadletter.dead_letter(
            Stage.LABEL_AUDIO if computed else Stage.LABEL_RECORD, reason, sources[source_index[pos]],
            error, record_index=rec, byte_offset=off, split=split, video_id=records.video_id[i],
            start_time_seconds=starts[i] / 1000.0, records=1))

    kept = records.select(keep) if not keep.all() else records
    keep_arr = pa.array(keep)
    labels = labels.filter(keep_arr)
    expanded = expand_labels(vocab, labels)
    names = _Names(vocab)
    kept_pos = kept.position
    nk = len(kept)
    src = pa.array(list(sources), pa.string()).take(pa.array(np.asarray(source_index)[kept_pos]))
    if computed:
        source_record = pa.nulls(nk, pa.int64())
        source_offset = pa.nulls(nk, pa.int64())
    else:
        rec = np.asarray(record_index)[kept_pos]
        source_record = pa.array(rec, mask=rec < 0)
        off = np.asarray(byte_offset)[kept_pos] if byte_offset is not None else np.full(nk, -1)
        source_offset = pa.array(off.astype(np.int64), mask=off < 0)
    segments = pa.table({
        'segment_id': seg_ids.filter(keep_arr),
        'video_id': video_ids.filter(keep_arr),
        'start_time_seconds': pa.array(np.asarray(start_out, np.float64)[keep]),
        'end_time_seconds': pa.array(np.asarray(end_out, np.float64)[keep]),
        'labels': labels,
        'label_names': names.of(labels),
        'label_indices': label_indices(vocab, labels),
        'labels_with_ancestors': expanded,
        'labels_with_ancestors_names': names.of(expanded),
        'label_source': pa.array(label_source[keep], pa.string()),
        'num_frames': pa.array(kept.num_frames.astype(np.int32)),
        'embedding': embedding_array(kept.frame_offsets, kept.frames),
        'embedding_source': pa.array(np.full(nk, SOURCE_COMPUTED if computed else SOURCE_RELEASED, object),
                                     pa.string()),
        'model_fingerprint': (pa.array([computed.model_fingerprint] * nk, pa.string()) if computed
                              else pa.nulls(nk, pa.string())),
        'audio_sha256': (pa.array([computed.audio_sha256[p] for p in kept_pos.tolist()], pa.string())
                         if computed else pa.nulls(nk, pa.string())),
        'source_file': src,
        'source_record': source_record,
        'source_offset': source_offset,
        **_strong_columns(nk, None),
    }, schema=SEGMENT_SCHEMA)
    strong_row, strong_dead, strong_attached = np.full(nk, -1, np.int64), [], np.zeros(nk, np.int64)
    if strong is not None and nk:
        seg = segments['segment_id'].combine_chunks()
        durations = (segments['end_time_seconds'].to_numpy() - segments['start_time_seconds'].to_numpy())
        att = strong.attach(seg, np.maximum(durations, 0.0), kept.num_frames.astype(np.int64),
                            COMPUTED_HOP if computed else RELEASED_HOP)
        for name, values in _strong_columns(nk, att).items():
            segments = segments.set_column(segments.schema.get_field_index(name), name, values)
        strong_row, strong_dead = att.segment_rows, att.dead_letters
        strong_attached = pc.fill_null(pc.list_value_length(att.strong_events), 0).to_numpy(
            zero_copy_only=False).astype(np.int64)
        root = ('computed', split) if computed else ('splits', split)
        stats.bump(st, *root, 'strong_segments', int((strong_row >= 0).sum()))
        stats.bump(st, 'strong', strong_split or split, 'events_clipped', att.events_clipped)
    if computed:
        segment_stats(st, split, vocab, *to_codes(vocab, segments['labels']),
                      segments['label_source'].combine_chunks(), segments['num_frames'].to_numpy(), 'computed')
    return Labelled(segments, bad, st, csv_rows[keep], agree[keep], strong_row, strong_attached, strong_dead)


def _strong_columns(n: int, att) -> dict:
    """The AudioSet Strong columns of SEGMENT_SCHEMA: nulls without ``att`` (a strong.Attached)."""
    if att is None:
        return {'strong_events': pa.nulls(n, STRONG_EVENTS), 'frame_labels': pa.nulls(n, FRAME_LABELS),
                'frame_positives_official': pa.nulls(n, FRAME_LABELS),
                'frame_negatives': pa.nulls(n, FRAME_LABELS)}
    return {'strong_events': att.strong_events, 'frame_labels': att.frame_labels,
            'frame_positives_official': att.frame_positives_official, 'frame_negatives': att.frame_negatives}


JOIN_TOLERANCE_SECONDS = 0.001


def _join_within_tolerance(index: SegmentIndex, video_ids: pa.Array, start_seconds: np.ndarray,
                           starts_ms: np.ndarray, csv_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A record whose start is within 1 ms of a CSV row's start (the CSVs' precision) joins that row, even
    where rounding to the millisecond put them on different keys (30.0006 s vs 30.000); the segment then
    takes the CSV's start. Two segments of one video never start within 1 ms of each other, so this can
    never pick the wrong row."""
    missing = np.flatnonzero(csv_rows < 0)
    if not len(missing):
        return csv_rows, starts_ms
    csv_rows, starts_ms = csv_rows.copy(), starts_ms.copy()
    seconds = np.asarray(start_seconds, np.float64)[missing]
    ids = video_ids.take(pa.array(missing))
    for candidate in (np.floor(seconds * 1000.0), np.ceil(seconds * 1000.0)):
        candidate = candidate.astype(np.int64)
        rows = index.lookup_keys(keys.segment_ids(ids, candidate))
        ok = (rows >= 0) & (csv_rows[missing] < 0) & (np.abs(candidate / 1000.0 - seconds) < JOIN_TOLERANCE_SECONDS)
        csv_rows[missing[ok]] = rows[ok]
        starts_ms[missing[ok]] = candidate[ok]
    return csv_rows, starts_ms


def _agreement(vocab: Vocabulary, csv_labels: pa.ListArray, has_csv: np.ndarray, shard_owner: np.ndarray,
               shard_codes: np.ndarray, n: int) -> np.ndarray:
    """AGREE where the CSV row's label set equals the record's own, DISAGREE where not, per record.
    (Class indices are also ``Vocabulary.all_mids`` codes: the class index comes first there.)"""
    k = len(vocab.all_mids)
    weights = np.random.default_rng(20170305).integers(1, 2**63, k, dtype=np.uint64)
    offsets, csv_codes = to_codes(vocab, csv_labels)
    csv_owner = np.repeat(np.arange(n), np.diff(offsets))
    first = keys.first_in_rows(csv_owner, csv_codes, k)
    csv_hash = _set_hash(csv_owner[first], csv_codes[first], n, weights)
    shard_hash = _set_hash(shard_owner, shard_codes, n, weights)
    return np.where(has_csv, np.where(csv_hash == shard_hash, AGREE, DISAGREE), NOT_COMPARED).astype(np.int8)


def expand_codes(vocab: Vocabulary, offsets: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ragged label codes (``Vocabulary.all_mids`` positions) -> ragged codes with ancestors: each row's
    labels in their order, then each ancestor not already listed, in ontology order. Column-wise: one
    sorted key per (row, ancestor), no Python per row."""
    anc_offsets, anc_codes, rank = _ancestor_table(vocab)
    by_rank = np.argsort(rank, kind='stable')
    n, k = len(offsets) - 1, len(rank)
    owner = np.repeat(np.arange(n), np.diff(offsets))
    per_label = anc_offsets[codes + 1] - anc_offsets[codes]
    pair_owner = np.repeat(owner, per_label)
    first = np.repeat(anc_offsets[codes] - (np.cumsum(per_label) - per_label), per_label)
    pair_code = anc_codes[first + np.arange(len(first))] if len(first) else np.zeros(0, np.int64)
    # Keys (row, ontology rank): sorting them orders each row's ancestors; own labels and repeats go.
    key = np.sort(pair_owner * k + rank[pair_code])
    own = np.sort(owner * k + rank[codes])
    if len(own) and len(key):
        at = np.minimum(np.searchsorted(own, key), len(own) - 1)
        key = key[own[at] != key]
    if len(key):
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    a_owner, a_code = key // k, by_rank[key % k]
    n_labels, n_anc = np.diff(offsets), np.bincount(a_owner, minlength=n)
    out_offsets = np.zeros(n + 1, np.int64)
    np.cumsum(n_labels + n_anc, out=out_offsets[1:])
    out = np.empty(int(out_offsets[-1]), np.int64)
    out[np.repeat(out_offsets[:-1] - offsets[:-1], n_labels) + np.arange(len(codes))] = codes
    anc_start = np.concatenate([[0], np.cumsum(n_anc)[:-1]]).astype(np.int64)
    out[np.repeat(out_offsets[:-1] + n_labels - anc_start, n_anc) + np.arange(len(a_code))] = a_code
    return out_offsets, out


def _ancestor_table(vocab: Vocabulary):
    """Per code: its ancestors' codes (CSR) and its rank in ontology order (cached on the vocabulary)."""
    cached = vocab.__dict__.get('_ancestor_table')
    if cached is None:
        code = {m: i for i, m in enumerate(vocab.all_mids)}
        order = vocab.ontology.order
        lists = [[code[a] for a in vocab.ontology.ancestors.get(m, ()) if a in code] for m in vocab.all_mids]
        anc_offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
        anc_codes = np.asarray([c for x in lists for c in x], np.int64)
        rank = np.asarray([order.get(m, len(order) + i) for i, m in enumerate(vocab.all_mids)], np.int64)
        cached = vocab.__dict__['_ancestor_table'] = (anc_offsets, anc_codes, rank)
    return cached


def to_codes(vocab: Vocabulary, labels: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
    """A list<string> MID column -> (row offsets, int64 codes into ``Vocabulary.all_mids``). Every MID here
    was checked against the vocabulary on the way in."""
    labels = labels.combine_chunks() if isinstance(labels, pa.ChunkedArray) else labels
    lengths = pc.fill_null(pc.list_value_length(labels), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.zeros(len(labels) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = pc.index_in(pc.list_flatten(labels), value_set=pa.array(vocab.all_mids, pa.string()))
    return offsets, codes.to_numpy(zero_copy_only=False).astype(np.int64)


def label_indices(vocab: Vocabulary, labels: pa.ListArray) -> pa.ListArray:
    """Each label's index in the class index (list<int32>, aligned with ``labels``; null for a MID outside
    it). Codes below the class count are the index itself (``Vocabulary.all_mids``)."""
    labels = labels.combine_chunks() if isinstance(labels, pa.ChunkedArray) else labels
    offsets, codes = to_codes(vocab, labels)
    n_classes = len(vocab.class_index)
    values = pa.array(codes.astype(np.int32), mask=codes >= n_classes)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


def from_codes(vocab: Vocabulary, offsets: np.ndarray, codes: np.ndarray) -> pa.ListArray:
    mids = pa.array(vocab.all_mids, pa.string()).take(pa.array(codes))
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), mids)


def expand_labels(vocab: Vocabulary, labels: pa.ListArray) -> pa.ListArray:
    """``labels_with_ancestors`` for each label list (see ``expand_codes``)."""
    if len(labels) == 0:
        return pa.array([], pa.list_(pa.string()))
    return from_codes(vocab, *expand_codes(vocab, *to_codes(vocab, labels)))


class _Names:
    """Display names for list<string> MID columns, mapped in Arrow rather than per element in Python."""

    def __init__(self, vocab: Vocabulary):
        self.mids = pa.array(list(vocab.names), pa.string())
        self.names = pa.array(list(vocab.names.values()), pa.string())

    def of(self, mids: pa.ListArray) -> pa.ListArray:
        if isinstance(mids, pa.ChunkedArray):
            mids = mids.combine_chunks()
        found = pc.index_in(mids.values, value_set=self.mids)
        names = pc.fill_null(self.names.take(found), '')
        return pa.ListArray.from_arrays(mids.offsets, names)


def segment_stats(st: dict, split: str, vocab: Vocabulary, offsets: np.ndarray, codes: np.ndarray,
                  label_source: pa.Array, num_frames: np.ndarray, root: str = 'splits') -> None:
    """Per-split counts of segments, label sources, frames and classes (direct and with ancestors), from
    label codes (``to_codes``): no string per segment, and ancestors expanded a slice of rows at a time.

    ``positive`` counts segment-label pairs (a clip without labels counts once, under ``unlabelled``): the
    number of clips rows the split must get.
    """
    n = len(offsets) - 1
    stats.bump(st, root, split, 'segments_out', n)
    if not n:
        return
    sources = pc.value_counts(pc.cast(label_source, pa.string()))
    for src, c in zip(sources.field('values').to_pylist(), sources.field('counts').to_pylist()):
        stats.bump(st, root, split, 'label_source', src, c)
    for k, c in zip(*np.unique(num_frames, return_counts=True)):
        stats.bump(st, root, split, 'num_frames', str(int(k)), int(c))
    unlabelled = int((np.diff(offsets) == 0).sum())
    if unlabelled:
        stats.bump(st, 'positive', split, UNLABELLED, unlabelled)
    positive = np.bincount(codes, minlength=len(vocab.all_mids))
    with_ancestors = np.zeros(len(vocab.all_mids), np.int64)
    step = 1 << 18  # rows at a time: a segment's (label, ancestor) pairs take ~100 bytes while expanded
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        _, expanded = expand_codes(vocab, offsets[lo:hi + 1] - offsets[lo], codes[offsets[lo]:offsets[hi]])
        with_ancestors += np.bincount(expanded, minlength=len(vocab.all_mids))
    for name, counts in (('positive', positive), ('with_ancestors', with_ancestors)):
        target = st.setdefault(name, {}).setdefault(split, {})
        for code in np.flatnonzero(counts).tolist():
            mid = vocab.all_mids[code]
            target[mid] = target.get(mid, 0) + int(counts[code])
