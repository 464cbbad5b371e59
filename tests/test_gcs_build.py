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
    # The manifest lists exactly the data files in the bucket (no stale, missing or extra file).
    listed = {f['path'] for f in manifest['files']}
    assert listed == {f'gs://audioset/{b.name}' for b in gcs.list_blobs('audioset', prefix='parquet/')
                      if b.name.endswith('.parquet')}
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
    # The gs:// build spills exploded rows, the local one each segment once (memory-mapped): the same clips.
    local_clips = sorted((tmp_path / 'local_out' / 'clips').rglob('*.parquet'))
    assert [str(f.relative_to(tmp_path / 'local_out')) for f in local_clips] == [n[len('parquet/'):] for n in clips]
    for name, path in zip(clips, local_clips):
        remote = pq.read_table(io.BytesIO(bucket.blob(name).download_as_bytes()))
        local = pq.read_table(path)
        assert remote.drop_columns(['source_file']).equals(local.drop_columns(['source_file'])), name
    missing = pq.read_table(io.BytesIO(bucket.blob('parquet/missing_features/split=eval/part-00000.parquet')
                                       .download_as_bytes()))
    assert missing.num_rows == manifest['csv']['eval']['rows_missing_features']


def test_rebuild_with_audio_and_weights_on_gcs(gcs, tmp_path):
    import shutil

    import pyarrow as pa

    from tests.fixtures import SAMPLE
    from transforms.core.vggish import fingerprint, write_random_weights
    local = copy_sample(tmp_path / 'in', splits=('bal_train',), shards_per_split=0)
    (local / 'features' / 'bal_train').mkdir(parents=True, exist_ok=True)
    (local / 'audio').mkdir()
    for clip in sorted((SAMPLE / 'audio' / 'bal_train').glob('*.mp3'))[:3]:
        shard = SAMPLE / 'features' / 'bal_train' / f'{clip.name[:2]}.tfrecord'
        shutil.copyfile(shard, local / 'features' / 'bal_train' / shard.name)
        shutil.copyfile(clip, local / 'audio' / f'{clip.stem}_{_segment_of(clip.stem)}.mp3')
    weights = write_random_weights(str(local / 'weights'), seed=3)
    root = upload_tree(gcs, 'audioset', local, 'rebuild-in')
    args = [a.replace(str(local), root) for a in build_args(local, tmp_path / 'unused')]
    args[args.index('--output_dir'):args.index('--output_dir') + 2] = ['--output_root', 'gs://audioset/rebuilt']
    args += ['--audio', f'{root}/audio', '--vggish_checkpoint', f'{root}/weights/vggish_model.ckpt',
             '--vggish_pca_params', f'{root}/weights/vggish_pca_params.npz']
    first = build_dataset.run(args + ['--run_id', 'a'])
    second = build_dataset.run(args + ['--run_id', 'b'])
    assert first['audio']['embedded'] == 3 and second['audio']['reused'] == 3
    latest = json.loads(gcs.bucket('audioset').blob('rebuilt/latest.json').download_as_bytes())
    assert latest['run_id'] == 'b' and latest['run_dir'] == 'gs://audioset/rebuilt/runs/b'
    cache = pq.read_table(pa.BufferReader(gcs.bucket('audioset').blob(
        'rebuilt/runs/b/computed_embeddings/part-00000.parquet').download_as_bytes()))
    assert set(cache['model_fingerprint'].to_pylist()) == {fingerprint(weights.checkpoint, weights.pca_params)}
    assert cache.num_rows == 3


def _segment_of(ytid: str) -> str:
    from tests.fixtures import SAMPLE
    for line in (SAMPLE / 'audio' / 'bal_train' / 'manifest.csv').read_text().splitlines()[1:]:
        _, vid, start, end = line.split(',')
        if vid == ytid:
            return f'{start}_{end}'
    raise KeyError(ytid)
