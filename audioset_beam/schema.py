"""The one definition of every table the build writes; Arrow schemas are derived from it, never retyped."""
from __future__ import annotations

import dataclasses

import pyarrow as pa

EMBEDDING_DIM = 128
# One segment's frames, concatenated: num_frames x 128 bytes. A plain binary column is what every reader
# maps natively (pandas/HF datasets: bytes, Polars: Binary, DuckDB: BLOB, Spark: BinaryType, BigQuery: BYTES)
# and writes and reads ~2-4x faster than list<fixed_size_binary(128)> (README: Performance).
EMBEDDING_TYPE = pa.binary()

# Values of the ``embedding_source`` column.
SOURCE_RELEASED = 'released'
SOURCE_COMPUTED = 'computed'
# Values of the ``label_source`` column.
LABELS_FROM_CSV = 'csv'
LABELS_FROM_SHARD = 'shard'
LABELS_NONE = 'none'  # a computed clip kept without labels (--keep_unlabelled)


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    nullable: bool = False


@dataclasses.dataclass(frozen=True)
class Table:
    """A named table: its columns, and the hive partition columns that live in its paths."""
    name: str
    columns: tuple[Column, ...]
    partition_by: tuple[Column, ...] = ()

    @property
    def schema(self) -> pa.Schema:
        """Arrow schema of the data files (partition columns excluded)."""
        return pa.schema([pa.field(c.name, c.type, c.nullable, {'doc': c.doc}) for c in self.columns])

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def empty(self) -> pa.Table:
        return self.schema.empty_table()

    def from_pylist(self, rows: list[dict]) -> pa.Table:
        return pa.Table.from_pylist(rows, schema=self.schema)


_STR_LIST = pa.list_(pa.string())
# AudioSet Strong (transforms/core/strong.py fills these): events of a segment, and MIDs per frame.
STRONG_EVENT = pa.struct([('label', pa.string()), ('label_name', pa.string()), ('start', pa.float64()),
                          ('end', pa.float64())])
STRONG_EVENTS = pa.list_(STRONG_EVENT)
FRAME_LABELS = pa.list_(_STR_LIST)

SPLIT = Column('split', pa.string(), 'eval, balanced_train or unbalanced_train (hive partition)')
LABEL = Column('label', pa.string(), 'the positive label MID of this partition (hive partition, URI-encoded)')

