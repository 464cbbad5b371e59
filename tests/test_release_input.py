"""--features_dir in every form the release comes in, and --release: the tarball read by URL (a loopback
HTTP server) and from gs:// (the GCS emulator) gives the same clips/ as the unpacked tree; damage inside
the tarball becomes dead letters that add up; each bad path is one error paragraph naming flag and path."""
import json
import pathlib
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from pipelines import build_dataset
from pipelines.errors import EXIT_FAILED, EXIT_INPUT, EXIT_USAGE, UserError, expected_error
from tests.accounting import assert_records_add_up, records_by_split
from tests.fixtures import ROOT, SAMPLE, build_args, copy_sample
from tests.release_server import make_release_tarball, release_server
from transforms.core import tfrecord
from transforms.read import FeaturesError, resolve_features

SPLITS = ('eval', 'unbal_train')
SHARDS = 12


@pytest.fixture(scope='module')
def release(tmp_path_factory):
    """A release folder as tar unpacks it (holding audioset_v1_embeddings/) and as fetched (features.tar.gz),
    with the bundled CSVs, class index and ontology."""
    root = tmp_path_factory.mktemp('release')
    inputs = copy_sample(root / 'in', splits=SPLITS, shards_per_split=SHARDS)
    # the tarball (like the release) is meant to hold every split whose CSV is given: no bal_train, no CSV
    (inputs / 'segments' / 'balanced_train_segments.csv').unlink()
    unpacked = root / 'unpacked'
    shutil.copytree(inputs / 'features', unpacked / 'audioset_v1_embeddings')
    fetched = root / 'fetched'
    fetched.mkdir()
    make_release_tarball(fetched / 'features.tar.gz', inputs / 'features', splits=SPLITS)
    for f in ('segments/eval_segments.csv', 'class_labels_indices.csv', 'ontology.json'):
        shutil.copyfile(inputs / f, fetched / pathlib.Path(f).name)
    return inputs, unpacked, fetched


def _clips(out: pathlib.Path, prefix: str) -> dict:
    """Every clips file: relative path -> its table, source_file with ``prefix`` cut off."""
    tables = {}
    for path in sorted((out / 'clips').rglob('*.parquet')):
        t = pq.read_table(path)
        names = [s.removeprefix(prefix) for s in t['source_file'].to_pylist()]
        tables[str(path.relative_to(out))] = (t.drop(['source_file']), names)
    return tables


def _args(inputs, out, features, *extra):
    args = build_args(inputs, out, *extra)
    args[args.index('--features_dir') + 1] = str(features)
    return args


def test_tarball_by_url_builds_the_same_clips_as_the_unpacked_tree(release, tmp_path):
    inputs, unpacked, fetched = release
    tree = build_dataset.run(_args(inputs, tmp_path / 'tree', unpacked))
    tarball = (fetched / 'features.tar.gz').read_bytes()
    with release_server({'/v1/features/features.tar.gz': tarball}) as server:
        server.cut_once.add('/v1/features/features.tar.gz')        # the stream is resumed mid-way
        url = f'{server.url}/v1/features/features.tar.gz'
        streamed = build_dataset.run(_args(inputs, tmp_path / 'url', url))
        assert len(server.ranges('/v1/features/features.tar.gz')) >= 2
    assert streamed['inputs']['features']['form'] == 'tarball'
    assert tree['inputs']['features'] == {'form': 'shard tree', 'tarball': None, 'root': str(unpacked / 'audioset_v1_embeddings'),
                                          'folders': ['eval', 'unbal_train']}
    a = _clips(tmp_path / 'tree', str(unpacked / 'audioset_v1_embeddings') + '/')
    b = _clips(tmp_path / 'url', url + ':audioset_v1_embeddings/')
    assert a.keys() == b.keys() and len(a) > 100
    for name in a:   # same rows in the same order; provenance names the same shard and record
        assert a[name][0].equals(b[name][0]), name
        assert a[name][1] == b[name][1], name
    # counted from the inputs and the outputs, not the manifest's own word
    records = records_by_split(unpacked / 'audioset_v1_embeddings')
    assert set(records) == {'eval', 'unbalanced_train'}
    assert_records_add_up(tmp_path / 'tree', tree, records)
    assert_records_add_up(tmp_path / 'url', streamed, records)


