"""Checks over whole splits, on keys and labels only: uniqueness, counts, missing features, leakage.

These are properties of the dataset, not of a batch: they are computed here once over every shard group
of a split, so no batching or sharding knob can change them.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audioset_beam.reading import WEIGHT_EPSILON, WEIGHT_SCALE
from audioset_beam.schema import MISSING_FEATURES, MISSING_STRONG, SOURCE_RELEASED, STRONG_SPLITS
from transforms.core import deadletter, keys, stats
from transforms.core.deadletter import Stage
from transforms.core.join import AGREE, DISAGREE, segment_stats
from transforms.core.ontology import Vocabulary


@dataclasses.dataclass
class WritePlan:
    """What the writer needs from the whole-split checks: the rows to leave out, and each split's label
    counts over its built segments (for ``sampling_weight``)."""
    drops: dict = dataclasses.field(default_factory=dict)         # (split, group_id) -> int32 rows
    label_counts: dict = dataclasses.field(default_factory=dict)  # split -> int64 [classes]

    def weights(self, split: str, label_indices: pa.ListArray) -> pa.Array:
        """AST/PSLA sampling weight of each row: sum over its labels of WEIGHT_SCALE / (count + WEIGHT_EPSILON)
        (1000 / (count + 0.01), as the reader's class weights: audioset_beam.reading); null for a row without
        labels in the class index."""
        counts = self.label_counts.get(split)
        label_indices = label_indices.combine_chunks() if isinstance(label_indices, pa.ChunkedArray) \
            else label_indices
        n = len(label_indices)
        if counts is None or not n:
            return pa.nulls(n, pa.float64())
        flat = pc.list_flatten(label_indices)
        owner = pc.list_parent_indices(label_indices).to_numpy(zero_copy_only=False)
        valid = pc.is_valid(flat).to_numpy(zero_copy_only=False)
        idx = pc.fill_null(flat, 0).to_numpy(zero_copy_only=False)[valid]
        per_label = WEIGHT_SCALE / (np.asarray(counts, np.float64)[idx] + WEIGHT_EPSILON)
        # Summed in label order per row (bincount adds its weights sequentially, in input order): the same
        # float result whichever partition or batch the row is written in.
        total = np.bincount(owner[valid], weights=per_label, minlength=n).astype(np.float64, copy=False)  # int64 when empty
        has = np.bincount(owner[valid], minlength=n) > 0
        return pa.array(total, mask=~has)


@dataclasses.dataclass
class Checked:
    drops: dict            # (split, group_id) -> int32 rows of that group's batch to leave out
    dead_letters: list[dict]
    stats: dict
    missing: dict          # split -> MISSING_FEATURES table (CSV rows with no embedding)
    label_counts: dict = dataclasses.field(default_factory=dict)  # split -> int64 [classes], built segments
    missing_strong: dict = dataclasses.field(default_factory=dict)  # strong split -> MISSING_STRONG table

    @property
    def plan(self) -> WritePlan:
        return WritePlan(self.drops, self.label_counts)


def _concat(batches) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Batches (objects with group_id and table) in group order, as one table + group id and row per row."""
    batches = sorted(batches, key=lambda b: b.group_id)
    if not batches:
        return None, np.zeros(0, np.int64), np.zeros(0, np.int32)
    table = pa.concat_tables([b.table for b in batches])
    group = np.concatenate([np.full(b.table.num_rows, b.group_id, np.int64) for b in batches])
    rows = np.concatenate([np.arange(b.table.num_rows, dtype=np.int32) for b in batches])
    return table, group, rows


def check_splits(batches, csvs: dict, vocab: Vocabulary, strong: dict | None = None) -> Checked:
    """``batches``: KeyBatch-like objects (split, group_id, embedding_source, table with the KeyBatch
    columns); ``csvs``: split -> SegmentIndex (its ``table`` and ``source``); ``strong``: AudioSet Strong
    split -> StrongIndex (see ``strong_coverage``).

    Released segments must be unique within their split: the first occurrence in (group, record) order is
    kept and every later one becomes a ``duplicate-segment`` dead letter naming both places. Segment stats
    (segments out, label and ancestor counts, label sources, frames, CSV agreement) are counted over the
    kept segments. A CSV row matched by no kept segment, released or computed, is a missing feature.
    """
    out = Checked({}, [], {}, {})
    splits = sorted({b.split for b in batches} | set(csvs))
    matched: dict[str, list[np.ndarray]] = {s: [] for s in splits}
    built: dict[str, list] = {s: [] for s in splits}  # label codes of each built segment, once per segment
    kept_ids: dict[str, pa.Array] = {}
    for split in splits:
        released = [b for b in batches if b.split == split and b.embedding_source == SOURCE_RELEASED]
        computed = [b for b in batches if b.split == split and b.embedding_source != SOURCE_RELEASED]
        for b in computed:
            matched[split].append(b.table['csv_row'].to_numpy())
        table, group, rows = _concat(released)
        if table is None:
            _built_computed(built[split], computed, None)
            continue
        ids = table['segment_id'].combine_chunks()
        first = keys.first_occurrences(ids)
        if not first.all():
            _duplicates(out, split, table, ids, first, group, rows)
        kept = table.filter(pa.array(first)) if not first.all() else table
        kept_ids[split] = ids.filter(pa.array(first))
        built[split].append((kept['labels'], kept['num_frames']))
        matched[split].append(kept['csv_row'].to_numpy())
        labels = kept['labels'].combine_chunks()
        offsets = np.frombuffer(labels.offsets.buffers()[1], np.int32, len(labels) + 1,
                                labels.offset).astype(np.int64)
        segment_stats(out.stats, split, vocab, offsets - offsets[0],
                      pc.list_flatten(labels).to_numpy(zero_copy_only=False).astype(np.int64),
                      kept['label_source'].combine_chunks(), kept['num_frames'].to_numpy())
        _built_computed(built[split], computed, kept_ids[split])
        agree = kept['agree'].to_numpy()
        if split in csvs:
            stats.bump(out.stats, 'splits', split, 'labels_agree', int((agree == AGREE).sum()))
            stats.bump(out.stats, 'splits', split, 'labels_disagree', int((agree == DISAGREE).sum()))
    for split, index in csvs.items():
        out.missing[split] = missing_features(index.table, matched[split], index.source)
        stats.bump(out.stats, 'csv', split, 'rows_missing_features', out.missing[split].num_rows)
        stats.bump(out.stats, 'csv', split, 'rows_matched', len(index) - out.missing[split].num_rows)
    _leakage(out, kept_ids)
    for strong_split, index in sorted((strong or {}).items()):
        strong_coverage(out, strong_split, index, [b for b in batches if b.split in STRONG_SPLITS[strong_split]])
    for split in splits:
        if built[split]:
            labels = pa.chunked_array([c for lab, _ in built[split] for c in _chunks(lab)],
                                      pa.list_(pa.int16())).combine_chunks()
            frames = np.concatenate([np.asarray(f, np.int64) for _, f in built[split]])
            out.label_counts[split] = _distributions(out.stats, split, labels, frames, vocab)
    return out


def strong_coverage(out: Checked, strong_split: str, index, batches) -> None:
    """Over a whole AudioSet Strong split: how many of its segments and events some built segment (released
    or computed, of any split that belongs to it) took, and the table of those none did (missing_strong/)."""
    tables = [b.table.select(['segment_id', 'strong_row', 'strong_attached']) for b in batches
              if 'strong_attached' in b.table.column_names]
    if tables:
        t = pa.concat_tables(tables)
        joined = t['strong_row'].to_numpy().astype(np.int64)
        # Events attached, once per segment: a segment read twice (a duplicate record, or a computed twin of
        # a released one) attached the same events twice.
        once = keys.first_occurrences(t['segment_id'].combine_chunks()) & (joined >= 0)
        attached = int(t['strong_attached'].to_numpy()[once].sum())
    else:
        joined, attached = np.zeros(0, np.int64), 0
    cov = index.coverage(joined[joined >= 0])
    u = cov.unjoined
    out.missing_strong[strong_split] = pa.table({
        'segment_id': u['segment_id'], 'video_id': u['video_id'],
        'start_time_seconds': pc.divide(pc.cast(u['start_ms'], pa.float64()), 1000.0),
        'events': pc.cast(u['events'], pa.int64()),
        'strong_file': pa.array([index.source] * u.num_rows, pa.string()),
        'line_number': pc.cast(u['line_number'], pa.int64())}, schema=MISSING_STRONG.schema)
    s = out.stats.setdefault('strong', {}).setdefault(strong_split, {})
    s.update(file=index.source, segments=cov.segments, events=cov.events, segments_joined=cov.segments_joined,
             events_joined=cov.events_joined, segments_missing=cov.segments - cov.segments_joined,
             events_attached=attached, events_after_segment_end=cov.events_joined - attached)


def _built_computed(built: list, computed, released_ids) -> None:
    """Adds the labels of computed segments to a split's built segments, once each: a segment that also
    has a released embedding is counted once."""
    for b in computed:
        table = b.table
        if released_ids is not None and len(released_ids):
            table = table.filter(pc.invert(pc.is_in(table['segment_id'], value_set=released_ids)))
        built.append((table['labels'], table['num_frames']))


def _chunks(arr) -> list:
    return arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]


