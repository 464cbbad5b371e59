"""Every reader the README names opens the sample build's clips, and its one documented call per row turns
the embedding into the released frames: each decoded array is checked byte for byte against the frames read
independently from the TFRecord shards with TensorFlow's SequenceExample, and each reader must return every
clips row with its split and label (partition values decoded: ``/m/09x0r``, not ``%2Fm%2F09x0r``)."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from audioset_beam import decode_frames, frames_of
from pipelines import build_dataset
from tests.fixtures import SAMPLE

FOLDERS = {'eval': 'eval', 'bal_train': 'balanced_train', 'unbal_train': 'unbalanced_train'}
COLUMNS = ['segment_id', 'num_frames', 'labels', 'embedding']


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    out = tmp_path_factory.mktemp('out')
    build_dataset.run(['--output_dir', str(out)])
    return out / 'clips'


@pytest.fixture(scope='module')
def released():
    return released_frames()


def released_frames() -> dict[tuple[str, str], bytes]:
    """(split, segment_id) -> the frames' bytes, from the sample's shards through TensorFlow's own parser."""
    import tensorflow as tf
    frames = {}
    for folder, split in FOLDERS.items():
        for shard in sorted((SAMPLE / 'features' / folder).glob('*.tfrecord')):
            for raw in tf.data.TFRecordDataset(str(shard)).as_numpy_iterator():
                ex = tf.train.SequenceExample.FromString(raw)
                ctx = ex.context.feature
                key = (split, f"{ctx['video_id'].bytes_list.value[0].decode()}_"
                              f"{round(ctx['start_time_seconds'].float_list.value[0] * 1000)}")
                frames.setdefault(key, b''.join(
                    f.bytes_list.value[0] for f in ex.feature_lists.feature_list['audio_embedding'].feature))
    return frames


@pytest.fixture(scope='module')
def expected_rows(clips):
    """(split, label, segment_id) of every clips row, from the Parquet footers and paths alone."""
    import pyarrow.parquet as pq
    import urllib.parse
    rows = set()
    for f in clips.glob('split=*/label=*/*.parquet'):
        split = f.parent.parent.name.split('=', 1)[1]
        label = urllib.parse.unquote(f.parent.name.split('=', 1)[1])
        rows.update((split, label, s) for s in pq.read_table(f, columns=['segment_id'])['segment_id'].to_pylist())
    assert len(rows) > 6000
    return rows


def check(rows, released, expected_rows, split=None):
    """``rows``: (split, label, segment_id, frames) per row read. Every frames array must be [n, 128] uint8 and
    equal the released frames; the rows must be exactly the clips rows (of ``split``, when given)."""
    seen = set()
    for s, label, segment_id, frames in rows:
        assert frames.dtype == np.uint8 and frames.ndim == 2 and frames.shape[1] == 128, (segment_id, frames.shape)
        assert frames.tobytes() == released[(s, segment_id)], (s, label, segment_id)
        seen.add((s, label, segment_id))
    want = {r for r in expected_rows if split is None or r[0] == split}
    assert seen == want


# -- pandas ----------------------------------------------------------------------------------------------

def test_pandas_one_partition(clips, released, expected_rows):
    df = pd.read_parquet(clips / 'split=eval', columns=COLUMNS + ['label'])
    check((('eval', lab, s, frames_of(e)) for lab, s, e in zip(df.label, df.segment_id, df.embedding)),
          released, expected_rows, split='eval')


def test_pandas_whole_clips(clips, released, expected_rows):
    df = pd.read_parquet(clips)
    assert isinstance(df.embedding.iloc[0], bytes)
    check(((sp, lab, s, frames_of(e)) for sp, lab, s, e in zip(df.split, df.label, df.segment_id, df.embedding)),
          released, expected_rows)


# -- Hugging Face datasets -------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def hf_by_split(clips, tmp_path_factory):
    """load_dataset("parquet") with one data_files glob per split: the split is the DatasetDict key (its
    parquet builder reads each file alone, without hive partitioning, so partition columns never appear)."""
    import datasets
    files = {s: str(clips / f'split={s}' / '**' / '*.parquet') for s in ('eval', 'unbalanced_train')}
    return datasets.load_dataset('parquet', data_files=files, cache_dir=str(tmp_path_factory.mktemp('hf')))