CLIPS = Table('clips', (
    Column('segment_id', pa.string(), '<video_id>_<start_ms>, as in AudioSet Strong'),
    Column('video_id', pa.string(), 'YouTube id (11 characters; may start with "-" or hold "_")'),
    Column('start_time_seconds', pa.float64(), 'segment start, from the segments CSV (else the shard)'),
    Column('end_time_seconds', pa.float64(), 'segment end, from the segments CSV (else the shard)'),
    Column('labels', _STR_LIST, 'positive label MIDs, in release order'),
    Column('label_names', _STR_LIST, 'display names of `labels`'),
    Column('label_indices', pa.list_(pa.int32()),
           'index of each of `labels` in class_labels_indices.csv (0..526), so a multi-hot target is one '
           'numpy operation; null for a label outside the class index'),
    Column('labels_with_ancestors', _STR_LIST,
           '`labels` then every ontology ancestor not already listed, in ontology order'),
    Column('labels_with_ancestors_names', _STR_LIST, 'display names of `labels_with_ancestors`'),
    Column('label_source', pa.string(), '"csv" (segments CSV), "shard" (the record\'s own label indices) or '
                                        '"none" (an unlabelled computed clip)'),
    Column('strong_events', STRONG_EVENTS,
           'AudioSet Strong events (label MID, label name, start s, end s from the segment start, clipped to '
           'the segment), sorted by start then label; null when the segment has no strong labels', True),
    Column('frame_labels', FRAME_LABELS,
           'per embedding frame k: the MIDs of strong events overlapping its window by more than zero, '
           '[k, k + 0.96) s for released frames, [0.96 k, 0.96 k + 0.96) s for computed ones; null without '
           'strong labels', True),
    Column('frame_positives_official', FRAME_LABELS,
           'audioset_eval_strong_framed_posneg.tsv: per 0.96 s frame of that file, the MIDs marked PRESENT; '
           'null for segments not in it', True),
    Column('frame_negatives', FRAME_LABELS,
           'audioset_eval_strong_framed_posneg.tsv: per 0.96 s frame, the MIDs marked NOT_PRESENT (explicit '
           'negatives); null for segments not in it', True),
    Column('is_primary', pa.bool_(), 'true in exactly one row per segment and source: the partition of its '
                                     'first label. Filter on it to read each segment once'),
    Column('sampling_weight', pa.float64(),
           'per-segment sampling weight (AST/PSLA): sum over the segment\'s labels of 1000 / (segments of '
           'this split built with that label + 0.01); equal on every row of a segment; null when unlabelled',
           True),
    Column('num_frames', pa.int32(), 'number of 1 s embedding frames (1..10)'),
    Column('embedding', EMBEDDING_TYPE, 'the frames in order, concatenated: num_frames x 128 uint8 quantized '
                                        'VGGish PCA values; np.frombuffer(v, np.uint8).reshape(-1, 128)'),
    Column('embedding_source', pa.string(), '"released" (Google\'s shards) or "computed" (this project)'),
    Column('model_fingerprint', pa.string(), 'sha256 of the VGGish weights + PCA for computed rows', True),
    Column('audio_sha256', pa.string(), 'sha256 of the audio file bytes, for computed rows', True),
    Column('source_file', pa.string(), 'the shard or audio file the embedding came from'),
    Column('source_record', pa.int64(), 'record index within the shard (0-based); null for audio, and null '
                                        'where damage earlier in the shard makes the index unknowable', True),
    Column('source_offset', pa.int64(), 'byte offset of the record within the shard (within the decompressed '
                                        'stream for a compressed shard); null for audio', True),
), partition_by=(SPLIT, LABEL))

# Split and label partition of computed clips kept without a segments CSV row (--keep_unlabelled).
UNLABELLED = 'unlabelled'

COMPUTED_EMBEDDINGS = Table('computed_embeddings', (
    Column('segment_id', pa.string(), '<video_id>_<start_ms>'),
    Column('audio_sha256', pa.string(), 'sha256 of the audio file bytes'),
    Column('model_fingerprint', pa.string(), 'sha256 of the VGGish weights + PCA'),
    Column('source_file', pa.string(), 'the audio file'),
    Column('end_time_seconds', pa.float64(), 'segment end from the file name or manifest'),
    Column('embedding', EMBEDDING_TYPE, 'quantized frames, as in clips'),
))

DEAD_LETTERS = Table('dead_letters', (
    Column('stage', pa.string(), 'pipeline stage that rejected the input, e.g. read-shard, parse-record'),
    Column('reason', pa.string(), 'kebab-case reason, e.g. data-crc-mismatch, unknown-label-index'),
    Column('source', pa.string(), 'the input file'),
    Column('record_index', pa.int64(), 'record index within a shard, when known', True),
    Column('byte_offset', pa.int64(), 'byte offset within a shard, when known', True),
    Column('line_number', pa.int64(), '1-based line number within a CSV, when the source is a CSV', True),
    Column('split', pa.string(), 'split of the input, when known', True),
    Column('video_id', pa.string(), 'segment video id, when known', True),
    Column('start_time_seconds', pa.float64(), 'segment start, when known', True),
    Column('error', pa.string(), 'human-readable detail'),
    Column('records', pa.int64(), 'input records this row stands for: 1 for a record, 0 for an empty file, '
                                  'an estimate for a damaged stretch (bytes skipped / mean record size)'),
    Column('records_estimated', pa.bool_(), 'true when `records` is an estimate'),
))

