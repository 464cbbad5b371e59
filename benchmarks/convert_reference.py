"""The reference converter: the release to one Parquet file per split, the way one writes it by hand.

    python -m benchmarks.convert_reference --corpus DIR --out OUT

DIR is a ``benchmarks.make_release_corpus`` output (or any folder with the release's
``audioset_v1_embeddings/`` and ``csv/``). tf.data reads all shards of a split, protobuf parses each record,
a dict built with the csv module joins it to its CSV labels (the record's own label indices where the CSV
has no row), and pyarrow writes one row per record (video_id, start, end, labels, embedding frames) to
OUT/<split>.parquet with zstd, 50,000 rows at a time. ``benchmarks.bench_build`` measures the build
against it. Single process, no tricks.
"""
from __future__ import annotations

import argparse
import csv
import pathlib
import time

import pyarrow as pa
import pyarrow.parquet as pq

REPO = pathlib.Path(__file__).resolve().parent.parent

SPLITS = {'eval': ('eval', 'eval_segments.csv'),
          'bal_train': ('balanced_train', 'balanced_train_segments.csv'),
          'unbal_train': ('unbalanced_train', 'unbalanced_train_segments.csv')}
SCHEMA = pa.schema([
    ('video_id', pa.string()),
    ('start_time_seconds', pa.float64()),
    ('end_time_seconds', pa.float64()),
    ('labels', pa.list_(pa.string())),
    ('embedding', pa.list_(pa.binary())),
])
BATCH_ROWS = 50_000


def read_segments(path: pathlib.Path) -> dict[tuple[str, int], list[str]]:
    """(YTID, start in ms) -> positive label MIDs."""
    labels = {}
    with open(path, newline='') as f:
        for row in csv.reader(f, skipinitialspace=True):
            if row and not row[0].startswith('#'):
                labels[(row[0], round(float(row[1]) * 1000))] = row[3].split(',')
    return labels


def convert_split(files: list[str], segments: dict, mids: list[str], out_path: pathlib.Path) -> tuple[int, int]:
    """Writes one split; returns (records, records labelled from the shard because the CSV had no row)."""
    import tensorflow as tf  # imported (seconds) by main before the clock starts
    columns = {name: [] for name in SCHEMA.names}
    records = from_shard = 0
    with pq.ParquetWriter(out_path, SCHEMA, compression='zstd') as writer:
        for raw in tf.data.TFRecordDataset(files).as_numpy_iterator():
            example = tf.train.SequenceExample.FromString(raw)
            context = example.context.feature
            video_id = context['video_id'].bytes_list.value[0].decode()
            start = context['start_time_seconds'].float_list.value[0]
            labels = segments.get((video_id, round(start * 1000)))
            if labels is None:
                labels = [mids[i] for i in context['labels'].int64_list.value]
                from_shard += 1
            columns['video_id'].append(video_id)
            columns['start_time_seconds'].append(start)
            columns['end_time_seconds'].append(context['end_time_seconds'].float_list.value[0])
            columns['labels'].append(labels)
            columns['embedding'].append(
                [f.bytes_list.value[0] for f in example.feature_lists.feature_list['audio_embedding'].feature])
            records += 1
            if len(columns['video_id']) == BATCH_ROWS:
                writer.write_table(pa.table(columns, schema=SCHEMA))
                columns = {name: [] for name in SCHEMA.names}
        if columns['video_id']:
            writer.write_table(pa.table(columns, schema=SCHEMA))
    return records, from_shard


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--corpus', required=True, help='folder with audioset_v1_embeddings/ and csv/')
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    corpus, out = pathlib.Path(args.corpus), pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    class_index = corpus / 'class_labels_indices.csv'
    with open(class_index if class_index.exists() else REPO / 'sample_data' / 'class_labels_indices.csv',
              newline='') as f:
        mids = [row['mid'] for row in csv.DictReader(f)]
    t0 = time.perf_counter()
    import tensorflow  # noqa: F401  (its start-up is reported on its own line, not in the first split's time)
    start = time.perf_counter()
    print(f'{"import tensorflow":<17}{"":>19}{start - t0:>8.1f} s', flush=True)
    total = 0
    for folder, (split, csv_name) in SPLITS.items():
        files = sorted(str(p) for p in (corpus / 'audioset_v1_embeddings' / folder).glob('*.tfrecord'))
        if not files:
            continue
        t = time.perf_counter()
        csv_path = corpus / 'csv' / csv_name
        segments = read_segments(csv_path) if csv_path.exists() else {}
        records, from_shard = convert_split(files, segments, mids, out / f'{split}.parquet')
        total += records
        print(f'{split:<17}{records:>11,} records {time.perf_counter() - t:>8.1f} s'
              f'  ({from_shard:,} labelled from the shard)', flush=True)
    seconds = time.perf_counter() - start
    print(f'{"total":<17}{total:>11,} records {seconds:>8.1f} s  {total / max(seconds, 1e-9):,.0f} records/s')


if __name__ == '__main__':
    main()
