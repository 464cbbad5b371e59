"""The whole-split checks on an input that needs them: segments repeated within a split (duplicates) and
across splits (train/eval leakage). Each result is checked against an oracle computed here from the
inputs (tf.data + protobuf) and the output files (pyarrow + plain Python): the leaked segments as a set
intersection, sampling weights and distributions from the deduplicated clips, and the report's figure data
from the recounted outputs."""
from __future__ import annotations

import collections
import json
import pathlib
import re

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipelines import build_dataset
from tests.accounting import assert_records_add_up, records_by_split, subtree
from tests.fixtures import build_args, copy_sample, write_shard

FOLDER_SPLIT = {'eval': 'eval', 'bal_train': 'balanced_train'}


def _records(shard: pathlib.Path) -> list[tuple[str, bytes, int]]:
    """(segment id, raw record, number of label indices) of each record, read with TensorFlow, not our code."""
    import tensorflow as tf
    out = []
    for raw in tf.data.TFRecordDataset(str(shard)).as_numpy_iterator():
        c = tf.train.SequenceExample.FromString(raw).context.feature
        seg = f'{c["video_id"].bytes_list.value[0].decode()}_{round(c["start_time_seconds"].float_list.value[0] * 1000)}'
        out.append((seg, raw, len(c['labels'].int64_list.value)))
    return out


@pytest.fixture(scope='module')
def build(tmp_path_factory):
    """eval and bal_train (15 shards each) plus, in shards named to sort last: three multi-label eval records
    again in eval (duplicates: the first occurrence is kept), one eval record in bal_train and one bal_train
    record in eval (leakage)."""
    root = tmp_path_factory.mktemp('checks')
    inputs = copy_sample(root / 'in', splits=('eval', 'bal_train'), shards_per_split=15)
    eval_records = [r for s in sorted((inputs / 'features' / 'eval').glob('*.tfrecord')) for r in _records(s)]
    bal_records = [r for s in sorted((inputs / 'features' / 'bal_train').glob('*.tfrecord')) for r in _records(s)]
    repeated = [r for r in eval_records if r[2] >= 2][:3]
    leaked_eval, leaked_bal = eval_records[-1], bal_records[0]
    assert len(repeated) == 3 and leaked_eval not in repeated
    write_shard(inputs / 'features' / 'eval' / 'zz.tfrecord', [r[1] for r in repeated] + [leaked_bal[1]])
    write_shard(inputs / 'features' / 'bal_train' / 'zz.tfrecord', [leaked_eval[1]])
    out = root / 'out'
    manifest = build_dataset.run(build_args(inputs, out, '--direct_num_workers', '1'))
    return {'inputs': inputs, 'out': out, 'manifest': manifest, 'repeated': {r[0] for r in repeated},
            'leaked': {leaked_eval[0], leaked_bal[0]}}


def _primary(out: pathlib.Path) -> list[dict]:
    return ds.dataset(out / 'clips', format='parquet', partitioning='hive').to_table(
        filter=ds.field('is_primary'), columns=['segment_id', 'split', 'labels', 'num_frames']).to_pylist()


def test_duplicates_are_dead_lettered_once_each_and_counts_add_up(build):
    out, manifest = build['out'], build['manifest']
    dead = pq.read_table(out / 'dead_letters' / 'part-00000.parquet').to_pylist()
    dup = [d for d in dead if d['reason'] == 'duplicate-segment']
    assert sorted(f'{d["video_id"]}_{round(d["start_time_seconds"] * 1000)}' for d in dup) == sorted(build['repeated'])
    assert all(d['split'] == 'eval' and d['source'].endswith('zz.tfrecord') and d['records'] == 1 for d in dup)
    ids = collections.Counter((r['split'], r['segment_id']) for r in _primary(out))
    assert max(ids.values()) == 1 and all(ids[('eval', s)] == 1 for s in build['repeated'])
    got = assert_records_add_up(out, manifest, records_by_split(build['inputs'] / 'features'))
    assert got['eval']['dead_letters'] == 3 and got['balanced_train']['dead_letters'] == 0


