"""Each composite transform under TestPipeline, with exact assertions."""
import numpy as np
import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from audioset_beam.schema import CLIPS
from tests.fixtures import SAMPLE, record, write_shard
from transforms.core.ontology import ClassIndex, Ontology, Vocabulary
from transforms.core.join import label_records
from transforms.label import LabelSegments
from transforms.read import ReadShards, ShardGroup, plan_shard_groups
from transforms.segments import ReadSegmentCsvs
from transforms.write import WriteClips
from transforms.core.check import WritePlan
from transforms.label import SegmentBatch


@pytest.fixture(scope='module')
def vocab():
    return Vocabulary(ClassIndex.from_csv((SAMPLE / 'class_labels_indices.csv').read_bytes()),
                      Ontology.from_json((SAMPLE / 'ontology.json').read_bytes()))


def test_plan_shard_groups_is_deterministic_and_bounded(tmp_path):
    for i in range(5):
        write_shard(tmp_path / 'eval' / f'{i:02d}.tfrecord', [record(f'{i:02d}xxxxxxxx', 0.0, [0])])
    write_shard(tmp_path / 'unbal_train' / 'zz.tfrecord', [record('zzxxxxxxxxx', 0.0, [0])])
    size = (tmp_path / 'eval' / '00.tfrecord').stat().st_size
    groups, inputs = plan_shard_groups(str(tmp_path), 2 * size)
    assert [(g.split, [p.rsplit('/', 1)[1] for p in g.paths]) for g in groups] == [
        ('eval', ['00.tfrecord', '01.tfrecord']), ('eval', ['02.tfrecord', '03.tfrecord']),
        ('eval', ['04.tfrecord']), ('unbalanced_train', ['zz.tfrecord'])]
    assert inputs['eval']['shards'] == 5 and 'balanced_train' not in inputs


def test_read_shards_dead_letters_damage_and_keeps_the_rest(tmp_path):
    good = write_shard(tmp_path / 'a.tfrecord', [record('aaaaaaaaaaa', 0.0, [0]), record('abbbbbbbbbb', 0.0, [1])])
    damaged = bytearray(write_shard(tmp_path / 'b.tfrecord', [record('baaaaaaaaaa', 0.0, [0]),
                                                              record('bbbbbbbbbbb', 10.0, [2])]).read_bytes())
    damaged[40] ^= 0xFF  # inside the first record's data
    (tmp_path / 'b.tfrecord').write_bytes(bytes(damaged) + b'\x05\x00\x00')
    group = ShardGroup(0, 'eval', (str(good), str(tmp_path / 'b.tfrecord'), str(tmp_path / 'gone.tfrecord')))
    with TestPipeline() as p:
        out = p | beam.Create([group]) | ReadShards()
        ids = out.records | beam.FlatMap(lambda b: [(v, b.sources[b.source_index[pos]].rsplit('/', 1)[1],
                                                        int(b.record_index[pos]))
                                                       for v, pos in zip(b.records.video_id, b.records.position)])
        assert_that(ids, equal_to([('aaaaaaaaaaa', 'a.tfrecord', 0), ('abbbbbbbbbb', 'a.tfrecord', 1),
                                   ('bbbbbbbbbbb', 'b.tfrecord', 1)]), label='records')
        dead = out.dead_letters | beam.Map(lambda d: (d['source'].rsplit('/', 1)[1], d['reason'],
                                                         d['record_index']))
        assert_that(dead, equal_to([('b.tfrecord', 'data-crc-mismatch', 0), ('b.tfrecord', 'truncated-header', 2),
                                    ('gone.tfrecord', 'unreadable-file', None)]), label='dead')
        assert_that(out.stats | beam.Map(lambda st: st['splits']),
                    equal_to([{'eval': {'records_in': 5, 'shards': 3, 'unreadable_files': 1}}]), label='stats')


def test_read_csvs_and_label(tmp_path, vocab):
    csv = tmp_path / 'eval_segments.csv'
    csv.write_text('# header\nxaaaaaaaaaa, 0.000, 10.000, "/m/04rlf"\nbroken line\n')
    shard = write_shard(tmp_path / 'x.tfrecord', [record('xaaaaaaaaaa', 0.0, [0]), record('xbbbbbbbbbb', 0.0, [0])])
    with TestPipeline() as p:
        csvs = p | 'Csv' >> beam.Create([('eval', str(csv))]) | ReadSegmentCsvs(vocab, str(tmp_path / 'spill'))
        assert_that(csvs.dead_letters | beam.Map(lambda d: (d['line_number'], d['reason'])),
                    equal_to([(3, 'bad-field-count')]), label='csv-dead')
        read = p | 'Shards' >> beam.Create([ShardGroup(0, 'eval', (str(shard),))]) | ReadShards()
        labelled = read.records | LabelSegments(vocab, csvs.index)
        rows = labelled.segments | beam.FlatMap(
            lambda b: zip(b.segments['video_id'].to_pylist(), b.segments['label_source'].to_pylist(),
                          b.segments['labels'].to_pylist()))
        assert_that(rows, equal_to([('xaaaaaaaaaa', 'csv', ['/m/04rlf']), ('xbbbbbbbbbb', 'shard', ['/m/09x0r'])]))


