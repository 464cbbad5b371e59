"""Segment keys (``<video_id>_<start_ms>``) as numpy arrays: vectorized lookup and duplicate detection.

The join and the uniqueness checks work on whole columns, never per record in Python, and never depend on
how shards are named. A key is hashed to 64 bits for the search; every hit is then confirmed on the full
key bytes, so a hash collision can cost a fallback but never a wrong answer.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9],
                dtype=np.uint64)


def segment_ids(video_ids: pa.Array, starts_ms: pa.Array | np.ndarray) -> pa.Array:
    """``<video_id>_<start_ms>`` per row, the join key (unambiguous: split it on the last '_')."""
    ms = pc.cast(pa.array(starts_ms, pa.int64()) if isinstance(starts_ms, np.ndarray) else starts_ms, pa.string())
    return pc.binary_join_element_wise(pc.cast(video_ids, pa.string()), ms, '_')


def start_ms(seconds: np.ndarray) -> np.ndarray:
    """Start times in seconds to integer milliseconds, the join's unit (see README: join tolerance)."""
    return np.round(np.asarray(seconds, np.float64) * 1000.0).astype(np.int64)


def fixed_width(keys: pa.Array, width: int) -> np.ndarray:
    """Keys as numpy ``S<width>`` (NUL-padded bytes); keys longer than ``width`` are cut, so callers compare
    lengths too (see :class:`KeyIndex`)."""
    width = max(width, 1)
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    keys = pc.cast(keys, pa.binary())
    n = len(keys)
    if n == 0:
        return np.zeros(0, f'S{width}')
    lengths = byte_lengths(keys)
    if keys.null_count or not np.all(lengths == width):
        # Pad every key with NULs, then cut to the width: all values are then exactly ``width`` bytes.
        keys = pc.binary_slice(pc.binary_join_element_wise(
            pc.fill_null(keys, b''), pa.scalar(b'\0' * width, pa.binary()), b''), 0, width)
    offsets = np.frombuffer(keys.buffers()[1], np.int32, n + 1, keys.offset * 4)
    return np.frombuffer(keys.buffers()[2], f'S{width}', n, int(offsets[0])).copy()


def hash64(fixed: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each fixed-width key (a mix of its 8-byte words)."""
    width = fixed.dtype.itemsize
    words = (width + 7) // 8
    padded = np.zeros((len(fixed), words * 8), np.uint8)
    padded[:, :width] = fixed.view(np.uint8).reshape(len(fixed), width)
    w = padded.view('<u8').reshape(len(fixed), words)
    h = np.full(len(fixed), 0x243F6A8885A308D3, np.uint64)
    with np.errstate(over='ignore'):
        for j in range(words):
            h ^= w[:, j] * _MIX[j % len(_MIX)]
            h = (h ^ (h >> np.uint64(29))) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    return h


def byte_lengths(keys: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.binary_length(keys), 0).to_numpy(zero_copy_only=False).astype(np.int64)


class KeyIndex:
    """Sorted segment keys for exact, vectorized lookup: ``lookup(keys)`` -> row of each key (-1 if absent).

    Built once per split from the segments CSV; looking up a shard group's ~100k keys costs milliseconds,
    whatever the ids in the group (shards need not be named by id prefix).
    """

    def __init__(self, keys: pa.Array):
        self.width = int(byte_lengths(keys).max()) if len(keys) else 1
        self._lengths = byte_lengths(keys)
        fixed = fixed_width(keys, self.width)
        hashes = hash64(fixed)
        self._order = np.argsort(hashes, kind='stable')
        self._hashes = hashes[self._order]
        self._fixed = fixed[self._order]
        self._unique_hashes = len(self._hashes) < 2 or bool(np.all(self._hashes[1:] != self._hashes[:-1]))

    def __len__(self) -> int:
        return len(self._order)

    @property
    def nbytes(self) -> int:
        return self._order.nbytes + self._hashes.nbytes + self._fixed.nbytes + self._lengths.nbytes

    def lookup(self, keys: pa.Array) -> np.ndarray:
        n = len(keys)
        if n == 0 or len(self) == 0:
            return np.full(n, -1, np.int64)
        fixed = fixed_width(keys, self.width)
        fits = byte_lengths(keys) <= self.width
        if not self._unique_hashes:  # two CSV keys share a hash: search on the exact bytes instead
            by_bytes = np.argsort(self._fixed, kind='stable')
            pos = np.minimum(np.searchsorted(self._fixed[by_bytes], fixed), len(self) - 1)
            cand = by_bytes[pos]
        else:
            pos = np.minimum(np.searchsorted(self._hashes, hash64(fixed)), len(self) - 1)
            cand = pos
        rows = self._order[cand]
        hit = fits & (self._fixed[cand] == fixed) & (self._lengths[rows] == byte_lengths(keys))
        return np.where(hit, rows, -1).astype(np.int64)


def first_occurrences(keys: pa.Array) -> np.ndarray:
    """bool[n]: true where a key appears for the first time in ``keys`` (later repeats are false)."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, bool)
    fixed = fixed_width(keys, int(byte_lengths(keys).max()))
    hashes = hash64(fixed)
    order = np.argsort(hashes, kind='stable')  # stable: equal keys stay in input order
    h, f = hashes[order], fixed[order]
    same_hash = h[1:] == h[:-1]
    if np.any(same_hash & (f[1:] != f[:-1])):  # a collision: order by the bytes themselves
        order = np.lexsort((np.arange(n), fixed))
        f = fixed[order]
        same_hash = f[1:] == f[:-1]
    repeat = np.zeros(n, bool)
    repeat[1:] = same_hash
    first = np.ones(n, bool)
    first[order[repeat]] = False
    return first


def first_in_rows(owner: np.ndarray, codes: np.ndarray, n_codes: int) -> np.ndarray:
    """bool mask over (row, code) pairs of a ragged list: true at the first mention of each code in its row
    (codes in 0..n_codes-1). Drops repeats, e.g. a MID listed twice in one CSV row."""
    if len(owner) == 0:
        return np.zeros(0, bool)
    _, first = np.unique(np.asarray(owner, np.int64) * np.int64(n_codes + 1) + codes, return_index=True)
    mask = np.zeros(len(owner), bool)
    mask[first] = True
    return mask
