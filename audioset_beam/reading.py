"""Reading a built dataset for training: one split as padded frame arrays, multi-hot targets and sampling
weights in one call (``load_split``), or streamed in batches that never hold a split in memory
(``iter_batches``, ``tf_dataset``). Pure pyarrow + numpy; local paths, ``gs://`` and ``--output_root``s.

    from audioset_beam import load_split, mean_pool
    train = load_split('out', 'balanced_train')            # or an --output_root (follows latest.json)
    x = mean_pool(train.frames, train.mask)                # [n, 128] float32, dequantized
    y, w = train.targets, train.weights                    # [n, 527] float32 multi-hot, [n] float64

Each segment is read once (``is_primary``), from the ``split`` partition only (a predicate on the partition
column, so other splits' files are never opened), and decoded column-wise: the binary ``embedding`` column's
offsets and data buffers give the frames without a Python loop per row.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import urllib.parse
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from audioset_beam import layout, schema

DIM = schema.EMBEDDING_DIM
MAX_FRAMES = 10
# Dequantization of the released 8-bit embeddings, as YouTube-8M's readers do it (the inverse of VGGish's
# postprocessor clipping PCA values to [-2, 2] and quantizing to 255 steps): x = q * 4/255 + (4/512 - 2).
DEQUANT_SCALE = 4.0 / 255.0
DEQUANT_OFFSET = 4.0 / 512.0 - 2.0
# AST/PSLA's gen_weight_file.py: a segment's weight is the sum over its labels of WEIGHT_SCALE / (the
# label's segment count in the split + WEIGHT_EPSILON).
WEIGHT_SCALE = 1000.0
WEIGHT_EPSILON = 0.01

_CLIP_PARTITIONING = ds.partitioning(pa.schema([('split', pa.string()), ('label', pa.string())]), flavor='hive')


# -- the one call per row ----------------------------------------------------------------------------------

def frames_of(value) -> np.ndarray:
    """One row's ``embedding`` value (``bytes``, or any buffer) as its ``[num_frames, 128]`` uint8 frames,
    without a copy. This is the call for every reader: pandas, Hugging Face ``datasets`` and Polars give
    ``bytes``, DuckDB (``.df()``, ``.fetchnumpy()``) and Spark a ``bytearray``, pyarrow a ``BinaryScalar``
    (pass ``.as_buffer()``); ``datasets``' numpy format strips trailing zero bytes (see docs/reading.md).

    >>> frames_of(bytes(256)).shape
    (2, 128)
    """
    return np.frombuffer(value, np.uint8).reshape(-1, DIM)


def dequantize(q: np.ndarray) -> np.ndarray:
    """Quantized uint8 frames to float32 PCA values in [-2, 2]: ``q * 4/255 + (4/512 - 2)``.

    >>> dequantize(np.array([0, 255], np.uint8)).astype(float).round(4).tolist()
    [-1.9922, 2.0078]
    """
    return q.astype(np.float32) * np.float32(DEQUANT_SCALE) + np.float32(DEQUANT_OFFSET)


def mean_pool(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The dequantized mean over each segment's present frames: ``[n, F, 128]`` uint8 and ``[n, F]`` bool
    to ``[n, 128]`` float32 (padding frames do not count)."""
    m = mask.astype(np.float32)[..., None]
    total = (dequantize(frames) * m).sum(axis=1)
    return total / np.maximum(m.sum(axis=1), 1.0)


# -- where the dataset is ---------------------------------------------------------------------------------

