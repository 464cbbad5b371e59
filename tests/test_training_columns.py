"""Training-ready columns (issue 10): label_indices, sampling_weight, the vocabulary in classes.parquet and
label quality from a qa_true_counts.csv generated in Google's format; each checked against an independent
computation from the inputs (csv module, json), not the build's code."""
import collections
import csv
import json

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipelines import build_dataset
from pipelines.console import cli_status
from tests.fixtures import SAMPLE


def write_qa_true_counts(path, class_index_csv, seed=0):
    """A qa_true_counts.csv in the release's format: header, one row per class in class-index order,
    ~10 rated per class, some classes not assessed (0,0)."""
    rng = np.random.default_rng(seed)
    with open(class_index_csv, newline='') as f:
        mids = [row['mid'] for row in csv.DictReader(f)]
    lines = ['label_id,num_rated,num_true']
    expected = {}
    for i, mid in enumerate(mids):
        rated = 0 if i % 17 == 5 else int(rng.integers(8, 13))
        true = int(rng.integers(0, rated + 1)) if rated else 0
        lines.append(f'{mid},{rated},{true}')
        expected[mid] = (rated, true)
    path.write_text('\n'.join(lines) + '\n')
    return expected


@pytest.fixture(scope='module')
def build(tmp_path_factory):
    root = tmp_path_factory.mktemp('train')
    qa = root / 'qa_true_counts.csv'
    expected_quality = write_qa_true_counts(qa, SAMPLE / 'class_labels_indices.csv')
    out = root / 'out'
    manifest = build_dataset.run(['--output_dir', str(out), '--label_quality', str(qa)])
    return out, manifest, expected_quality


def _class_index():
    with open(SAMPLE / 'class_labels_indices.csv', newline='') as f:
        return {row['mid']: int(row['index']) for row in csv.DictReader(f)}


def test_label_indices_make_multi_hot_targets_in_one_operation(build):
    out, _, _ = build
    index = _class_index()
    t = ds.dataset(out / 'clips', partitioning='hive').to_table(
        filter=ds.field('is_primary'), columns=['labels', 'label_indices'])
    labels, indices = t['labels'].to_pylist(), t['label_indices'].to_pylist()
    assert all(ix == [index[m] for m in ls] for ls, ix in zip(labels, indices))
    col = t['label_indices'].combine_chunks()
    targets = np.zeros((len(col), len(index)), np.float32)
    rows = np.repeat(np.arange(len(col)), np.diff(col.offsets.to_numpy()))
    targets[rows, col.values.to_numpy()] = 1
    assert targets.sum() == sum(len(ls) for ls in labels)


def test_reading_helper_targets_are_float32_multi_hot_from_the_class_index(build):
    """load_split, iter_batches and tf_dataset: targets [n, 527] float32 (what a Keras or PyTorch model
    takes without a cast, and half of float64's memory: the full release's targets are 4.3 GB as float32),
    each row 1 exactly at its labels' class_labels_indices.csv positions (csv module and clips, not ours)."""
    from audioset_beam import iter_batches, load_split, tf_dataset
    out, _, _ = build
    index = _class_index()
    rows = ds.dataset(out / 'clips', partitioning='hive').to_table(
        filter=ds.field('is_primary') & (ds.field('split') == 'balanced_train'), columns=['segment_id', 'labels'])
    labels = dict(zip(rows['segment_id'].to_pylist(), rows['labels'].to_pylist()))
    a = load_split(out, 'balanced_train')
    assert len(index) == 527 and a.targets.dtype == np.float32 and a.targets.shape == (len(labels), 527)
    expected = np.zeros(a.targets.shape, np.float32)
    for i, seg in enumerate(a.segment_ids):
        expected[i, [index[m] for m in labels[seg]]] = 1
    np.testing.assert_array_equal(a.targets, expected)
    batches = list(iter_batches(out, 'balanced_train', 500))
    assert {b['targets'].dtype for b in batches} == {np.dtype(np.float32)}
    assert sum(len(b['targets']) for b in batches) == len(labels)
    import tensorflow as tf
    spec = tf_dataset(out, 'balanced_train', 500).element_spec['targets']
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, 527]


