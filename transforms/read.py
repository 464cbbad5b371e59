"""ReadShards: TFRecord shards (local or gs://) to parsed AudioSet records, damage to dead letters."""
from __future__ import annotations

import dataclasses
import logging
import os
import stat
import time
from typing import Iterable

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms import fileio
from transforms.coders import BatchCoder
from transforms.core import deadletter, layout, stats, tfrecord
from transforms.core.sequence_example import Records, parse_records

log = logging.getLogger(__name__)

DEAD_LETTERS = 'dead_letters'
STATS = 'stats'


@dataclasses.dataclass(frozen=True)
class ShardGroup:
    """Shards of one split read by one worker call, so parsing and writing work on large batches."""
    group_id: int
    split: str
    paths: tuple[str, ...]


@dataclasses.dataclass
class ShardBatch:
    """The parsed records of a ShardGroup; ``records.position`` indexes ``source_index``/``record_index``."""
    group_id: int
    split: str
    sources: tuple[str, ...]
    records: Records
    source_index: np.ndarray
    record_index: np.ndarray     # -1 where damage earlier in the shard makes the index unknowable
    byte_offset: np.ndarray

    @property
    def nbytes(self) -> int:
        r = self.records
        return r.frames.nbytes + r.label_values.nbytes + 64 * len(r.video_id)


beam.coders.registry.register_coder(ShardBatch, BatchCoder)


def _list_shards(features_dir: str, folder: str) -> list[tuple[str, int]]:
    """(path, size) of every ``*.tfrecord`` entry of a split folder, sorted. Locally this lists every
    entry with that name, not only regular files, so that a directory, FIFO or dangling link named like a
    shard is read (and rejected) rather than silently skipped."""
    directory = layout.join(features_dir, folder)
    if fileio.is_local(directory):
        if not os.path.isdir(directory):
            return []
        found = []
        for entry in os.scandir(directory):
            if entry.name.endswith('.tfrecord'):
                try:
                    size = entry.stat().st_size if entry.is_file() else 0
                except OSError:
                    size = 0
                found.append((os.path.join(directory, entry.name), size))
        return sorted(found)
    pattern = layout.join(directory, '*.tfrecord')
    return sorted((m.path, m.size_in_bytes) for m in FileSystems.match([pattern])[0].metadata_list)


def plan_shard_groups(features_dir: str, target_bytes: int) -> tuple[list[ShardGroup], dict]:
    """Lists ``<features_dir>/{eval,bal_train,unbal_train}/*.tfrecord`` and cuts each split into groups.

    Groups hold consecutive shards (sorted by name) of about ``target_bytes``, so the plan and thus the
    output are deterministic. Returns the groups and a summary of the inputs per split.
    """
    if target_bytes <= 0:
        raise ValueError(f'target_bytes must be positive, got {target_bytes}')
    groups: list[ShardGroup] = []
    inputs: dict = {}
    for folder, split in layout.FEATURE_FOLDERS.items():
        found = _list_shards(features_dir, folder)
        if not found:
            continue
        inputs[split] = {'pattern': layout.join(features_dir, folder, '*.tfrecord'), 'shards': len(found),
                         'bytes': sum(s for _, s in found)}
        current: list[str] = []
        size = 0
        for path, nbytes in found:
            current.append(path)
            size += nbytes
            if size >= target_bytes:
                groups.append(ShardGroup(len(groups), split, tuple(current)))
                current, size = [], 0
        if current:
            groups.append(ShardGroup(len(groups), split, tuple(current)))
    return groups, inputs


def read_shard_file(path: str) -> bytes:
    """A shard's bytes. Locally, anything but a regular file (a directory, FIFO, socket, dangling link) is
    refused before it is opened, so a FIFO can never hang the build."""
    if fileio.is_local(path):
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise OSError('no such file (a dangling link?)') from None
        if not stat.S_ISREG(mode):
            kind = 'a directory' if stat.S_ISDIR(mode) else 'a FIFO' if stat.S_ISFIFO(mode) else 'not a regular file'
            raise OSError(f'{kind}, not a shard file')
    return fileio.read_bytes(path)


