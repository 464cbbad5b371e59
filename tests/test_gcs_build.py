"""The whole build reading from and writing to gs://, against a local GCS emulator (no mocks)."""
import io
import json

import pyarrow.parquet as pq
import pytest

from pipelines import build_dataset
from tests.fixtures import build_args, copy_sample
from tests.gcs import gcs_emulator, upload_tree


@pytest.fixture(scope='module')
def gcs(tmp_path_factory):
    with gcs_emulator(tmp_path_factory.mktemp('gcs')) as client:
        client.create_bucket('audioset')
        yield client


def test_build_from_and_to_gcs(gcs, tmp_path):
    local = copy_sample(tmp_path / 'in', splits=('eval', 'unbal_train'), shards_per_split=25)
    root = upload_tree(gcs, 'audioset', local, 'release')
    args = [a.replace(str(local), root) for a in build_args(local, tmp_path / 'unused')]
    args[args.index('--output_dir') + 1] = 'gs://audioset/parquet'
    manifest = build_dataset.run(args)
    bucket = gcs.bucket('audioset')
    stored = json.loads(bucket.blob('parquet/manifest.json').download_as_bytes())
    assert stored == manifest
    assert all(s['adds_up'] for s in manifest['splits'].values())
    local_manifest = build_dataset.run(build_args(local, tmp_path / 'local_out'))
    for split in ('eval', 'unbalanced_train'):
        assert manifest['splits'][split]['segments_out'] == local_manifest['splits'][split]['segments_out'] > 0
    assert manifest['partition_rows'] == local_manifest['partition_rows']
    names = {b.name for b in gcs.list_blobs('audioset', prefix='parquet/')}
    assert not any('/_spill/' in n for n in names)
    clips = sorted(n for n in names if n.startswith('parquet/clips/'))
    assert len(clips) == manifest['tables']['clips']['files']
    rows = sum(pq.read_metadata(io.BytesIO(bucket.blob(n).download_as_bytes())).num_rows for n in clips)
    assert rows == manifest['tables']['clips']['rows']
    missing = pq.read_table(io.BytesIO(bucket.blob('parquet/missing_features/split=eval/part-00000.parquet')
                                       .download_as_bytes()))
    assert missing.num_rows == manifest['csv']['eval']['rows_missing_features']