def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path within it. ``gs://`` uses pyarrow's own GCS client (with
    Application Default Credentials, or the emulator named by STORAGE_EMULATOR_HOST)."""
    if '://' not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == 'gs' and os.environ.get('STORAGE_EMULATOR_HOST'):
        endpoint = urllib.parse.urlparse(os.environ['STORAGE_EMULATOR_HOST'])
        fs = pafs.GcsFileSystem(anonymous=True, scheme=endpoint.scheme or 'http',
                                endpoint_override=endpoint.netloc or endpoint.path,
                                retry_time_limit=datetime.timedelta(seconds=5))
        return fs, (parsed.netloc + parsed.path).rstrip('/')
    fs, path = pafs.FileSystem.from_uri(uri)
    return fs, path.rstrip('/')


def _read_optional(fs: pafs.FileSystem, path: str) -> bytes | None:
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read()


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A resolved, complete build: its filesystem, the path of the run within it, and the URI it came from."""
    uri: str
    fs: pafs.FileSystem
    path: str

    def clips(self) -> ds.Dataset:
        """The clips table as a hive-partitioned pyarrow dataset (``split`` and ``label`` decoded strings)."""
        return ds.dataset(layout.join(self.path, layout.CLIPS_DIR), filesystem=self.fs, format='parquet',
                          partitioning=_CLIP_PARTITIONING)

    def classes(self) -> pa.Table:
        """``classes.parquet``: the 632 ontology classes, their label index, counts and label quality."""
        return pq.read_table(layout.join(self.path, layout.CLASSES_FILE), filesystem=self.fs)

    def manifest(self) -> dict:
        """``manifest.json``: what the build read, wrote and checked."""
        with self.fs.open_input_stream(layout.join(self.path, layout.MANIFEST_FILE)) as f:
            return json.loads(f.read())

    def splits(self) -> list[str] | None:
        """The splits this build made, in release order: those it read records of (``manifest.splits``, even
        when all of them were rejected) and those it embedded audio for; None for a manifest that does not say."""
        m = self.manifest()
        if 'splits' not in m:
            return None
        computed = ((m.get('audio') or {}).get('computed_by_split') or {})
        built = set(m['splits']) | set(computed)
        return [s for s in schema.SPLITS if s in built] + sorted(built - set(schema.SPLITS))


    def sources(self, split: str) -> set[str] | None:
        """The embedding sources ('released', 'computed') with segments in ``split``, by the manifest; None
        for a manifest that does not say."""
        m = self.manifest()
        if 'splits' not in m:
            return None
        computed = ((m.get('audio') or {}).get('computed_by_split') or {}).get(split) or {}
        out = set()
        if (m['splits'].get(split) or {}).get('segments_out'):
            out.add('released')
        if computed.get('segments_out'):
            out.add('computed')
        return out


class SplitNotBuilt(ValueError):
    """A split the dataset does not have: its build was given no shards (or audio) of it. Reading it would
    give no rows, as if the split were empty."""


def open_dataset(dataset: str | Dataset) -> Dataset:
    """Resolves an output dir or an ``--output_root`` (the run its ``latest.json`` points at), local or
    ``gs://``. Raises FileNotFoundError when it is neither, and for a run without ``manifest.json`` (the
    build did not finish, or is still writing: its files may be incomplete)."""
    if isinstance(dataset, Dataset):
        return dataset
    fs, path = _filesystem(str(dataset))
    pointer = _read_optional(fs, layout.join(path, layout.LATEST_FILE))
    uri = str(dataset)
    if pointer is not None:
        run_id = json.loads(pointer)['run_id']
        # The run's folder under this root, not the absolute run_dir recorded at publication: the root may
        # have been copied or mounted elsewhere since.
        path = layout.join(path, layout.RUNS_DIR, run_id)
        uri = layout.join(uri, layout.RUNS_DIR, run_id)
    if fs.get_file_info(layout.join(path, layout.MANIFEST_FILE)).type != pafs.FileType.File:
        if fs.get_file_info(layout.join(path, layout.CLIPS_DIR)).type == pafs.FileType.Directory:
            raise FileNotFoundError(f'{uri} has clips/ but no {layout.MANIFEST_FILE}: the build did not finish '
                                    '(or is still running), so its files may be incomplete. Rebuild it, or '
                                    'read the previous run through the --output_root\'s latest.json')
        raise FileNotFoundError(f'{uri} is neither a built dataset ({layout.MANIFEST_FILE}, clips/) nor an '
                                f'--output_root ({layout.LATEST_FILE})')
    return Dataset(uri, fs, path)


