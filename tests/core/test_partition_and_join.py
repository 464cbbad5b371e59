import urllib.parse

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tests.fixtures import SAMPLE, record
from audioset_beam import layout
from transforms.core.join import label_records
from transforms.core.ontology import ClassIndex, Ontology, Vocabulary
from transforms.core.check import check_splits
from transforms.core.join import AGREE, DISAGREE
from transforms.core.partition import partition_rows
from transforms.label import key_batch
from transforms.core.segments_csv import SegmentIndex, parse_segments_csv
from transforms.core.sequence_example import parse_records


@pytest.fixture(scope='module')
def vocab():
    return Vocabulary(ClassIndex.from_csv((SAMPLE / 'class_labels_indices.csv').read_bytes()),
                      Ontology.from_json((SAMPLE / 'ontology.json').read_bytes()))


def test_hive_segment_matches_pyarrow(tmp_path):
    labels = ['/m/09x0r', '/t/dd00088', '/g/11b630rrvh', 'a b+c%d']
    table = pa.table({'label': labels, 'x': [1, 2, 3, 4]})
    ds.write_dataset(table, tmp_path, format='parquet', partitioning=['label'], partitioning_flavor='hive')
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(layout.hive_segment('label', v) for v in labels)
    assert layout.hive_segment('label', '/m/09x0r') == 'label=%2Fm%2F09x0r'
    assert urllib.parse.unquote(layout.hive_segment('label', 'a b+c%d')[6:]) == 'a b+c%d'


def _labelled(vocab, csv_text=None, dedupe=True):
    payloads = [record('aaaaaaaaaaa', 0.0, [0, 137], seed=1),      # Speech, Music
                record('aabbbbbbbbb', 10.0, [0], frames=4, seed=2),
                record('aaccccccccc', 20.0, [600]),                 # unknown index
                record('aaaaaaaaaaa', 0.0, [0], seed=3),           # duplicate of the first
                record('aadddddddd-', 30.0, [])]                    # no labels, no CSV row
    records, bad = parse_records(payloads)
    assert not bad
    index = None
    if csv_text is not None:
        index = SegmentIndex(parse_segments_csv(csv_text, 'c.csv', 'eval', vocab.known_mids).table, 'c.csv')
    n = len(payloads)
    return label_records(records, 'eval', ('s.tfrecord',), np.zeros(n, np.int64), np.arange(n), vocab, index,
                         dedupe=dedupe)


def test_label_records_from_shard_labels(vocab):
    out = _labelled(vocab)
    assert [(d['record_index'], d['reason']) for d in out.dead_letters] == [
        (2, 'unknown-label-index'), (3, 'duplicate-segment'), (4, 'no-labels')]
    t = out.segments.to_pydict()
    assert t['segment_id'] == ['aaaaaaaaaaa_0', 'aabbbbbbbbb_10000']
    assert t['labels'] == [['/m/09x0r', '/m/04rlf'], ['/m/09x0r']]
    assert t['label_names'][0] == ['Speech', 'Music']
    assert t['labels_with_ancestors'][1] == ['/m/09x0r', '/m/0dgw9r', '/m/09l8g']  # Human sounds, Human voice
    assert t['label_source'] == ['shard', 'shard']
    assert t['num_frames'] == [10, 4] and t['end_time_seconds'] == [10.0, 14.0]
    assert t['embedding'][1] == np.random.default_rng(2).integers(0, 256, size=(4, 128), dtype=np.uint8).tobytes()
    assert t['source_record'] == [0, 1] and t['source_file'] == ['s.tfrecord'] * 2


def test_csv_labels_win_and_disagreements_are_counted(vocab):
    csv = (b'aaaaaaaaaaa, 0.000, 10.000, "/m/09x0r,/m/04rlf"\n'
           b'aabbbbbbbbb, 10.000, 20.000, "/m/04rlf"\n'
           b'aadddddddd-, 30.000, 40.000, "/m/04rlf"\n')
    out = _labelled(vocab, csv)
    t = out.segments.to_pydict()
    assert t['labels'] == [['/m/09x0r', '/m/04rlf'], ['/m/04rlf'], ['/m/04rlf']]
    assert t['end_time_seconds'] == [10.0, 20.0, 40.0]  # the CSV's segment, even with 4 frames
    assert t['label_source'] == ['csv'] * 3
    assert out.agree.tolist() == [AGREE, DISAGREE, DISAGREE]
    assert out.csv_row.tolist() == [0, 1, 2]


def test_partition_rows(vocab):
    out = _labelled(vocab)
    parts = {label: (rows.tolist(), primary.tolist()) for label, rows, primary in partition_rows(out.segments['labels'])}
    assert parts == {'/m/04rlf': ([0], [False]), '/m/09x0r': ([0, 1], [True, True])}


def test_repeated_label_indices_count_once(vocab):
    records, _ = parse_records([record('aaaaaaaaaaa', 0.0, [0, 137, 0, 137, 0])])
    out = label_records(records, 'eval', ('s',), np.zeros(1, np.int64), np.arange(1), vocab, None)
    assert out.segments['labels'].to_pylist() == [['/m/09x0r', '/m/04rlf']]


def test_duplicates_are_found_over_the_whole_split_whatever_the_batches(vocab):
    """The same segment in two groups: the first (group order) is kept, the second is a dead letter."""
    a = _labelled(vocab, dedupe=False)   # holds aaaaaaaaaaa_0 twice (rows 0 and 2 of its segments)
    b = _labelled(vocab, dedupe=False)   # and the same segments again, in a later group
    batches = [key_batch(7, 'eval', 'released', b.segments, b.csv_row, b.agree, vocab),
               key_batch(3, 'eval', 'released', a.segments, a.csv_row, a.agree, vocab)]
    checked = check_splits(batches, {}, vocab)
    assert {k: v.tolist() for k, v in checked.drops.items()} == {('eval', 3): [2], ('eval', 7): [0, 1, 2]}
    assert [d['reason'] for d in checked.dead_letters] == ['duplicate-segment'] * 4
    assert checked.stats['splits']['eval']['segments_out'] == 2
    assert checked.stats['positive']['eval'] == {'/m/09x0r': 2, '/m/04rlf': 1}


def test_join_tolerance_is_under_a_millisecond(vocab):
    """30.0006 s joins the CSV's 30.000 (and takes its start); 30.0015 s (1.5 ms off) is another segment."""
    csv = b'aaaaaaaaaaa, 30.000, 40.000, "/m/04rlf"\nbbbbbbbbbbb, 7.480, 17.480, "/m/04rlf"\n'
    index = SegmentIndex(parse_segments_csv(csv, 'c.csv', 'eval', vocab.known_mids).table, 'c.csv')
    records, _ = parse_records([record('aaaaaaaaaaa', 30.0006, [0]), record('bbbbbbbbbbb', 7.4795, [0]),
                                record('aaaaaaaaaaa', 30.0015, [0], seed=2)])
    out = label_records(records, 'eval', ('s',), np.zeros(3, np.int64), np.arange(3), vocab, index)
    t = out.segments.to_pydict()
    assert t['segment_id'] == ['aaaaaaaaaaa_30000', 'bbbbbbbbbbb_7480', 'aaaaaaaaaaa_30001']
    assert t['label_source'] == ['csv', 'csv', 'shard'] and out.csv_row.tolist() == [0, 1, -1]
    assert t['start_time_seconds'][:2] == [30.0, 7.48]
