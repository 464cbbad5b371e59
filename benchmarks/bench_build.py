"""Throughput and peak memory of the build on a corpus (make one with benchmarks.make_synthetic).

    python -m benchmarks.bench_build --features_dir /tmp/synth1m [--workers 2]

Prints records/s and the peak resident memory of the whole process tree (runner + worker processes),
sampled every 0.2 s from /proc. Linux only.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf('SC_PAGE_SIZE')
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def count_records(features_dir: str) -> int:
    from transforms.core import tfrecord
    return sum(sum(1 for _ in tfrecord.iter_records(p.read_bytes()))
               for p in pathlib.Path(features_dir).glob('*/*.tfrecord'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--features_dir', required=True)
    parser.add_argument('--output_dir', default=None, help='default: a temporary folder, deleted after')
    parser.add_argument('--workers', type=int, default=os.cpu_count())
    parser.add_argument('--mode', default='multi_threading', choices=['multi_threading', 'multi_processing'],
                        help='DirectRunner running mode (run_local.sh uses multi_threading)')
    parser.add_argument('extra', nargs='*', help='more build flags, after --')
    args = parser.parse_args()
    records = count_records(args.features_dir)
    out = args.output_dir or tempfile.mkdtemp(prefix='bench_out_')
    empty = tempfile.mkdtemp(prefix='bench_no_csv_')
    cmd = [sys.executable, '-m', 'pipelines.build_dataset', '--features_dir', args.features_dir,
           '--segments_dir', empty, '--output_dir', out,
           '--direct_num_workers', str(args.workers), '--direct_running_mode',
           args.mode if args.workers > 1 else 'in_memory', *args.extra]
    peak = 0
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - start
    if proc.returncode:
        print(err[-4000:], file=sys.stderr)
        raise SystemExit(f'build failed ({proc.returncode})')
    print(f'records            {records:,}')
    print(f'wall time          {wall:.1f} s (including interpreter and TensorFlow start-up)')
    print(f'throughput         {records / wall:,.0f} records/s with {args.workers} workers ({args.mode})')
    print(f'peak RSS (tree)    {peak / 2**30:.2f} GiB')
    if not args.output_dir:
        shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(empty, ignore_errors=True)


if __name__ == '__main__':
    main()
