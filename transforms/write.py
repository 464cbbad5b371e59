"""WriteClips: labelled segments to hive-partitioned Parquet (split=<split>/label=<MID>).

Rows are shuffled through spill files, not through the runner: each shard group writes its segments once
to an Arrow IPC spill file, and only small descriptors (partition, group, row numbers) go through the
GroupByKey, keyed by (split, bucket): partitions are hashed into BUCKETS buckets per split. Each bucket's
writer walks the groups in order, maps each group's file once, takes the rows of each of its partitions
(the take copies them), unmaps it, and streams each partition into its own Parquet files. So the runner's
shuffle stays tiny (DirectRunner keeps it in memory), the spill holds each embedding once (a segment is in
2.5 partitions on average: the exploded spill this replaced wrote 2.5x the bytes, 8 GB for the full
release, and disk bandwidth bounds the build), and a writer's memory is bounded by one group's file plus
PENDING_BYTES of rows, however large its partitions (Music and Speech hold about 1M rows each in the full
release). A spill folder that is not local (gs:// on Dataflow) cannot be mapped: there each group's file
holds one record batch per partition instead (the rows exploded), which the writer reads whole.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import time
import zlib
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from apache_beam import PCollection
from apache_beam.metrics import Metrics

from audioset_beam import layout
from audioset_beam.schema import CLIPS
from transforms import fileio
from transforms.coders import BatchCoder
from transforms.core.check import WritePlan
from transforms.core.partition import partition_rows
from transforms.deadletters import STATS
from transforms.label import SegmentBatch
from transforms.segments import release_indexes
from transforms.strong import release_strong

log = logging.getLogger(__name__)

# Spill files hold the segments without ``is_primary`` (which depends on the partition) and
# ``sampling_weight`` (which needs the whole split's label counts): the partition writer adds both.
_WEIGHT_AT = CLIPS.names.index('sampling_weight')
_PRIMARY_AT = [n for n in CLIPS.names if n != 'sampling_weight'].index('is_primary')
SPILL_SCHEMA = pa.schema([f for f in CLIPS.schema if f.name not in ('is_primary', 'sampling_weight')])

# Columns worth a dictionary (repeated values); the embedding and per-row ids are not.
_DICTIONARY_COLUMNS = ['labels', 'label_names', 'label_indices', 'labels_with_ancestors',
                       'labels_with_ancestors_names', 'label_source', 'strong_events', 'frame_labels',
                       'frame_positives_official', 'frame_negatives', 'embedding_source', 'model_fingerprint',
                       'source_file']
_STATISTICS_COLUMNS = ['segment_id', 'video_id', 'start_time_seconds', 'end_time_seconds', 'label_source',
                       'is_primary', 'num_frames', 'embedding_source', 'model_fingerprint', 'source_file',
                       'source_record']


@dataclasses.dataclass
class SpillRef:
    """A shard group's rows of one partition. ``rows``: int32, ascending, each row's segment within the
    group (to take them, and to leave out duplicates); ``primary``: whether the partition is the row's
    first label. ``exploded``: the record batch ``batch_index`` of ``path`` holds exactly these rows (a
    remote spill); else the file's one batch holds all the group's segments and the rows are taken from it."""
    group_id: int
    label: str
    path: str
    batch_index: int
    rows: np.ndarray
    primary: np.ndarray
    exploded: bool = False

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes + self.primary.nbytes + len(self.path)


beam.coders.registry.register_coder(SpillRef, BatchCoder)


@dataclasses.dataclass(frozen=True)
class WrittenFile:
    """A file the run wrote, with what it should hold (verified before the manifest is written)."""
    table: str
    path: str
    rows: int
    partition: tuple[tuple[str, str], ...] = ()


class _SpillFn(beam.DoFn):
    """Writes a group's segments to one Arrow IPC file and yields a SpillRef per partition they fall in.
    Locally the file (Arrow IPC) holds them once, as one record batch; remotely one record batch per
    partition (see the module's docstring)."""

    def __init__(self, spill_dir: str, exploded: bool):
        self.spill_dir, self.exploded = spill_dir, exploded

    def process(self, batch: SegmentBatch):
        started = time.perf_counter()
        path = layout.join(self.spill_dir, 'groups', f'group-{batch.group_id:06d}.arrow')
        parts = list(partition_rows(batch.segments['labels']))
        if not parts:
            return
        exploded = self.exploded
        table = batch.segments
        if exploded:
            table = table.take(pa.array(np.concatenate([rows for _, rows, _ in parts])))
        table = table.cast(SPILL_SCHEMA).combine_chunks()
        sizes = [len(rows) for _, rows, _ in parts] if exploded else [table.num_rows]
        with fileio.create_output(path) as f, ipc.new_file(f, SPILL_SCHEMA) as writer:
            for start, size in zip(np.cumsum([0] + sizes[:-1]).tolist(), sizes):
                writer.write_table(table.slice(start, size), max_chunksize=size or 1)
        for i, (label, rows, primary) in enumerate(parts):
            ref = SpillRef(batch.group_id, label, path, i if exploded else 0, rows, primary, exploded)
            yield (batch.split, label if exploded else bucket_of(label)), ref
        yield beam.pvalue.TaggedOutput(STATS, {'timings': {'spill': time.perf_counter() - started}})


@functools.lru_cache(maxsize=8)
def _leaf_columns(schema: pa.Schema) -> dict[str, list[tuple[str, str]]]:
    """(path, physical type) of the Parquet leaf columns of each top-level field. Per-column writer options
    name leaves (a list<string> column is ``labels.list.element``): a top-level name alone leaves a nested
    column with the writer's defaults, uncompressed and without a dictionary."""
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    parquet_schema = pq.read_metadata(pa.BufferReader(sink.getvalue())).schema
    leaves = collections.defaultdict(list)
    for i in range(len(parquet_schema)):
        column = parquet_schema.column(i)
        leaves[column.path.split('.')[0]].append((column.path, column.physical_type))
    return dict(leaves)


class _RollingParquetWriter:
    """Writes rows to part-00000.parquet, part-00001.parquet... of a directory: full row groups, and a new
    file every ``max_rows_per_file`` rows, holding at most one row group in memory."""

    def __init__(self, directory: str, schema: pa.Schema, max_rows_per_file: int, row_group_rows: int,
                 embedding_compression: str = 'zstd'):
        self.directory, self.schema = directory, schema
        leaves = _leaf_columns(schema)
        self.compression = {path: embedding_compression if name == 'embedding' else 'zstd'
                            for name, paths in leaves.items() for path, _ in paths}
        # Dictionaries for the repeated strings and label numbers (not a struct's times).
        self.dictionary = [path for name in _DICTIONARY_COLUMNS for path, kind in leaves.get(name, ())
                           if kind in ('BYTE_ARRAY', 'INT32')]
        self.max_rows_per_file, self.row_group_rows = max_rows_per_file, row_group_rows
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.pending_bytes = 0
        self.file_rows = 0
        self.sink = self.writer = None
        self.written: list[tuple[str, int]] = []

    def write(self, rows: pa.Table) -> None:
        while rows.num_rows:
            file_room = self.max_rows_per_file - self.file_rows - self.pending_rows
            take = rows.slice(0, min(file_room, self.row_group_rows - self.pending_rows))
            self.pending.append(take)
            self.pending_rows += take.num_rows
            self.pending_bytes += take.nbytes
            rows = rows.slice(take.num_rows)
            file_full = self.file_rows + self.pending_rows >= self.max_rows_per_file
            if file_full or self.pending_rows >= self.row_group_rows:
                self._flush(force_close=file_full)

    def _flush(self, force_close: bool = False) -> None:
        if self.pending_rows:
            if self.writer is None:
                path = layout.part_file(self.directory, len(self.written))
                self.sink = fileio.create_output(path)
                self.writer = pq.ParquetWriter(
                    self.sink, self.schema, compression=self.compression, use_dictionary=self.dictionary,
                    write_statistics=_STATISTICS_COLUMNS)
                self.written.append((path, 0))
            self.writer.write_table(pa.concat_tables(self.pending), row_group_size=self.row_group_rows)
            self.file_rows += self.pending_rows
            path, n = self.written[-1]
            self.written[-1] = (path, n + self.pending_rows)
            self.pending, self.pending_rows, self.pending_bytes = [], 0, 0
        if force_close and self.writer is not None:
            self.writer.close()
            self.sink.close()
            self.writer = self.sink = None
            self.file_rows = 0

    def flush_row_group(self) -> None:
        """Writes the pending rows now, as a row group shorter than ``row_group_rows``."""
        self._flush()

    def close(self) -> list[tuple[str, int]]:
        self._flush(force_close=True)
        return self.written


# Partitions are written in buckets: one writer call per (split, bucket) takes the rows of every partition
# of its bucket from each group's spill file, mapping each file once. Taking one partition at a time from
# every group's file cost ~3x more (each of ~25,000 small takes faulted in pages of all ~20 columns). An
# exploded spill (gs://) has each partition's rows apart already: there each partition is its own bucket,
# so a Dataflow job writes partitions on as many workers as it has.
BUCKETS = 16
# A bucket's writer holds at most this much of pending rows: past it, the largest partition's pending rows
# are written as a (shorter) row group.
PENDING_BYTES = 256 << 20


def bucket_of(label: str) -> int:
    """The writer bucket of a partition: stable across runs, processes and Python's hash seed."""
    return zlib.crc32(label.encode()) % BUCKETS


class _WritePartitionsFn(beam.DoFn):
    def __init__(self, output_dir: str, max_rows_per_file: int, row_group_rows: int, embedding_compression: str,
                 pending_bytes: int = PENDING_BYTES):
        self.output_dir, self.embedding_compression = output_dir, embedding_compression
        self.max_rows_per_file, self.row_group_rows = max_rows_per_file, row_group_rows
        self.pending_bytes = pending_bytes
        self.files = Metrics.counter(self.__class__, 'files-written')
        self.rows = Metrics.counter(self.__class__, 'rows-written')

    def setup(self):
        # Labelling and the check are done by the time partitions are written: the CSV index (~0.25 GB for
        # unbalanced_train) and the AudioSet Strong index (~0.6 GB) this worker process loaded for them
        # are not needed here; release them, so the writers' memory adds to less.
        release_indexes()
        release_strong()

    @staticmethod
    def _source(refs: list[SpillRef]):
        """A function giving each ref's rows (without ``is_primary`` and ``sampling_weight``) from the one
        spill file that all ``refs`` name, opened once: memory-mapped locally (until the last take; each
        take copies its rows, so nothing refers to the map afterwards), read by range on gs://."""
        path = refs[0].path
        reader = ipc.open_file(fileio.map_local(path) if fileio.is_local(path) else fileio.open_random_access(path))
        if refs[0].exploded:
            return lambda ref: pa.Table.from_batches([reader.get_batch(ref.batch_index)])
        batch = reader.get_batch(0)
        return lambda ref: pa.Table.from_batches([batch.take(pa.array(ref.rows))])

    def process(self, bucket, plan: WritePlan):
        started = time.perf_counter()
        (split, _), refs = bucket
        by_group = collections.defaultdict(list)
        for ref in refs:
            by_group[ref.group_id].append(ref)
        writers: dict[str, _RollingParquetWriter] = {}
        gathering = 0.0
        for group_id in sorted(by_group):  # group order: the output does not depend on the runner
            group_refs = sorted(by_group[group_id], key=lambda r: r.label)
            gather_started = time.perf_counter()
            source = self._source(group_refs)
            parts = [source(ref) for ref in group_refs]
            del source
            gathering += time.perf_counter() - gather_started
            dropped = plan.drops.get((split, group_id))
            for ref, part in zip(group_refs, parts):
                part = part.add_column(_PRIMARY_AT, CLIPS.schema.field('is_primary'),
                                       pa.array(ref.primary, pa.bool_()))
                if dropped is not None and len(dropped):
                    part = part.filter(pa.array(~np.isin(ref.rows, dropped)))
                if part.num_rows:
                    part = part.add_column(_WEIGHT_AT, CLIPS.schema.field('sampling_weight'),
                                           plan.weights(split, part['label_indices']))
                    if ref.label not in writers:
                        writers[ref.label] = _RollingParquetWriter(
                            layout.partition_dir(self.output_dir, split, ref.label), CLIPS.schema,
                            self.max_rows_per_file, self.row_group_rows, self.embedding_compression)
                    writers[ref.label].write(part)
            del parts
            # Bounded memory whatever the bucket holds: write the largest pending rows first.
            while sum(w.pending_bytes for w in writers.values()) > self.pending_bytes:
                max(writers.values(), key=lambda w: (w.pending_bytes, w.directory)).flush_row_group()
        for label in sorted(writers):
            for path, n in writers[label].close():
                self.files.inc()
                self.rows.inc(n)
                yield WrittenFile(CLIPS.name, path, n, (('split', split), ('label', label)))
        yield beam.pvalue.TaggedOutput(STATS, {'timings': {'write': time.perf_counter() - started - gathering,
                                                             'gather': gathering}})


class WriteOutputs(NamedTuple):
    """WriteClips' (and WriteDeadLetters') outputs."""
    files: PCollection[WrittenFile]
    stats: PCollection[dict]


class WriteClips(beam.PTransform):
    """(PCollection[SegmentBatch], plan) -> WriteOutputs: a WrittenFile per Parquet file under ``clips/``, stats.

    ``plan`` is a singleton PCollection of WritePlan (see CheckSegments): released records found to repeat
    a segment seen earlier in their split, left out of every partition, and each split's label counts,
    from which each row's ``sampling_weight`` is computed. Each (split, label) partition gets
    ceil(rows / max_rows_per_file) files, rows in shard-group order, row groups of at most ``row_group_rows``
    (shorter where a bucket's pending rows pass PENDING_BYTES). Names depend only on content, so a rerun
    overwrites.
    """

    def __init__(self, output_dir: str, max_rows_per_file: int = 250_000, row_group_rows: int = 50_000,
                 embedding_compression: str = 'none', exploded_spill: bool | None = None):
        super().__init__()
        # None: the spill holds each segment once where it can be memory-mapped (a local output), else
        # exploded (see the module's docstring); tests set it to compare both.
        self.exploded_spill = not fileio.is_local(output_dir) if exploded_spill is None else exploded_spill
        if max_rows_per_file < 1 or row_group_rows < 1:
            raise ValueError('max_rows_per_file and row_group_rows must be positive')
        self.output_dir = output_dir
        self.max_rows_per_file = max_rows_per_file
        self.row_group_rows = min(row_group_rows, max_rows_per_file)
        # Quantized PCA bytes hardly compress (zstd: 8% smaller, measured on released embeddings) but cost
        # most of the write time; every other column is zstd. See README: Performance.
        self.embedding_compression = embedding_compression

    def expand(self, inputs: tuple[PCollection[SegmentBatch], PCollection[WritePlan]]) -> WriteOutputs:
        segments, plan = inputs
        spill_dir = layout.join(self.output_dir, layout.SPILL_DIR)
        spilled = segments | 'SpillSegments' >> beam.ParDo(_SpillFn(spill_dir, self.exploded_spill)).with_outputs(STATS, main='refs')
        written = (spilled.refs
                   | 'Typed' >> beam.Map(lambda kv: kv).with_output_types(
                       beam.typehints.Tuple[beam.typehints.Tuple[str, beam.typehints.Union[int, str]], SpillRef])
                   | 'GroupByPartition' >> beam.GroupByKey()
                   | 'WritePartitions' >> beam.ParDo(
                       _WritePartitionsFn(self.output_dir, self.max_rows_per_file, self.row_group_rows,
                                         self.embedding_compression),
                       beam.pvalue.AsSingleton(plan, default_value=WritePlan())).with_outputs(STATS, main='files'))
        return WriteOutputs(written.files, (spilled[STATS], written[STATS]) | 'FlattenWriteStats' >> beam.Flatten())

