"""New audio end to end: VGGish embeddings in the build (RunInference), dead letters, reuse across runs."""
import json
import pathlib
import shutil
import wave

import numpy as np
import pyarrow.dataset as ds
import pytest

from pipelines import build_dataset, embed_audio
from tests.accounting import from_output
from tests.fixtures import SAMPLE, build_args, copy_sample
from tests.strong_fixtures import oracle_frame_labels, write_strong_files
from transforms.core.vggish import Postprocessor, audio_to_examples, fingerprint, load_vggish, write_random_weights

CLIPS = sorted((SAMPLE / 'audio' / 'bal_train').glob('*.mp3'))


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    files = write_random_weights(str(tmp_path_factory.mktemp('weights')), seed=7)
    return files, ['--vggish_checkpoint', files.checkpoint, '--vggish_pca_params', files.pca_params]


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    root = copy_sample(tmp_path_factory.mktemp('in'), splits=('eval',), shards_per_split=5)
    for clip in CLIPS:  # the shards with the clips' released embeddings
        shard = SAMPLE / 'features' / 'bal_train' / f'{clip.name[:2]}.tfrecord'
        (root / 'features' / 'bal_train').mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shard, root / 'features' / 'bal_train' / shard.name)
    return root


def _wav(path: pathlib.Path, seconds: float, rate: int = 16000) -> pathlib.Path:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with wave.open(str(path), 'wb') as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate), w.writeframes(pcm.tobytes())
    return path


def _clips(out: pathlib.Path):
    return ds.dataset(out / 'clips', format='parquet', partitioning='hive').to_table(filter=ds.field('is_primary'))


def test_bundled_clips_are_embedded_labelled_and_match_the_export_cli(weights, inputs, tmp_path):
    files, flags = weights
    out = tmp_path / 'out'
    # AudioSet Strong labels for the clips' segments: computed frames are 0.96 s apart, released ones 1 s.
    lines = (SAMPLE / 'audio' / 'bal_train' / 'manifest.csv').read_text().splitlines()[1:]
    segments = [(f'{y}_{int(a) * 1000}', float(b) - float(a)) for _, y, a, b in (ln.split(',') for ln in lines)]
    strong = write_strong_files(tmp_path / 'strong', segments, [], seed=3)
    manifest = build_dataset.run(build_args(inputs, out, '--audio_manifest',
                                            str(SAMPLE / 'audio' / 'bal_train' / 'manifest.csv'), *flags,
                                            '--strong_labels', str(strong.dir)))
    got = from_output(out)['audio']   # files in = computed clips + audio dead letters, recounted from the output
    assert manifest['audio']['files_in'] == len(lines) == 10 == got['computed'] + got['dead_letters']
    assert (manifest['audio']['segments_out'], manifest['audio'].get('dead_letters', 0)) == (got['computed'], 0)
    assert manifest['audio']['embedded'] == 10
    assert manifest['strong']['train']['segments_joined'] == 10
    # Each clip is read twice (released and computed): its events count once.
    assert manifest['strong']['train']['events_attached'] == len(strong.train)
    events: dict = {}
    for seg, a, b, mid in strong.train:
        events.setdefault(seg, []).append((a, b, mid))
    checked = {'computed': 0, 'released': 0}
    for r in _clips(out).to_pylist():
        if r['split'] != 'balanced_train' or r['segment_id'] not in events:
            continue
        checked[r['embedding_source']] += 1
        hop = 960 if r['embedding_source'] == 'computed' else 1000
        dur = round((r['end_time_seconds'] - r['start_time_seconds']) * 1000)
        assert len(r['frame_labels']) == r['num_frames']
        assert [sorted(f) for f in r['frame_labels']] == \
            oracle_frame_labels(events[r['segment_id']], dur, r['num_frames'], hop)
    assert checked == {'computed': 10, 'released': 10}
    rows = _clips(out).to_pylist()
    computed = {r['video_id']: r for r in rows if r['embedding_source'] == 'computed'}
    released = {r['video_id']: r for r in rows if r['embedding_source'] == 'released'}
    ids = {c.stem for c in CLIPS}
    assert set(computed) == ids and ids <= set(released)   # both kept, told apart by embedding_source
    fp = fingerprint(files.checkpoint, files.pca_params)
    for vid, row in computed.items():
        assert row['split'] == 'balanced_train' and row['label_source'] == 'csv'
        assert row['labels'] == released[vid]['labels'] and row['model_fingerprint'] == fp
        assert row['start_time_seconds'] == released[vid]['start_time_seconds']
        assert len(row['audio_sha256']) == 64 and row['source_file'].endswith(f'{vid}.mp3')
        assert row['num_frames'] == (9 if vid == '5FsrNEeqd6Q' else 10)
    # the per-file export CLI computes the same bytes
    npz = tmp_path / 'npz'
    assert 0 == embed_audio.run(['--audio', str(CLIPS[0]), '--vggish_checkpoint', files.checkpoint,
                              '--vggish_pca_params', files.pca_params, '--npz_dir', str(npz)])
    exported = np.load(npz / f'{CLIPS[0].stem}.npz')['quantized']
    got = np.frombuffer(computed[CLIPS[0].stem]['embedding'], np.uint8).reshape(-1, 128)
    assert np.array_equal(got, exported)
    # Every clip, not just the first of an inference batch, against the model run on that clip alone.
    model, post = load_vggish(files.checkpoint, batch_size=64), Postprocessor(files.pca_params)
    for clip in CLIPS:
        alone = post.quantize(model(audio_to_examples(clip.read_bytes(), name=str(clip))))
        got = np.frombuffer(computed[clip.stem]['embedding'], np.uint8).reshape(-1, 128)
        assert np.array_equal(got, alone), clip.name


