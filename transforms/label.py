"""LabelSegments: parsed records joined with the segment CSVs and the ontology."""
from __future__ import annotations

import dataclasses
import logging
import re
import time
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam import PCollection
from apache_beam.metrics import Metrics

from audioset_beam.schema import STRONG_SPLITS
from transforms.coders import BatchCoder, TableBatchCoder
from transforms.core import stats
from transforms.core.join import label_records, to_codes
from transforms.core.ontology import Vocabulary
from transforms.deadletters import DEAD_LETTERS, STATS, tag_dead_letters
from transforms.read import ShardBatch
from transforms.segments import load_index
from transforms.strong import load_strong

log = logging.getLogger(__name__)

# Release shards are named by the first two characters of the ids they hold (``--.tfrecord``).
_PREFIX_SHARD = re.compile(r'(^|/)(?P<prefix>[A-Za-z0-9_-]{2})\.tfrecord$')


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

# Columns of a KeyBatch: what the whole-split checks need, never the embeddings, ~40 bytes a segment:
# labels as int16 codes (Vocabulary.all_mids), repeated strings dictionary-encoded.
KEY_COLUMNS = ['segment_id', 'labels', 'label_source', 'num_frames', 'source_file', 'source_record',
               'source_offset']
# The AudioSet Strong split of each split.
STRONG_SPLIT_OF = {split: strong for strong, splits in STRONG_SPLITS.items() for split in splits}


def strong_index_for(split: str, strong_paths: dict | None):
    """(StrongIndex or None, strong split) for a split, from ReadStrongLabels' side input."""
    strong_split = STRONG_SPLIT_OF.get(split)
    if not strong_paths or strong_split is None:
        return None, strong_split
    return load_strong(strong_paths).get(strong_split), strong_split


@dataclasses.dataclass
class KeyBatch:
    """The keys and labels of one SegmentBatch, for the checks over a whole split (uniqueness, counts,
    missing features, leakage between splits). Rows align with the SegmentBatch's rows."""
    group_id: int
    split: str
    embedding_source: str
    # KEY_COLUMNS + csv_row (int32, -1: none) + agree (int8, see join.AGREE) + strong_row (int32, -1: none)
    # and strong_attached (int32: strong events attached), see join.Labelled
    table: pa.Table

    @property
    def nbytes(self) -> int:
        return self.table.nbytes


class KeyBatchCoder(TableBatchCoder):
    def __init__(self):
        super().__init__(KeyBatch)


beam.coders.registry.register_coder(KeyBatch, KeyBatchCoder)


def key_batch(group_id: int, split: str, source: str, segments: pa.Table, csv_row: np.ndarray,
              agree: np.ndarray, vocab: Vocabulary, strong_row: np.ndarray | None = None,
              strong_attached: np.ndarray | None = None) -> KeyBatch:
    offsets, codes = to_codes(vocab, segments['labels'])
    table = pa.table({
        'segment_id': segments['segment_id'],
        'labels': pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(codes.astype(np.int16))),
        'label_source': pc.dictionary_encode(segments['label_source']),
        'num_frames': pc.cast(segments['num_frames'], pa.int8()),
        'source_file': pc.dictionary_encode(segments['source_file']),
        'source_record': segments['source_record'],
        'source_offset': segments['source_offset'],
        'csv_row': pa.array(csv_row, pa.int32()),
        'agree': pa.array(agree, pa.int8()),
        'strong_row': pa.array(np.full(segments.num_rows, -1) if strong_row is None else strong_row, pa.int32()),
        'strong_attached': pa.array(np.zeros(segments.num_rows) if strong_attached is None else strong_attached,
                                    pa.int32()),
    })
    return KeyBatch(group_id, split, source, table)


