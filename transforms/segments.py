"""ReadSegmentCsvs: the released segment CSVs to per-split join indexes, bad lines to dead letters."""
from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms import fileio
from transforms.core import deadletter, stats
from transforms.core.ontology import Vocabulary
from transforms.core.segments_csv import SegmentIndex, parse_segments_csv

log = logging.getLogger(__name__)


class _ParseCsvFn(beam.DoFn):
    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab
        self.rows = Metrics.counter(self.__class__, 'csv-rows')
        self.bad = Metrics.counter(self.__class__, 'csv-rows-rejected')

    def process(self, split_and_path: tuple[str, str]):
        split, path = split_and_path
        parsed = parse_segments_csv(fileio.read_bytes(path), path, split, self.vocab.known_mids)
        self.rows.inc(parsed.lines)
        self.bad.inc(len(parsed.dead_letters))
        for i, row in enumerate(parsed.dead_letters):
            if i < 3:
                log.warning('dead letter: %s', deadletter.describe(row))
            yield beam.pvalue.TaggedOutput('dead_letters', row)
        st: dict = {}
        st.setdefault('csv', {}).setdefault(split, {})['file'] = path
        stats.bump(st, 'csv', split, 'rows_in', parsed.lines)
        stats.bump(st, 'csv', split, 'rows_ok', parsed.table.num_rows)
        stats.bump(st, 'csv', split, 'rows_rejected', len(parsed.dead_letters))
        if parsed.declared_rows is not None:
            stats.bump(st, 'csv', split, 'rows_declared_in_header', parsed.declared_rows)
        yield beam.pvalue.TaggedOutput('stats', st)
        log.info('read %s: %d rows, %d rejected', path, parsed.lines, len(parsed.dead_letters))
        yield split, SegmentIndex(parsed.table, path)


class ReadSegmentCsvs(beam.PTransform):
    """PCollection[(split, csv path)] -> {'index': (split, SegmentIndex), 'dead_letters', 'stats'}.

    A line that cannot be used (see ``parse_segments_csv``) is a dead letter with file and line number.
    """

    def __init__(self, vocab: Vocabulary):
        super().__init__()
        self.vocab = vocab

    def expand(self, csvs):
        out = csvs | 'ParseCsv' >> beam.ParDo(_ParseCsvFn(self.vocab)).with_outputs(
            'dead_letters', 'stats', main='index')
        return {'index': out.index, 'dead_letters': out.dead_letters, 'stats': out.stats}
