import urllib.parse

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tests.fixtures import SAMPLE, record
from transforms.core import layout
from transforms.core.join import label_records
from transforms.core.ontology import ClassIndex, Ontology, Vocabulary
from transforms.core.partition import explode_by_label
from transforms.core.schema import CLIPS
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


def _labelled(vocab, csv_text=None):
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
    return label_records(records, 'eval', ('s.tfrecord',), np.zeros(n, np.int64), np.arange(n), vocab, index)


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
    assert len(t['embedding'][1]) == 4 and t['embedding'][1][0] == \
        np.random.default_rng(2).integers(0, 256, size=(4, 128), dtype=np.uint8)[0].tobytes()
    assert out.stats['splits']['eval']['segments_out'] == 2


def test_csv_labels_win_and_disagreements_are_counted(vocab):
    csv = (b'aaaaaaaaaaa, 0.000, 10.000, "/m/09x0r,/m/04rlf"\n'
           b'aabbbbbbbbb, 10.000, 20.000, "/m/04rlf"\n'
           b'aadddddddd-, 30.000, 40.000, "/m/04rlf"\n')
    out = _labelled(vocab, csv)
    t = out.segments.to_pydict()
    assert t['labels'] == [['/m/09x0r', '/m/04rlf'], ['/m/04rlf'], ['/m/04rlf']]
    assert t['end_time_seconds'] == [10.0, 20.0, 40.0]  # the CSV's segment, even with 4 frames
    assert t['label_source'] == ['csv'] * 3
    s = out.stats['splits']['eval']
    assert s['labels_agree'] == 1 and s['labels_disagree'] == 2


def test_explode_by_label(vocab):
    out = _labelled(vocab)
    parts = dict(explode_by_label(out.segments))
    assert list(parts) == sorted(parts) == ['/m/04rlf', '/m/09x0r']
    speech = parts['/m/09x0r']
    assert speech.column_names == CLIPS.names
    assert speech['segment_id'].to_pylist() == ['aaaaaaaaaaa_0', 'aabbbbbbbbb_10000']
    assert speech['is_primary'].to_pylist() == [True, True]
    assert parts['/m/04rlf']['is_primary'].to_pylist() == [False]
    assert sum(t['is_primary'].to_numpy().sum() for t in parts.values()) == out.segments.num_rows