class _ReadShardGroupFn(beam.DoFn):
    def __init__(self):
        self.records_read = Metrics.counter(self.__class__, 'records-read')
        self.shards_read = Metrics.counter(self.__class__, 'shards-read')
        self.damaged = Metrics.counter(self.__class__, 'damaged-inputs')

    def process(self, group: ShardGroup) -> Iterable:
        started = time.perf_counter()
        payloads: list[bytes] = []
        where_source: list[int] = []
        where_record: list[int] = []
        where_offset: list[int] = []
        bad: list[dict] = []
        records_in = 0
        st: dict = {}
        for s, path in enumerate(group.paths):
            try:
                data = read_shard_file(path)
            except Exception as e:  # noqa: BLE001 -- any failure to read a file is that file's dead letter
                bad.append(deadletter.dead_letter(deadletter.READ_SHARD, 'unreadable-file', path,
                                                  f'{type(e).__name__}: {e}', split=group.split, records=0))
                stats.bump(st, 'splits', group.split, 'unreadable_files', 1)
                continue
            self.shards_read.inc()
            for framed in tfrecord.iter_records(data):
                if framed.payload is None:
                    hidden = getattr(framed, 'records', 1)
                    records_in += hidden
                    bad.append(deadletter.dead_letter(
                        deadletter.READ_SHARD, framed.reason, path, framed.error, record_index=framed.index,
                        byte_offset=framed.offset, split=group.split, records=hidden,
                        records_estimated=bool(getattr(framed, 'estimated', False))))
                    continue
                records_in += 1
                payloads.append(framed.payload)
                where_source.append(s)
                where_record.append(-1 if framed.index is None else framed.index)
                where_offset.append(framed.offset)
        records, bad_records = parse_records(payloads)
        for b in bad_records:
            rec = where_record[b.position]
            bad.append(deadletter.dead_letter(
                deadletter.PARSE_RECORD, b.reason, group.paths[where_source[b.position]], b.error,
                record_index=None if rec < 0 else rec, byte_offset=where_offset[b.position], split=group.split))
        self.records_read.inc(len(payloads))
        self.damaged.inc(len(bad))
        for i, row in enumerate(bad):
            if i < 3:
                log.warning('dead letter: %s', deadletter.describe(row))
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, row)
        stats.bump(st, 'splits', group.split, 'records_in', records_in)
        stats.bump(st, 'splits', group.split, 'shards', len(group.paths))
        stats.bump(st, 'timings', 'read_parse', time.perf_counter() - started)
        yield beam.pvalue.TaggedOutput(STATS, st)
        log.info('read group %d (%s): %d shards, %d records, %d damaged', group.group_id, group.split,
                 len(group.paths), len(records), len(bad))
        yield ShardBatch(group.group_id, group.split, group.paths, records,
                         np.asarray(where_source, np.int64), np.asarray(where_record, np.int64),
                         np.asarray(where_offset, np.int64))


class ReadShards(beam.PTransform):
    """PCollection[ShardGroup] -> {'records': PCollection[ShardBatch], 'dead_letters': dicts, 'stats': dicts}.

    Every framed record, damaged stretch and unreadable file is counted in ``records_in``; each one is
    either in a ShardBatch or a dead letter.
    """

    def expand(self, groups):
        out = (groups
               | 'Redistribute' >> beam.Reshuffle()
               | 'ReadAndParse' >> beam.ParDo(_ReadShardGroupFn()).with_output_types(ShardBatch).with_outputs(
                   DEAD_LETTERS, STATS, main='records'))
        return {'records': out.records, DEAD_LETTERS: out[DEAD_LETTERS], STATS: out[STATS]}
