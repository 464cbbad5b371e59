"""End to end: the whole build on DirectRunner, checked against an independent read of the inputs."""
import hashlib
import pathlib

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipelines import build_dataset
from tests.accounting import assert_records_add_up, framed_records, records_by_split, subtree
from tests.fixtures import SAMPLE, build_args, copy_sample, record, write_shard
from transforms.core import tfrecord


def _independent_read(features: pathlib.Path) -> dict:
    """(video_id, start_ms) -> (split folder, frames bytes), read with tf.data + protobuf, not our code."""
    import tensorflow as tf
    out = {}
    for shard in sorted(features.glob('*/*.tfrecord')):
        for raw in tf.data.TFRecordDataset(str(shard)).as_numpy_iterator():
            ex = tf.train.SequenceExample.FromString(raw)
            c = ex.context.feature
            key = (c['video_id'].bytes_list.value[0].decode(), round(c['start_time_seconds'].float_list.value[0] * 1000))
            frames = b''.join(f.bytes_list.value[0] for f in ex.feature_lists.feature_list['audio_embedding'].feature)
            out[key] = (shard.parent.name, frames)
    return out


@pytest.fixture(scope='module')
def sample_build(tmp_path_factory):
    out = tmp_path_factory.mktemp('build') / 'out'
    manifest = build_dataset.run(['--output_dir', str(out)])
    return out, manifest


def test_every_sample_record_is_in_the_output_once(sample_build):
    out, manifest = sample_build
    expected = _independent_read(SAMPLE / 'features')
    table = ds.dataset(out / 'clips', format='parquet', partitioning='hive').to_table(
        filter=ds.field('is_primary'), columns=['video_id', 'start_time_seconds', 'embedding', 'split', 'labels', 'label'])
    got = {}
    for row in table.to_pylist():
        key = (row['video_id'], round(row['start_time_seconds'] * 1000))
        assert key not in got, f'{key} is primary twice'
        assert row['label'] == row['labels'][0]
        got[key] = (row['split'], row['embedding'])
    folder = {'eval': 'eval', 'balanced_train': 'bal_train', 'unbalanced_train': 'unbal_train'}
    assert {k: (folder[s], e) for k, (s, e) in got.items()} == expected
    assert sum(s['segments_out'] for s in manifest['splits'].values()) == len(expected) == 2790
    records_in = records_by_split(SAMPLE / 'features')
    assert sum(records_in.values()) == 2790   # the hand count of the framing agrees with tf.data's
    got = assert_records_add_up(out, manifest, records_in)
    assert all(got[s]['dead_letters'] == 0 for s in records_in)
    assert manifest['splits']['eval']['labels_agree'] == 964


def test_duckdb_reads_the_hive_layout_and_filters_by_mid(sample_build):
    out, manifest = sample_build
    glob = str(out / 'clips' / '**' / '*.parquet')
    speech = duckdb.sql(f"SELECT split, count(*) FROM read_parquet('{glob}', hive_partitioning=true) "
                        "WHERE label = '/m/09x0r' GROUP BY split ORDER BY split").fetchall()
    assert speech == sorted((s, n) for s, n in ((s, manifest['partition_rows'][s].get('/m/09x0r', 0))
                                                for s in manifest['partition_rows']) if n)
    once = duckdb.sql(f"SELECT count(*), count(DISTINCT segment_id || split) FROM read_parquet('{glob}', "
                      "hive_partitioning=true) WHERE is_primary").fetchall()[0]
    assert once == (2790, 2790)
    total = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning=true) "
                       "WHERE list_contains(labels_with_ancestors, '/m/04rlf')").fetchall()[0][0]
    assert total >= manifest['partition_rows']['eval']['/m/04rlf']


