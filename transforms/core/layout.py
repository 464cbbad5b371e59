"""Names of things on disk: release folder and CSV names to split names, and output paths."""
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
CLASSES_FILE = 'classes.parquet'
MANIFEST_FILE = 'manifest.json'
SPILL_DIR = '_spill'

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
