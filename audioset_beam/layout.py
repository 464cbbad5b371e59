"""Names of things on disk: release folder and CSV names to split names, and output paths.

The build writes by these names and the reader reads by them, so they live in the reader package, which
imports nothing of the build.
"""
from __future__ import annotations

import re
import urllib.parse

# Release feature folders -> output split names.
FEATURE_FOLDERS = {'eval': 'eval', 'bal_train': 'balanced_train', 'unbal_train': 'unbalanced_train'}
# Release segment CSV names -> output split names.
SEGMENT_CSVS = {
    'eval_segments.csv': 'eval',
    'balanced_train_segments.csv': 'balanced_train',
    'unbalanced_train_segments.csv': 'unbalanced_train',
}

CLIPS_DIR = 'clips'
DEAD_LETTERS_DIR = 'dead_letters'
MISSING_FEATURES_DIR = 'missing_features'
MISSING_STRONG_DIR = 'missing_strong'
CLASSES_FILE = 'classes.parquet'
COMPUTED_DIR = 'computed_embeddings'
MANIFEST_FILE = 'manifest.json'
SPILL_DIR = '_spill'
# An --output_root holds one dataset per run under runs/<run_id>/ and latest.json, {"run_id", "run_dir", ...},
# naming the published run (the rules that move it: transforms/core/runs.py).
RUNS_DIR = 'runs'
LATEST_FILE = 'latest.json'

_PART_RE = re.compile(r'^part-\d{5}\.parquet$')


def join(base: str, *parts: str) -> str:
    """Joins path segments with '/', for local paths and URLs (gs://) alike."""
    out = base.rstrip('/')
    for p in parts:
        out += '/' + p.strip('/')
    return out


def hive_segment(column: str, value: str) -> str:
    """``column=value`` with the value URI-encoded the way pyarrow's hive partitioning writes it.

    >>> hive_segment('label', '/m/09x0r')
    'label=%2Fm%2F09x0r'
    """
    return f'{column}={urllib.parse.quote(value, safe="")}'


def partition_dir(output_dir: str, split: str, label: str) -> str:
    return join(output_dir, CLIPS_DIR, hive_segment('split', split), hive_segment('label', label))


def part_file(directory: str, index: int) -> str:
    return join(directory, f'part-{index:05d}.parquet')


def is_part_file(name: str) -> bool:
    return bool(_PART_RE.match(name.rsplit('/', 1)[-1]))


def start_ms(seconds: float) -> int:
    """The join key for a start time: integer milliseconds, never a float."""
    return int(round(seconds * 1000.0))


def segment_id(video_id: str, start_milliseconds: int) -> str:
    """AudioSet Strong's segment id, ``<YTID>_<start_ms>`` (split it on the last '_')."""
    return f'{video_id}_{start_milliseconds}'


_CLIP_NAME = re.compile(r'^(?P<ytid>.+)_(?P<start>\d+(?:\.\d+)?)_(?P<end>\d+(?:\.\d+)?)(?:\.[A-Za-z0-9]+)?$')


def parse_clip_name(name: str) -> tuple[str, float, float]:
    """``<YTID>_<start>_<end>.<ext>`` (start/end in seconds, integer or decimal) -> (YTID, start, end).

    Parsed from the right, since YouTube ids contain '_' and may start with '-':

    >>> parse_clip_name('gs://b/audio/-a_b_c-d_e_30.000_40.000.flac')
    ('-a_b_c-d_e', 30.0, 40.0)
    """
    m = _CLIP_NAME.match(name.rsplit('/', 1)[-1])
    if not m:
        raise ValueError(f'{name}: expected <YTID>_<start>_<end>.<ext>, e.g. --4gqARaEJE_30.000_40.000.flac')
    start, end = float(m.group('start')), float(m.group('end'))
    if not end > start:
        raise ValueError(f'{name}: end {end} is not after start {start}')
    return m.group('ytid'), start, end