def prefix_mismatches(batch: ShardBatch) -> tuple[int, list]:
    """Records whose video id does not start with the prefix their release-named shard stands for."""
    prefixes = [m.group('prefix') if (m := _PREFIX_SHARD.search(p)) else None for p in batch.sources]
    if not any(prefixes) or not len(batch.records):
        return 0, []
    expected = pa.array([prefixes[i] for i in batch.source_index[batch.records.position]], pa.string())
    ids = pa.array(batch.records.video_id, pa.string())
    bad = pc.fill_null(pc.not_equal(pc.utf8_slice_codeunits(ids, 0, 2), expected), False).to_numpy(
        zero_copy_only=False)
    examples = [{'video_id': batch.records.video_id[i],
                 'shard': batch.sources[batch.source_index[batch.records.position[i]]]}
                for i in np.flatnonzero(bad)[:3].tolist()]
    return int(bad.sum()), examples


class _LabelFn(beam.DoFn):
    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab
        self.segments = Metrics.counter(self.__class__, 'segments-labelled')
        self.rejected = Metrics.counter(self.__class__, 'records-rejected')

    def process(self, batch: ShardBatch, indexes: dict, strong_paths: dict):
        started = time.perf_counter()
        paths = indexes.get(batch.split)
        index = load_index(*paths) if paths else None
        strong, strong_split = strong_index_for(batch.split, strong_paths)
        out = label_records(batch.records, batch.split, batch.sources, batch.source_index, batch.record_index,
                            self.vocab, index, byte_offset=batch.byte_offset, strong=strong,
                            strong_split=strong_split)
        self.segments.inc(out.segments.num_rows)
        self.rejected.inc(len(out.dead_letters))
        yield from tag_dead_letters(out.dead_letters + out.strong_dead_letters, log)
        st = out.stats
        mismatched, examples = prefix_mismatches(batch)
        if mismatched:
            stats.bump(st, 'splits', batch.split, 'shard_prefix_mismatches', mismatched)
            st.setdefault('shard_prefix_mismatch_examples', []).extend(examples)
        stats.bump(st, 'timings', 'join_label', time.perf_counter() - started)
        yield beam.pvalue.TaggedOutput(STATS, st)
        yield beam.pvalue.TaggedOutput('keys', key_batch(batch.group_id, batch.split, 'released', out.segments,
                                                         out.csv_row, out.agree, self.vocab, out.strong_row,
                                                         out.strong_attached))
        yield SegmentBatch(batch.group_id, batch.split, out.segments)


class LabelOutputs(NamedTuple):
    """LabelSegments' outputs."""
    segments: PCollection[SegmentBatch]
    keys: PCollection[KeyBatch]
    dead_letters: PCollection[dict]
    stats: PCollection[dict]


class LabelSegments(beam.PTransform):
    """PCollection[ShardBatch] -> LabelOutputs: a SegmentBatch and its KeyBatch per ShardBatch, dead letters,
    stats.

    ``segment_indexes`` is a PCollection[(split, (index path, csv path))] from ReadSegmentCsvs; a split
    without one is labelled from the records' own label indices (``label_source == 'shard'``).
    ``strong_index``: ReadStrongLabels' ``index`` (one dict), or None without AudioSet Strong.
    """

    def __init__(self, vocab: Vocabulary, segment_indexes, strong_index=None):
        super().__init__()
        self.vocab = vocab
        self.segment_indexes = segment_indexes
        self.strong_index = strong_index

    def expand(self, batches: PCollection[ShardBatch]) -> LabelOutputs:
        strong = strong_side_input(batches.pipeline, self.strong_index)
        out = batches | 'JoinLabels' >> beam.ParDo(
            _LabelFn(self.vocab), beam.pvalue.AsDict(self.segment_indexes), strong
        ).with_outputs(DEAD_LETTERS, STATS, 'keys', main='segments')
        return LabelOutputs(out.segments, out.keys, out[DEAD_LETTERS], out[STATS])


def strong_side_input(pipeline, strong_index):
    """ReadStrongLabels' ``index`` as a singleton side input ({} when there are no strong labels)."""
    if strong_index is None:
        return beam.pvalue.AsSingleton(pipeline | 'NoStrongLabels' >> beam.Create([{}]))
    return beam.pvalue.AsSingleton(strong_index)
