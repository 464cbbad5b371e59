"""The numbers report.html shows that are not already in manifest.json: byte histograms and their
quantiles, the agreement of computed and released embeddings, label and frame distributions counted from
rows, and the report's input (``ReportInput``, ``Computed``). Pure numpy/pyarrow: nothing here reads a file.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyarrow as pa

from audioset_beam import schema
from audioset_beam.reading import dequantize
from audioset_beam.schema import EMBEDDING_DIM, SPLITS

TOP_PAIRS = 20          # label pairs kept by the fallback count (the manifest keeps as many)
MAX_OFFSET = 3          # frame offsets tried when aligning a computed embedding with its released twin
STRONG_SPLITS = tuple(schema.STRONG_SPLITS)   # AudioSet Strong's files (classes.parquet strong_*_<split>)


def byte_histogram(frames: np.ndarray) -> np.ndarray:
    """[n, 128] uint8 frames -> [128, 256] int64: how often each byte value occurs in each dimension."""
    frames = np.asarray(frames, np.uint8).reshape(-1, EMBEDDING_DIM)
    flat = (np.arange(EMBEDDING_DIM, dtype=np.int64) * 256 + frames.astype(np.int64)).ravel()
    return np.bincount(flat, minlength=EMBEDDING_DIM * 256).reshape(EMBEDDING_DIM, 256)


def histogram_quantiles(hist: np.ndarray, qs=(0.25, 0.5, 0.75)) -> np.ndarray:
    """[128, 256] byte histograms -> [len(qs), 128]: the lowest byte value at or below which each quantile
    of a dimension's values lies (NaN for a dimension with no values)."""
    cum = np.cumsum(hist, axis=1)
    total = cum[:, -1:]
    out = np.full((len(qs), hist.shape[0]), np.nan)
    for i, q in enumerate(qs):
        has = total[:, 0] > 0
        out[i, has] = np.argmax(cum[has] >= q * total[has], axis=1)
    return out


@dataclasses.dataclass(frozen=True)
class Agreement:
    """A computed embedding against the released one of the same segment."""
    segment_id: str
    split: str
    mean_abs_diff: float   # bytes, frame by frame without shifting, over the frames both have
    cosine: float          # mean cosine of the dequantized frames, without shifting
    best_offset: int       # k maximizing the mean cosine of computed frame i with released frame i + k
    best_cosine: float     # that mean cosine


def agreement(segment_id: str, split: str, computed: np.ndarray, released: np.ndarray,
              max_offset: int = MAX_OFFSET) -> Agreement:
    """Compares two [frames, 128] uint8 embeddings of one segment (their frame counts may differ)."""
    c, r = np.asarray(computed, np.uint8).reshape(-1, EMBEDDING_DIM), np.asarray(released, np.uint8).reshape(-1, EMBEDDING_DIM)
    n = min(len(c), len(r))
    mad = float(np.abs(c[:n].astype(np.int16) - r[:n].astype(np.int16)).mean()) if n else math.nan
    cx, rx = dequantize(c), dequantize(r)
    cx /= np.maximum(np.linalg.norm(cx, axis=1, keepdims=True), 1e-12)
    rx /= np.maximum(np.linalg.norm(rx, axis=1, keepdims=True), 1e-12)
    by_offset = {}
    for k in range(-max_offset, max_offset + 1):
        lo, hi = max(0, -k), min(len(c), len(r) - k)
        if hi > lo:
            by_offset[k] = float(np.mean(np.sum(cx[lo:hi] * rx[lo + k:hi + k], axis=1)))
    best = max(sorted(by_offset, key=abs), key=lambda k: by_offset[k]) if by_offset else 0
    return Agreement(segment_id, split, mad, by_offset.get(0, math.nan), best, by_offset.get(best, math.nan))


def distributions_from_rows(labels: list, num_frames: list, class_order: dict[str, int],
                            top: int = TOP_PAIRS) -> dict:
    """One split's segments (each segment once: its labels and frame count) -> the manifest's
    ``distributions[split]`` shape: labels_per_segment and frames_per_segment histograms (str keys) and
    top_label_pairs [[mid_a, mid_b, n], ...], most frequent first (ties: by class index order)."""
    order = lambda mid: (class_order.get(mid, len(class_order)), mid)  # noqa: E731
    per_segment: dict[int, int] = {}
    frames: dict[int, int] = {}
    pairs: dict[tuple[str, str], int] = {}
    for labs, nf in zip(labels, num_frames):
        labs = sorted(set(labs or ()), key=order)
        per_segment[len(labs)] = per_segment.get(len(labs), 0) + 1
        frames[int(nf)] = frames.get(int(nf), 0) + 1
        for i, a in enumerate(labs):
            for b in labs[i + 1:]:
                pairs[(a, b)] = pairs.get((a, b), 0) + 1
    ranked = sorted(pairs.items(), key=lambda kv: (-kv[1], order(kv[0][0]), order(kv[0][1])))[:top]
    return {'labels_per_segment': {str(k): v for k, v in sorted(per_segment.items())},
            'frames_per_segment': {str(k): v for k, v in sorted(frames.items())},
            'top_label_pairs': [[a, b, n] for (a, b), n in ranked]}


@dataclasses.dataclass
class Computed:
    """What the report shows about computed embeddings (transforms.report reads them)."""
    rows: int                          # computed primary rows (one per computed segment and split)
    fingerprints: dict                 # model_fingerprint -> rows
    official: bool                     # made by the official VGGish weights, as far as the build knows
    official_reason: str               # why the report believes that, in words
    computed_hist: np.ndarray          # [128, 256] byte counts of the computed frames
    released_hist: np.ndarray          # [128, 256] byte counts of the released reference frames
    released_reference: str            # which released frames those are, in words
    pairs: list                        # Agreement per segment compared
    pairs_total: int                   # segments with both a released and a computed embedding


@dataclasses.dataclass
class ReportInput:
    output_dir: str
    manifest: dict
    classes: pa.Table                  # classes.parquet
    distributions: dict                # split -> the manifest's distributions[split] shape
    distributions_source: str          # 'manifest' or how they were counted
    missing_files: dict                # split -> rows in missing_features/split=<split>/ (Parquet footers)
    dead_letter_examples: list         # a few rows of dead_letters/ (stage, reason, source, error)
    computed: Computed | None = None
    generated: str = ''                # UTC time of writing


def manifest_splits(manifest: dict) -> list[str]:
    """The manifest's splits, in the SPLITS order (unknown ones last, sorted)."""
    known = set(manifest.get('splits', {}))
    return [s for s in SPLITS if s in known] + sorted(known - set(SPLITS))


def strong_columns(classes: pa.Table) -> list[str]:
    """The strong_segments_<split> columns holding any value (none without --strong_labels)."""
    return [f'strong_segments_{s}' for s in STRONG_SPLITS
            if f'strong_segments_{s}' in classes.column_names and classes[f'strong_segments_{s}'].null_count
            < classes.num_rows]
