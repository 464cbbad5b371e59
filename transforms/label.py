"""LabelSegments: parsed records joined with the segment CSVs and the ontology."""
from __future__ import annotations

import dataclasses
import logging

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from transforms.coders import BatchCoder
from transforms.core import deadletter
from transforms.core.join import label_records
from transforms.core.ontology import Vocabulary
from transforms.read import ShardBatch

log = logging.getLogger(__name__)


@dataclasses.dataclass
class SegmentBatch:
    """Labelled segments of one shard group (clips columns without ``is_primary``)."""
    group_id: int
    split: str
    segments: pa.Table

    @property
    def nbytes(self) -> int:
        return self.segments.nbytes


beam.coders.registry.register_coder(SegmentBatch, BatchCoder)


class _LabelFn(beam.DoFn):
    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab
        self.segments = Metrics.counter(self.__class__, 'segments-labelled')
        self.from_shard = Metrics.counter(self.__class__, 'labels-from-shard')
        self.rejected = Metrics.counter(self.__class__, 'records-rejected')

    def process(self, batch: ShardBatch, indexes: dict):
        index = indexes.get(batch.split)
        out = label_records(batch.records, batch.split, batch.sources, batch.source_index, batch.record_index,
                            self.vocab, index)
        self.segments.inc(out.segments.num_rows)
        self.from_shard.inc(out.stats.get('splits', {}).get(batch.split, {}).get('label_source', {})
                            .get('shard', 0))
        self.rejected.inc(len(out.dead_letters))
        for i, row in enumerate(out.dead_letters):
            if i < 3:
                log.warning('dead letter: %s', deadletter.describe(row))
            yield beam.pvalue.TaggedOutput('dead_letters', row)
        yield beam.pvalue.TaggedOutput('stats', out.stats)
        yield beam.pvalue.TaggedOutput('keys', (batch.split, out.segments.select(['video_id', 'start_time_seconds'])))
        yield SegmentBatch(batch.group_id, batch.split, out.segments)


class LabelSegments(beam.PTransform):
    """PCollection[ShardBatch] -> {'segments': SegmentBatch, 'keys': (split, keys table), 'dead_letters', 'stats'}.

    ``segment_indexes`` is a PCollection[(split, SegmentIndex)]; a split without one is labelled from the
    records' own label indices (``label_source == 'shard'``).
    """

    def __init__(self, vocab: Vocabulary, segment_indexes):
        super().__init__()
        self.vocab = vocab
        self.segment_indexes = segment_indexes

    def expand(self, batches):
        out = batches | 'JoinLabels' >> beam.ParDo(
            _LabelFn(self.vocab), beam.pvalue.AsDict(self.segment_indexes)
        ).with_output_types(SegmentBatch).with_outputs(
            'dead_letters', 'stats', 'keys', main='segments')
        return {'segments': out.segments, 'keys': out.keys, 'dead_letters': out.dead_letters,
                'stats': out.stats}