def test_leakage_is_the_intersection_of_the_splits_segments(build):
    by_split = collections.defaultdict(set)
    for r in _primary(build['out']):
        by_split[r['split']].add(r['segment_id'])
    both = by_split['eval'] & by_split['balanced_train']
    assert both == build['leaked']
    leakage = build['manifest']['leakage']
    assert leakage['segments'] == len(both) == 2
    assert leakage['by_splits'] == {'balanced_train & eval': 2}
    assert sorted((e['segment_id'], tuple(e['splits'])) for e in leakage['examples']) == \
        sorted((s, ('balanced_train', 'eval')) for s in both)


def test_sampling_weights_count_each_segment_once(build):
    """The AST/PSLA formula over the deduplicated clips: every row of a segment (each of its partitions)
    carries the sum over its labels of 1000 / (segments of the split with that label + 0.01)."""
    rows = ds.dataset(build['out'] / 'clips', format='parquet', partitioning='hive').to_table(
        columns=['segment_id', 'split', 'labels', 'is_primary', 'sampling_weight']).to_pylist()
    checked = 0
    for split in FOLDER_SPLIT.values():
        primary = [r for r in rows if r['split'] == split and r['is_primary']]
        count = collections.Counter(m for r in primary for m in r['labels'])
        weight = {r['segment_id']: sum(1000 / (count[m] + 0.01) for m in r['labels']) for r in primary}
        for r in rows:
            if r['split'] == split:
                assert r['sampling_weight'] == pytest.approx(weight[r['segment_id']], rel=1e-12), r['segment_id']
                checked += r['segment_id'] in build['repeated']
    assert checked >= 6   # the repeated segments' rows, with their (multi-label) weights


def test_distributions_count_each_segment_once(build):
    primary = _primary(build['out'])
    for split, dist in build['manifest']['distributions'].items():
        rows = [r for r in primary if r['split'] == split]
        assert dist['labels_per_segment'] == {str(k): v for k, v in collections.Counter(len(r['labels']) for r in rows).items()}
        assert dist['frames_per_segment'] == {str(k): v for k, v in collections.Counter(r['num_frames'] for r in rows).items()}
        pairs = collections.Counter(frozenset((a, b)) for r in rows for i, a in enumerate(r['labels'])
                                    for b in r['labels'][i + 1:])
        top = dist['top_label_pairs']
        assert top and all(pairs[frozenset((a, b))] == n for a, b, n in top)
        assert [n for *_, n in top] == sorted(pairs.values(), reverse=True)[:len(top)]


# -- the report's figures: the numbers they are drawn from --------------------------------------------------

class _Drawn:
    """Records what a figure function hands matplotlib (bars and step lines), by axes title."""

    def __init__(self, monkeypatch):
        import matplotlib.axes
        self.calls = []
        for name in ('barh', 'bar', 'stairs'):
            real = getattr(matplotlib.axes.Axes, name)
            monkeypatch.setattr(matplotlib.axes.Axes, name, self._wrap(name, real))

    def _wrap(self, name, real):
        drawn = self

        def record(ax, *args, **kwargs):
            drawn.calls.append((name, ax, args, kwargs))
            return real(ax, *args, **kwargs)
        return record


def _recount(build) -> dict:
    """split -> (segments built: primary released rows; records dead-lettered: dead_letters/ records)."""
    out = build['out']
    segments = collections.Counter(r['split'] for r in _primary(out))
    dead = collections.Counter()
    for d in pq.read_table(out / 'dead_letters' / 'part-00000.parquet').to_pylist():
        dead[d['split']] += d['records']
    return {s: (segments[s], dead[s]) for s in FOLDER_SPLIT.values()}


def test_segments_per_split_figure_draws_segments_built_and_records_rejected(build, monkeypatch):
    from transforms.core import report_figures
    expected = _recount(build)
    assert expected['eval'][1] == 3   # records in != segments out in eval: the two figures differ
    drawn = _Drawn(monkeypatch)
    svg = report_figures.fig_segments_per_split(build['manifest'])
    (_, _, (y1, built), k1), (_, _, (y2, rejected), k2) = [c for c in drawn.calls if c[0] == 'barh']
    splits = ['eval', 'balanced_train']      # the figure's order: the SPLITS order
    assert list(built) == [expected[s][0] for s in splits] and list(rejected) == [expected[s][1] for s in splits]
    assert list(k2['left']) == list(built)   # rejected records stacked after the built segments
    # And the numbers printed by the bars, in the SVG text itself (as in report.html).
    printed = re.findall(r'<text[^>]*>\s?( [\d,]+)</text>', svg)
    assert [int(t.replace(',', '')) for t in printed] == [expected[s][0] for s in splits]
    page = (build['out'] / 'report.html').read_text()
    figure = page[page.index('id="fig-segments-per-split"'):]
    figure = figure[:figure.index('</figure>')]
    assert [int(t.replace(',', '')) for t in re.findall(r'<text[^>]*>\s?( [\d,]+)</text>', figure)] == \
        [expected[s][0] for s in splits]