# -- classes and targets ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The target classes: the 527 labels in class-index order, or those with quality >= min_quality.
    ``index[k]`` is class k's index in class_labels_indices.csv; ``segments`` its segment count in the split
    (what the sampling weights divide by)."""
    index: np.ndarray
    mids: list[str]
    names: list[str]
    segments: np.ndarray
    num_labels: int

    @property
    def column_of(self) -> np.ndarray:
        """Class-index position -> target column (-1 for a class left out by ``min_quality``)."""
        col = np.full(self.num_labels, -1, np.int64)
        col[self.index] = np.arange(len(self.index))
        return col


def vocabulary(classes: pa.Table, split: str, min_quality: float | None = None) -> Vocabulary:
    """The target classes of ``split`` from a ``classes.parquet`` table (see ``Vocabulary``)."""
    if split not in schema.SPLITS:
        raise ValueError(f'split {split!r}: expected one of {", ".join(schema.SPLITS)}')
    labels = classes.filter(pc.field('is_label')).sort_by('index')
    index = labels['index'].to_numpy().astype(np.int64)
    if not np.array_equal(index, np.arange(len(index))):
        raise ValueError('classes.parquet: the label indices are not 0..n-1; the class index is malformed')
    keep = np.ones(len(index), bool)
    if min_quality is not None:
        quality = labels['quality'] if 'quality' in labels.column_names else None
        if quality is None or quality.null_count == len(quality):
            raise ValueError('min_quality needs per-class label quality, and this dataset was built without '
                             '--label_quality: rebuild it with --label_quality qa_true_counts.csv (official copy: '
                             'http://storage.googleapis.com/us_audioset/youtube_corpus/v1/qa/qa_true_counts.csv)')
        # Classes never assessed (quality null) are left out: nothing says their labels are good.
        keep = pc.fill_null(pc.greater_equal(quality, pa.scalar(float(min_quality))), False).to_numpy(
            zero_copy_only=False)
        if not keep.any():
            raise ValueError(f'min_quality={min_quality}: no class has that label quality')
    counts = labels[f'segments_{split}'].to_numpy()
    return Vocabulary(index[keep], [m for m, k in zip(labels['mid'].to_pylist(), keep) if k],
                      [n for n, k in zip(labels['name'].to_pylist(), keep) if k], counts[keep], len(index))


def _label_codes(batch: pa.RecordBatch, mids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(row, class index) of every positive label in a batch, nulls (labels outside the class index)
    dropped: from ``label_indices`` when the build wrote it, else by looking ``labels`` up in the index."""
    if 'label_indices' in batch.schema.names:
        lists = batch.column('label_indices')
        values = pc.list_flatten(lists)
    else:
        lists = batch.column('labels')
        values = pc.index_in(pc.list_flatten(lists), value_set=mids)
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy()
    rows = np.repeat(np.arange(len(lengths)), lengths)
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    codes = pc.fill_null(values, 0).to_numpy().astype(np.int64)
    return rows[valid], codes[valid]


# -- frames ------------------------------------------------------------------------------------------------

