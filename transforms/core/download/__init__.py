"""Fetch the audio AudioSet lacks: selected segments -> yt-dlp -> ffmpeg -> mono FLAC clips + a ledger.

Pure Python plus yt-dlp, ffmpeg and PyAV; no Beam (uploads to a bucket live in
``transforms.download_upload``). The public surface:

    naming     clip_name, parse_clip_name   <YTID>_<start>_<end>.flac, parsed from the right
    selection  Segment, from_missing_features, from_segments_csv, resolve_labels, select
    runner     Settings, run, Summary      the resumable, rate-limited run
    ledger     _ledger.jsonl               one line per attempt; the latest line per segment wins
    outcome    the statuses and how yt-dlp/ffmpeg errors map to them

and the steps behind ``run``: ``pacing`` (token bucket, backoff), ``fetch`` (yt-dlp), ``media``
(ffmpeg cut, mono FLAC, verification), ``clip`` (one attempt, ending in an atomic rename).
"""
from transforms.core.download.fetch import DEFAULT_URL_TEMPLATE, FetchOptions
from transforms.core.download.ledger import FILE_NAME as LEDGER_FILE
from transforms.core.download.ledger import LedgerLocked
from transforms.core.download.naming import ClipName, clip_name, parse_clip_name
from transforms.core.download.outcome import FINISHED, PERMANENT, STATUSES, TRANSIENT, FetchError, classify
from transforms.core.download.runner import Settings, Summary, run
from transforms.core.download.selection import (
                                                Segment,
                                                from_missing_features,
                                                from_segments_csv,
                                                normalize_splits,
                                                resolve_labels,
                                                select,
                                                split_of_csv,
                                                split_of_path,
)

__all__ = [
    'DEFAULT_URL_TEMPLATE', 'FetchOptions', 'LEDGER_FILE', 'LedgerLocked', 'ClipName', 'clip_name',
    'parse_clip_name',
    'FINISHED', 'PERMANENT', 'STATUSES', 'TRANSIENT', 'FetchError', 'classify', 'Settings', 'Summary', 'run',
    'Segment', 'from_missing_features', 'from_segments_csv', 'normalize_splits', 'resolve_labels', 'select',
    'split_of_csv', 'split_of_path',
]
