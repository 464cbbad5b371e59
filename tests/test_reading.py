"""audioset_beam's reading helper on the sample build (with a --label_quality file in Google's format):
frames equal the released ones, targets equal the segment CSVs' labels, weights follow AST/PSLA's formula,
the streaming iterator and tf.data pipeline read each segment once, output roots and gs:// resolve; and the
metrics against their definitions."""
import csv
import json
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audioset_beam import (decode_frames, dequantize, evaluate, iter_batches, load_split, mean_pool, open_dataset,
                           tf_dataset, vocabulary)
from audioset_beam.metrics import average_precision, d_prime, roc_auc
from audioset_beam.reading import SplitNotBuilt
from pipelines import build_dataset
from tests.fixtures import SAMPLE, build_args, copy_sample
from tests.test_readers import released_frames

SPLITS = ('eval', 'balanced_train', 'unbalanced_train')
CSVS = {'eval': 'eval_segments.csv', 'balanced_train': 'balanced_train_segments.csv'}


def _mids() -> list[str]:
    with open(SAMPLE / 'class_labels_indices.csv', newline='') as f:
        return [r['mid'] for r in csv.DictReader(f)]


@pytest.fixture(scope='module')
def qa_file(tmp_path_factory):
    """A qa_true_counts.csv in the official format (label_id,num_rated,num_true; class-index order; 0,0 for a
    class not assessed), with made-up counts."""
    path = tmp_path_factory.mktemp('qa') / 'qa_true_counts.csv'
    lines = ['label_id,num_rated,num_true']
    for i, mid in enumerate(_mids()):
        rated = 0 if i % 50 == 7 else 10
        lines.append(f'{mid},{rated},{(i * 7) % 11 if rated else 0}')
    path.write_text('\n'.join(lines) + '\n')
    return path


@pytest.fixture(scope='module')
def built(tmp_path_factory, qa_file):
    out = tmp_path_factory.mktemp('out')
    build_dataset.run(['--output_dir', str(out), '--label_quality', str(qa_file)])
    return out


@pytest.fixture(scope='module')
def released():
    return released_frames()


@pytest.fixture(scope='module')
def splits(built):
    return {s: load_split(built, s) for s in SPLITS}


def test_frames_mask_and_order(splits, released):
    for split, a in splits.items():
        assert list(a.segment_ids) == sorted({k[1] for k in released if k[0] == split})
        assert a.frames.shape == (len(a), 10, 128) and a.frames.dtype == np.uint8
        for i, seg in enumerate(a.segment_ids):
            n = int(a.mask[i].sum())
            assert a.mask[i, :n].all() and a.frames[i, :n].tobytes() == released[(split, seg)]
            assert not a.frames[i, n:].any()
        assert (a.num_frames < 10).any()  # the sample has short segments: padding is exercised


def test_targets_equal_the_csv_labels(splits):
    mids = _mids()
    for split, name in CSVS.items():
        want = {}
        with open(SAMPLE / 'segments' / name, newline='') as f:
            for row in csv.reader(f, skipinitialspace=True):
                if row and not row[0].startswith('#'):
                    want[f'{row[0]}_{round(float(row[1]) * 1000)}'] = {mids.index(m) for m in row[3].split(',')}
        a = splits[split]
        assert a.targets.shape == (len(a), 527) and a.class_mids == mids
        for i, seg in enumerate(a.segment_ids):
            assert set(np.flatnonzero(a.targets[i])) == want[seg]


def test_weights_follow_the_ast_formula(splits):
    """sum over a segment's labels of 1000 / (segments of the split built with that label + 0.01)."""
    for a in splits.values():
        targets = a.targets.astype(np.float64)
        want = (targets * (1000.0 / (targets.sum(axis=0) + 0.01))).sum(axis=1)
        np.testing.assert_allclose(a.weights, want, rtol=1e-12)


def test_weights_without_the_column_come_from_the_class_counts(built, splits, tmp_path):
    """A build from before the sampling_weight column: the same weights from classes.parquet's counts."""
    import shutil
    old = tmp_path / 'old'
    shutil.copytree(built, old)
    for f in (old / 'clips').rglob('*.parquet'):
        t = pq.read_table(f)
        pq.write_table(t.drop_columns(['sampling_weight', 'label_indices']), f)
    a = load_split(old, 'balanced_train')
    np.testing.assert_allclose(a.weights, splits['balanced_train'].weights, rtol=1e-12)
    np.testing.assert_array_equal(a.targets, splits['balanced_train'].targets)


def test_min_quality(built, splits, qa_file):
    with open(qa_file, newline='') as f:
        good = [r['label_id'] for r in csv.DictReader(f)
                if int(r['num_rated']) and int(r['num_true']) / int(r['num_rated']) >= 0.8]
    a = load_split(built, 'eval', min_quality=0.8)
    assert a.class_mids == good and 0 < len(good) < 527
    full = splits['eval']
    np.testing.assert_array_equal(a.targets, full.targets[:, a.class_indices])
    np.testing.assert_array_equal(a.frames, full.frames)