def decode_frames(embedding: pa.Array, max_frames: int = MAX_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """A ``binary`` (or ``large_binary``) array of concatenated frames to ``[n, max_frames, 128]`` uint8,
    zero-padded, and the frame counts ``[n]`` int32, straight from the array's offsets and data buffers.
    Raises ValueError for a null value or a length that is not 1..max_frames whole frames."""
    if isinstance(embedding, pa.ChunkedArray):
        embedding = embedding.combine_chunks()
    n = len(embedding)
    out = np.zeros((n, max_frames, DIM), np.uint8)
    if n == 0:
        return out, np.zeros(0, np.int32)
    if embedding.null_count:
        raise ValueError('embedding: null values')
    bufs = embedding.buffers()
    off_type = np.int64 if pa.types.is_large_binary(embedding.type) else np.int32
    offs = np.frombuffer(bufs[1], off_type)[embedding.offset:embedding.offset + n + 1].astype(np.int64)
    lengths = np.diff(offs)
    if (lengths % DIM).any() or lengths.min() < DIM or lengths.max() > max_frames * DIM:
        bad = int(np.flatnonzero((lengths % DIM != 0) | (lengths < DIM) | (lengths > max_frames * DIM))[0])
        raise ValueError(f'embedding: row {bad} holds {lengths[bad]} bytes, not 1..{max_frames} frames of {DIM}')
    nf = (lengths // DIM).astype(np.int32)
    flat = np.frombuffer(bufs[2], np.uint8)[offs[0]:offs[-1]].reshape(-1, DIM)
    if (nf == max_frames).all():
        out[:] = flat.reshape(n, max_frames, DIM)
    else:
        rows = np.repeat(np.arange(n), nf)
        pos = np.arange(len(flat)) - np.repeat((offs[:-1] - offs[0]) // DIM, nf)
        out[rows, pos] = flat
    return out, nf


# -- one split in memory ----------------------------------------------------------------------------------

@dataclasses.dataclass
class TrainingArrays:
    """One split, one row per segment, ordered by ``segment_ids``.

    frames    [n, 10, 128] uint8   quantized frames, zero-padded past num_frames (``dequantize`` them)
    mask      [n, 10] bool         which frames are present
    targets   [n, C] float32       multi-hot over ``class_mids`` (C = 527, or fewer with min_quality)
    weights   [n] float64          sampling weights (AST/PSLA formula; NaN for an unlabelled segment)
    """
    frames: np.ndarray
    mask: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    segment_ids: np.ndarray
    class_mids: list[str]
    class_names: list[str]
    class_indices: np.ndarray
    extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def num_frames(self) -> np.ndarray:
        return self.mask.sum(axis=1).astype(np.int32)

    def __len__(self) -> int:
        return len(self.segment_ids)


class _Reader:
    """What ``load_split`` and ``iter_batches`` share: the resolved dataset, the split's vocabulary, the
    columns to read, the row filter, and turning a record batch into numpy arrays."""

    def __init__(self, dataset, split: str, min_quality, embedding_source, columns: Sequence[str],
                 max_frames: int):
        self.dataset = open_dataset(dataset)
        classes = self.dataset.classes()
        self.vocab = vocabulary(classes, split, min_quality)
        built = self.dataset.splits()
        if built is not None and split not in built:
            raise SplitNotBuilt(f'split {split!r} was not built in {self.dataset.uri}: it has '
                                f'{", ".join(built) or "no split"} (its build read no shards or audio of '
                                f'{split!r}; see manifest.json "splits" and "splits_not_built")')
        self.column_of = self.vocab.column_of
        self.max_frames = max_frames
        self.clips = self.dataset.clips()
        names = set(self.clips.schema.names)
        self.has_weights = 'sampling_weight' in names
        label_column = 'label_indices' if 'label_indices' in names else 'labels'
        extra = [c for c in columns if c not in ('segment_id', 'embedding', label_column, 'sampling_weight')]
        unknown = sorted(set(extra) - names)
        if unknown:
            raise ValueError(f'columns {unknown}: not in clips (it has {", ".join(sorted(names))})')
        self.extra = list(dict.fromkeys(extra))
        self.columns = ['segment_id', 'embedding', label_column] + (['sampling_weight'] if self.has_weights
                                                                      else []) + self.extra
        # Builds without the sampling_weight column: the same formula over classes.parquet's per-split counts.
        all_counts = vocabulary(classes, split).segments
        self.class_weight = WEIGHT_SCALE / (all_counts + WEIGHT_EPSILON)
        labels = classes.filter(pc.field('is_label')).sort_by('index')
        self.mids = labels['mid'].combine_chunks()
        self.split_filter = ds.field('split') == split
        self.row_filter = ds.field('is_primary')
        if embedding_source is not None:
            self.row_filter &= ds.field('embedding_source') == embedding_source
            have = self.dataset.sources(split)
            if have is not None and embedding_source not in have and have:
                raise ValueError(f'split {split!r} of {self.dataset.uri} has no {embedding_source} embeddings, only '
                                 f'{" and ".join(sorted(have))}: pass embedding_source={sorted(have)[0]!r} (or None '
                                 'for every source)')

    def arrays(self, batch: pa.RecordBatch) -> dict[str, np.ndarray]:
        rows, codes = _label_codes(batch, self.mids)
        n = batch.num_rows
        frames, nf = decode_frames(batch.column('embedding'), self.max_frames)
        cols = self.column_of[codes]
        targets = np.zeros((n, len(self.vocab.index)), np.float32)
        targets[rows[cols >= 0], cols[cols >= 0]] = 1.0
        if self.has_weights:
            weights = pc.fill_null(batch.column('sampling_weight'), np.nan).to_numpy().astype(np.float64)
        else:
            weights = np.bincount(rows, weights=self.class_weight[codes], minlength=n).astype(np.float64)
            weights[np.bincount(rows, minlength=n) == 0] = np.nan
        out = {'frames': frames, 'mask': np.arange(self.max_frames)[None, :] < nf[:, None], 'num_frames': nf,
               'targets': targets, 'weights': weights,
               'segment_id': np.asarray(batch.column('segment_id').to_pylist(), dtype=object)}
        for c in self.extra:
            out[c] = _to_numpy(batch.column(c))
        return out


def _to_numpy(col) -> np.ndarray:
    """A column as a 1-D numpy array: primitive columns without nulls in their own dtype (booleans too, which
    pyarrow cannot hand over without a copy), anything else (strings, lists, nulls) as Python values in an
    object array, one element per row even when every list in the batch has the same length."""
    if pa.types.is_primitive(col.type) and not col.null_count:
        return col.to_numpy(zero_copy_only=False)
    values = col.to_pylist()
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def load_split(dataset, split: str, *, min_quality: float | None = None, embedding_source: str | None = 'released',
               columns: Sequence[str] = (), max_frames: int = MAX_FRAMES) -> TrainingArrays:
    """One split as training arrays (``TrainingArrays``), each segment once, ordered by segment id.

    dataset           an output dir or an --output_root (follows latest.json), local or gs://
    min_quality       keep only the classes whose label quality (classes.parquet ``quality``, from the build's
                      --label_quality) is >= this; segments are all kept, with fewer target columns
    embedding_source  'released', 'computed', or None for both (a segment with both then appears twice)
    columns           more clips columns to return in ``extra`` (numpy; lists as object arrays)

    Memory: the split's frames padded to ``max_frames`` (1,280 bytes a segment: 2.6 GB for unbalanced_train,
    whose targets take another 4.3 GB as float32) plus one row group at a time while reading; use
    ``iter_batches`` to stream instead.
    """
    reader = _Reader(dataset, split, min_quality, embedding_source, columns, max_frames)
    scanner = reader.clips.scanner(columns=reader.columns, filter=reader.split_filter & reader.row_filter)
    parts = [reader.arrays(b) for b in scanner.to_batches() if b.num_rows]
    if not parts:
        parts = [reader.arrays(pa.RecordBatch.from_arrays(
            [pa.array([], reader.clips.schema.field(c).type) for c in reader.columns], reader.columns))]
    ids = np.concatenate([p['segment_id'] for p in parts])
    order = np.argsort(ids, kind='stable')
    frames = np.empty((len(ids), max_frames, DIM), np.uint8)
    start = 0
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    for p in parts:  # scatter each batch's frames to their sorted rows: no second copy of the split
        frames[inverse[start:start + len(p['frames'])]] = p['frames']
        start += len(p['frames'])
        del p['frames']

    def cat(key):
        return np.concatenate([p[key] for p in parts])[order]

    return TrainingArrays(frames, cat('mask'), cat('targets'), cat('weights'), ids[order], reader.vocab.mids,
                          reader.vocab.names, reader.vocab.index, {c: cat(c) for c in reader.extra})


# -- streaming --------------------------------------------------------------------------------------------

def _fragment_batches(fragment, reader: _Reader, read_rows: int) -> Iterator[pa.RecordBatch]:
    for b in fragment.to_batches(columns=reader.columns, filter=reader.row_filter, batch_size=read_rows):
        if b.num_rows:
            yield b


def _interleave(streams: Iterator[Iterator], cycle: int) -> Iterator:
    """Round robin over up to ``cycle`` streams at a time, taking the next stream as one runs out."""
    active = []
    streams = iter(streams)
    for s in streams:
        active.append(s)
        if len(active) == cycle:
            break
    i = 0
    while active:
        i %= len(active)
        try:
            yield next(active[i])
            i += 1
        except StopIteration:
            nxt = next(streams, None)
            if nxt is None:
                active.pop(i)
            else:
                active[i] = nxt


def _concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _take(pool: dict, idx) -> dict:
    return {k: v[idx] for k, v in pool.items()}


def iter_batches(dataset, split: str, batch_size: int = 256, *, seed: int | None = None,
                 shuffle_buffer: int | None = None, cycle_length: int = 16, shard_index: int = 0,
                 num_shards: int = 1, min_quality: float | None = None, embedding_source: str | None = 'released',
                 columns: Sequence[str] = (), max_frames: int = MAX_FRAMES, drop_remainder: bool = False,
                 read_rows: int = 1024) -> Iterator[dict[str, np.ndarray]]:
    """Streams a split in batches of numpy arrays, each segment once, never holding the split in memory.

    Yields dicts: ``frames`` [b, 10, 128] uint8, ``mask`` [b, 10] bool, ``num_frames`` [b] int32, ``targets``
    [b, C] float32, ``weights`` [b] float64, ``segment_id`` [b] object, plus ``columns``. Only the last batch
    may be smaller (none with ``drop_remainder``).

    Files are one per (split, label) partition, so file order is label order: without ``seed`` the batches
    come in that (deterministic) order, for evaluation. With ``seed`` (training) the files are visited in a
    seeded random order, ``cycle_length`` at a time round robin (``read_rows`` rows from each in turn), and
    the rows pass through a shuffle buffer of ``shuffle_buffer`` rows (default 16 batches). Memory: about
    ``cycle_length`` Parquet row groups plus twice the buffer.

    ``shard_index``/``num_shards`` give each reader (a PyTorch DataLoader worker, a host) every
    ``num_shards``-th file, so that together they read the split once. Other arguments as ``load_split``.
    """
    if batch_size < 1 or num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f'batch_size {batch_size}, shard {shard_index} of {num_shards}: expected batch_size >= 1 '
                         'and 0 <= shard_index < num_shards')
    reader = _Reader(dataset, split, min_quality, embedding_source, columns, max_frames)
    fragments = sorted(reader.clips.get_fragments(filter=reader.split_filter), key=lambda f: f.path)
    fragments = fragments[shard_index::num_shards]
    rng = None
    if seed is not None:
        rng = np.random.default_rng(seed)
        fragments = [fragments[i] for i in rng.permutation(len(fragments))]
        buffer = max(shuffle_buffer if shuffle_buffer is not None else 16 * batch_size, batch_size)
        record_batches = _interleave((_fragment_batches(f, reader, read_rows) for f in fragments), cycle_length)
    else:
        buffer = batch_size
        record_batches = (b for f in fragments for b in _fragment_batches(f, reader, read_rows))
    pool: list[dict] = []
    pooled = 0
    for b in record_batches:
        pool.append(reader.arrays(b))
        pooled += b.num_rows
        if pooled < (2 * buffer if rng is not None else batch_size):
            continue
        merged = _concat(pool)
        if rng is not None:  # shuffle, emit down to the buffer size, keep the rest
            merged = _take(merged, rng.permutation(pooled))
            emit = (pooled - buffer) // batch_size * batch_size
        else:
            emit = pooled // batch_size * batch_size
        for s in range(0, emit, batch_size):
            yield _take(merged, slice(s, s + batch_size))
        pool, pooled = [_take(merged, slice(emit, None))], pooled - emit
    if pooled:
        merged = _concat(pool)
        if rng is not None:
            merged = _take(merged, rng.permutation(pooled))
        end = pooled // batch_size * batch_size if drop_remainder else pooled
        for s in range(0, end, batch_size):
            yield _take(merged, slice(s, min(s + batch_size, end)))


def output_signature(dataset, split: str, *, min_quality: float | None = None, columns: Sequence[str] = (),
                     max_frames: int = MAX_FRAMES) -> dict:
    """The ``tf.TensorSpec`` of each key ``iter_batches`` yields (scalar extra columns only)."""
    import tensorflow as tf
    reader = _Reader(dataset, split, min_quality, None, columns, max_frames)
    spec = {'frames': tf.TensorSpec([None, max_frames, DIM], tf.uint8),
            'mask': tf.TensorSpec([None, max_frames], tf.bool),
            'num_frames': tf.TensorSpec([None], tf.int32),
            'targets': tf.TensorSpec([None, len(reader.vocab.index)], tf.float32),
            'weights': tf.TensorSpec([None], tf.float64),
            'segment_id': tf.TensorSpec([None], tf.string)}
    for c in reader.extra:
        t = reader.clips.schema.field(c).type
        if pa.types.is_string(t) or pa.types.is_binary(t):
            spec[c] = tf.TensorSpec([None], tf.string)
        elif pa.types.is_primitive(t):
            spec[c] = tf.TensorSpec([None], tf.as_dtype(t.to_pandas_dtype()))
        else:
            raise ValueError(f'column {c} ({t}): tf_dataset takes scalar columns only')
    return spec


def tf_dataset(dataset, split: str, batch_size: int = 256, **kwargs):
    """``iter_batches`` as a ``tf.data.Dataset`` of dicts of tensors (``tf.data.Dataset.from_generator``
    with an ``output_signature``); streams like ``iter_batches``, takes the same keyword arguments.

        ds = tf_dataset('out', 'balanced_train', 256, seed=0).map(lambda b: (b['frames'], b['targets']))
    """
    import tensorflow as tf
    resolved = open_dataset(dataset)  # once, not again on every pass over the data
    sig_kwargs = {k: kwargs[k] for k in ('min_quality', 'columns', 'max_frames') if k in kwargs}
    spec = output_signature(resolved, split, **sig_kwargs)
    return tf.data.Dataset.from_generator(lambda: iter_batches(resolved, split, batch_size, **kwargs),
                                          output_signature=spec)
