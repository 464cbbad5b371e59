"""Wall time, throughput and peak memory of the build against the reference converter, on a release-shaped corpus.

    python -m benchmarks.make_release_corpus --scale 1.0 --out /data/release
    python -m benchmarks.bench_build --corpus /data/release [--out OUT] [--keep] [--skip_converter] \\
        [--json figures.json] [-- more build flags, e.g. --group_mb 192]

Runs the README's command, ``./run_local.sh --features_dir DIR/audioset_v1_embeddings --segments_dir DIR/csv
--output_dir OUT/build``, then ``python -m benchmarks.convert_reference`` into OUT/converter, each timed from
process start (interpreter and TensorFlow start-up included) with the peak resident memory of its whole
process tree sampled every 0.2 s from /proc (Linux only). Prints both, their ratio, and the build's
per-stage times and record counts from its manifest. OUT defaults to a temporary folder; the outputs are
deleted afterwards unless --keep (a failed run's log is kept).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent


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


def measure(cmd: list[str], log_path: pathlib.Path) -> dict:
    """Runs ``cmd`` from the repository root with its output in ``log_path``; returns rc, wall seconds and
    the peak RSS of its process tree."""
    peak = 0
    done = threading.Event()
    with open(log_path, 'wb') as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})

        def sample():
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss(proc.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = proc.wait()
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    return {'rc': rc, 'wall_s': round(wall, 2), 'peak_rss_gib': round(peak / 2**30, 3)}


def _tail(path: pathlib.Path, lines: int = 30) -> str:
    return '\n'.join(path.read_text(errors='replace').splitlines()[-lines:])


def corpus_records(corpus: pathlib.Path) -> int:
    """Records in the corpus: from make_release_corpus's corpus.json, else counted."""
    summary = corpus / 'corpus.json'
    if summary.exists():
        return json.loads(summary.read_text())['records']
    from transforms.core import tfrecord
    return sum(sum(1 for _ in tfrecord.iter_records(p.read_bytes()))
               for p in (corpus / 'audioset_v1_embeddings').glob('*/*.tfrecord'))


def _row(name: str, r: dict) -> str:
    return f'{name:<22}{r["wall_s"]:>10.1f}{r["records_per_s"]:>13,.0f}{r["peak_rss_gib"]:>15.2f}'


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index('--') + 1:] if '--' in argv else []
    argv = argv[:argv.index('--')] if '--' in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     usage='%(prog)s --corpus DIR [options] [-- build flags]')
    parser.add_argument('--corpus', required=True, help='a benchmarks.make_release_corpus output')
    parser.add_argument('--out', default=None, help='where build/ and converter/ go (default: a temporary folder)')
    parser.add_argument('--skip_converter', action='store_true')
    parser.add_argument('--keep', action='store_true', help='keep the outputs')
    parser.add_argument('--json', default=None, help='also write the figures here')
    args = parser.parse_args(argv)
    corpus = pathlib.Path(args.corpus).resolve()
    if not (corpus / 'audioset_v1_embeddings').is_dir():
        raise SystemExit(f'error: {corpus} has no audioset_v1_embeddings/ (make one with '
                         'python -m benchmarks.make_release_corpus)')
    out = pathlib.Path(args.out).resolve() if args.out else pathlib.Path(tempfile.mkdtemp(prefix='bench_build_'))
    out.mkdir(parents=True, exist_ok=True)
    records = corpus_records(corpus)
    # Create or check the environment first, so that the timed run starts as run_local.sh does once set up.
    subprocess.run([str(REPO / 'scripts' / 'ensure_env.sh'), 'requirements.txt'], check=True,
                   stdout=subprocess.DEVNULL)

    runs = {'build': (['./run_local.sh', '--features_dir', str(corpus / 'audioset_v1_embeddings'),
                       '--segments_dir', str(corpus / 'csv'), '--output_dir', str(out / 'build'), *extra])}
    if not args.skip_converter:
        runs['converter'] = [sys.executable, '-m', 'benchmarks.convert_reference', '--corpus', str(corpus),
                             '--out', str(out / 'converter')]
    figures = {'corpus': str(corpus), 'records': records, 'build_flags': extra}
    failed = True
    try:
        for name, cmd in runs.items():
            shutil.rmtree(out / name, ignore_errors=True)
            print(f'running {name}: {" ".join(cmd)}', flush=True)
            result = measure(cmd, out / f'{name}.log')
            if result['rc']:
                print(_tail(out / f'{name}.log'), file=sys.stderr)
                raise SystemExit(f'{name} failed (exit {result["rc"]}); log: {out / f"{name}.log"}')
            result['records_per_s'] = round(records / result['wall_s'])
            figures[name] = result
        manifest_path = out / 'build' / 'manifest.json'
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        figures['build']['timings'] = manifest.get('timings') or {}
        figures['build']['records_in'] = {split: s.get('records_in') for split, s in
                                          manifest.get('splits', {}).items()}
        failed = False
    finally:
        if not args.keep:
            for name in ('build', 'converter'):
                shutil.rmtree(out / name, ignore_errors=True)
            if not args.out and not failed:
                shutil.rmtree(out, ignore_errors=True)

    print(f'\ncorpus {corpus}: {records:,} records')
    print(f'{"":<22}{"wall s":>10}{"records/s":>13}{"peak RSS GiB":>15}')
    for name in runs:
        print(_row('build (run_local.sh)' if name == 'build' else 'reference converter', figures[name]))
    if 'converter' in figures:
        b, c = figures['build'], figures['converter']
        figures['ratio'] = {'speed': round(c['wall_s'] / b['wall_s'], 2),
                            'memory': round(b['peak_rss_gib'] / max(c['peak_rss_gib'], 1e-9), 2)}
        print(f'build / converter: {figures["ratio"]["speed"]:.2f}x the throughput, '
              f'{figures["ratio"]["memory"]:.2f}x the peak memory')
    build = figures['build']
    if build['records_in']:
        counted = sum(v or 0 for v in build['records_in'].values())
        print('build records in: ' + ', '.join(f'{k} {v:,}' for k, v in sorted(build['records_in'].items()))
              + ('' if counted == records else f'  (corpus has {records:,}!)'))
    if build['timings']:
        print('build stages (manifest timings):')
        for stage, seconds in build['timings'].items():
            print(f'  {stage:<30}{seconds:>10.1f} s' if isinstance(seconds, (int, float))
                  else f'  {stage:<30}{seconds!s:>10}')
    else:
        print('build stages: the manifest has no timings')
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(figures, indent=1) + '\n')


if __name__ == '__main__':
    main()