def test_sampling_weights_follow_the_ast_formula_over_the_built_segments(build):
    out, _, _ = build
    t = ds.dataset(out / 'clips', partitioning='hive').to_table(
        columns=['segment_id', 'labels', 'sampling_weight', 'is_primary', 'split'])
    rows = t.to_pylist()
    for split in {r['split'] for r in rows}:
        primary = [r for r in rows if r['split'] == split and r['is_primary']]
        count = collections.Counter(m for r in primary for m in r['labels'])
        weight = {r['segment_id']: sum(1000 / (count[m] + 0.01) for m in r['labels']) for r in primary}
        for r in rows:
            if r['split'] == split:  # every row of a segment carries its weight, not just the primary one
                assert r['sampling_weight'] == pytest.approx(weight[r['segment_id']], rel=1e-12)


def test_class_table_makes_the_vocabulary_plain(build):
    out, _, _ = build
    classes = pq.read_table(out / 'classes.parquet').to_pylist()
    onto = json.loads((SAMPLE / 'ontology.json').read_text())
    index = _class_index()
    parents = collections.defaultdict(set)
    for node in onto:
        for child in node['child_ids']:
            parents[child].add(node['id'])

    def ancestors(mid, seen=None):
        seen = set() if seen is None else seen
        for p in parents[mid]:
            if p not in seen:
                seen.add(p)
                ancestors(p, seen)
        return seen
    label_ancestors = set().union(*(ancestors(m) for m in index))
    by_mid = {c['mid']: c for c in classes}
    assert len(classes) == 632 and set(by_mid) == {n['id'] for n in onto}
    for node in onto:
        c = by_mid[node['id']]
        assert c['is_label'] == (node['id'] in index) and c['index'] == index.get(node['id'])
        assert c['is_ancestor_only'] == (node['id'] not in index and node['id'] in label_ancestors)
        assert c['abstract'] == ('abstract' in node.get('restrictions', []))
        assert c['blacklisted'] == ('blacklist' in node.get('restrictions', []))
        assert c['in_ontology']
    assert sum(c['is_label'] for c in classes) == 527
    assert sum(c['is_label'] or c['is_ancestor_only'] for c in classes) == 557


def test_label_quality_columns(build):
    out, manifest, expected = build
    classes = {c['mid']: c for c in pq.read_table(out / 'classes.parquet').to_pylist()}
    for mid, (rated, true) in expected.items():
        c = classes[mid]
        assert (c['num_rated'], c['num_true']) == (rated, true)
        assert c['quality'] == (true / rated if rated else None)
    assert all(c['num_rated'] is None for m, c in classes.items() if m not in expected)
    assert manifest['inputs']['label_quality']['classes'] == 527


def test_manifest_distributions_count_the_built_segments(build):
    out, manifest, _ = build
    t = ds.dataset(out / 'clips', partitioning='hive').to_table(
        filter=ds.field('is_primary'), columns=['labels', 'num_frames', 'split']).to_pylist()
    for split, dist in manifest['distributions'].items():
        rows = [r for r in t if r['split'] == split]
        assert dist['labels_per_segment'] == {str(k): v for k, v in collections.Counter(len(r['labels']) for r in rows).items()}
        assert dist['frames_per_segment'] == {str(k): v for k, v in collections.Counter(r['num_frames'] for r in rows).items()}
        pairs = collections.Counter(frozenset((a, b)) for r in rows for i, a in enumerate(r['labels'])
                                    for b in r['labels'][i + 1:])
        top = dist['top_label_pairs']
        assert all(pairs[frozenset((a, b))] == n for a, b, n in top)
        assert [n for *_, n in top] == sorted((n for n in pairs.values()), reverse=True)[:len(top)]


@pytest.mark.parametrize('content, message', [
    ('label,num_rated,num_true\n', 'expected the header'),
    ('label_id,num_rated,num_true\n/m/09x0r,10\n', 'line 2: expected 3 fields'),
    ('label_id,num_rated,num_true\n/m/09x0r,10,11\n', 'more than num_rated'),
    ('label_id,num_rated,num_true\n/m/09x0r,ten,1\n', 'non-negative integers'),
    ('label_id,num_rated,num_true\n/m/nope,10,1\n', 'not a MID of the class index'),
    ('label_id,num_rated,num_true\n/m/09x0r,10,1\n/m/09x0r,10,1\n', 'listed twice'),
])
def test_a_malformed_label_quality_file_is_one_error_naming_flag_and_line(tmp_path, capsys, content, message):
    qa = tmp_path / 'qa.csv'
    qa.write_text(content)
    code = cli_status(build_dataset._main, ['--output_dir', str(tmp_path / 'out'), '--label_quality', str(qa)])
    err = capsys.readouterr().err
    assert code == 4 and '--label_quality' in err and message in err and 'Traceback' not in err
    assert not (tmp_path / 'out' / 'manifest.json').exists()