def test_ontology_and_class_figures_draw_the_recounted_segments(build, monkeypatch):
    """The branch figure: per root of the ontology (no parent), the segments with a label in its subtree;
    the class distribution: per label of the class index, its segments, both recounted from clips/."""
    from transforms.core import report_figures
    nodes = json.loads((build['inputs'] / 'ontology.json').read_text())
    children = {n['id']: n.get('child_ids', []) for n in nodes}
    names = {n['id']: n['name'] for n in nodes}
    roots = [m for m in children if not any(m in c for c in children.values())]

    primary = _primary(build['out'])
    classes = pq.read_table(build['out'] / 'classes.parquet')
    splits = ['eval', 'balanced_train']
    drawn = _Drawn(monkeypatch)
    report_figures.fig_ontology_branches(classes, splits)
    bars = [c for c in drawn.calls if c[0] == 'barh']
    assert len(bars) == 2
    labels = [t.get_text() for t in bars[0][1].get_yticklabels()]
    assert sorted(labels) == sorted(names[r] for r in roots)
    for (_, _, (_, values), kwargs), split in zip(bars, splits):
        assert kwargs['label'] == split
        rows = [set(r['labels']) for r in primary if r['split'] == split]
        by_name = {names[r]: sum(not ls.isdisjoint(subtree(children, r)) for ls in rows) for r in roots}
        assert list(values) == [by_name[n] for n in labels], split
    drawn.calls.clear()
    report_figures.fig_class_distribution(classes, splits)
    steps = [c for c in drawn.calls if c[0] == 'stairs']
    assert len(steps) == 2
    with open(build['inputs'] / 'class_labels_indices.csv') as f:
        n_labels = sum(1 for _ in f) - 1
    for (_, _, (values, _), _), split in zip(steps, splits):
        counts = collections.Counter(m for r in primary if r['split'] == split for m in r['labels'])
        per_label = sorted(counts.values(), reverse=True) + [0] * (n_labels - len(counts))
        assert [int(v) if v >= 1 else 0 for v in values] == per_label, split


def test_missing_features_and_dead_letter_figures_draw_the_output_files(build, monkeypatch):
    from transforms.core import report_figures
    out, manifest = build['out'], build['manifest']
    drawn = _Drawn(monkeypatch)
    report_figures.fig_missing_features(manifest)
    (_, _, (_, matched), _), (_, _, (_, missing), _) = [c for c in drawn.calls if c[0] == 'barh']
    splits = [s for s in ('eval', 'balanced_train') if s in manifest['csv']]
    in_files = [pq.ParquetFile(out / 'missing_features' / f'split={s}' / 'part-00000.parquet').metadata.num_rows
                for s in splits]
    csv_rows = {'eval': 'eval_segments.csv', 'balanced_train': 'balanced_train_segments.csv'}
    lines = [sum(1 for ln in (build['inputs'] / 'segments' / csv_rows[s]).read_text().splitlines()
                 if ln and not ln.startswith('#')) for s in splits]
    assert list(missing) == in_files
    assert [m + n for m, n in zip(matched, missing)] == lines
    drawn.calls.clear()
    report_figures.fig_dead_letters(manifest['dead_letters']['by_stage_and_reason'])
    ((_, ax, (_, values), _),) = [c for c in drawn.calls if c[0] == 'barh']
    dead = collections.Counter(f'{d["stage"]}/{d["reason"]}'
                               for d in pq.read_table(out / 'dead_letters' / 'part-00000.parquet').to_pylist())
    assert dict(zip([t.get_text() for t in ax.get_yticklabels()], values)) == dict(dead)
