"""The released segment CSVs (``YTID, start, end, "mid,mid"``) as an Arrow table indexed for the join."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.core import deadletter, keys
from transforms.core.deadletter import Stage
from transforms.core.keys import KeyIndex

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
    duplicate_labels: int = 0  # MIDs listed twice within one row (kept once)


_LINE = r'^(?P<vid>[^,]*),(?P<start>[^,]*),(?P<end>[^,]*),(?P<labels>.*)$'
_NUMBER = r'^[0-9]+(\.[0-9]*)?$'


def _lines(data: bytes) -> pa.Array:
    """The file's lines, split on '\\n' only (so line numbers match ``sed -n``), without a trailing '\\r'.

    Built over the file's bytes without a Python string per line (a 2M-row CSV would need ~1 GB of them);
    a file that is not valid UTF-8 takes the slow path, with undecodable bytes replaced."""
    if data.startswith(b'\xef\xbb\xbf'):
        data = data[3:]
    buf = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(buf == 0x0A)
    offsets = np.concatenate([[0], ends + 1, [len(buf)]]).astype(np.int64)
    lines = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data))
    try:
        lines.validate(full=True)
        lines = lines.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowCapacityError):
        lines = pa.array(data.decode('utf-8', errors='replace').split('\n'), pa.string())
    return pc.utf8_rtrim(pc.utf8_rtrim(lines, characters='\n'), characters='\r')


def _mask(arr) -> np.ndarray:
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False)


def parse_segments_csv(data: bytes, source: str, split: str, known_mids: frozenset[str]) -> ParsedCsv:
    """Parses a segments CSV, column-wise (a 2M-row file parses in seconds). Bad lines become dead letters
    naming ``source`` and the line number, as ``sed -n`` counts lines.

    Rejected: a wrong field count, a bad YTID, a non-numeric or negative time, end <= start, an empty
    label list, unbalanced quotes, a MID outside ``known_mids``, a second row for the same (YTID, start).
    A MID listed twice in one row is kept once (counted in ``duplicate_labels``).
    """
    lines = _lines(data)
    numbers = np.arange(1, len(lines) + 1, dtype=np.int64)
    stripped = pc.utf8_trim_whitespace(lines)
    blank = _mask(pc.equal(pc.utf8_length(stripped), 0))
    comment = _mask(pc.starts_with(stripped, '#'))
    declared = None
    for text in stripped.filter(pa.array(comment)).to_pylist():
        m = _HEADER_COUNTS.search(text)
        if m:
            declared = int(m.group(1))
    is_data = ~blank & ~comment
    rows = stripped.filter(pa.array(is_data))
    row_numbers = numbers[is_data]
    n = len(rows)
    reason = np.full(n, None, object)

    def flag(mask: np.ndarray, why: str) -> None:
        reason[mask & (reason == None)] = why  # noqa: E711 -- element-wise on an object array

    fields = pc.extract_regex(rows, _LINE)
    flag(~_mask(pc.is_valid(fields)), 'bad-field-count')
    vid = pc.utf8_trim_whitespace(pc.fill_null(pc.struct_field(fields, 'vid'), ''))
    start_s = pc.utf8_trim_whitespace(pc.fill_null(pc.struct_field(fields, 'start'), ''))
    end_s = pc.utf8_trim_whitespace(pc.fill_null(pc.struct_field(fields, 'end'), ''))
    label_s = pc.utf8_trim_whitespace(pc.fill_null(pc.struct_field(fields, 'labels'), ''))
    flag(~_mask(pc.match_substring_regex(vid, _YTID.pattern)), 'bad-video-id')
    numeric = _mask(pc.match_substring_regex(start_s, _NUMBER)) & _mask(pc.match_substring_regex(end_s, _NUMBER))
    flag(~numeric, 'bad-time')
    start = pc.cast(pc.if_else(pa.array(numeric), start_s, '0'), pa.float64()).to_numpy(zero_copy_only=False)
    end = pc.cast(pc.if_else(pa.array(numeric), end_s, '0'), pa.float64()).to_numpy(zero_copy_only=False)
    flag(~(np.isfinite(end) & (start < end)), 'bad-time')
    quoted = _mask(pc.and_(pc.starts_with(label_s, '"'), pc.ends_with(label_s, '"'))) & \
        _mask(pc.greater_equal(pc.utf8_length(label_s), 2))
    flag(~quoted & _mask(pc.match_substring(label_s, '"')), 'bad-quoting')
    inner = pc.if_else(pa.array(quoted), pc.utf8_slice_codeunits(label_s, 1, -1), label_s)
    mids = pc.split_pattern(inner, ',')
    flat = pc.utf8_trim_whitespace(pc.list_flatten(mids))
    owner = pc.list_parent_indices(mids).to_numpy()
    nonempty = _mask(pc.greater(pc.utf8_length(flat), 0))
    flat, owner = flat.filter(pa.array(nonempty)), owner[nonempty]
    flag(np.bincount(owner, minlength=n) == 0, 'no-labels')
    known = _mask(pc.is_in(flat, value_set=pa.array(sorted(known_mids), pa.string())))
    unknown_row = np.bincount(owner[~known], minlength=n) > 0
    flag(unknown_row, 'unknown-mid')
    starts_ms = np.round(np.where(np.isfinite(start), start, 0) * 1000).astype(np.int64)
    ok = reason == None  # noqa: E711
    # A second row for the same segment: only rows good so far compete, the first in the file wins.
    seg = pc.binary_join_element_wise(vid, pc.cast(pa.array(starts_ms), pa.string()), '_')
    ok_idx = np.flatnonzero(ok)
    repeat = np.zeros(n, bool)
    repeat[ok_idx] = ~keys.first_occurrences(seg.take(pa.array(ok_idx)))
    flag(repeat, 'duplicate-segment')
    ok = reason == None  # noqa: E711
    # Labels of good rows, each MID once (first mention wins), in release order.
    good_pairs = ok[owner]
    mid_list = sorted(known_mids)
    codes = pc.fill_null(pc.index_in(flat.filter(pa.array(good_pairs)), value_set=pa.array(mid_list, pa.string())),
                         len(mid_list)).to_numpy(zero_copy_only=False).astype(np.int64)
    first = keys.first_in_rows(owner[good_pairs], codes, len(mid_list) + 1)
    duplicate_labels = int((~first).sum())
    kept_owner = owner[good_pairs][first]
    kept_mids = flat.filter(pa.array(good_pairs)).filter(pa.array(first))
    ok_rows = np.flatnonzero(ok)
    row_of = np.full(n, -1, np.int64)
    row_of[ok_rows] = np.arange(len(ok_rows))
    offsets = np.zeros(len(ok_rows) + 1, np.int64)
    np.cumsum(np.bincount(row_of[kept_owner], minlength=len(ok_rows)), out=offsets[1:])
    table = pa.table({
        'video_id': pc.cast(vid.filter(pa.array(ok)), pa.string()),
        'start_ms': pa.array(starts_ms[ok]),
        'start_time_seconds': pa.array(start[ok]),
        'end_time_seconds': pa.array(end[ok]),
        'labels': pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)),
                                           pc.cast(kept_mids, pa.string())),
        'line_number': pa.array(row_numbers[ok]),
    }, schema=SEGMENTS_SCHEMA)
    bad = [_dead_letter(source, split, reason[i], int(row_numbers[i]), rows[i].as_py(), known_mids)
           for i in np.flatnonzero(~ok).tolist()]
    return ParsedCsv(table, bad, declared, n, duplicate_labels)


_MESSAGES = {
    'bad-field-count': 'expected 4 fields (YTID, start, end, "labels")',
    'bad-video-id': 'bad YouTube id',
    'bad-time': 'start and end must be numbers with 0 <= start < end',
    'bad-quoting': 'unbalanced quotes in the label list',
    'no-labels': 'empty positive label list',
    'unknown-mid': 'label MID(s) not in the class index or ontology',
    'duplicate-segment': 'a second row for the same segment (YTID, start)',
}


def _dead_letter(source: str, split: str, reason: str, line_number: int, line: str,
                 known_mids: frozenset[str]) -> dict:
    """The dead letter of one bad line: the vectorized checks found it, this says what is wrong with it."""
    fields = [f.strip() for f in line.split(',', 3)]
    extra: dict = {}
    if len(fields) == 4 and _YTID.match(fields[0]):
        extra['video_id'] = fields[0]
        try:
            start = float(fields[1])
            if np.isfinite(start):
                extra['start_time_seconds'] = start
        except ValueError:
            pass
    detail = _MESSAGES[reason]
    if reason == 'unknown-mid':
        mids = [m.strip() for m in fields[3].strip('"').split(',') if m.strip()]
        detail += f': {[m for m in mids if m not in known_mids]}'
    return deadletter.dead_letter(Stage.PARSE_CSV, reason, source, f'{detail}: {line[:200]!r}',
                                  line_number=line_number, split=split, **extra)


class SegmentIndex:
    """A split's segments CSV, ready for an exact, vectorized join on (video_id, start ms).

    Lookups hash the whole key, so they cost the same whatever ids a shard group holds: shards need not be
    named by id prefix. ``lookup`` returns rows of ``table`` (file order).
    """

    def __init__(self, table: pa.Table, source: str):
        self.source = source
        self.table = table
        self.keys = KeyIndex(keys.segment_ids(table['video_id'].combine_chunks(),
                                              table['start_ms'].combine_chunks()))

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def nbytes(self) -> int:
        return self.table.nbytes + self.keys.nbytes

    def lookup_keys(self, segment_ids: pa.Array) -> np.ndarray:
        """Row of ``table`` for each ``<video_id>_<start_ms>`` key, -1 where the CSV has none."""
        return self.keys.lookup(segment_ids)

    def lookup(self, video_ids: list[str], starts_ms: np.ndarray) -> tuple[np.ndarray, pa.Table]:
        """Row of each key in ``table`` (-1 where absent), and ``table`` itself."""
        ids = keys.segment_ids(pa.array(video_ids, pa.string()), np.asarray(starts_ms, np.int64))
        return self.lookup_keys(ids), self.table
