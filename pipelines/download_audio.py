"""Fetch the audio of AudioSet segments that have no released embedding, as mono FLAC clips + a ledger.

    python -m pipelines.download_audio --missing_features out --audio_dir audio --splits eval --limit 100
    python -m pipelines.download_audio --segments_csv sample_data/segments/eval_segments.csv \\
        --labels Music --include_descendants --audio_dir gs://bucket/audioset/audio --cookies cookies.txt

Not a Dataflow stage: YouTube refuses anonymous requests from datacenter IPs, so run it on a workstation
(or a VM with cookies) and let it upload to the bucket. Rerun the same command to resume; see
docs/download.md. Exit status: 0 when every selected segment is finished (ok or a permanent failure),
2 for bad flags, 3 when some can still be retried, 4 when an input (missing_features, CSV, class index,
ontology) is missing or malformed, 130 when interrupted.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import pathlib
import urllib.parse

import pyarrow.parquet as pq

from audioset_beam import layout
from audioset_beam.schema import MISSING_FEATURES, SPLITS
from pipelines.args import ArgumentParser, load_vocabulary, output_dir_problem
from pipelines.console import run_cli, setup_logging
from pipelines.errors import (EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_OK, EXIT_RETRYABLE, InputError, UsageError,
                              UserError)
from transforms import download_upload as storage
from transforms.core import download
from transforms.core.download.fetch import video_url
from transforms.core.ontology import Vocabulary

log = logging.getLogger('pipelines.download_audio')



# The same folder as pipelines.options.SAMPLE_DIR, named here because that module imports Beam, which
# this tool does not need.
SAMPLE_DIR = pathlib.Path(__file__).resolve().parents[1] / 'sample_data'


def _sample(name: str) -> str:
    return str(SAMPLE_DIR / name)


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog='python -m pipelines.download_audio', description=__doc__.split('\n')[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter, epilog=EXIT_CODES_HELP)
    src = p.add_argument_group('what to fetch (one source is required)')
    src.add_argument('--missing_features',
                     help='The build\'s output folder, or its missing_features/ folder (local or gs://): '
                          'the segments with no released embedding.')
    src.add_argument('--segments_csv', action='append',
                     help='A segments CSV in the release format (repeatable); its split comes from the '
                          'release file name (eval_segments.csv -> eval), else from the file name.')
    src.add_argument('--splits', help='Comma-separated splits to keep: eval, balanced_train, unbalanced_train '
                                      '(bal_train, unbal_train accepted).')
    src.add_argument('--labels', action='append',
                     help='Keep segments with any of these labels: MIDs or display names, comma-separated '
                          '(repeatable; a name that holds commas may be given whole).')
    src.add_argument('--include_descendants', action='store_true',
                     help='With --labels: also keep segments labelled with any ontology descendant.')
    src.add_argument('--limit', type=int, help='At most this many segments (the first, in input order).')
    src.add_argument('--class_index', default=_sample('class_labels_indices.csv'), help='class_labels_indices.csv')
    src.add_argument('--ontology', default=_sample('ontology.json'), help='ontology.json')
    out = p.add_argument_group('where clips go')
    out.add_argument('--audio_dir', required=True,
                     help='Folder for <YTID>_<start>_<end>.flac clips and _ledger.jsonl, local or gs://.')
    out.add_argument('--staging_dir',
                     help='For a gs:// --audio_dir: local folder where clips are made and the ledger is kept '
                          '(default: ~/.cache/audioset-download/<hash of audio_dir>).')
    net = p.add_argument_group('how to fetch')
    net.add_argument('--url_template', default=download.DEFAULT_URL_TEMPLATE,
                     help='Page URL given to yt-dlp; {ytid} is replaced by the YouTube id.')
    net.add_argument('--rate_limit', type=float, default=0.5,
                     help='Attempts (videos asked for) per second, all workers together.')
    net.add_argument('--concurrency', type=int, default=2, help='Segments fetched at once.')
    net.add_argument('--max_attempts', type=int, default=4,
                     help='Attempts per segment in one run, for transient failures (429, 5xx, timeouts).')
    net.add_argument('--backoff', type=float, default=5.0,
                     help='Seconds before the first retry; doubles per failure, with +-50%% jitter.')
    net.add_argument('--backoff_max', type=float, default=600.0, help='Longest wait between retries, seconds.')
    net.add_argument('--timeout', type=float, default=30.0, help='Network timeout, seconds.')
    net.add_argument('--cookies', help='Netscape cookies.txt passed to yt-dlp (read, never modified).')
    net.add_argument('--proxy', help='Proxy URL for yt-dlp and ffmpeg, e.g. http://host:3128.')
    net.add_argument('--fetch', choices=('auto', 'whole'), default='auto',
                     help='auto: let ffmpeg read just the segment when the stream allows it, else download the '
                          'whole stream; whole: always download the whole stream with yt-dlp.')
    net.add_argument('--retry', default='',
                     help='Comma-separated permanent statuses to try again on this run (e.g. geo after changing '
                          '--proxy, unavailable after adding --cookies).')
    net.add_argument('--no_progress', action='store_true', help='No progress bar.')
    net.add_argument('--verbose', action='store_true', help='Print tracebacks of expected errors too.')
    return p


def _vocabulary(args) -> Vocabulary:
    return load_vocabulary(args.class_index, args.ontology, storage.read_bytes)


def load_missing_features(path: str) -> list[download.Segment]:
    """Every row of the build's missing_features table, split by split in SPLITS order."""
    base = path.rstrip('/')
    nested = layout.join(base, layout.MISSING_FEATURES_DIR)
    if storage.is_dir(nested):
        base = nested
    files = [f for f in storage.list_files(base) if layout.is_part_file(f) and download.split_of_path(f)]
    if not files:
        raise InputError(f'--missing_features {path}: no missing_features/split=<split>/part-NNNNN.parquet '
                         'files (give the build\'s --output_dir, or its missing_features/ folder)')
    order = {s: i for i, s in enumerate(SPLITS)}
    files.sort(key=lambda f: (order.get(download.split_of_path(f), len(order)), f))
    segments = []
    for f in files:
        try:
            table = pq.read_table(io.BytesIO(storage.read_bytes(f)))
        except Exception as e:  # noqa: BLE001 -- pyarrow raises several kinds for a damaged file
            raise InputError(f'--missing_features: {f}: not a readable Parquet file ({e})') from e
        missing = set(MISSING_FEATURES.names) - set(table.column_names)
        if missing:
            raise InputError(f'--missing_features: {f}: not a missing_features file (lacks columns '
                             f'{sorted(missing)})')
        got, bad = download.from_missing_features(table, download.split_of_path(f))
        _warn_skipped(f, bad, 'rows')
        segments += got
    return segments