def test_side_tables(sample_build):
    out, manifest = sample_build
    classes = pq.read_table(out / 'classes.parquet').to_pylist()
    assert len(classes) == 632
    speech = next(c for c in classes if c['mid'] == '/m/09x0r')
    assert speech['index'] == 0 and speech['ancestors'] == ['/m/0dgw9r', '/m/09l8g']
    assert speech['segments_eval'] == manifest['partition_rows']['eval']['/m/09x0r']
    assert speech['segments_with_descendants_eval'] >= speech['segments_eval']
    missing = pq.read_table(out / 'missing_features' / 'split=eval' / 'part-00000.parquet')
    assert missing.num_rows == 20371 - 964 == manifest['csv']['eval']['rows_missing_features']
    assert pq.read_table(out / 'dead_letters' / 'part-00000.parquet').num_rows == 0
    assert not (out / '_spill').exists()


def _tree_hash(root: pathlib.Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*.parquet'))}


def test_rerun_replaces_and_removes_stale_files(tmp_path):
    inputs = copy_sample(tmp_path / 'in', splits=('eval',), shards_per_split=40)
    out = tmp_path / 'out'
    build_dataset.run(build_args(inputs, out))
    first = _tree_hash(out)
    stale = out / 'clips' / 'split=eval' / 'label=%2Fm%2F09x0r' / 'part-00007.parquet'
    stale.write_bytes(b'left over from an older run')
    build_dataset.run(build_args(inputs, out))
    assert _tree_hash(out) == first
    assert not stale.exists()


def _damaged_inputs(root: pathlib.Path) -> pathlib.Path:
    inputs = copy_sample(root, splits=('eval', 'unbal_train'), shards_per_split=30)
    shards = sorted((inputs / 'features' / 'eval').glob('*.tfrecord'))
    # 1. data CRC failure in the first record of one shard; the records after it must still be read
    data = bytearray(shards[0].read_bytes())
    data[100] ^= 0xFF
    shards[0].write_bytes(bytes(data))
    # 2. a truncated tail
    shards[1].write_bytes(shards[1].read_bytes()[:-50])
    # 3. an unknown label index and an unparseable record (valid framing)
    write_shard(inputs / 'features' / 'eval' / 'zz.tfrecord',
                [record('zzzzzzzzzzz', 0.0, [9999]), b'\x0a\x03bad', record('zzzzzzzzzzy', 0.0, [0])])
    # 4. malformed CSV lines and an unknown MID
    csv = inputs / 'segments' / 'eval_segments.csv'
    csv.write_text(csv.read_text() + 'only, two\nzzzzzzzzzzy, 0.000, 10.000, "/m/not_a_class"\n')
    return inputs


def test_bad_input_is_dead_lettered_and_counts_add_up(tmp_path):
    inputs = _damaged_inputs(tmp_path / 'in')
    out = tmp_path / 'out'
    manifest = build_dataset.run(build_args(inputs, out, '--max_bad_fraction', '0.5'))
    dead = pq.read_table(out / 'dead_letters' / 'part-00000.parquet').to_pylist()
    got = sorted((pathlib.Path(d['source']).name, d['stage'], d['reason'], d['record_index'], d['line_number'])
                 for d in dead)
    shards = sorted((inputs / 'features' / 'eval').glob('*.tfrecord'))
    assert got == sorted([
        (shards[0].name, 'read-shard', 'data-crc-mismatch', 0, None),
        (shards[1].name, 'read-shard', 'truncated-record', len(list(tfrecord.iter_records(
            (SAMPLE / 'features' / 'eval' / shards[1].name).read_bytes()))) - 1, None),
        ('zz.tfrecord', 'label-record', 'unknown-label-index', 0, None),
        ('zz.tfrecord', 'parse-record', 'unparseable-record', 1, None),
        ('eval_segments.csv', 'parse-csv', 'bad-field-count', None, 20375),
        ('eval_segments.csv', 'parse-csv', 'unknown-mid', None, 20376),
    ])
    # Records in, counted from the inputs: the damaged shards still frame (or begin) the records of their
    # originals, which tf.data counts, and zz.tfrecord holds 3.
    import tensorflow as tf
    originals = sum(1 for s in shards if s.name != 'zz.tfrecord'
                    for _ in tf.data.TFRecordDataset(str(SAMPLE / 'features' / 'eval' / s.name)))
    assert sum(framed_records(s.read_bytes()) for s in shards) == originals + 3
    got = assert_records_add_up(out, manifest, {'eval': originals + 3, 'unbalanced_train': records_by_split(
        inputs / 'features')['unbalanced_train']})
    assert got['eval']['dead_letters'] == manifest['splits']['eval']['dead_letters'] == 4
    clean = _independent_read(SAMPLE / 'features')
    ids = set(ds.dataset(out / 'clips', partitioning='hive').to_table(columns=['video_id'])['video_id'].to_pylist())
    assert 'zzzzzzzzzzy' in ids  # labelled from its shard labels, its CSV row was rejected
    second_in_damaged = [k for k in clean if k[0].startswith(shards[0].name[:2])]
    assert len(second_in_damaged) > 1 and len([k for k in second_in_damaged if k[0] in ids]) == len(second_in_damaged) - 1


def test_too_much_bad_input_fails_clearly(tmp_path):
    inputs = _damaged_inputs(tmp_path / 'in')
    out = tmp_path / 'out'
    with pytest.raises(Exception, match=r'(?s)too much bad input.*eval: 4 of \d+ records rejected.*dead_letters'):
        build_dataset.run(build_args(inputs, out, '--max_bad_fraction', '0.01'))
    assert not (out / 'manifest.json').exists()
    assert pq.read_table(out / 'dead_letters' / 'part-00000.parquet').num_rows == 6


def test_cli_help_and_errors(capsys):
    with pytest.raises(SystemExit) as e:
        build_dataset.run(['--help'])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in ('--features_dir', '--segments_dir', '--class_index', '--ontology', '--output_dir',
                 '--max_bad_fraction'):
        assert flag in text
    with pytest.raises(SystemExit, match='max_bad_fraction'):
        build_dataset.run(['--output_dir', 'x', '--max_bad_fraction', '2'])
    with pytest.raises(ValueError, match='--features_dir /nonexistent: no such folder'):
        build_dataset.run(['--output_dir', 'x', '--features_dir', '/nonexistent'])


def test_class_table_depth_and_counts_against_an_ontology_walk(sample_build):
    """classes.parquet, every class: depth = fewest edges from a root (a class no other lists as a child),
    by breadth-first search over ontology.json's child_ids; segments_<split> = segments with the class among
    their labels; segments_with_descendants_<split> = segments with a label in the class's subtree (the class
    or any descendant, walking child_ids down), over each segment once (is_primary)."""
    import collections
    import json
    out, _ = sample_build
    nodes = json.loads((SAMPLE / 'ontology.json').read_text())
    children = {n['id']: n.get('child_ids', []) for n in nodes}
    roots = [m for m in children if not any(m in c for c in children.values())]
    depth, frontier = {m: 0 for m in roots}, list(roots)
    while frontier:
        nxt = []
        for m in frontier:
            for c in children[m]:
                if c not in depth:
                    depth[c] = depth[m] + 1
                    nxt.append(c)
        frontier = nxt

    segments = collections.defaultdict(list)
    for r in ds.dataset(out / 'clips', partitioning='hive').to_table(
            filter=ds.field('is_primary'), columns=['split', 'labels']).to_pylist():
        segments[r['split']].append(set(r['labels']))
    classes = pq.read_table(out / 'classes.parquet').to_pylist()
    assert [c['mid'] for c in classes] == [n['id'] for n in nodes]
    assert sorted({c['depth'] for c in classes}) == list(range(max(depth.values()) + 1)) and min(depth.values()) == 0
    assert {c['mid'] for c in classes if c['depth'] == 0} == set(roots)
    nonzero = 0
    for c in classes:
        mid, below = c['mid'], subtree(children, c['mid'])
        assert c['depth'] == depth[mid], mid
        for split, labels in segments.items():
            assert c[f'segments_{split}'] == sum(mid in ls for ls in labels), (mid, split)
            expected = sum(not ls.isdisjoint(below) for ls in labels)
            assert c[f'segments_with_descendants_{split}'] == expected, (mid, split)
            nonzero += expected > c[f'segments_{split}']
    assert nonzero > 100   # the roll-up really adds descendants' segments for many classes