def test_bad_audio_is_dead_lettered_and_unlabelled_clips_can_be_kept(weights, inputs, tmp_path):
    _, flags = weights
    audio = tmp_path / 'audio'
    audio.mkdir()
    shutil.copyfile(CLIPS[0], audio / f'{CLIPS[0].stem}_30_40.mp3')
    (audio / 'corrupt1234_0_10.mp3').write_bytes(b'\x00not audio' * 100)
    (audio / 'empty123456_0_10.wav').write_bytes(b'')
    _wav(audio / 'short123456_0_10.wav', 0.5)
    _wav(audio / '-no_csv_row_20_30.wav', 3.0)
    (audio / 'no_segment_in_name.wav').write_bytes(b'x')
    out = tmp_path / 'out'
    manifest = build_dataset.run(build_args(inputs, out, '--audio', str(audio), *flags, '--max_bad_fraction', '1'))
    import pyarrow.parquet as pq
    dead = sorted((pathlib.Path(d['source']).name, d['stage'], d['reason'])
                  for d in pq.read_table(out / 'dead_letters' / 'part-00000.parquet').to_pylist())
    assert dead == [('-no_csv_row_20_30.wav', 'label-audio', 'no-labels'),
                    ('corrupt1234_0_10.mp3', 'embed-audio', 'unreadable-audio'),
                    ('empty123456_0_10.wav', 'embed-audio', 'empty-audio'),
                    ('no_segment_in_name.wav', 'discover-audio', 'bad-file-name'),
                    ('short123456_0_10.wav', 'embed-audio', 'too-short')]
    assert manifest['audio']['files_in'] == 6 and manifest['audio']['segments_out'] == 1
    got = from_output(out)['audio']
    assert (got['computed'], got['dead_letters']) == (1, 5) and manifest['audio'].get('dead_letters', 0) == 5
    kept = build_dataset.run(build_args(inputs, tmp_path / 'kept', '--audio', str(audio), *flags,
                                        '--max_bad_fraction', '1', '--keep_unlabelled'))
    assert kept['audio']['segments_out'] == 2
    rows = ds.dataset(tmp_path / 'kept' / 'clips', partitioning='hive').to_table(
        filter=(ds.field('split') == 'unlabelled')).to_pylist()
    assert [(r['video_id'], r['label'], r['labels'], r['label_source']) for r in rows] == [
        ('-no_csv_row', 'unlabelled', [], 'none')]


def test_rebuild_reuses_computed_embeddings(weights, inputs, tmp_path):
    _, flags = weights
    root = tmp_path / 'root'
    audio = ['--audio_manifest', str(SAMPLE / 'audio' / 'bal_train' / 'manifest.csv'), *flags]

    def rebuild(run_id):
        args = build_args(inputs, root, '--run_id', run_id, *audio)
        args[args.index('--output_dir')] = '--output_root'
        return build_dataset.run(args)

    first, second = rebuild('r1'), rebuild('r2')
    assert (first['audio']['embedded'], first['audio']['reused']) == (10, 0)
    assert (second['audio']['embedded'], second['audio']['reused']) == (0, 10)
    assert second['inputs']['audio']['reused_from'] == str(root / 'runs' / 'r1')

    def rows(run):
        t = _clips(root / 'runs' / run).sort_by([('segment_id', 'ascending'), ('embedding_source', 'ascending')])
        return t.to_pylist()
    assert rows('r1') == rows('r2')
    assert json.loads((root / 'latest.json').read_text())['run_id'] == 'r2'


def test_missing_weights_say_what_to_pass(inputs, tmp_path):
    with pytest.raises(Exception, match='--vggish_checkpoint'):
        build_dataset.run(build_args(inputs, tmp_path / 'o', '--audio_manifest',
                                     str(SAMPLE / 'audio' / 'bal_train' / 'manifest.csv'),
                                     '--vggish_checkpoint', str(tmp_path / 'nope.ckpt'),
                                     '--vggish_pca_params', str(tmp_path / 'nope.npz')))