def _warn_skipped(path: str, bad: list[dict], what: str) -> None:
    if bad:
        log.warning('%s: %d %s skipped, no clip can be made of them (first: line %s, %s)', path, len(bad), what,
                    bad[0]['line_number'], bad[0]['error'])


def load_segments_csvs(paths: list[str], vocab: Vocabulary) -> list[download.Segment]:
    segments = []
    for path in paths:
        try:
            data = storage.read_bytes(path)
        except FileNotFoundError:
            raise InputError(f'--segments_csv {path}: no such file') from None
        got, bad = download.from_segments_csv(data, path, download.split_of_csv(path), vocab)
        _warn_skipped(path, bad, 'lines')
        segments += got
    return segments


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Parses and validates flags; errors exit with status 2 and a message naming the flag."""
    p = parser()
    args = p.parse_strict(argv)
    if bool(args.missing_features) == bool(args.segments_csv):
        p.error('give exactly one of --missing_features or --segments_csv')
    if args.include_descendants and not args.labels:
        p.error('--include_descendants needs --labels')
    if args.limit is not None and args.limit < 1:
        p.error(f'--limit must be >= 1, got {args.limit}')
    if '{ytid}' not in args.url_template:
        p.error(f'--url_template must contain {{ytid}}, got {args.url_template!r}')
    try:
        page = urllib.parse.urlsplit(video_url(args.url_template, 'x'))
    except (ValueError, KeyError, IndexError) as e:
        p.error(f'--url_template {args.url_template!r}: not a URL template with {{ytid}} only ({e!r})')
    if page.scheme not in ('http', 'https') or not page.netloc:
        p.error(f'--url_template {args.url_template!r}: must be an http:// or https:// URL')
    if args.staging_dir and not storage.is_remote(args.audio_dir):
        p.error('--staging_dir only applies to a gs:// --audio_dir')
    if '://' in args.audio_dir and not storage.is_remote(args.audio_dir):
        p.error(f'--audio_dir must be a local folder or gs://, got {args.audio_dir}')
    problem = output_dir_problem(args.audio_dir)   # gs://: the bucket name; local: not a file
    if problem:
        p.error(f'--audio_dir {args.audio_dir}: {problem}')
    try:
        args.split_set = None
        if args.splits:
            try:
                args.split_set = download.normalize_splits(args.splits.split(','))
            except ValueError as e:
                raise ValueError(f'--splits: {e}') from None
        args.settings = download.Settings(
            fetch=download.FetchOptions(url_template=args.url_template, cookies=args.cookies, proxy=args.proxy,
                                        timeout_s=args.timeout),
            rate_limit=args.rate_limit, concurrency=args.concurrency, max_attempts=args.max_attempts,
            backoff_s=args.backoff, backoff_max_s=args.backoff_max, whole=args.fetch == 'whole',
            retry=frozenset(s.strip() for s in args.retry.split(',') if s.strip()),
            progress=not args.no_progress)
    except ValueError as e:
        p.error(str(e))
    if args.cookies and not os.path.isfile(args.cookies):
        p.error(f'--cookies {args.cookies}: no such local file')
    return args


def select(args) -> list[download.Segment]:
    """The segments the flags select, in a deterministic order."""
    vocab = _vocabulary(args) if (args.labels or args.segments_csv) else None
    labels = None
    if args.labels:
        labels = download.resolve_labels(args.labels, vocab, args.include_descendants)
    if args.missing_features:
        segments = load_missing_features(args.missing_features)
    else:
        segments = load_segments_csvs(args.segments_csv, vocab)
    return download.select(segments, args.split_set, labels, args.limit)


def run(argv: list[str] | None = None) -> download.Summary:
    """Parses flags, selects segments, fetches what is not finished; returns the run's summary."""
    args = parse(argv)
    try:
        segments = select(args)
    except UserError:
        raise
    except ValueError as e:   # an unknown label
        raise UsageError(f'--labels: {e}') from e
    log.info('%d segments selected', len(segments))
    try:
        if not storage.is_remote(args.audio_dir):
            return download.run(segments, args.audio_dir, args.settings)
        staging = args.staging_dir or storage.default_staging_dir(args.audio_dir)
        publisher = storage.BucketPublisher(args.audio_dir, staging)
        publisher.pull_ledger()
        publisher.push_ledger()  # fails now, not after the first clip, when the bucket is not writable
        try:
            return download.run(segments, staging, args.settings, publish=publisher)
        finally:
            publisher.push_ledger()
    except download.LedgerLocked as e:
        raise UsageError(str(e)) from None


def _main(argv: list[str]) -> int:
    setup_logging(argv, noisy=())
    summary = run(argv)
    print(summary.format())
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_RETRYABLE if summary.unfinished else EXIT_OK


def main() -> None:
    run_cli(_main)


if __name__ == '__main__':
    main()