def test_damage_inside_the_tarball_is_dead_lettered(release, tmp_path):
    inputs, _, fetched = release
    good = sorted((inputs / 'features' / 'eval').glob('*.tfrecord'))[0].read_bytes()
    extra = {'audioset_v1_embeddings/eval/zz.tfrecord': good[:len(good) - 100],          # cut short
             'audioset_v1_embeddings/README.txt': b'hello',                              # not a shard
             'audioset_v1_embeddings/balanced/zy.tfrecord': tfrecord.frame_all([b'a', b'b', b'c'])}  # misplaced
    tarball = make_release_tarball(tmp_path / 'damaged.tar.gz', inputs / 'features', splits=SPLITS, extra=extra)
    data = tarball.read_bytes()
    manifest = build_dataset.run(_args(inputs, tmp_path / 'out', tarball, '--max_bad_fraction', '1'))
    dead = pq.read_table(tmp_path / 'out' / 'dead_letters').to_pylist()
    by_reason = {}
    for r in dead:
        by_reason.setdefault(r['reason'], []).append(r)
    assert by_reason['unexpected-member'][0]['source'] == f'{tarball}:audioset_v1_embeddings/README.txt'
    misplaced = next(r for r in by_reason['unexpected-member'] if r['source'].endswith('balanced/zy.tfrecord'))
    assert misplaced['records'] == 3 and misplaced['split'] is None
    for split, s in manifest['splits'].items():
        assert s['records_in'] == s['segments_out'] + s['dead_letters'], (split, s)
    # the run fails its own threshold on what it could not read
    with pytest.raises(Exception) as e:
        build_dataset.run(_args(inputs, tmp_path / 'out2', tarball))
    assert expected_error(e.value)[0] == EXIT_FAILED
    # and a download lacking its last bytes (the gzip trailer) is never complete, whatever the threshold
    cut = tmp_path / 'cut.tar.gz'
    cut.write_bytes(data[:len(data) - 8])
    with pytest.raises(Exception) as e:
        build_dataset.run(_args(inputs, tmp_path / 'out3', cut, '--max_bad_fraction', '1'))
    code, message = expected_error(e.value)
    assert code == EXIT_FAILED and 'not read whole' in message and 'truncated-gzip' in message, message
    assert not (tmp_path / 'out3' / 'manifest.json').exists()
    dead = pq.read_table(tmp_path / 'out3' / 'dead_letters').to_pylist()
    cut_row = next(r for r in dead if r['reason'] == 'truncated-gzip')
    assert cut_row['source'] == str(cut) and cut_row['records_estimated']


def test_every_form_of_features_dir(release, tmp_path):
    inputs, unpacked, fetched = release
    inner = unpacked / 'audioset_v1_embeddings'
    assert resolve_features(str(unpacked)).root == str(inner)
    assert resolve_features(str(inner)).folders == ('eval', 'unbal_train')
    only = resolve_features(str(inner / 'eval') + '/')
    assert (only.root, only.folders, only.form) == (str(inner), ('eval',), 'split folder')
    assert resolve_features(str(fetched)).tarball == str(fetched / 'features.tar.gz')
    assert resolve_features(str(fetched / 'features.tar.gz')).tarball == str(fetched / 'features.tar.gz')
    renamed = tmp_path / 'download'
    shutil.copyfile(fetched / 'features.tar.gz', renamed)      # a tarball is known by its content too
    assert resolve_features(str(renamed)).tarball == str(renamed)
    # one split folder builds only that split
    manifest = build_dataset.run(_args(inputs, tmp_path / 'one', inner / 'unbal_train'))
    assert set(manifest['splits']) == {'unbalanced_train'}


def _error(argv) -> tuple[int, str]:
    with pytest.raises(UserError) as e:
        build_dataset.parse(argv)
    return e.value.exit_code, str(e.value)