@pytest.mark.parametrize('exploded', [False, True], ids=['mapped-spill', 'exploded-spill'])
def test_write_clips_partitions_rolls_files_and_orders_by_group(tmp_path, vocab, exploded):
    from transforms.core.sequence_example import parse_records
    batches = []
    for g in range(3):
        payloads = [record(f'g{g}r{i:08d}', 0.0, [0] if i % 2 else [0, 137], seed=i) for i in range(5)]
        recs, _ = parse_records(payloads)
        out = label_records(recs, 'eval', ('s',), np.zeros(5, np.int64), np.arange(5), vocab, None)
        batches.append(SegmentBatch(g, 'eval', out.segments))
    with TestPipeline() as p:
        # Group 1 row 0 repeats a segment seen earlier in its split: it is in no partition.
        drops = p | 'Drops' >> beam.Create([WritePlan({('eval', 1): np.array([0], np.int32)})])
        out = (p | beam.Create(batches[::-1]), drops) | WriteClips(str(tmp_path), max_rows_per_file=6,
                                                                   row_group_rows=4, exploded_spill=exploded)
        assert_that(out.files | beam.Map(lambda f: (f.path.split('/', len(str(tmp_path).split('/')))[-1], f.rows)),
                    equal_to([('clips/split=eval/label=%2Fm%2F09x0r/part-00000.parquet', 6),
                              ('clips/split=eval/label=%2Fm%2F09x0r/part-00001.parquet', 6),
                              ('clips/split=eval/label=%2Fm%2F09x0r/part-00002.parquet', 2),
                              ('clips/split=eval/label=%2Fm%2F04rlf/part-00000.parquet', 6),
                              ('clips/split=eval/label=%2Fm%2F04rlf/part-00001.parquet', 2)]))
    speech = tmp_path / 'clips' / 'split=eval' / 'label=%2Fm%2F09x0r'
    first = pq.ParquetFile(speech / 'part-00000.parquet')
    assert [first.metadata.row_group(i).num_rows for i in range(first.metadata.num_row_groups)] == [4, 2]
    ids = [v for i in range(3) for v in pq.read_table(speech / f'part-{i:05d}.parquet')['video_id'].to_pylist()]
    assert ids == [f'g{g}r{i:08d}' for g in range(3) for i in range(5) if (g, i) != (1, 0)]
    # Speech is every row's first label; Music the second label of the even rows.
    assert all(pq.read_table(speech / f'part-{i:05d}.parquet')['is_primary'].to_pylist() == [True] *
               pq.read_metadata(speech / f'part-{i:05d}.parquet').num_rows for i in range(3))
    music = pq.read_table(tmp_path / 'clips' / 'split=eval' / 'label=%2Fm%2F04rlf')
    assert music['video_id'].to_pylist() == [f'g{g}r{i:08d}' for g in range(3) for i in (0, 2, 4) if (g, i) != (1, 0)]
    assert set(music['is_primary'].to_pylist()) == {False}
    assert music['labels'].to_pylist() == [['/m/09x0r', '/m/04rlf']] * 8
    assert first.metadata.row_group(0).column(0).compression == 'ZSTD'
    rg = first.metadata.row_group(0)
    # Parquet numbers leaf columns (a struct or nested list has several): find the embedding by its path.
    embedding = next(i for i in range(rg.num_columns) if rg.column(i).path_in_schema == 'embedding')
    assert first.metadata.row_group(0).column(embedding).compression == 'UNCOMPRESSED'
    # Nested columns too are compressed, and the repeated label strings dictionary-encoded.
    for i in range(rg.num_columns):
        if rg.column(i).path_in_schema != 'embedding':
            assert rg.column(i).compression == 'ZSTD', rg.column(i).path_in_schema
    leaf = next(rg.column(i) for i in range(rg.num_columns)
                if rg.column(i).path_in_schema == 'labels_with_ancestors_names.list.element')
    assert any('DICTIONARY' in e for e in leaf.encodings), leaf.encodings


def test_sampling_weights_are_float_nulls_for_rows_without_class_index_labels():
    import pyarrow as pa
    plan = WritePlan(label_counts={'eval': np.array([10, 0, 3])})
    none = plan.weights('eval', pa.array([[], []], pa.list_(pa.int32())))
    assert none.type == pa.float64() and none.null_count == 2
    some = plan.weights('eval', pa.array([[0, 2], [], [2]], pa.list_(pa.int32())))
    assert some.type == pa.float64()
    assert some.to_pylist() == [1000 / 10.01 + 1000 / 3.01, None, 1000 / 3.01]