@pytest.fixture(scope='module')
def hf_with_partitions(clips):
    """A datasets.Dataset that keeps ``split`` and ``label``: from pandas, which reads the hive partitions."""
    import datasets
    return datasets.Dataset.from_pandas(pd.read_parquet(clips), preserve_index=False)


def test_hf_load_dataset_drops_partition_columns(hf_by_split):
    assert not {'split', 'label'} & set(hf_by_split['eval'].column_names)


def test_hf_default_format(hf_by_split, hf_with_partitions, released, expected_rows):
    rows = [(split, r['labels'][0], r['segment_id'], frames_of(r['embedding']))
            for split, d in hf_by_split.items() for r in d if r['is_primary']]
    for split in ('eval', 'unbalanced_train'):
        _check_primary([r for r in rows if r[0] == split], released, expected_rows, split=split)
    d = hf_with_partitions
    assert isinstance(d[0]['embedding'], bytes)
    check(((r['split'], r['label'], r['segment_id'], frames_of(r['embedding'])) for r in d), released, expected_rows)


def test_hf_numpy_format(hf_by_split, hf_with_partitions, released, expected_rows):
    d = hf_with_partitions.with_format('numpy')
    batch = d[:]
    emb, nf = batch['embedding'], batch['num_frames']
    # numpy's fixed-width bytes ('S1280') drop trailing zero bytes: a quantized 0 is a common value, so the
    # plain call is wrong on real rows. Padding back to num_frames x 128 zeros restores them exactly.
    assert emb.dtype.kind == 'S' and any(len(v) != 128 * n for v, n in zip(emb, nf))
    check(((sp, lab, s, frames_of(v.ljust(128 * n, b'\0')))
           for sp, lab, s, v, n in zip(batch['split'], batch['label'], batch['segment_id'], emb, nf)),
          released, expected_rows)
    e = hf_by_split['eval'].with_format('numpy')
    rows = [('eval', r['labels'][0], r['segment_id'], frames_of(r['embedding'].ljust(128 * r['num_frames'], b'\0')))
            for r in e if r['is_primary']]
    _check_primary(rows, released, expected_rows, split='eval')


def test_hf_arrow_format(hf_by_split, hf_with_partitions, released, expected_rows):
    t = hf_with_partitions.with_format('arrow')[:]
    assert isinstance(t, pa.Table) and t.schema.field('embedding').type in (pa.binary(), pa.large_binary())
    check(((sp, lab, s, frames_of(t['embedding'][i].as_buffer()))
           for i, (sp, lab, s) in enumerate(zip(t['split'].to_pylist(), t['label'].to_pylist(),
                                                t['segment_id'].to_pylist()))), released, expected_rows)
    # the whole column at once: [n, 10, 128] padded, no copy per row
    e = hf_by_split['eval'].with_format('arrow')[:]
    frames, nf = decode_frames(e['embedding'])
    rows = [('eval', labels[0], s, frames[i, :nf[i]])
            for i, (s, labels, p) in enumerate(zip(e['segment_id'].to_pylist(), e['labels'].to_pylist(),
                                                   e['is_primary'].to_pylist())) if p]
    _check_primary(rows, released, expected_rows, split='eval')


def _check_primary(rows, released, expected_rows, split=None):
    """As ``check``, for primary rows only (one per segment, labelled by its first label), read without
    the label partition column."""
    primary = {}
    for s, label, segment_id in expected_rows:
        primary.setdefault((s, segment_id), set()).add(label)
    rows = list(rows)
    check(rows, released, {(s, lab, seg) for s, lab, seg, _ in rows}, split=None)
    assert {(s, seg) for s, _, seg, _ in rows} == {k for k in primary if split is None or k[0] == split}
    assert all(lab in primary[(s, seg)] for s, lab, seg, _ in rows)


# -- Polars ----------------------------------------------------------------------------------------------

def test_polars(clips, released, expected_rows):
    import polars as pl
    df = pl.read_parquet(str(clips / '**' / '*.parquet'), hive_partitioning=True)
    assert df.schema['embedding'] == pl.Binary
    check(((sp, lab, s, frames_of(e)) for sp, lab, s, e in df.select('split', 'label', 'segment_id', 'embedding')
           .iter_rows()), released, expected_rows)
    lazy = pl.scan_parquet(clips, hive_partitioning=True).filter(pl.col('split') == 'eval').collect()
    check(((sp, lab, s, frames_of(e)) for sp, lab, s, e in lazy.select('split', 'label', 'segment_id', 'embedding')
           .iter_rows()), released, expected_rows, split='eval')