MISSING_FEATURES = Table('missing_features', (
    Column('segment_id', pa.string(), '<video_id>_<start_ms>'),
    Column('video_id', pa.string(), 'YouTube id'),
    Column('start_time_seconds', pa.float64(), 'segment start'),
    Column('end_time_seconds', pa.float64(), 'segment end'),
    Column('labels', _STR_LIST, 'positive label MIDs'),
    Column('csv_file', pa.string(), 'segments CSV the row comes from'),
    Column('line_number', pa.int64(), '1-based line in that CSV'),
), partition_by=(SPLIT,))

SPLITS = ('eval', 'balanced_train', 'unbalanced_train')
# Splits of AudioSet Strong: train segments come from balanced and unbalanced train, eval from eval.
STRONG_SPLITS = {'train': ('balanced_train', 'unbalanced_train'), 'eval': ('eval',)}

MISSING_STRONG = Table('missing_strong', (
    Column('segment_id', pa.string(), '<video_id>_<start_ms>, as in the strong TSV'),
    Column('video_id', pa.string(), 'YouTube id'),
    Column('start_time_seconds', pa.float64(), 'segment start'),
    Column('events', pa.int64(), 'strong events of the segment in the file'),
    Column('strong_file', pa.string(), 'the strong TSV'),
    Column('line_number', pa.int64(), 'first line of the segment in that file'),
), partition_by=(Column('split', pa.string(), 'train or eval: the AudioSet Strong split (hive partition)'),))

CLASSES = Table('classes', (
    Column('index', pa.int32(), 'index in class_labels_indices.csv; null for ontology-only classes', True),
    Column('mid', pa.string(), 'machine id, e.g. /m/09x0r'),
    Column('name', pa.string(), 'display name'),
    Column('description', pa.string(), 'ontology description'),
    Column('parents', _STR_LIST, 'direct parent MIDs (several for 38 classes: the ontology is a DAG)'),
    Column('ancestors', _STR_LIST, 'every ancestor MID, in ontology order'),
    Column('ancestor_names', _STR_LIST, 'display names of `ancestors`'),
    Column('depth', pa.int32(), 'shortest number of edges up to a root (roots have depth 0)'),
    Column('restrictions', _STR_LIST, 'subset of ["abstract", "blacklist"]'),
    Column('is_label', pa.bool_(), 'whether the class is one of the labels in the class index'),
    Column('is_ancestor_only', pa.bool_(), 'not a label, but an ontology ancestor of one: with the labels, '
                                           'the classes labels_with_ancestors can hold'),
    Column('in_ontology', pa.bool_(), 'whether ontology.json has the class (some strong-label MIDs are '
                                      'missing from it)'),
    Column('abstract', pa.bool_(), 'the ontology marks the class abstract (a grouping, never rated)'),
    Column('blacklisted', pa.bool_(), 'the ontology marks the class blacklisted (ambiguous, not used)'),
    Column('num_rated', pa.int64(), 'qa_true_counts.csv (--label_quality): segments re-rated for quality; '
                                    'null without --label_quality', True),
    Column('num_true', pa.int64(), 'qa_true_counts.csv: of those, segments where the label was confirmed',
           True),
    Column('quality', pa.float64(), 'num_true / num_rated; null when not assessed (0 rated) or without '
                                    '--label_quality', True),
) + tuple(Column(f'segments_{s}', pa.int64(), f'{s} segments with this class as a positive label')
          for s in SPLITS)
  + tuple(Column(f'segments_with_descendants_{s}', pa.int64(),
                 f'{s} segments with this class among labels_with_ancestors') for s in SPLITS)
  + tuple(Column(f'strong_{what}_{s}', pa.int64(), f'AudioSet Strong {s} file: {what} with this label; null '
                                                   'without --strong_labels', True)
          for s in STRONG_SPLITS for what in ('segments', 'events')))
