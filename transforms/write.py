"""WriteClips: labelled segments to hive-partitioned Parquet (split=<split>/label=<MID>).

Rows are shuffled through spill files, not through the runner: each shard group writes its labelled
segments once to an Arrow IPC file, and only small descriptors (partition -> group, row numbers) go through
GroupByKey. Each partition writer then takes its rows from the groups' files, group by group. So the
runner's shuffle stays tiny (DirectRunner keeps it in memory), the embeddings are written and read once,
and a writer's memory is bounded by one group's rows, however large its partition (Music and Speech hold
about 1M rows each in the full release).
"""
from __future__ import annotations

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
from transforms.core.partition import partition_rows
from transforms.core.schema import CLIPS
from transforms.label import SegmentBatch

log = logging.getLogger(__name__)

# Columns worth a dictionary (repeated values); the embedding and per-row ids are not.
_DICTIONARY_COLUMNS = ['labels', 'label_names', 'labels_with_ancestors', 'labels_with_ancestors_names',
                       'label_source', 'embedding_source', 'model_fingerprint', 'source_file']
_STATISTICS_COLUMNS = ['segment_id', 'video_id', 'start_time_seconds', 'end_time_seconds', 'label_source',
                       'is_primary', 'num_frames', 'embedding_source', 'model_fingerprint', 'source_file',
                       'source_record']


@dataclasses.dataclass
class SpillRef:
    """The rows of one shard group's spill file that belong to one partition, in group order."""
    group_id: int
    path: str
    rows: np.ndarray      # int32, ascending: rows of the group's spill table
    primary: np.ndarray   # bool per row: is this the segment's first label

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
    """Writes a group's labelled segments once, unexploded, to an Arrow IPC file; yields per label the
    rows that belong to that partition. The embeddings are written once and read once."""

    def __init__(self, spill_dir: str):
        self.spill_dir = spill_dir

    def process(self, batch: SegmentBatch):
        started = time.perf_counter()
        path = layout.join(self.spill_dir, 'groups', f'group-{batch.group_id:06d}.arrow')
        with FileSystems.create(path, compression_type='uncompressed') as f:
            with ipc.new_file(f, batch.segments.schema) as writer:
                writer.write_table(batch.segments)
        for label, rows, primary in partition_rows(batch.segments['labels']):
            yield (batch.split, label), SpillRef(batch.group_id, path, rows, primary)
        yield beam.pvalue.TaggedOutput('stats', {'timings': {'spill': time.perf_counter() - started}})


class _RollingParquetWriter:
    """Writes rows to part-00000.parquet, part-00001.parquet... of a directory: full row groups, and a new
    file every ``max_rows_per_file`` rows, holding at most one row group in memory."""

    def __init__(self, directory: str, schema: pa.Schema, max_rows_per_file: int, row_group_rows: int):
        self.directory, self.schema = directory, schema
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
                    self.sink, self.schema, compression='zstd', use_dictionary=_DICTIONARY_COLUMNS,
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
    def __init__(self, output_dir: str, max_rows_per_file: int, row_group_rows: int):
        self.output_dir = output_dir
        self.max_rows_per_file, self.row_group_rows = max_rows_per_file, row_group_rows
        self.files = Metrics.counter(self.__class__, 'files-written')
        self.rows = Metrics.counter(self.__class__, 'rows-written')

    def process(self, partition, drops: dict):
        started = time.perf_counter()
        (split, label), refs = partition
        directory = layout.partition_dir(self.output_dir, split, label)
        writer = _RollingParquetWriter(directory, CLIPS.schema, self.max_rows_per_file, self.row_group_rows)
        primary_at = CLIPS.names.index('is_primary')
        for ref in sorted(refs, key=lambda r: r.group_id):  # group order: the output does not depend on the runner
            rows, primary = ref.rows, ref.primary
            dropped = drops.get((split, ref.group_id))
            if dropped is not None and len(dropped):
                keep = ~np.isin(rows, dropped)
                rows, primary = rows[keep], primary[keep]
            if not len(rows):
                continue
            # Memory-mapped and closed after use: only the rows taken are read, and the mapping never
            # outlives this group's rows.
            with fileio.open_spill(ref.path) as source:
                part = ipc.open_file(source).read_all().take(pa.array(rows))
            part = part.add_column(primary_at, 'is_primary', pa.array(primary))
            writer.write(part.cast(CLIPS.schema))
            del part
        for path, n in writer.close():
            self.files.inc()
            self.rows.inc(n)
            yield WrittenFile(CLIPS.name, path, n, (('split', split), ('label', label)))
        yield beam.pvalue.TaggedOutput('stats', {'timings': {'write': time.perf_counter() - started}})


class WriteClips(beam.PTransform):
    """(PCollection[SegmentBatch], drops) -> {'files': WrittenFile per Parquet file under ``clips/``, 'stats'}.

    ``drops`` is a singleton PCollection of {(split, group_id): rows}: released records found to repeat a
    segment seen earlier in their split (see CheckSegments), left out of every partition. Each (split, label) partition gets ceil(rows / max_rows_per_file) files, rows in shard-group order,
    row groups of ``row_group_rows``. Names depend only on content, so a rerun overwrites.
    """

    def __init__(self, output_dir: str, max_rows_per_file: int = 250_000, row_group_rows: int = 50_000):
        super().__init__()
        if max_rows_per_file < 1 or row_group_rows < 1:
            raise ValueError('max_rows_per_file and row_group_rows must be positive')
        self.output_dir = output_dir
        self.max_rows_per_file = max_rows_per_file
        self.row_group_rows = min(row_group_rows, max_rows_per_file)

    def expand(self, inputs):
        segments, drops = inputs
        spill_dir = layout.join(self.output_dir, layout.SPILL_DIR)
        spilled = segments | 'SpillSegments' >> beam.ParDo(_SpillFn(spill_dir)).with_outputs('stats', main='refs')
        written = (spilled.refs
                   | 'Typed' >> beam.Map(lambda kv: kv).with_output_types(
                       beam.typehints.Tuple[beam.typehints.Tuple[str, str], SpillRef])
                   | 'GroupByPartition' >> beam.GroupByKey()
                   | 'WritePartitions' >> beam.ParDo(
                       _WritePartitionFn(self.output_dir, self.max_rows_per_file, self.row_group_rows),
                       beam.pvalue.AsSingleton(drops, default_value={})).with_outputs('stats', main='files'))
        return {'files': written.files, 'stats': (spilled.stats, written.stats) | 'FlattenWriteStats' >> beam.Flatten()}

