"""Download the AudioSet release files from Google's official URLs into one folder, verified.

    python -m pipelines.fetch_release --dest /data/audioset                     # CSVs, class index, ontology
    python -m pipelines.fetch_release --dest /data/audioset --features --qa --strong --mirror eu
    ./run_local.sh --release /data/audioset --output_dir /data/audioset_parquet  # then build from it

Every file goes to ``<dest>/<name>.part`` first, with ``<name>.part.json`` beside it recording the URL and
the server's validator (ETag, else Last-Modified) when the download began. A dropped connection, or a
rerun, resumes the ``.part`` with a Range request carrying ``If-Range: <validator>``: a server whose copy
changed sends it whole and the ``.part`` starts over, and a ``.part`` without that record is never resumed
(its bytes may be of another file or version). A finished file is checked against the length the server
announced, by its format (transforms/core/release_formats.py: a segment CSV's ``num_segs``, the strong
TSVs' header, no HTML page, UTF-8, a final newline) and, where the release's size and sha256 are known
(transforms/core/release.py), against those; only then is it renamed into place and recorded in
``<dest>/fetch_manifest.json`` (URL, size, sha256, time). A file that fails is moved to ``<dest>/rejected/``
and the command exits 4 with one ``error:`` paragraph. A rerun hashes each recorded file again and skips
it when its sha256 is still the one recorded; one that changed is moved to rejected/ and fetched again.

``--timeout`` bounds one wait for data (a stalled connection is resumed), ``--deadline`` one file's whole
download (a connection trickling a byte at a time never stalls). fetch_release writes only regular files
inside ``--dest`` and refuses to start when any path it would write there is a symbolic link.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import stat
import sys

from pipelines.args import ArgumentParser, is_remote, output_dir_problem
from pipelines.console import run_cli
from pipelines.errors import EXIT_CODES_HELP, EXIT_OK, InputError, UsageError
from transforms import fileio
from transforms.core import release

MANIFEST = 'fetch_manifest.json'
REJECTED = 'rejected'
STATE = '.json'                   # <name>.part.json: where <name>.part came from
DEFAULT_DEADLINE_S = 6 * 3600     # the 2.4 GB tarball at 115 kB/s; a rerun resumes what a deadline stopped


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog='python -m pipelines.fetch_release', description=__doc__.split('\n\n')[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES_HELP)
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
    p.add_argument('--timeout', type=float, default=60.0,
                   help='seconds one wait for data may last before the connection is resumed')
    p.add_argument('--deadline', type=float, default=DEFAULT_DEADLINE_S,
                   help='seconds one file\'s whole download may take, resumes included (default 6 h: the 2.4 GB '
                        'tarball at 115 kB/s); past it the command stops, and a rerun resumes the file')
    p.add_argument('--verbose', action='store_true', help='print tracebacks of expected errors too')
    return p


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _open(path: str, flags: int) -> int:
    """os.open that never follows a symbolic link at ``path`` (ELOOP instead)."""
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)


def _read_json(path: str):
    """The JSON in ``path`` (not followed if a link); FileNotFoundError when there is none, ValueError
    when it is not JSON."""
    with os.fdopen(_open(path, os.O_RDONLY), 'rb') as f:
        return json.loads(f.read())


_JSON_KINDS = {list: 'a JSON array', str: 'a JSON string', int: 'a JSON number', float: 'a JSON number',
               bool: 'JSON true/false', type(None): 'JSON null'}


def manifest_problem(manifest) -> str | None:
    """Why ``manifest`` (parsed JSON) is not a fetch manifest, or None."""
    if not isinstance(manifest, dict):
        return f'{_JSON_KINDS.get(type(manifest), "JSON")}, not an object'
    files = manifest.get('files')
    if not isinstance(files, dict):
        return 'no "files" object' if files is None else f'"files" is {_JSON_KINDS.get(type(files), "JSON")}'
    for name, entry in files.items():
        if not (isinstance(entry, dict) and type(entry.get('size')) is int and
                re.fullmatch(r'[0-9a-f]{64}', str(entry.get('sha256')))):
            return f'its entry for {name!r} has no size and sha256'
    return None


def load_manifest(dest: str) -> dict:
    path = os.path.join(dest, MANIFEST)
    try:
        manifest = _read_json(path)
    except FileNotFoundError:
        return {'files': {}}
    except (ValueError, OSError) as e:
        why = e.strerror if isinstance(e, OSError) else e
        raise InputError(f'{path}: not a fetch manifest ({why}); move it away and rerun (the files are then '
                         'fetched again)') from None
    if why := manifest_problem(manifest):
        raise InputError(f'{path}: not a fetch manifest ({why}); move it away and rerun (the files are then '
                         'fetched again)')
    return manifest


def _save_manifest(dest: str, manifest: dict) -> None:
    fileio.replace_durably(os.path.join(dest, MANIFEST),
                           (json.dumps(manifest, indent=2, sort_keys=True) + '\n').encode())


def refuse_links(dest: str, files: list[release.ReleaseFile]) -> None:
    """Raises InputError when a path fetch_release would write under ``dest`` is a symbolic link (writing
    through it would change a file elsewhere) or rejected/ is not a folder."""
    names = [MANIFEST, REJECTED]
    for f in files:
        names += [f.name, f.name + '.part', f.name + '.part' + STATE, os.path.join(REJECTED, f.name)]
    links = [n for n in names if os.path.islink(os.path.join(dest, n))]
    if links:
        what = 'is a symbolic link' if len(links) == 1 else 'are symbolic links'
        raise InputError(f'--dest {dest}: {", ".join(links)} {what}; '
                         'fetch_release writes only regular files inside --dest and never through a link: '
                         'remove the link (and copy its target in, if you meant it) and rerun')
    rejected = os.path.join(dest, REJECTED)
    if os.path.exists(rejected) and not os.path.isdir(rejected):
        raise InputError(f'--dest {dest}: {REJECTED} is a file, where refused downloads go; move it away and rerun')


def _hash_recorded(dest: str, f: release.ReleaseFile, entry: dict | None) -> tuple[bool, str | None]:
    """(whether ``f`` is in place as recorded, why it is not when it was recorded). The file is hashed
    again: its size and time prove nothing about its bytes."""
    path = os.path.join(dest, f.name)
    if not entry:
        return False, None
    try:
        with os.fdopen(_open(path, os.O_RDONLY), 'rb') as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return False, f'{f.name}: not a regular file; fetching it again'
            size, digest = release.sha256_of(fh.read)
    except FileNotFoundError:
        return False, f'{f.name}: recorded in {MANIFEST} but missing; fetching it again'
    if (size, digest) != (entry['size'], entry['sha256']):
        return False, (f'{f.name}: changed since it was fetched ({size:,} bytes, sha256 {digest}; {MANIFEST} '
                       f'records {entry["size"]:,} bytes, sha256 {entry["sha256"]}); fetching it again')
    if f.sha256 and digest != f.sha256:
        return False, f'{f.name}: sha256 {digest} is not the release\'s {f.sha256}; fetching it again'
    return True, None


def _reject(dest: str, path: str, name: str) -> str:
    rejected = os.path.join(dest, REJECTED, name)
    os.makedirs(os.path.dirname(rejected), exist_ok=True)
    os.replace(path, rejected)
    return rejected


def _resume_point(part: str, state_path: str, url: str) -> tuple[int, str | None, str | None]:
    """(bytes of ``part`` to keep, the validator to resume them with, why ``part`` is not resumed): a
    ``.part`` is resumed only when its record says it came from ``url`` with a validator."""
    if not os.path.lexists(part):
        return 0, None, None
    try:
        state = _read_json(state_path)
    except FileNotFoundError:
        return 0, None, f'no {os.path.basename(state_path)} records where it came from'
    except (ValueError, OSError):
        return 0, None, f'{os.path.basename(state_path)} is unreadable'
    if not isinstance(state, dict) or state.get('url') != url:
        return 0, None, f'it came from {state.get("url") if isinstance(state, dict) else "?"}, not {url}'
    if not isinstance(state.get('validator'), str) or not state['validator']:
        return 0, None, 'the server gave no ETag or Last-Modified to resume it by'
    size = os.lstat(part).st_size
    if isinstance(state.get('size'), int) and size > state['size']:
        return 0, None, f'it is longer than the file ({size:,} > {state["size"]:,} bytes)'
    return size, state['validator'], None


def _progress(name: str, total: int | None, initial: int):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit='B', unit_scale=True, unit_divisor=1024, desc=name,
                file=sys.stderr, disable=None, leave=False)


def fetch_one(f: release.ReleaseFile, url: str, dest: str, retries: int, retry_wait: float, timeout: float,
              deadline: float | None = None) -> dict:
    """Downloads (or resumes) one file and verifies it; returns its manifest entry. Raises InputError
    (after moving the file to rejected/) when it fails verification, and InputError when it cannot be had."""
    final = os.path.join(dest, f.name)
    part = final + '.part'
    state_path = part + STATE
    start, validator, why = _resume_point(part, state_path, url)
    if why:
        _say(f'{f.name}: starting over, not resuming {part}: {why}')
    try:
        src = fileio.HttpReader(url, start=start, timeout=timeout, retries=retries, backoff=retry_wait,
                                deadline_s=deadline, validator=validator)
    except FileNotFoundError:
        raise InputError(f'{url}: not found (HTTP 404); check --mirror/--base_url') from None
    except OSError as e:
        raise InputError(f'{url}: cannot download ({e})') from None
    if src.restarted:
        _say(f'{f.name}: the server\'s copy changed since {part} was begun (validator {validator}, now '
             f'{src.validator}); starting over')
        start = 0
    with src:
        if start == 0:   # recorded before the first byte lands, so that a later run knows what it resumes
            fileio.replace_durably(state_path, (json.dumps(
                {'url': url, 'validator': src.validator, 'etag': src.etag, 'last_modified': src.last_modified,
                 'size': src.size, 'started_at': _now()}, indent=2) + '\n').encode())
        try:
            fd = _open(part, os.O_WRONLY | os.O_CREAT)
        except OSError as e:
            raise InputError(f'{part}: cannot be written ({e.strerror})') from None
        with os.fdopen(fd, 'wb') as out, _progress(f.name, src.size, start) as bar:
            os.ftruncate(fd, start)
            out.seek(start)
            try:
                while data := src.read(1 << 20):
                    out.write(data)
                    bar.update(len(data))
            except fileio.HttpReader.Changed as e:
                raise InputError(f'{f.name}: {e}; rerun the same command to download the new version') from None
            except OSError as e:
                more = ' (or raise --deadline)' if isinstance(e, fileio.HttpReader.DeadlineExceeded) else ''
                raise InputError(f'{f.name}: download stopped: {e}; rerun the same command{more} to resume '
                                 f'from {part}') from None
            out.flush()
            os.fsync(fd)
    with os.fdopen(_open(part, os.O_RDONLY), 'rb') as fh:
        size, digest, form = release.inspect(f.name, fh.read)
    problem = release.verify(f, size, digest, src.size, form)
    if problem:
        rejected = _reject(dest, part, f.name)
        os.remove(state_path)
        raise InputError(f'{f.name} from {url}: refused: {problem}. It is kept in {rejected} to inspect, not '
                         f'to build from; rerun the same command to download it again (refused again: that '
                         f'server does not serve Google\'s file, try another --mirror or --base_url)')
    os.replace(part, final)     # made durable with the manifest that records it (replace_durably syncs dest)
    os.remove(state_path)
    st = os.stat(final)
    return {'url': url, 'size': size, 'sha256': digest, 'verified': release.verified_by(f),
            'content_length': src.size, 'validator': src.validator, 'fetched_at': _now(),
            'mtime_ns': st.st_mtime_ns, 'resumed': bool(start) or src.resumes > 0}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_strict(argv)
    if args.retries < 0 or args.retry_wait < 0 or args.timeout <= 0 or args.deadline <= 0:
        raise UsageError('--retries and --retry_wait must be >= 0, --timeout and --deadline > 0')
    if args.base_url and not args.base_url.startswith(('http://', 'https://')):
        raise UsageError(f'--base_url {args.base_url}: an http:// or https:// URL')
    dest = args.dest
    if (why := output_dir_problem(dest)) or is_remote(dest):
        raise UsageError(f'--dest {dest}: {why or "a local folder (copy it to gs:// afterwards)"}')
    groups = [g for g, on in (('features', args.features), ('qa', args.qa), ('strong', args.strong)) if on]
    files = release.select(groups)
    os.makedirs(dest, exist_ok=True)
    refuse_links(dest, files)
    manifest = load_manifest(dest)
    failures = []
    for f in files:
        url = f.url(args.mirror, args.base_url)
        done, why = _hash_recorded(dest, f, manifest['files'].get(f.name))
        if done:
            _say(f'{f.name}: already fetched and verified (sha256 {manifest["files"][f.name]["sha256"]})')
            continue
        if why:
            _say(why)
            if os.path.lexists(os.path.join(dest, f.name)):
                _say(f'{f.name}: moved to {_reject(dest, os.path.join(dest, f.name), f.name)}')
            del manifest['files'][f.name]
            _save_manifest(dest, manifest)
        try:
            entry = fetch_one(f, url, dest, args.retries, args.retry_wait, args.timeout, args.deadline)
        except InputError as e:
            failures.append(str(e))
            continue
        manifest['files'][f.name] = entry
        manifest.update(mirror=None if args.base_url else args.mirror, base_url=args.base_url)
        _save_manifest(dest, manifest)
        _say(f'{f.name}: {entry["size"]:,} bytes, sha256 {entry["sha256"]} (verified by {entry["verified"]})')
    if failures:
        raise InputError(f'{len(failures)} of the release files could not be fetched:\n' + '\n'.join(failures))
    print(f'release in {dest}; build it with: ./run_local.sh --release {dest}')
    return EXIT_OK


if __name__ == '__main__':
    run_cli(main)
