"""WriteClips: labelled segments to hive-partitioned Parquet (split=<split>/label=<MID>).

Rows are shuffled through spill files, not through the runner: each shard group writes its rows to an
Arrow IPC file, and only small descriptors (partition -> group, batch) go through GroupByKey. Each group's file holds one record batch per label, and each partition writer reads its
batches, group by group. So the runner's shuffle stays tiny (DirectRunner keeps it in memory) and a
writer's memory is bounded by one group's rows of its label, however large its partition (Music and Speech
hold about 1M rows each in the full release).
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import time

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms import fileio
from transforms.core import layout
from transforms.coders import BatchCoder
from transforms.core.check import WritePlan
from transforms.core.partition import partition_rows
from transforms.core.schema import CLIPS
from transforms.label import SegmentBatch

log = logging.getLogger(__name__)

# Spill files hold the exploded rows without ``sampling_weight``, which needs the whole split's label
# counts: the partition writer adds it.
_WEIGHT_AT = CLIPS.names.index('sampling_weight')
SPILL_SCHEMA = CLIPS.schema.remove(_WEIGHT_AT)

# Columns worth a dictionary (repeated values); the embedding and per-row ids are not.
_DICTIONARY_COLUMNS = ['labels', 'label_names', 'labels_with_ancestors', 'labels_with_ancestors_names',
                       'label_source', 'embedding_source', 'model_fingerprint', 'source_file']
_STATISTICS_COLUMNS = ['segment_id', 'video_id', 'start_time_seconds', 'end_time_seconds', 'label_source',
                       'is_primary', 'num_frames', 'embedding_source', 'model_fingerprint', 'source_file',
                       'source_record']


@dataclasses.dataclass
class SpillRef:
    """One record batch of a shard group's spill file: the group's rows of one partition, in group order."""
    group_id: int
    path: str
    batch_index: int
    rows: np.ndarray      # int32, ascending: each row's segment within the group (to leave out duplicates)

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes + len(self.path)


beam.coders.registry.register_coder(SpillRef, BatchCoder)


@dataclasses.dataclass(frozen=True)
class WrittenFile:
    """A file the run wrote, with what it should hold (verified before the manifest is written)."""
    table: str
    path: str
    rows: int
    partition: tuple[tuple[str, str], ...] = ()


class _SpillFn(beam.DoFn):
    """Writes a group's rows, one per (segment, label), to an Arrow IPC file with one record batch per
    label; yields a SpillRef per batch. A partition writer then reads exactly its batches: one read per
    (group, label), no random access, nothing else of the file."""

    def __init__(self, spill_dir: str):
        self.spill_dir = spill_dir

    def process(self, batch: SegmentBatch):
        started = time.perf_counter()
        path = layout.join(self.spill_dir, 'groups', f'group-{batch.group_id:06d}.arrow')
        parts = list(partition_rows(batch.segments['labels']))
        if not parts:
            return
        order = np.concatenate([rows for _, rows, _ in parts])
        exploded = batch.segments.take(pa.array(order))
        exploded = exploded.add_column(SPILL_SCHEMA.names.index('is_primary'), 'is_primary',
                                       pa.array(np.concatenate([p for _, _, p in parts])))
        exploded = exploded.cast(SPILL_SCHEMA).combine_chunks()
        start = 0
        with FileSystems.create(path, compression_type='uncompressed') as f:
            with ipc.new_file(f, SPILL_SCHEMA) as writer:
                for i, (label, rows, _) in enumerate(parts):
                    writer.write_table(exploded.slice(start, len(rows)), max_chunksize=len(rows) or 1)
                    start += len(rows)
                    yield (batch.split, label), SpillRef(batch.group_id, path, i, rows)
        yield beam.pvalue.TaggedOutput('stats', {'timings': {'spill': time.perf_counter() - started}})


class _RollingParquetWriter:
    """Writes rows to part-00000.parquet, part-00001.parquet... of a directory: full row groups, and a new
    file every ``max_rows_per_file`` rows, holding at most one row group in memory."""

    def __init__(self, directory: str, schema: pa.Schema, max_rows_per_file: int, row_group_rows: int,
                 embedding_compression: str = 'zstd'):
        self.directory, self.schema = directory, schema
        self.compression = {name: 'zstd' for name in schema.names}
        if 'embedding' in self.compression:
            self.compression['embedding'] = embedding_compression
        self.max_rows_per_file, self.row_group_rows = max_rows_per_file, row_group_rows
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.file_rows = 0
        self.sink = self.writer = None
        self.written: list[tuple[str, int]] = []

    def write(self, rows: pa.Table) -> None:
        while rows.num_rows:
            file_room = self.max_rows_per_file - self.file_rows - self.pending_rows
            take = rows.slice(0, min(file_room, self.row_group_rows - self.pending_rows))
            self.pending.append(take)
            self.pending_rows += take.num_rows
            rows = rows.slice(take.num_rows)
            file_full = self.file_rows + self.pending_rows >= self.max_rows_per_file
            if file_full or self.pending_rows >= self.row_group_rows:
                self._flush(force_close=file_full)

    def _flush(self, force_close: bool = False) -> None:
        if self.pending_rows:
            if self.writer is None:
                path = layout.part_file(self.directory, len(self.written))
                self.sink = FileSystems.create(path, compression_type='uncompressed')
                self.writer = pq.ParquetWriter(
                    self.sink, self.schema, compression=self.compression, use_dictionary=_DICTIONARY_COLUMNS,
                    write_statistics=_STATISTICS_COLUMNS)
                self.written.append((path, 0))
            self.writer.write_table(pa.concat_tables(self.pending), row_group_size=self.row_group_rows)
            self.file_rows += self.pending_rows
            path, n = self.written[-1]
            self.written[-1] = (path, n + self.pending_rows)
            self.pending, self.pending_rows = [], 0
        if force_close and self.writer is not None:
            self.writer.close()
            self.sink.close()
            self.writer = self.sink = None
            self.file_rows = 0

    def close(self) -> list[tuple[str, int]]:
        self._flush(force_close=True)
        return self.written


class _WritePartitionFn(beam.DoFn):
    def __init__(self, output_dir: str, max_rows_per_file: int, row_group_rows: int, embedding_compression: str):
        self.output_dir, self.embedding_compression = output_dir, embedding_compression
        self.max_rows_per_file, self.row_group_rows = max_rows_per_file, row_group_rows
        self.files = Metrics.counter(self.__class__, 'files-written')
        self.rows = Metrics.counter(self.__class__, 'rows-written')

    def setup(self):
        self._readers: collections.OrderedDict = collections.OrderedDict()

    def _reader(self, path: str) -> ipc.RecordBatchFileReader:
        if path in self._readers:
            self._readers.move_to_end(path)
        else:
            self._readers[path] = ipc.open_file(fileio.open_random_access(path))
            if len(self._readers) > 32:
                self._readers.popitem(last=False)
        return self._readers[path]

    def process(self, partition, plan: WritePlan):
        started = time.perf_counter()
        (split, label), refs = partition
        directory = layout.partition_dir(self.output_dir, split, label)
        writer = _RollingParquetWriter(directory, CLIPS.schema, self.max_rows_per_file, self.row_group_rows,
                                       self.embedding_compression)
        for ref in sorted(refs, key=lambda r: r.group_id):  # group order: the output does not depend on the runner
            part = pa.Table.from_batches([self._reader(ref.path).get_batch(ref.batch_index)])
            dropped = plan.drops.get((split, ref.group_id))
            if dropped is not None and len(dropped):
                part = part.filter(pa.array(~np.isin(ref.rows, dropped)))
            if part.num_rows:
                part = part.add_column(_WEIGHT_AT, CLIPS.schema.field('sampling_weight'),
                                       plan.weights(split, part['label_indices']))
                writer.write(part)
            del part
        for path, n in writer.close():
            self.files.inc()
            self.rows.inc(n)
            yield WrittenFile(CLIPS.name, path, n, (('split', split), ('label', label)))
        yield beam.pvalue.TaggedOutput('stats', {'timings': {'write': time.perf_counter() - started}})

    def teardown(self):
        self._readers.clear()


class WriteClips(beam.PTransform):
    """(PCollection[SegmentBatch], plan) -> {'files': WrittenFile per Parquet file under ``clips/``, 'stats'}.

    ``plan`` is a singleton PCollection of WritePlan (see CheckSegments): released records found to repeat
    a segment seen earlier in their split, left out of every partition, and each split's label counts,
    from which each row's ``sampling_weight`` is computed. Each (split, label) partition gets ceil(rows / max_rows_per_file) files, rows in shard-group order,
    row groups of ``row_group_rows``. Names depend only on content, so a rerun overwrites.
    """

    def __init__(self, output_dir: str, max_rows_per_file: int = 250_000, row_group_rows: int = 50_000,
                 embedding_compression: str = 'none'):
        super().__init__()
        if max_rows_per_file < 1 or row_group_rows < 1:
            raise ValueError('max_rows_per_file and row_group_rows must be positive')
        self.output_dir = output_dir
        self.max_rows_per_file = max_rows_per_file
        self.row_group_rows = min(row_group_rows, max_rows_per_file)
        # Quantized PCA bytes hardly compress (zstd: 8% smaller, measured on released embeddings) but cost
        # most of the write time; every other column is zstd. See README: Performance.
        self.embedding_compression = embedding_compression

    def expand(self, inputs):
        segments, plan = inputs
        spill_dir = layout.join(self.output_dir, layout.SPILL_DIR)
        spilled = segments | 'SpillSegments' >> beam.ParDo(_SpillFn(spill_dir)).with_outputs('stats', main='refs')
        written = (spilled.refs
                   | 'Typed' >> beam.Map(lambda kv: kv).with_output_types(
                       beam.typehints.Tuple[beam.typehints.Tuple[str, str], SpillRef])
                   | 'GroupByPartition' >> beam.GroupByKey()
                   | 'WritePartitions' >> beam.ParDo(
                       _WritePartitionFn(self.output_dir, self.max_rows_per_file, self.row_group_rows,
                                         self.embedding_compression),
                       beam.pvalue.AsSingleton(plan, default_value=WritePlan())).with_outputs('stats', main='files'))
        return {'files': written.files, 'stats': (spilled.stats, written.stats) | 'FlattenWriteStats' >> beam.Flatten()}