def test_min_quality_needs_label_quality(built):
    classes = open_dataset(built).classes()
    without = classes.set_column(classes.schema.get_field_index('quality'), 'quality',
                                 pa.nulls(len(classes), pa.float64()))
    with pytest.raises(ValueError, match='--label_quality'):
        vocabulary(without, 'eval', min_quality=0.8)
    with pytest.raises(ValueError, match='no class'):
        vocabulary(classes, 'eval', min_quality=1.01)


def test_iter_batches_in_order_equals_load_split(built, splits):
    batches = list(iter_batches(built, 'balanced_train', batch_size=100))
    assert all(len(b['segment_id']) == 100 for b in batches[:-1]) and 0 < len(batches[-1]['segment_id']) <= 100
    got = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    a = splits['balanced_train']
    order = np.argsort(got['segment_id'])
    np.testing.assert_array_equal(got['segment_id'][order], a.segment_ids)
    for key, want in (('frames', a.frames), ('mask', a.mask), ('targets', a.targets), ('weights', a.weights),
                      ('num_frames', a.num_frames)):
        np.testing.assert_array_equal(got[key][order], want)


def test_iter_batches_shuffled_and_sharded(built, splits):
    ids = set(splits['balanced_train'].segment_ids)

    def run(**kw):
        return [b['segment_id'] for b in iter_batches(built, 'balanced_train', batch_size=64, **kw)]
    first, again, other = run(seed=1), run(seed=1), run(seed=2)
    assert [list(b) for b in first] == [list(b) for b in again]
    assert [list(b) for b in first] != [list(b) for b in other]
    flat = np.concatenate(first)
    assert len(flat) == len(ids) and set(flat) == ids
    # files are per label: a shuffled batch mixes many partitions, an ordered one few
    primary = {s: lab for s, lab in zip(*_primary_labels(built, 'balanced_train'))}
    assert len({primary[s] for s in first[0]}) > 20 > len({primary[s] for s in run()[0]})
    shards = [np.concatenate(run(seed=3, shard_index=i, num_shards=3)) for i in range(3)]
    assert sum(len(s) for s in shards) == len(ids) and set(np.concatenate(shards)) == ids
    dropped = run(seed=1, drop_remainder=True)
    assert all(len(b) == 64 for b in dropped) and len(dropped) == len(ids) // 64


def _primary_labels(built, split):
    import pyarrow.dataset as ds
    t = open_dataset(built).clips().to_table(filter=(ds.field('split') == split) & ds.field('is_primary'),
                                             columns=['segment_id', 'label'])
    return t['segment_id'].to_pylist(), t['label'].to_pylist()


def test_tf_dataset(built, splits):
    import tensorflow as tf
    d = tf_dataset(built, 'eval', batch_size=128, columns=['num_frames', 'video_id'])
    assert d.element_spec['frames'].shape.as_list() == [None, 10, 128]
    got = list(d.as_numpy_iterator())
    a = splits['eval']
    ids = np.concatenate([b['segment_id'] for b in got]).astype(str)
    order = np.argsort(ids)
    np.testing.assert_array_equal(ids[order], a.segment_ids)
    np.testing.assert_array_equal(np.concatenate([b['frames'] for b in got])[order], a.frames)
    np.testing.assert_array_equal(np.concatenate([b['targets'] for b in got])[order], a.targets)
    assert got[0]['video_id'].dtype == object and d.element_spec['weights'].dtype == tf.float64


def test_output_root_follows_latest_json(built, splits, tmp_path):
    root = tmp_path / 'root'
    (root / 'runs').mkdir(parents=True)
    os.symlink(built, root / 'runs' / '20260101T000000.000000Z-abcdef')
    (root / 'latest.json').write_text(json.dumps({'run_id': '20260101T000000.000000Z-abcdef',
                                                  'run_dir': '/elsewhere/runs/20260101T000000.000000Z-abcdef'}))
    np.testing.assert_array_equal(load_split(root, 'eval').frames, splits['eval'].frames)
    with pytest.raises(FileNotFoundError, match='neither a built dataset'):
        open_dataset(tmp_path / 'nothing')
    (tmp_path / 'partial' / 'clips').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='did not finish'):
        open_dataset(tmp_path / 'partial')


def test_a_split_that_was_not_built_is_an_error(tmp_path):
    """A build of eval, and of a balanced_train folder holding one empty shard (built, legitimately empty):
    unbalanced_train was not built, and reading it says so instead of giving no rows."""
    inputs = copy_sample(tmp_path / 'in', splits=('eval',), shards_per_split=1)
    (inputs / 'features' / 'bal_train').mkdir()
    (inputs / 'features' / 'bal_train' / 'Zz.tfrecord').write_bytes(b'')
    (inputs / 'segments' / 'balanced_train_segments.csv').unlink()
    out = tmp_path / 'out'
    build_dataset.run(build_args(inputs, out, '--direct_num_workers', '1'))
    assert len(load_split(out, 'eval')) > 0 and len(load_split(out, 'balanced_train')) == 0
    assert list(iter_batches(out, 'balanced_train')) == []
    for read in (lambda: load_split(out, 'unbalanced_train'), lambda: next(iter_batches(out, 'unbalanced_train'))):
        with pytest.raises(SplitNotBuilt, match=f"'unbalanced_train' was not built in {out}: it has eval, "
                                                'balanced_train'):
            read()
    with pytest.raises(ValueError, match="split 'train'"):   # not a split name at all
        load_split(out, 'train')


