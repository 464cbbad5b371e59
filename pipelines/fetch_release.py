"""Download the AudioSet release files from Google's official URLs into one folder, verified.

    python -m pipelines.fetch_release --dest /data/audioset                     # CSVs, class index, ontology
    python -m pipelines.fetch_release --dest /data/audioset --features --qa --strong --mirror eu
    ./run_local.sh --release /data/audioset --output_dir /data/audioset_parquet  # then build from it

Every file goes to ``<dest>/<name>.part`` first and is resumed from there with an HTTP Range request (a
rerun, or a dropped connection, continues where it stopped). A finished file is checked against the size
the server announced and, where the release's size and sha256 are known (transforms/core/release.py), against
those; only then is it renamed into place and recorded in ``<dest>/fetch_manifest.json`` (URL, size,
sha256, time). A file that fails is moved to ``<dest>/rejected/`` and the command exits non-zero with one
``error:`` paragraph. Files already recorded with the same size and modification time are not fetched again.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

from pipelines import cli
from transforms import fileio
from transforms.core import release

MANIFEST = 'fetch_manifest.json'
REJECTED = 'rejected'


def _parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog='python -m pipelines.fetch_release', description=__doc__.split('\n\n')[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=cli.EXIT_CODES_HELP)
    p.add_argument('--dest', required=True, help='folder to download into (created if missing)')
    p.add_argument('--mirror', default='us', choices=release.MIRRORS, help='Google\'s bucket: us, eu or asia')
    p.add_argument('--features', action='store_true',
                   help=f'also the embeddings tarball {release.TARBALL} (2.4 GB, sha256 checked)')
    p.add_argument('--qa', action='store_true', help='also qa_true_counts.csv and rerated_video_ids.txt')
    p.add_argument('--strong', action='store_true', help='also the AudioSet Strong TSVs and mid_to_display_name.tsv')
    p.add_argument('--base_url', default=None,
                   help='fetch from here instead (your own mirror, a test server): <base_url>/v1/csv/..., '
                        '<base_url>/v1/features/features.tar.gz, ..., <base_url>/ontology.json')
    p.add_argument('--retries', type=int, default=5, help='resumes of one download in a row before giving up')
    p.add_argument('--retry_wait', type=float, default=1.0, help='first wait before a resume, doubled each time (s)')
    p.add_argument('--timeout', type=float, default=60.0, help='seconds without data before a connection is resumed')
    p.add_argument('--verbose', action='store_true', help='print tracebacks of expected errors too')
    return p


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def load_manifest(dest: str) -> dict:
    path = os.path.join(dest, MANIFEST)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {'files': {}}
    except ValueError as e:
        raise cli.InputError(f'{path}: not a fetch manifest ({e}); move it away to start over') from None


def _save_manifest(dest: str, manifest: dict) -> None:
    fileio.replace_durably(os.path.join(dest, MANIFEST),
                           (json.dumps(manifest, indent=2, sort_keys=True) + '\n').encode())


def _already_done(dest: str, f: release.ReleaseFile, entry: dict | None) -> bool:
    path = os.path.join(dest, f.name)
    if not entry or not os.path.isfile(path):
        return False
    st = os.stat(path)
    return (entry.get('size'), entry.get('mtime_ns')) == (st.st_size, st.st_mtime_ns) and \
        (f.sha256 is None or entry.get('sha256') == f.sha256)


def _progress(name: str, total: int | None, initial: int):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit='B', unit_scale=True, unit_divisor=1024, desc=name,
                file=sys.stderr, disable=None, leave=False)


def fetch_one(f: release.ReleaseFile, url: str, dest: str, retries: int, retry_wait: float,
              timeout: float) -> dict:
    """Downloads (or resumes) one file and verifies it; returns its manifest entry. Raises InputError
    (after moving the file to rejected/) when it fails verification, and InputError when it cannot be had."""
    final = os.path.join(dest, f.name)
    part = final + '.part'
    start = os.path.getsize(part) if os.path.isfile(part) else 0
    try:
        src = fileio.HttpReader(url, start=start, timeout=timeout, retries=retries, backoff=retry_wait)
    except FileNotFoundError:
        raise cli.InputError(f'{url}: not found (HTTP 404); check --mirror/--base_url') from None
    except OSError as e:
        raise cli.InputError(f'{url}: cannot download ({e})') from None
    if src.size is not None and start > src.size:  # a .part from another file: start over
        src.close()
        os.remove(part)
        return fetch_one(f, url, dest, retries, retry_wait, timeout)
    with src, open(part, 'ab') as out, _progress(f.name, src.size, start) as bar:
        try:
            while data := src.read(1 << 20):
                out.write(data)
                bar.update(len(data))
        except OSError as e:
            raise cli.InputError(f'{url}: download stopped ({e}); rerun the same command to resume from '
                                 f'{part}') from None
    with open(part, 'rb') as fh:
        size, digest = release.sha256_of(fh.read)
    problem = release.verify(f, size, digest, src.size)
    if problem:
        rejected = os.path.join(dest, REJECTED, f.name)
        os.makedirs(os.path.dirname(rejected), exist_ok=True)
        os.replace(part, rejected)
        raise cli.InputError(f'{url}: refused: {problem}. Moved to {rejected}; rerun to download it again')
    os.replace(part, final)
    st = os.stat(final)
    return {'url': url, 'size': size, 'sha256': digest, 'verified': 'sha256' if f.sha256 else
            ('size' if f.size or src.size is not None else 'none'), 'fetched_at': _now(),
            'mtime_ns': st.st_mtime_ns, 'resumed': bool(start) or src.resumes > 0}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_strict(argv)
    if args.retries < 0 or args.retry_wait < 0 or args.timeout <= 0:
        raise cli.UsageError('--retries and --retry_wait must be >= 0 and --timeout > 0')
    if args.base_url and not args.base_url.startswith(('http://', 'https://')):
        raise cli.UsageError(f'--base_url {args.base_url}: an http:// or https:// URL')
    dest = args.dest
    if (why := cli.output_dir_problem(dest)) or cli.is_remote(dest):
        raise cli.UsageError(f'--dest {dest}: {why or "a local folder (copy it to gs:// afterwards)"}')
    os.makedirs(dest, exist_ok=True)
    manifest = load_manifest(dest)
    groups = [g for g, on in (('features', args.features), ('qa', args.qa), ('strong', args.strong)) if on]
    failures = []
    for f in release.select(groups):
        url = f.url(args.mirror, args.base_url)
        if _already_done(dest, f, manifest['files'].get(f.name)):
            print(f'{f.name}: already fetched and verified', file=sys.stderr)
            continue
        try:
            entry = fetch_one(f, url, dest, args.retries, args.retry_wait, args.timeout)
        except cli.InputError as e:
            failures.append(str(e))
            continue
        manifest['files'][f.name] = entry
        manifest.update(mirror=None if args.base_url else args.mirror, base_url=args.base_url)
        _save_manifest(dest, manifest)
        print(f'{f.name}: {entry["size"]:,} bytes, sha256 {entry["sha256"]} (verified by {entry["verified"]})',
              file=sys.stderr)
    if failures:
        raise cli.InputError(f'{len(failures)} of the release files could not be fetched:\n' + '\n'.join(failures))
    print(f'release in {dest}; build it with: ./run_local.sh --release {dest}')
    return cli.EXIT_OK


if __name__ == '__main__':
    cli.run_cli(main)