# -- DuckDB ----------------------------------------------------------------------------------------------

def test_duckdb(clips, released, expected_rows):
    import duckdb
    con = duckdb.connect()
    query = (f"SELECT split, label, segment_id, embedding FROM read_parquet('{clips}/**/*.parquet', "
             "hive_partitioning = true)")
    df = con.sql(query).df()
    check(((sp, lab, s, frames_of(e)) for sp, lab, s, e in zip(df.split, df.label, df.segment_id, df.embedding)),
          released, expected_rows)
    t = con.sql(query).arrow().read_all()  # DuckDB 1.4+: .arrow() is a RecordBatchReader
    assert t.schema.field('embedding').type == pa.binary()
    check(((sp, lab, s, frames_of(e.as_buffer())) for sp, lab, s, e in zip(
        t['split'].to_pylist(), t['label'].to_pylist(), t['segment_id'].to_pylist(), t['embedding'])),
        released, expected_rows)
    n = con.sql(query + " WHERE split = 'eval'").fetchnumpy()
    check(((sp, lab, s, frames_of(e)) for sp, lab, s, e in zip(n['split'], n['label'], n['segment_id'],
                                                                n['embedding'])), released, expected_rows, 'eval')


# -- pyarrow ---------------------------------------------------------------------------------------------

def test_pyarrow(clips, released, expected_rows):
    t = ds.dataset(clips, format='parquet', partitioning='hive').to_table(
        columns=['split', 'label', 'segment_id', 'embedding'])
    check(((sp, lab, s, frames_of(e.as_buffer())) for sp, lab, s, e in zip(
        t['split'].to_pylist(), t['label'].to_pylist(), t['segment_id'].to_pylist(), t['embedding'])),
        released, expected_rows)
    # README's zero-copy recipe: all frames of a filtered table from the binary column's buffers
    d = ds.dataset(clips, format='parquet', partitioning='hive')
    e = d.to_table(filter=(ds.field('split') == 'eval') & ds.field('is_primary'),
                   columns=['segment_id', 'label', 'embedding', 'num_frames'])
    emb = e['embedding'].combine_chunks()
    offs = np.frombuffer(emb.buffers()[1], np.int32)[emb.offset:emb.offset + len(emb) + 1]
    q = np.frombuffer(emb.buffers()[2], np.uint8)[offs[0]:offs[-1]].reshape(-1, 128)
    starts = np.r_[0, np.cumsum(e['num_frames'].to_numpy())]
    rows = [('eval', lab, s, q[starts[i]:starts[i + 1]])
            for i, (lab, s) in enumerate(zip(e['label'].to_pylist(), e['segment_id'].to_pylist()))]
    _check_primary(rows, released, expected_rows, split='eval')


# -- Spark -----------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def spark():
    pytest.importorskip('pyspark')
    import shutil
    if not shutil.which('java'):
        pytest.fail('Spark needs a JRE: run scripts/ensure_system.sh (installs Debian\'s default-jre-headless)')
    from pyspark.sql import SparkSession
    session = (SparkSession.builder.master('local[1]').appName('test_readers')
               .config('spark.ui.enabled', 'false').config('spark.ui.showConsoleProgress', 'false')
               # list the ~1,200 partition folders on the driver, not as a Spark job per level
               .config('spark.sql.sources.parallelPartitionDiscovery.threshold', '100000')
               .config('spark.sql.shuffle.partitions', '1').getOrCreate())
    session.sparkContext.setLogLevel('ERROR')
    yield session
    session.stop()


def test_spark(spark, clips, released, expected_rows):
    # one split (basePath keeps `split` a column); the whole clips/ reads the same way, only slower
    df = spark.read.option('basePath', str(clips)).parquet(str(clips / 'split=eval'))
    assert dict(df.dtypes)['embedding'] == 'binary' and dict(df.dtypes)['label'] == 'string'
    rows = df.select('split', 'label', 'segment_id', 'embedding').collect()
    assert isinstance(rows[0].embedding, (bytes, bytearray))
    check(((r.split, r.label, r.segment_id, frames_of(r.embedding)) for r in rows), released, expected_rows, 'eval')
