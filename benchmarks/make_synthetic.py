"""Writes a synthetic corpus in the release schema: <out>/unbal_train/XX.tfrecord shards of SequenceExamples.

    python -m benchmarks.make_synthetic --records 1000000 --shards 2000 --out /tmp/synth

Ids are 11 characters from the YouTube alphabet and land in the shard named by their first two
characters, as in the release. Labels follow a Zipf-like law over the 527 classes (1 to 6 per segment,
about 2 on average, like unbalanced_train); 2% of records have 1 to 9 frames.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import pathlib
import string

import numpy as np

from transforms.core import sequence_example, tfrecord

ALPHABET = string.ascii_letters + string.digits + '-_'


def _prefixes(n: int) -> list[str]:
    return [a + b for a in ALPHABET for b in ALPHABET][:n]


def _write_shard(args) -> int:
    out, prefix, n, seed = args
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, 528) ** 1.1
    weights /= weights.sum()
    payloads = []
    for i in range(n):
        vid = prefix + ''.join(rng.choice(list(ALPHABET), 9))
        k = int(min(6, 1 + rng.poisson(1.0)))
        labels = sorted(set(rng.choice(527, size=k, p=weights).tolist()))
        frames = 10 if rng.random() > 0.02 else int(rng.integers(1, 10))
        emb = rng.integers(0, 256, size=(frames, 128), dtype=np.uint8)
        start = float(rng.integers(0, 30)) * 10
        payloads.append(sequence_example.encode(vid, start, start + frames, labels, emb))
    path = pathlib.Path(out) / 'unbal_train' / f'{prefix}.tfrecord'
    path.write_bytes(tfrecord.frame_all(payloads))
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--records', type=int, default=1_000_000)
    parser.add_argument('--shards', type=int, default=2000)
    parser.add_argument('--out', required=True)
    args = parser.parse_args()
    if args.shards > len(ALPHABET) ** 2:
        raise SystemExit(f'at most {len(ALPHABET) ** 2} shards')
    (pathlib.Path(args.out) / 'unbal_train').mkdir(parents=True, exist_ok=True)
    per = [args.records // args.shards + (1 if i < args.records % args.shards else 0) for i in range(args.shards)]
    jobs = [(args.out, p, n, i) for i, (p, n) in enumerate(zip(_prefixes(args.shards), per))]
    with multiprocessing.Pool(os.cpu_count()) as pool:
        total = sum(pool.imap_unordered(_write_shard, jobs, chunksize=8))
    print(f'wrote {total} records in {args.shards} shards to {args.out}/unbal_train')


if __name__ == '__main__':
    main()
