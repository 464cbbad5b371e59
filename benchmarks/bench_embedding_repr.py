"""The embedding column as one ``binary`` value per segment (today) vs ``list<fixed_size_binary(128)>`` (before
issue 10), on the same real released records: Parquet size (zstd and uncompressed), write throughput, and
read speed to a numpy [frames, 128] uint8 array (pyarrow) and through pandas (where it converts at all).

    python -m benchmarks.bench_embedding_repr [--features_dir ../shared/data/audioset/features] [--repeats 3]

Every shard under --features_dir (bal_train/, eval/, unbal_train/) is parsed once with the build's parser;
the table is (segment_id, embedding), written the way the build writes clips (no dictionary or statistics on
the embedding column, row groups of 50,000 rows). Each measurement is repeated and the fastest kept (the
machine may be shared). MB/s are of frame bytes (1 MB = 10^6 bytes).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.core import sequence_example, tfrecord

DEFAULT_FEATURES = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'audioset' / 'features'
ROW_GROUP_ROWS = 50_000


def read_release(features_dir: pathlib.Path) -> sequence_example.Records:
    payloads = []
    for shard in sorted(features_dir.glob('*/*.tfrecord')):
        payloads.extend(r.payload for r in tfrecord.iter_records(shard.read_bytes()) if r.payload is not None)
    records, bad = sequence_example.parse_records(payloads)
    if bad:
        raise SystemExit(f'error: {len(bad)} records of {features_dir} do not parse')
    return records


def tables(records: sequence_example.Records) -> dict[str, pa.Table]:
    """The same segments with each representation of the embedding."""
    ids = pa.array([f'{v}_{round(s * 1000)}' for v, s in zip(records.video_id, records.start_time)])
    frames = pa.FixedSizeBinaryArray.from_buffers(pa.binary(128), len(records.frames), [None,
                                                  pa.py_buffer(records.frames)])
    frame_offsets = records.frame_offsets.astype(np.int32)
    binary = pa.BinaryArray.from_buffers(pa.binary(), len(records), [None, pa.py_buffer(frame_offsets * 128),
                                                                     pa.py_buffer(records.frames)])
    listed = pa.ListArray.from_arrays(pa.array(frame_offsets), frames)
    return {'binary': pa.table({'segment_id': ids, 'embedding': binary}),
            'list<fixed_size_binary(128)>': pa.table({'segment_id': ids, 'embedding': listed})}


def write(table: pa.Table, path: str, compression: str) -> None:
    # Per-column options name Parquet leaf columns: a list's is 'embedding.list.element', not 'embedding'.
    buf = pa.BufferOutputStream()
    pq.write_table(table.schema.empty_table(), buf)
    leaves = pq.ParquetFile(pa.BufferReader(buf.getvalue())).schema
    codecs = {leaves.column(i).path: 'zstd' if leaves.column(i).path == 'segment_id' else compression
              for i in range(len(leaves))}
    with pq.ParquetWriter(path, table.schema, compression=codecs, use_dictionary=['segment_id'],
                          write_statistics=['segment_id']) as w:
        w.write_table(table, row_group_size=ROW_GROUP_ROWS)


def to_numpy(path: str) -> np.ndarray:
    """All frames of the file, [total_frames, 128] uint8, from the column's buffers."""
    col = pq.read_table(path, columns=['embedding'])['embedding'].combine_chunks()
    if pa.types.is_list(col.type):
        offs = col.offsets.to_numpy()
        child = col.values
        data = np.frombuffer(child.buffers()[1], np.uint8)[child.offset * 128:(child.offset + len(child)) * 128]
        return data.reshape(-1, 128)[offs[0]:offs[-1]]
    offs = np.frombuffer(col.buffers()[1], np.int32)[col.offset:col.offset + len(col) + 1]
    return np.frombuffer(col.buffers()[2], np.uint8)[offs[0]:offs[-1]].reshape(-1, 128)


def via_pandas(path: str) -> int:
    """pd.read_parquet, then every row's frames as numpy (README's one call); returns the frame count."""
    import pandas as pd
    df = pd.read_parquet(path, columns=['embedding'])
    return sum(len(np.frombuffer(v, np.uint8).reshape(-1, 128)) for v in df.embedding)


def best(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def measure(records: sequence_example.Records, repeats: int, workdir: str) -> list[dict]:
    frame_bytes = records.frames.nbytes
    rows = []
    for name, table in tables(records).items():
        for compression in ('none', 'zstd'):
            path = os.path.join(workdir, f'{len(rows)}.parquet')
            write_s, _ = best(lambda: write(table, path, compression), repeats)
            read_s, frames = best(lambda: to_numpy(path), repeats)
            if not np.array_equal(frames, records.frames):
                raise SystemExit(f'error: {name} read back different frames')
            try:
                pandas_s, n = best(lambda: via_pandas(path), repeats)
                assert n == len(records.frames)
                pandas = f'{frame_bytes / pandas_s / 1e6:,.0f} MB/s'
            except pa.ArrowNotImplementedError as e:
                pandas = f'fails: {str(e).splitlines()[0][:60]}'
            rows.append({'representation': name, 'compression': compression, 'size_mb': os.path.getsize(path) / 1e6,
                         'write_mb_s': frame_bytes / write_s / 1e6, 'read_mb_s': frame_bytes / read_s / 1e6,
                         'pandas': pandas})
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--features_dir', type=pathlib.Path, default=DEFAULT_FEATURES)
    p.add_argument('--repeats', type=int, default=3)
    args = p.parse_args(argv)
    t = time.perf_counter()
    records = read_release(args.features_dir)
    print(f'{len(records):,} released records, {len(records.frames):,} frames ({records.frames.nbytes / 1e6:.1f} MB) '
          f'from {args.features_dir} (parsed in {time.perf_counter() - t:.1f} s); fastest of {args.repeats}\n')
    with tempfile.TemporaryDirectory() as workdir:
        rows = measure(records, args.repeats, workdir)
    print('| embedding column | codec | Parquet size | write | read to numpy (pyarrow) | pandas read + per-row numpy |')
    print('|---|---|---|---|---|---|')
    for r in rows:
        print(f"| `{r['representation']}` | {r['compression']} | {r['size_mb']:.1f} MB | {r['write_mb_s']:,.0f} MB/s "
              f"| {r['read_mb_s']:,.0f} MB/s | {r['pandas']} |")


if __name__ == '__main__':
    main()
