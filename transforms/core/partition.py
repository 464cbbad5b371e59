"""Which rows of a batch of labelled segments go to which (label) partition."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audioset_beam.schema import UNLABELLED


def partition_rows(labels: pa.ListArray) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yields (label, rows, is_primary) per distinct label, labels sorted, rows ascending.

    A segment with k labels is in k partitions; ``is_primary`` is true in the partition of its first label
    only, so filtering on it reads every segment exactly once. A segment without labels (an unlabelled
    computed clip) goes to the partition ``unlabelled``, as primary.
    """
    if isinstance(labels, pa.ChunkedArray):
        labels = labels.combine_chunks()
    n = len(labels)
    if n == 0:
        return
    lengths = pc.fill_null(pc.list_value_length(labels), 0).to_numpy(zero_copy_only=False)
    parent = pc.list_parent_indices(labels).to_numpy()
    flat = pc.list_flatten(labels)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    primary = np.arange(len(parent)) == starts[parent]
    pairs = [(UNLABELLED, np.flatnonzero(lengths == 0).astype(np.int32), np.ones(int((lengths == 0).sum()), bool))]
    if len(flat):
        codes = pc.dictionary_encode(flat)
        dictionary = codes.dictionary.to_pylist()
        idx = codes.indices.to_numpy()
        order = np.argsort(idx, kind='stable')  # rows stay ascending within a label
        bounds = np.flatnonzero(np.diff(idx[order])) + 1
        for chunk in np.split(order, bounds):
            pairs.append((dictionary[idx[chunk[0]]], parent[chunk].astype(np.int32), primary[chunk]))
    for label, rows, prim in sorted(pairs, key=lambda p: p[0]):
        if len(rows):
            yield label, rows, prim
