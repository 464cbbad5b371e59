"""The ledger: ``_ledger.jsonl`` next to the clips, one JSON line per attempt outcome.

Append-only; every line is flushed and fsynced before the next step, so a run killed at any moment
leaves at worst one torn last line, which readers skip. The latest line of a segment is its state.
A run holds an exclusive lock on the file: two runs never write one folder.
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import threading

from transforms.core.download import outcome

FILE_NAME = '_ledger.jsonl'

# Every line has these keys (null where they do not apply), in this order.
FIELDS = (
    'segment_id',   # <YTID>_<start_ms>
    'ytid', 'start', 'end',  # seconds, as in the segments CSV
    'split',
    'status',       # one of outcome.STATUSES
    'message',      # why it failed, or how it was fetched
    'attempts',     # attempts so far for this segment, over every run
    'started', 'finished',  # ISO 8601 UTC, milliseconds
    'path',         # where the clip is (ok only)
    'sha256',       # of the FLAC file (ok only)
    'sample_rate', 'num_samples',  # of the FLAC (ok only)
    'fetch',        # 'section' (only the segment's bytes were read), 'whole' (the whole stream), 'existing'
)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec='milliseconds')


def record(**fields) -> dict:
    """A ledger line with every field present; raises on unknown fields or a bad status."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f'unknown ledger fields {sorted(unknown)}')
    if fields.get('status') not in outcome.STATUSES:
        raise ValueError(f'bad status {fields.get("status")!r}')
    return {k: fields.get(k) for k in FIELDS}


def parse_lines(data: bytes) -> tuple[dict[str, dict], int]:
    """segment_id -> its latest line, and how many lines could not be read (a torn last line)."""
    latest: dict[str, dict] = {}
    bad = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            latest[row['segment_id']] = row
        except (ValueError, KeyError, TypeError):
            bad += 1
    return latest, bad


def merge(*ledgers: bytes) -> bytes:
    """Lines of several copies of one ledger (e.g. a bucket's and a staging folder's), each line once,
    ordered by ``finished`` so that the latest line per segment still wins."""
    seen, rows = set(), []
    for data in ledgers:
        for line in data.splitlines():
            line = line.strip()
            if not line or line in seen:
                continue
            try:
                finished = json.loads(line)['finished'] or ''
            except (ValueError, KeyError, TypeError):
                continue
            seen.add(line)
            rows.append((finished, len(rows), line))
    return b''.join(line + b'\n' for _, _, line in sorted(rows))


class LedgerLocked(RuntimeError):
    """Another run holds the ledger."""


class Ledger:
    """An open ledger: ``latest`` holds each segment's last line; ``append`` is thread-safe and durable."""

    def __init__(self, path: str):
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise LedgerLocked(f'{path}: another download run holds this ledger; one run per folder') from None
        with open(path, 'rb') as f:
            data = f.read()
        self.latest, self.bad_lines = parse_lines(data)
        if data and not data.endswith(b'\n'):
            # A torn line from a killed run: end it, so the next line starts clean (readers skip it).
            os.write(self._fd, b'\n')
            os.fsync(self._fd)
        self._lock = threading.Lock()

    def append(self, row: dict) -> None:
        line = (json.dumps(row, ensure_ascii=False) + '\n').encode()
        with self._lock:
            os.write(self._fd, line)
            os.fsync(self._fd)
            self.latest[row['segment_id']] = row

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # also releases the lock
            self._fd = -1

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
