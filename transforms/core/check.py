"""Checks over whole splits, on keys and labels only: uniqueness, counts, missing features, leakage.

These are properties of the dataset, not of a batch: they are computed here once over every shard group
of a split, so no batching or sharding knob can change them.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.core import deadletter, keys, stats
from transforms.core.join import AGREE, DISAGREE, segment_stats
from transforms.core.ontology import Vocabulary
from transforms.core.schema import MISSING_FEATURES, SOURCE_RELEASED


@dataclasses.dataclass
class Checked:
    drops: dict            # (split, group_id) -> int32 rows of that group's batch to leave out
    dead_letters: list[dict]
    stats: dict
    missing: dict          # split -> MISSING_FEATURES table (CSV rows with no embedding)


def _concat(batches) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Batches (objects with group_id and table) in group order, as one table + group id and row per row."""
    batches = sorted(batches, key=lambda b: b.group_id)
    if not batches:
        return None, np.zeros(0, np.int64), np.zeros(0, np.int32)
    table = pa.concat_tables([b.table for b in batches])
    group = np.concatenate([np.full(b.table.num_rows, b.group_id, np.int64) for b in batches])
    rows = np.concatenate([np.arange(b.table.num_rows, dtype=np.int32) for b in batches])
    return table, group, rows


def check_splits(batches, csvs: dict, vocab: Vocabulary) -> Checked:
    """``batches``: KeyBatch-like objects (split, group_id, embedding_source, table with the KeyBatch
    columns); ``csvs``: split -> SegmentIndex (its ``table`` and ``source``).

    Released segments must be unique within their split: the first occurrence in (group, record) order is
    kept and every later one becomes a ``duplicate-segment`` dead letter naming both places. Segment stats
    (segments out, label and ancestor counts, label sources, frames, CSV agreement) are counted over the
    kept segments. A CSV row matched by no kept segment, released or computed, is a missing feature.
    """
    out = Checked({}, [], {}, {})
    splits = sorted({b.split for b in batches} | set(csvs))
    matched: dict[str, list[np.ndarray]] = {s: [] for s in splits}
    kept_ids: dict[str, pa.Array] = {}
    for split in splits:
        released = [b for b in batches if b.split == split and b.embedding_source == SOURCE_RELEASED]
        computed = [b for b in batches if b.split == split and b.embedding_source != SOURCE_RELEASED]
        for b in computed:
            matched[split].append(b.table['csv_row'].to_numpy())
        table, group, rows = _concat(released)
        if table is None:
            continue
        ids = table['segment_id'].combine_chunks()
        first = keys.first_occurrences(ids)
        if not first.all():
            _duplicates(out, split, table, ids, first, group, rows)
        kept = table.filter(pa.array(first)) if not first.all() else table
        kept_ids[split] = ids.filter(pa.array(first))
        matched[split].append(kept['csv_row'].to_numpy())
        labels = kept['labels'].combine_chunks()
        offsets = np.frombuffer(labels.offsets.buffers()[1], np.int32, len(labels) + 1,
                                labels.offset).astype(np.int64)
        segment_stats(out.stats, split, vocab, offsets - offsets[0],
                      pc.list_flatten(labels).to_numpy(zero_copy_only=False).astype(np.int64),
                      kept['label_source'].combine_chunks(), kept['num_frames'].to_numpy())
        agree = kept['agree'].to_numpy()
        if split in csvs:
            stats.bump(out.stats, 'splits', split, 'labels_agree', int((agree == AGREE).sum()))
            stats.bump(out.stats, 'splits', split, 'labels_disagree', int((agree == DISAGREE).sum()))
    for split, index in csvs.items():
        out.missing[split] = missing_features(index.table, matched[split], index.source)
        stats.bump(out.stats, 'csv', split, 'rows_missing_features', out.missing[split].num_rows)
        stats.bump(out.stats, 'csv', split, 'rows_matched', len(index) - out.missing[split].num_rows)
    _leakage(out, kept_ids)
    return out


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
            deadletter.CHECK_SEGMENTS, 'duplicate-segment', cols['source_file'][i],
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

