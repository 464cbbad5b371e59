"""The released segment CSVs (``YTID, start, end, "mid,mid"``) as an Arrow table indexed for the join."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.core import deadletter
from transforms.core.layout import start_ms

SEGMENTS_SCHEMA = pa.schema([
    ('video_id', pa.string()),
    ('start_ms', pa.int64()),
    ('start_time_seconds', pa.float64()),
    ('end_time_seconds', pa.float64()),
    ('labels', pa.list_(pa.string())),
    ('line_number', pa.int64()),
])
_HEADER_COUNTS = re.compile(r'num_segs=(\d+)')
_YTID = re.compile(r'^[A-Za-z0-9_-]+$')


@dataclasses.dataclass
class ParsedCsv:
    table: pa.Table            # SEGMENTS_SCHEMA, in file order
    dead_letters: list[dict]
    declared_rows: int | None  # num_segs from the '#' header, when present
    lines: int                 # data lines read (good + bad)


def parse_segments_csv(data: bytes, source: str, split: str, known_mids: frozenset[str]) -> ParsedCsv:
    """Parses a segments CSV. Bad lines become dead letters naming ``source`` and the line number.

    Rejected: a wrong field count, a bad YTID, a non-numeric or negative time, end <= start, an empty
    label list, a MID outside ``known_mids``, a second row for the same (YTID, start).
    """
    vids, starts, ends, labels, lines = [], [], [], [], []
    bad: list[dict] = []
    seen: set[tuple[str, int]] = set()
    declared = None
    n_lines = 0

    def reject(line_number: int, reason: str, error: str, **kw) -> None:
        bad.append(deadletter.dead_letter(deadletter.PARSE_CSV, reason, source, error,
                                          line_number=line_number, split=split, **kw))

    text = data.decode('utf-8-sig', errors='replace')
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith('#'):
            m = _HEADER_COUNTS.search(stripped)
            if m:
                declared = int(m.group(1))
            continue
        n_lines += 1
        fields = stripped.split(',', 3)
        if len(fields) != 4:
            reject(line_number, 'bad-field-count', f'expected 4 fields, got {len(fields)}: {line[:200]!r}')
            continue
        vid, start_s, end_s, label_field = (f.strip() for f in fields)
        if not _YTID.match(vid):
            reject(line_number, 'bad-video-id', f'bad YouTube id {vid!r}')
            continue
        try:
            start, end = float(start_s), float(end_s)
        except ValueError:
            reject(line_number, 'bad-time', f'start/end not numbers: {start_s!r}, {end_s!r}', video_id=vid)
            continue
        if not (0 <= start < end) or not np.isfinite(end):
            reject(line_number, 'bad-time', f'need 0 <= start < end, got {start_s}, {end_s}', video_id=vid,
                   start_time_seconds=start if np.isfinite(start) else None)
            continue
        if len(label_field) >= 2 and label_field[0] == label_field[-1] == '"':
            label_field = label_field[1:-1]
        elif '"' in label_field:
            reject(line_number, 'bad-quoting', f'unbalanced quotes in {label_field!r}', video_id=vid,
                   start_time_seconds=start)
            continue
        mids = tuple(m.strip() for m in label_field.split(',') if m.strip())
        if not mids:
            reject(line_number, 'no-labels', 'empty positive label list', video_id=vid, start_time_seconds=start)
            continue
        unknown = [m for m in mids if m not in known_mids]
        if unknown:
            reject(line_number, 'unknown-mid', f'label MID(s) {unknown} not in the class index or ontology',
                   video_id=vid, start_time_seconds=start)
            continue
        key = (vid, start_ms(start))
        if key in seen:
            reject(line_number, 'duplicate-segment', f'a second row for segment {vid} at {start_s}',
                   video_id=vid, start_time_seconds=start)
            continue
        seen.add(key)
        vids.append(vid)
        starts.append(start)
        ends.append(end)
        labels.append(mids)
        lines.append(line_number)
    starts_arr = np.asarray(starts, np.float64)
    table = pa.table({
        'video_id': pa.array(vids, pa.string()),
        'start_ms': pa.array(np.round(starts_arr * 1000).astype(np.int64)),
        'start_time_seconds': pa.array(starts_arr),
        'end_time_seconds': pa.array(np.asarray(ends, np.float64)),
        'labels': pa.array(labels, pa.list_(pa.string())),
        'line_number': pa.array(lines, pa.int64()),
    }, schema=SEGMENTS_SCHEMA)
    return ParsedCsv(table, bad, declared, n_lines)


class SegmentIndex:
    """A split's segments, sorted by video id, with row ranges per 2-character id prefix.

    The release shards are named by that prefix, so a group of shards only ever looks at a small slice
    of a 2M-row CSV.
    """

    def __init__(self, table: pa.Table, source: str):
        self.source = source
        self.table = table.take(pc.sort_indices(table, [('video_id', 'ascending'), ('start_ms', 'ascending')]))
        prefixes = pc.utf8_slice_codeunits(self.table['video_id'], 0, 2).to_pylist()
        self._ranges: dict[str, tuple[int, int]] = {}
        for i, p in enumerate(prefixes):
            lo, _ = self._ranges.get(p, (i, i))
            self._ranges[p] = (lo, i + 1)

    def __len__(self) -> int:
        return self.table.num_rows

    def lookup(self, video_ids: list[str], starts_ms: np.ndarray) -> tuple[np.ndarray, pa.Table]:
        """Row of each key in the returned slice of the table (-1 where absent), and that slice."""
        wanted = sorted({v[:2] for v in video_ids})
        pieces = [self.table.slice(lo, hi - lo) for lo, hi in (self._ranges[p] for p in wanted if p in self._ranges)]
        sub = pa.concat_tables(pieces) if pieces else self.table.slice(0, 0)
        where = {k: i for i, k in enumerate(zip(sub['video_id'].to_pylist(), sub['start_ms'].to_pylist()))}
        rows = np.fromiter((where.get(k, -1) for k in zip(video_ids, starts_ms.tolist())), np.int64,
                           count=len(video_ids))
        return rows, sub