def test_gcs(built, splits, tmp_path):
    """gs:// through pyarrow's own GCS client, against the local emulator (the eval split only: uploads)."""
    from tests.gcs import gcs_emulator
    with gcs_emulator(tmp_path) as client:
        bucket = client.create_bucket('reading')
        for f in [built / 'manifest.json', built / 'classes.parquet', *(built / 'clips' / 'split=eval').rglob('*')]:
            if f.is_file():
                bucket.blob(f.relative_to(built).as_posix()).upload_from_filename(str(f))
        a = load_split('gs://reading', 'eval')
    np.testing.assert_array_equal(a.frames, splits['eval'].frames)
    np.testing.assert_array_equal(a.targets, splits['eval'].targets)


def test_decode_frames_edge_cases():
    rng = np.random.default_rng(0)
    values = [rng.integers(0, 256, (n, 128), np.uint8) for n in (10, 1, 3, 10, 7)]
    arr = pa.array([v.tobytes() for v in values], pa.binary())
    for a, vs in ((arr, values), (arr.slice(1, 3), values[1:4]), (arr.cast(pa.large_binary()), values),
                  (pa.chunked_array([arr.slice(0, 2), arr.slice(2)]), values)):
        frames, nf = decode_frames(a)
        assert nf.tolist() == [len(v) for v in vs]
        for i, v in enumerate(vs):
            np.testing.assert_array_equal(frames[i, :len(v)], v)
            assert not frames[i, len(v):].any()
    assert decode_frames(pa.array([], pa.binary()))[0].shape == (0, 10, 128)
    for bad in (b'\0' * 100, b'', b'\0' * 128 * 11):
        with pytest.raises(ValueError, match='not 1..10 frames'):
            decode_frames(pa.array([b'\0' * 128, bad]))


def test_dequantize_and_mean_pool():
    assert dequantize(np.array([0, 255], np.uint8)).tolist() == pytest.approx([-1.9921875, 2.0078125])
    frames = np.zeros((1, 10, 128), np.uint8)
    frames[0, 0], frames[0, 1], frames[0, 2:] = 255, 0, 77  # padding (77) must not count
    mask = np.zeros((1, 10), bool)
    mask[0, :2] = True
    np.testing.assert_allclose(mean_pool(frames, mask), np.full((1, 128), (4.0 / 512 - 2) + 2.0), atol=1e-6)


def _brute_auc(s, t):
    pos, neg = s[t > 0], s[t == 0]
    return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


def _brute_ap(s, t):
    """Sum over distinct thresholds (descending) of precision x recall gained, all tied scores at once."""
    total, ap, prev_tp = t.sum(), 0.0, 0
    for thr in sorted(set(s), reverse=True):
        sel = s >= thr
        tp = t[sel].sum()
        ap += (tp - prev_tp) / total * tp / sel.sum()
        prev_tp = tp
    return ap


def test_metrics_match_their_definitions():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(5, 40))
        s = rng.integers(0, 6, n).astype(float)  # many ties
        t = (rng.random(n) < 0.3).astype(float)
        if 0 < t.sum() < n:
            assert roc_auc(s, t) == pytest.approx(_brute_auc(s, t))
            assert average_precision(s, t) == pytest.approx(_brute_ap(s, t))
    assert math.isnan(roc_auc(np.ones(3), np.ones(3))) and math.isnan(average_precision(np.ones(3), np.zeros(3)))
    assert d_prime(0.5) == 0 and d_prime(0.959) == pytest.approx(2.4592, abs=1e-3)
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]], float)
    perfect = evaluate(targets + 0.0, targets)  # class 2 has no positive: left out
    assert perfect['classes'] == 2 and perfect['mAP'] == 1 and perfect['AUC'] == 1


def test_the_embedding_sources_of_a_split_come_from_its_manifest(tmp_path):
    import json

    from audioset_beam import open_dataset
    (tmp_path / 'manifest.json').write_text(json.dumps({
        'splits': {'eval': {'segments_out': 3}},
        'audio': {'computed_by_split': {'eval': {'segments_out': 1}, 'balanced_train': {'segments_out': 2}}}}))
    d = open_dataset(str(tmp_path))
    assert d.sources('eval') == {'released', 'computed'}
    assert d.sources('balanced_train') == {'computed'}
    assert d.sources('unbalanced_train') == set()


def test_a_source_the_split_does_not_have_is_an_error(built):
    from audioset_beam import load_split
    with pytest.raises(ValueError, match=r"split 'eval' of .* has no computed embeddings, only released"):
        load_split(built, 'eval', embedding_source='computed')
