"""ReadSegmentCsvs: the released segment CSVs to per-split join indexes, bad lines to dead letters.

The parsed CSV is not passed through the runner: it is written once as an Arrow IPC file beside the spill,
and only its path travels (as a side input). Each worker process loads it once (``load_index``), so a
2M-row CSV costs one read per process, never one pickled copy per bundle.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import NamedTuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.ipc as ipc
from apache_beam import PCollection
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from audioset_beam import layout
from transforms import fileio
from transforms.core import stats
from transforms.core.ontology import Vocabulary
from transforms.core.segments_csv import SegmentIndex, parse_segments_csv
from transforms.deadletters import DEAD_LETTERS, STATS, tag_dead_letters

log = logging.getLogger(__name__)

_indexes: dict[str, SegmentIndex] = {}
_lock = threading.Lock()


def write_arrow(path: str, table: pa.Table) -> None:
    """Writes ``table`` as one Arrow IPC file (a side input's spill: only ``path`` travels)."""
    with FileSystems.create(path, compression_type='uncompressed') as f:
        with ipc.new_file(f, table.schema) as writer:
            writer.write_table(table)


def read_arrow(path: str) -> pa.Table:
    """The table of an Arrow IPC file written by ``write_arrow``."""
    with fileio.open_random_access(path) as f:
        return ipc.open_file(f).read_all()


def load_index(path: str, source: str) -> SegmentIndex:
    """The SegmentIndex stored at ``path`` (an Arrow IPC file), loaded once per process."""
    with _lock:
        index = _indexes.get(path)
        if index is None:
            index = _indexes[path] = SegmentIndex(read_arrow(path), source)
        return index


def release_indexes() -> None:
    """Drops this process's loaded indexes (a step that no longer needs them frees their memory; a later
    load_index reads the file again; a caller still holding one keeps it)."""
    with _lock:
        _indexes.clear()


class _ParseCsvFn(beam.DoFn):
    def __init__(self, vocab: Vocabulary, spill_dir: str):
        self.vocab, self.spill_dir = vocab, spill_dir
        self.rows = Metrics.counter(self.__class__, 'csv-rows')
        self.bad = Metrics.counter(self.__class__, 'csv-rows-rejected')

    def process(self, split_and_path: tuple[str, str]):
        started = time.perf_counter()
        split, path = split_and_path
        data = fileio.read_bytes(path)
        parsed = parse_segments_csv(data, path, split, self.vocab.known_mids)
        self.rows.inc(parsed.lines)
        self.bad.inc(len(parsed.dead_letters))
        yield from tag_dead_letters(parsed.dead_letters, log)
        index_path = layout.join(self.spill_dir, 'csv', f'{split}.arrow')
        write_arrow(index_path, parsed.table)
        st: dict = {}
        st.setdefault('csv', {}).setdefault(split, {})['file'] = path
        stats.bump(st, 'csv', split, 'rows_in', parsed.lines)
        stats.bump(st, 'csv', split, 'rows_ok', parsed.table.num_rows)
        stats.bump(st, 'csv', split, 'rows_rejected', len(parsed.dead_letters))
        stats.bump(st, 'csv', split, 'duplicate_labels_removed', parsed.duplicate_labels)
        if parsed.declared_rows is not None:
            stats.bump(st, 'csv', split, 'rows_declared_in_header', parsed.declared_rows)
            # A release CSV proves it is whole by its header's num_segs and its final newline; one that
            # falls short was cut (a partial download), and a partial input never builds "complete".
            short = parsed.declared_rows - parsed.lines
            if short > 0 or (data and not data.endswith(b'\n')):
                why = (f'{parsed.lines:,} data lines, {short:,} fewer than its header\'s num_segs='
                       f'{parsed.declared_rows:,}' if short > 0 else 'its last line has no newline')
                st['incomplete_inputs'] = [{'source': path, 'reason': 'truncated-csv', 'records_estimated': 0,
                                            'error': f'{why}: the file was cut short (a partial download?)'}]
        stats.bump(st, 'timings', 'parse_csv', time.perf_counter() - started)
        yield beam.pvalue.TaggedOutput(STATS, st)
        log.info('read %s: %d rows, %d rejected', path, parsed.lines, len(parsed.dead_letters))
        yield split, (index_path, path)


class CsvOutputs(NamedTuple):
    """ReadSegmentCsvs' outputs."""
    index: PCollection[tuple[str, tuple[str, str]]]     # (split, (index path, csv path))
    dead_letters: PCollection[dict]
    stats: PCollection[dict]


class ReadSegmentCsvs(beam.PTransform):
    """PCollection[(split, csv path)] -> CsvOutputs: (split, (index path, csv path)) per CSV, dead letters, stats.

    A line that cannot be used (see ``parse_segments_csv``) is a dead letter with file and line number.
    Load an index with ``load_index(*paths)``.
    """

    def __init__(self, vocab: Vocabulary, spill_dir: str):
        super().__init__()
        self.vocab, self.spill_dir = vocab, spill_dir

    def expand(self, csvs: PCollection[tuple[str, str]]) -> CsvOutputs:
        out = csvs | 'ParseCsv' >> beam.ParDo(_ParseCsvFn(self.vocab, self.spill_dir)).with_outputs(
            DEAD_LETTERS, STATS, main='index')
        return CsvOutputs(out.index, out[DEAD_LETTERS], out[STATS])