def test_bad_paths_are_one_paragraph_naming_flag_and_path(release, tmp_path):
    inputs, unpacked, fetched = release
    holder = tmp_path / 'holder'
    (holder / 'features').mkdir(parents=True)
    shutil.copytree(unpacked / 'audioset_v1_embeddings', holder / 'features' / 'audioset_v1_embeddings')
    code, msg = _error(_args(inputs, tmp_path / 'o', holder))
    assert code == EXIT_INPUT and msg.startswith(f'--features_dir {holder}: no shards found')
    assert f'did you mean {holder / "features" / "audioset_v1_embeddings"}?' in msg
    code, msg = _error(_args(inputs, tmp_path / 'o', str(unpacked / 'audioset_v1_embedding')))
    assert msg == (f'--features_dir {unpacked / "audioset_v1_embedding"}: no such folder; '
                   f'did you mean {unpacked / "audioset_v1_embeddings"}?')
    loose = tmp_path / 'loose'
    loose.mkdir()
    shutil.copyfile(next((inputs / 'features' / 'eval').glob('*.tfrecord')), loose / 'ab.tfrecord')
    assert 'not in a split folder' in _error(_args(inputs, tmp_path / 'o', loose))[1]
    code, msg = _error(_args(inputs, tmp_path / 'o', inputs / 'ontology.json'))
    assert msg.startswith(f'--features_dir {inputs / "ontology.json"}: a file that is neither')
    code, msg = _error(_args(inputs, tmp_path / 'o', 'ftp://host/features.tar.gz'))
    assert code == EXIT_USAGE and 'only local paths and gs://, http://, https:// URLs' in msg
    with release_server({}) as server:
        code, msg = _error(_args(inputs, tmp_path / 'o', f'{server.url}/features.tar.gz'))
        assert code == EXIT_INPUT and msg == f'--features_dir {server.url}/features.tar.gz: HTTP 404 Not Found'
    # a --release folder without the features is named as --release, not as the --features_dir it filled in
    code, msg = _error(['--release', str(holder), '--output_dir', str(tmp_path / 'o')])
    assert code == EXIT_INPUT and msg.startswith(f'--release {holder}: no shards found') and '?,' not in msg
    code, msg = _error(['--release', str(tmp_path / 'nowhere'), '--output_dir', str(tmp_path / 'o')])
    assert code == EXIT_INPUT and msg.startswith(f'--release {tmp_path / "nowhere"}: no such folder')
    # the command line says it once, no traceback
    out = subprocess.run([sys.executable, '-m', 'pipelines.build_dataset', '--features_dir', str(holder),
                          '--output_dir', str(tmp_path / 'o')], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == EXIT_INPUT and 'Traceback' not in out.stderr
    assert [ln for ln in out.stderr.splitlines() if ln.startswith('error:')] == \
        [f'error: --features_dir {holder}: no shards found in bal_train/, eval/ or unbal_train/ (expected the release '
         f'layout, e.g. {holder}/eval/*.tfrecord); this folder holds features/audioset_v1_embeddings/: did you mean '
         f'{holder / "features" / "audioset_v1_embeddings"}? No --audio or --audio_manifest was given either.']


def test_release_folder_fills_the_flags_and_explicit_flags_win(release, tmp_path):
    _, unpacked, fetched = release
    (fetched / 'qa_true_counts.csv').write_text('label_id,num_rated,num_true\n')
    try:
        opts = build_dataset.parse(['--release', str(fetched), '--output_dir', str(tmp_path / 'o')]) \
            .view_as(build_dataset.BuildOptions)
        assert (opts.features_dir, opts.segments_dir) == (str(fetched), str(fetched))
        assert opts.class_index == str(fetched / 'class_labels_indices.csv')
        assert opts.ontology == str(fetched / 'ontology.json')
        assert opts.label_quality == str(fetched / 'qa_true_counts.csv') and opts.strong_labels is None
        opts = build_dataset.parse(['--release', str(fetched), '--features_dir', str(unpacked),
                                    '--output_dir', str(tmp_path / 'o')]).view_as(build_dataset.BuildOptions)
        assert opts.features_dir == str(unpacked) and opts.segments_dir == str(fetched)
    finally:
        (fetched / 'qa_true_counts.csv').unlink()


def test_tarball_on_gcs(release, tmp_path):
    from tests.gcs import gcs_emulator
    inputs, _, fetched = release
    with gcs_emulator(tmp_path) as client:
        client.create_bucket('audioset-rel')
        bucket = client.bucket('audioset-rel')
        for f in fetched.iterdir():
            bucket.blob(f'audioset/{f.name}').upload_from_filename(str(f))
        # the release folder on gs:// (the tarball found by name, no listing)
        manifest = build_dataset.run(['--release', 'gs://audioset-rel/audioset', '--output_dir', str(tmp_path / 'gs')])
        assert manifest['inputs']['features']['tarball'] == 'gs://audioset-rel/audioset/features.tar.gz'
        assert manifest['options']['class_index'] == 'gs://audioset-rel/audioset/class_labels_indices.csv'
        local = build_dataset.run(_args(inputs, tmp_path / 'local', fetched / 'features.tar.gz'))
        assert manifest['partition_rows'] == local['partition_rows']
        a = _clips(tmp_path / 'gs', 'gs://audioset-rel/audioset/features.tar.gz:')
        b = _clips(tmp_path / 'local', str(fetched / 'features.tar.gz') + ':')
        assert a.keys() == b.keys() and all(a[k][0].equals(b[k][0]) and a[k][1] == b[k][1] for k in a)
        code, msg = _error(_args(inputs, tmp_path / 'o', 'gs://audioset-rel/nothing/features.tar.gz'))
        assert code == EXIT_INPUT and msg == '--features_dir gs://audioset-rel/nothing/features.tar.gz: no such object'
    assert_records_add_up(tmp_path / 'gs', json.loads((tmp_path / 'gs' / 'manifest.json').read_text()),
                          records_by_split(inputs / 'features'))