TOP_PAIRS = 20


def _distributions(st: dict, split: str, labels: pa.ListArray, frames: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """Counts over a split's built segments (int16 label codes): per class (for sampling weights), labels
    per segment, and the most frequent pairs of labels (manifest ``distributions``)."""
    offsets = np.frombuffer(labels.offsets.buffers()[1], np.int32, len(labels) + 1, labels.offset).astype(np.int64)
    offsets -= offsets[0]
    codes = pc.list_flatten(labels).to_numpy(zero_copy_only=False).astype(np.int64)
    n_classes = len(vocab.class_index)
    counts = np.bincount(codes[codes < n_classes], minlength=n_classes)[:n_classes]
    lengths = np.diff(offsets)
    dist = st.setdefault('distributions', {}).setdefault(split, {})
    for name, values in (('labels_per_segment', lengths), ('frames_per_segment', frames)):
        hist = dist.setdefault(name, {})
        for k, c in zip(*np.unique(values, return_counts=True)):
            hist[str(int(k))] = hist.get(str(int(k)), 0) + int(c)
    pair_keys = []
    width = int(codes.max()) + 1 if len(codes) else 1
    for j in range(1, int(lengths.max()) if len(lengths) else 0):
        rows = np.flatnonzero(lengths > j)
        b = codes[offsets[rows] + j]
        for i in range(j):
            a = codes[offsets[rows] + i]
            pair_keys.append(np.minimum(a, b) * width + np.maximum(a, b))
    if pair_keys:
        uniq, c = np.unique(np.concatenate(pair_keys), return_counts=True)
        top = np.lexsort((uniq, -c))[:TOP_PAIRS]
        mids = vocab.all_mids
        dist['top_label_pairs'] = [[mids[uniq[t] // width], mids[uniq[t] % width], int(c[t])] for t in top]
    return counts


def _duplicates(out: Checked, split: str, table: pa.Table, ids: pa.Array, first: np.ndarray,
                group: np.ndarray, rows: np.ndarray) -> None:
    dup = np.flatnonzero(~first)
    for g in np.unique(group[dup]).tolist():
        out.drops[(split, g)] = rows[dup][group[dup] == g].astype(np.int32)
    id_list = ids.to_pylist()
    first_of = {}
    for i in np.flatnonzero(first).tolist():
        first_of.setdefault(id_list[i], i)
    cols = {c: table[c].to_pylist() for c in ('source_file', 'source_record', 'source_offset')}
    for i in dup.tolist():
        j = first_of[id_list[i]]
        where = f'{cols["source_file"][j]} record {cols["source_record"][j]} (byte {cols["source_offset"][j]})'
        out.dead_letters.append(deadletter.dead_letter(
            Stage.CHECK_SEGMENTS, 'duplicate-segment', cols['source_file'][i],
            f'segment {id_list[i]} already read from {where}; the first occurrence is kept',
            record_index=cols['source_record'][i], byte_offset=cols['source_offset'][i], split=split,
            video_id=id_list[i].rsplit('_', 1)[0], start_time_seconds=int(id_list[i].rsplit('_', 1)[1]) / 1000))


def _leakage(out: Checked, kept_ids: dict) -> None:
    """Segments present in more than one split (train/eval leakage): counted per pair, with examples."""
    if len(kept_ids) < 2:
        return
    splits = sorted(kept_ids)
    ids = pa.concat_arrays([kept_ids[s] for s in splits])
    tags = np.concatenate([np.full(len(kept_ids[s]), k) for k, s in enumerate(splits)])
    repeat = ~keys.first_occurrences(ids)
    if not repeat.any():
        return
    leaked = set(ids.filter(pa.array(repeat)).to_pylist())
    where: dict[str, list[str]] = {}
    for seg, t in zip(ids.to_pylist(), tags.tolist()):
        if seg in leaked:
            where.setdefault(seg, []).append(splits[t])
    pairs: dict[str, int] = {}
    for seg, in_splits in where.items():
        key = ' & '.join(sorted(set(in_splits)))
        pairs[key] = pairs.get(key, 0) + 1
    out.stats['leakage'] = {'segments': len(where), 'by_splits': pairs,
                            'examples': [{'segment_id': s, 'splits': sorted(set(v))}
                                         for s, v in sorted(where.items())[:stats.MAX_EXAMPLES]]}


def missing_features(csv_table: pa.Table, matched_rows: list[np.ndarray], csv_file: str) -> pa.Table:
    """CSV rows (in file order) matched by no segment: the segments to fetch audio for."""
    have = np.zeros(csv_table.num_rows, bool)
    for m in matched_rows:
        m = m[m >= 0]
        have[m] = True
    rows = csv_table.filter(pa.array(~have))
    return pa.table({
        'segment_id': keys.segment_ids(rows['video_id'].combine_chunks(), rows['start_ms'].combine_chunks()),
        'video_id': rows['video_id'], 'start_time_seconds': rows['start_time_seconds'],
        'end_time_seconds': rows['end_time_seconds'], 'labels': rows['labels'],
        'csv_file': pa.array([csv_file] * rows.num_rows, pa.string()),
        'line_number': rows['line_number']}, schema=MISSING_FEATURES.schema)

