"""The build on a scaled-down corpus with the release's shape (prefix-named shards in all three splits, the
three CSVs, Speech and Music on half of unbal_train): exact per-split and per-label counts against an
independent reading of the CSVs, and the same result when the same records are dealt into shards at random."""
import csv
import pathlib

import pyarrow.dataset as ds
import pytest

from benchmarks.make_release_corpus import make_corpus
from pipelines import build_dataset
from tests.accounting import assert_records_add_up, records_by_split

CSVS = {'eval': 'eval_segments.csv', 'balanced_train': 'balanced_train_segments.csv',
        'unbalanced_train': 'unbalanced_train_segments.csv'}


def _expected(csv_dir: pathlib.Path) -> dict:
    """split -> {label: segments}, and split -> segments, read with the csv module alone."""
    per_label, per_split = {}, {}
    for split, name in CSVS.items():
        counts = per_label.setdefault(split, {})
        with open(csv_dir / name, newline='') as f:
            rows = [r for r in csv.reader(f, skipinitialspace=True) if r and not r[0].startswith('#')]
        per_split[split] = len(rows)
        for row in rows:
            for mid in dict.fromkeys(row[3].split(',')):
                counts[mid] = counts.get(mid, 0) + 1
    return per_label, per_split


@pytest.fixture(scope='module')
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp('release')
    make_corpus(root / 'prefix', scale=0.01, seed=3, workers=2)
    make_corpus(root / 'random', scale=0.01, seed=3, workers=2, reshard=True)
    return root


def _build(corpus: pathlib.Path, out: pathlib.Path, *extra: str) -> dict:
    return build_dataset.run(['--features_dir', str(corpus / 'audioset_v1_embeddings'),
                              '--segments_dir', str(corpus / 'csv'), '--output_dir', str(out), *extra])


def test_release_shaped_build_counts_exactly(corpora, tmp_path):
    per_label, per_split = _expected(corpora / 'prefix' / 'csv')
    manifest = _build(corpora / 'prefix', tmp_path / 'out', '--group_mb', '4')
    assert manifest['inputs']['shard_groups'] > 3   # unbal_train spans several groups, as at full scale
    records_in = records_by_split(corpora / 'prefix' / 'audioset_v1_embeddings')
    assert records_in == per_split   # every CSV row has one record, by a hand count of the shards' framing
    got = assert_records_add_up(tmp_path / 'out', manifest, records_in)
    for split, n in per_split.items():
        s = manifest['splits'][split]
        assert s['records_in'] == s['segments_out'] == n and s['dead_letters'] == got[split]['dead_letters'] == 0
        assert s['labels_disagree'] == 0
        assert manifest['csv'][split]['rows_missing_features'] == 0
        assert manifest['partition_rows'][split] == per_label[split]
    unbal = per_label['unbalanced_train']
    assert unbal['/m/09x0r'] > 0.4 * per_split['unbalanced_train'] < unbal['/m/04rlf']  # the real skew
    clips = ds.dataset(tmp_path / 'out' / 'clips', format='parquet', partitioning='hive')
    primary = clips.to_table(filter=ds.field('is_primary'), columns=['split'])
    assert primary.num_rows == sum(per_split.values())
    speech = clips.count_rows(filter=(ds.field('split') == 'unbalanced_train') & (ds.field('label') == '/m/09x0r'))
    assert speech == unbal['/m/09x0r']


def test_the_join_does_not_depend_on_shard_names(corpora, tmp_path):
    per_label, per_split = _expected(corpora / 'random' / 'csv')
    manifest = _build(corpora / 'random', tmp_path / 'out', '--group_mb', '4')
    for split, n in per_split.items():
        s = manifest['splits'][split]
        assert s['segments_out'] == n and s['label_source'] == {'csv': n} and s['labels_disagree'] == 0
        assert manifest['partition_rows'][split] == per_label[split]
    assert manifest['shard_prefix_mismatch_examples'] == []   # shards not named by prefix are not judged
