"""Explode labelled segments into one row per (segment, positive label), grouped by label."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.core.schema import CLIPS, UNLABELLED


def explode_by_label(segments: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """Yields (label MID, rows of the clips schema), labels in sorted order, rows in input order.

    A segment with k labels appears in k partitions; ``is_primary`` is true in the partition of its first
    label only, so filtering on it reads every segment exactly once. Segments without labels (unlabelled
    computed clips) go to the partition ``unlabelled``.
    """
    if segments.num_rows == 0:
        return
    labels = segments['labels'].combine_chunks()
    empty = pc.equal(pc.list_value_length(labels), 0)
    if pc.any(empty).as_py():
        unlabelled = segments.filter(empty)
        yield from sorted([(UNLABELLED, unlabelled.add_column(
            CLIPS.names.index('is_primary'), 'is_primary', pa.array([True] * unlabelled.num_rows)))]
            + list(explode_by_label(segments.filter(pc.invert(empty)))), key=lambda kv: kv[0])
        return
    parent = pc.list_parent_indices(labels).to_numpy()
    flat = pc.list_flatten(labels)
    offsets = labels.offsets.to_numpy()
    is_primary = np.arange(len(parent)) == offsets[parent] - offsets[0]
    codes = pc.dictionary_encode(flat).combine_chunks() if isinstance(flat, pa.ChunkedArray) \
        else pc.dictionary_encode(flat)
    dictionary = codes.dictionary.to_pylist()
    order = np.argsort(np.asarray(dictionary, dtype=object))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    code_rank = rank[codes.indices.to_numpy()]
    # Stable: rows stay in input order within a label.
    perm = np.argsort(code_rank, kind='stable')
    rows = segments.take(pa.array(parent[perm]))
    rows = rows.add_column(CLIPS.names.index('is_primary'), 'is_primary', pa.array(is_primary[perm]))
    sorted_rank = code_rank[perm]
    bounds = np.flatnonzero(np.diff(sorted_rank)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(perm)]])
    for s, e in zip(starts.tolist(), ends.tolist()):
        yield dictionary[order[sorted_rank[s]]], rows.slice(s, e - s)
