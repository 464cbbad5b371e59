"""AudioSet Strong (2021): parses the strong-label TSVs and puts their events on the embedding frames.

Pure pyarrow/numpy, column-wise (the train TSV's 934,821 events parse in about a second); never imports
apache_beam. The transforms layer parses each file once, builds one :class:`StrongIndex` per split and
calls :meth:`StrongIndex.attach` per batch of built segments.

Frame rule: an event [a, b] marks embedding frame k, whose window is [k * hop, k * hop + 0.96) s from the
segment start, iff ``a < window_end and b > window_start``, decided in integer milliseconds. That is
PretrainedSED's convention (onset floored, offset ceiled: any overlap counts) carried to our windows. A
zero-length event (a == b, real in the release) therefore marks the frame whose window strictly contains
its instant, and no frame when the instant lies on a window edge or in the 40 ms gap between released
windows; it is always kept in ``strong_events``.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audioset_beam.schema import FRAME_LABELS, STRONG_EVENT
from transforms.core import deadletter, keys
from transforms.core.deadletter import Stage
from transforms.core.keys import KeyIndex
from transforms.core.segments_csv import _lines


HEADER = ('segment_id', 'start_time_seconds', 'end_time_seconds', 'label')
FRAMED_HEADER = HEADER + ('present',)
WINDOW_MS = 960          # a VGGish example: 0.96 s of audio
FRAMED_HOP_MS = 960      # the framed posneg file's grid
RELEASED_HOP = 1.0       # released embeddings: one frame a second
COMPUTED_HOP = 0.96      # VGGish run here: frames back to back

EVENTS_SCHEMA = pa.schema([
    ('segment_id', pa.string()),
    ('video_id', pa.string()),
    ('start_ms', pa.int64()),
    ('onset', pa.float64()),
    ('offset', pa.float64()),
    ('label', pa.string()),
    ('line_number', pa.int64()),
])
FRAMED_SCHEMA = EVENTS_SCHEMA.append(pa.field('present', pa.bool_()))


_SEGMENT_ID = r'^(?P<vid>[A-Za-z0-9_-]{1,64})_(?P<ms>0|[1-9][0-9]{0,9})$'
_TIME = r'^-?([0-9]{1,9}(\.[0-9]*)?|\.[0-9]+)$'
_MID = r'^/[a-z]+/[A-Za-z0-9_]+$'

_MESSAGES = {
    'bad-field-count': 'expected {n} tab-separated fields ({names})',
    'bad-segment-id': 'segment_id is not <YTID>_<start ms> (YTID: 1-64 of A-Z a-z 0-9 _ -; ms without leading 0)',
    'bad-time': 'start and end must be decimal numbers of seconds',
    'negative-time': 'negative time',
    'end-before-start': 'end_time_seconds before start_time_seconds',
    'bad-label': 'label is not a MID (/m/..., /g/..., /t/...)',
    'unknown-mid': 'label MID is in neither the ontology (or class index) nor mid_to_display_name.tsv',
    'bad-present': "present must be PRESENT or NOT_PRESENT",
    'off-grid-frame': 'frame start is not a multiple of 0.960 s (within 1 ms)',
}


@dataclasses.dataclass
class ParsedStrong:
    table: pa.Table            # EVENTS_SCHEMA (FRAMED_SCHEMA for the framed file), in file order
    dead_letters: list[dict]
    lines: int                 # data lines read (good + bad; not the header, not blank lines)
    dropped: str | None = None  # why no line of the file could be used (empty, bad header, no good line)

    def stats(self, path: str) -> dict:
        """The file's entry under ``run_stats['strong']['files']`` (see :func:`file_problems`)."""
        t = self.table
        return {'file': path, 'lines_in': self.lines, 'lines_rejected': _lines_rejected(self.dead_letters),
                'rows_ok': t.num_rows, 'segments': len(pc.unique(t['segment_id'])) if t.num_rows else 0,
                'dropped': self.dropped}


def _lines_rejected(dead_letters: list[dict]) -> int:
    # A bad-header dead letter stands for every line after the header (its ``records``).
    return sum(d['records'] for d in dead_letters)


def parse_events(data: bytes, path: str, split: str | None = None,
                 known_mids: Mapping[str, str] | frozenset[str] | None = None) -> ParsedStrong:
    """Parses ``audioset_{train,eval}_strong.tsv`` column-wise: one row per good event.

    Bad lines become ``parse-strong`` dead letters naming ``path`` and the line (as ``sed -n`` counts):
    bad-field-count, bad-segment-id, bad-time, negative-time, end-before-start, bad-label and, when
    ``known_mids`` is given, unknown-mid. The first line must be the header (``HEADER``): a file whose first
    line is anything else is one ``bad-header`` dead letter standing for all its lines, and yields no
    events (its columns cannot be trusted). An empty file is one ``empty-file`` dead letter (0 records).
    Zero-length events (end == start) are good; times are kept to the millisecond (the release has 3
    decimals); repeated or overlapping events are all kept. Numbers are ASCII digits only (Python's float()
    would take '٣' or '３' for 3: here they are bad-time).

    ``dropped`` says why nothing of the file is usable (empty, bad header, not one good line): the build
    fails on it (:func:`file_problems`), since a file given and silently ignored loses every label it holds.
    """
    return _parse(data, path, HEADER, split, known_mids)


def parse_framed(data: bytes, path: str, split: str | None = None,
                 known_mids: Mapping[str, str] | frozenset[str] | None = None) -> ParsedStrong:
    """Parses ``audioset_eval_strong_framed_posneg.tsv``: as :func:`parse_events`, plus a ``present``
    column (True for PRESENT, False for NOT_PRESENT; anything else is a ``bad-present`` dead letter) and
    rows whose start is not on the 0.96 s grid (within 1 ms) are ``off-grid-frame`` dead letters."""
    return _parse(data, path, FRAMED_HEADER, split, known_mids)


@dataclasses.dataclass
class DisplayNames:
    names: dict[str, str]      # MID -> display name, file order
    dead_letters: list[dict]
    lines: int = 0             # non-blank lines read
    dropped: str | None = None  # why no line could be used (empty file, not one MID<TAB>name line)

    def stats(self, path: str) -> dict:
        """The file's entry under ``run_stats['strong']['files']``, as :meth:`ParsedStrong.stats`."""
        return {'file': path, 'lines_in': self.lines, 'lines_rejected': _lines_rejected(self.dead_letters),
                'rows_ok': len(self.names), 'dropped': self.dropped}


def parse_display_names(data: bytes, path: str = 'mid_to_display_name.tsv') -> DisplayNames:
    """Parses ``mid_to_display_name.tsv`` (no header, ``MID<TAB>name``, 456 rows). A line that is not
    a MID, a tab and a non-empty name is a ``bad-display-name`` dead letter; a second line for a MID is a
    ``duplicate-mid`` dead letter (the first wins). ``dropped`` when the file is empty or has no good line."""
    names: dict[str, str] = {}
    bad = []
    lines = 0
    for i, line in enumerate(_lines(data).to_pylist(), 1):
        if not line.strip():
            continue
        lines += 1
        mid, sep, name = line.partition('\t')
        mid, name = mid.strip(), name.strip()
        if not sep or not name or not re.match(_MID, mid):
            bad.append(deadletter.dead_letter(Stage.PARSE_STRONG, 'bad-display-name', path,
                                              f'expected MID<TAB>name: {line[:200]!r}', line_number=i))
        elif mid in names:
            bad.append(deadletter.dead_letter(Stage.PARSE_STRONG, 'duplicate-mid', path,
                                              f'{mid} named again ({name!r}; kept {names[mid]!r})',
                                              line_number=i))
        else:
            names[mid] = name
    dropped = None
    if not lines:
        dropped = 'empty file: no MID<TAB>name line'
    elif not names:
        dropped = _none_usable(lines, bad)
    return DisplayNames(names, bad, lines, dropped)


def _none_usable(lines: int, dead_letters: list[dict]) -> str:
    first = dead_letters[0]
    return (f'none of its {lines} lines is usable (line {first["line_number"]}: {first["reason"]}; '
            f'every line is a dead letter)')


def _mask(arr) -> np.ndarray:
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False)


def _parse(data: bytes, path: str, columns: tuple[str, ...], split: str | None,
           known_mids) -> ParsedStrong:
    schema = FRAMED_SCHEMA if len(columns) == 5 else EVENTS_SCHEMA
    empty = schema.empty_table()
    lines = _lines(data)
    nonblank = ~_mask(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(lines)), 0))
    if not nonblank.any():
        return ParsedStrong(empty, [deadletter.dead_letter(
            Stage.PARSE_STRONG, 'empty-file', path, 'empty file: no header, no events', records=0, split=split)], 0,
            'empty file: no header, no events')
    header = tuple(f.strip() for f in lines[0].as_py().split('\t'))
    data_lines = int(nonblank[1:].sum())
    if header != columns:
        why = (f'line 1 must be the header {chr(9).join(columns)!r} ({len(columns)} fields), got '
               f'{lines[0].as_py()[:200]!r} ({len(header)} fields)')
        return ParsedStrong(empty, [deadletter.dead_letter(
            Stage.PARSE_STRONG, 'bad-header', path, f'{why}; the file is not read ({data_lines} lines after it)',
            line_number=1, records=data_lines, split=split)], data_lines, f'bad header: {why}')
    is_data = nonblank.copy()
    is_data[0] = False
    rows = pc.utf8_trim_whitespace(lines.filter(pa.array(is_data)))
    numbers = np.flatnonzero(is_data).astype(np.int64) + 1
    n = len(rows)
    reason = np.full(n, None, object)

    def flag(mask: np.ndarray, why: str) -> None:
        reason[mask & (reason == None)] = why  # noqa: E711 -- element-wise on an object array

    pattern = '^' + r'\t'.join(f'(?P<f{i}>[^\t]*)' for i in range(len(columns))) + '$'
    fields = pc.extract_regex(rows, pattern)
    flag(~_mask(pc.is_valid(fields)), 'bad-field-count')

    def field(i: int) -> pa.Array:
        return pc.utf8_trim_whitespace(pc.fill_null(pc.struct_field(fields, f'f{i}'), ''))

    sid, on_s, off_s, label = field(0), field(1), field(2), field(3)
    parts = pc.extract_regex(sid, _SEGMENT_ID)
    flag(~_mask(pc.is_valid(parts)), 'bad-segment-id')
    numeric = _mask(pc.match_substring_regex(on_s, _TIME)) & _mask(pc.match_substring_regex(off_s, _TIME))
    flag(~numeric, 'bad-time')
    num = pa.array(numeric)
    onset = pc.cast(pc.if_else(num, on_s, '0'), pa.float64()).to_numpy(zero_copy_only=False)
    offset = pc.cast(pc.if_else(num, off_s, '0'), pa.float64()).to_numpy(zero_copy_only=False)
    onset_ms, offset_ms = keys.start_ms(onset), keys.start_ms(offset)
    flag((onset_ms < 0) | (offset_ms < 0), 'negative-time')
    flag(offset_ms < onset_ms, 'end-before-start')
    flag(~_mask(pc.match_substring_regex(label, _MID)), 'bad-label')
    if known_mids is not None:
        vocab = pa.array(sorted(known_mids), pa.string())
        flag(~_mask(pc.is_in(label, value_set=vocab)), 'unknown-mid')
    present = None
    if len(columns) == 5:
        pres = field(4)
        is_present = _mask(pc.equal(pres, 'PRESENT'))
        flag(~is_present & ~_mask(pc.equal(pres, 'NOT_PRESENT')), 'bad-present')
        frame = np.round(onset_ms / FRAMED_HOP_MS).astype(np.int64)
        flag(np.abs(onset_ms - frame * FRAMED_HOP_MS) > 1, 'off-grid-frame')
        present = is_present
    ok = reason == None  # noqa: E711
    okm = pa.array(ok)
    vid = pc.struct_field(parts, 'vid').filter(okm)
    start_ms = pc.cast(pc.struct_field(parts, 'ms').filter(okm), pa.int64())
    cols = {
        'segment_id': sid.filter(okm),
        'video_id': vid,
        'start_ms': start_ms,
        # Times to the millisecond: ms / 1000 is the same double as parsing the release's 3 decimals.
        'onset': pa.array(onset_ms[ok] / 1000.0),
        'offset': pa.array(offset_ms[ok] / 1000.0),
        'label': label.filter(okm),
        'line_number': pa.array(numbers[ok]),
    }
    if present is not None:
        cols['present'] = pa.array(present[ok])
    table = pa.table(cols, schema=schema)
    bad = [_dead_letter(path, split, columns, reason[i], int(numbers[i]), rows[i].as_py())
           for i in np.flatnonzero(~ok).tolist()]
    return ParsedStrong(table, bad, n, _none_usable(n, bad) if n and not table.num_rows else None)


def file_problems(strong_stats: dict | None, max_bad_fraction: float) -> tuple[list[str], list[str]]:
    """(files dropped whole, files with too many rejected lines) from ``run_stats['strong']`` (per file:
    ``file``, ``lines_in``, ``lines_rejected``, ``dropped``; see :meth:`ParsedStrong.stats`).

    A file given but not usable at all (empty, bad header, no good line) is always a problem, whatever
    ``max_bad_fraction``: every label it holds would be silently missing. Otherwise a file fails when more
    than ``max_bad_fraction`` of its lines were rejected, as a segment CSV does. Lines, not events: a bad
    line is not known to be one event.

    >>> file_problems({'files': {'train': {'file': 't.tsv', 'lines_in': 10, 'lines_rejected': 2}}}, 0.05)
    ([], ['t.tsv: 2 of 10 lines rejected (20.0%)'])
    """
    whole, over = [], []
    for _, f in sorted(((strong_stats or {}).get('files') or {}).items()):
        n, rejected = f.get('lines_in', 0), f.get('lines_rejected', 0)
        if f.get('dropped'):
            whole.append(f'{f["file"]}: AudioSet Strong file not used at all: {f["dropped"]}')
        elif n and rejected / n > max_bad_fraction:
            over.append(f'{f["file"]}: {rejected} of {n} lines rejected ({rejected / n:.1%})')
    return whole, over


def _dead_letter(path: str, split: str | None, columns: tuple[str, ...], reason: str, line_number: int,
                 line: str) -> dict:
    """The dead letter of one bad line; the segment's video id and start when its segment_id parses."""
    extra: dict = {}
    vid, sep, ms = line.split('\t', 1)[0].strip().rpartition('_')
    if sep and re.match(_SEGMENT_ID, f'{vid}_{ms}'):
        extra.update(video_id=vid, start_time_seconds=int(ms) / 1000.0)
    detail = _MESSAGES[reason].format(n=len(columns), names=', '.join(columns))
    return deadletter.dead_letter(Stage.PARSE_STRONG, reason, path, f'{detail}: {line[:200]!r}',
                                  line_number=line_number, split=split, **extra)


def _ms(seconds, n: int) -> np.ndarray:
    return np.broadcast_to(keys.start_ms(np.asarray(seconds, np.float64)), (n,)).astype(np.int64)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + c)`` for each (s, c), without a Python loop."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(counts)
    base = np.repeat(starts - (ends - counts), counts)
    return base + np.arange(total, dtype=np.int64)


class _Grouped:
    """A table's rows grouped by segment_id, sorted within a group by ``order_by``; lookup by key."""

    def __init__(self, table: pa.Table, order_by: list[str]):
        table = table.combine_chunks()
        order = pc.sort_indices(table, sort_keys=[('segment_id', 'ascending')] +
                                [(c, 'ascending') for c in order_by])
        self.table = table.take(order)
        sid = self.table['segment_id'].combine_chunks()
        n = len(sid)
        change = np.ones(n, bool)
        if n > 1:
            fixed = keys.fixed_width(sid, int(keys.byte_lengths(sid).max()))
            change[1:] = fixed[1:] != fixed[:-1]
        self.first = np.flatnonzero(change)                          # first row of each segment
        self.counts = np.diff(np.append(self.first, n)).astype(np.int64)
        self.segment_ids = sid.take(pa.array(self.first, pa.int64()))
        self.index = KeyIndex(self.segment_ids) if n else None

    def __len__(self) -> int:
        return len(self.first)

    def lookup(self, segment_ids: pa.Array) -> np.ndarray:
        if self.index is None:
            return np.full(len(segment_ids), -1, np.int64)
        return self.index.lookup(segment_ids)

    def pairs(self, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in ``group``, table row) for every row of every group (-1: none)."""
        has = group >= 0
        pos = np.flatnonzero(has)
        counts = self.counts[group[has]]
        return np.repeat(pos, counts), _ranges(self.first[group[has]], counts)


def _label_codes(labels: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Codes whose order is the MIDs' order, and the sorted vocabulary they index."""
    vocab = pc.unique(labels).sort()
    return pc.index_in(labels, value_set=vocab).to_numpy(zero_copy_only=False).astype(np.int64), vocab


def _nested_lists(n_rows: int, valid: np.ndarray, frames_per_row: np.ndarray, slot: np.ndarray,
                  codes: np.ndarray, vocab: pa.Array) -> pa.Array:
    """list<list<string>>: row r has ``frames_per_row[r]`` frames (null where not ``valid``); each
    (slot, code) pair puts MID ``vocab[code]`` in frame ``slot`` (a global frame number), sorted, once."""
    total = int(frames_per_row.sum())
    order = np.lexsort((codes, slot))
    slot, codes = slot[order], codes[order]
    keep = np.ones(len(slot), bool)
    keep[1:] = (slot[1:] != slot[:-1]) | (codes[1:] != codes[:-1])
    slot, codes = slot[keep], codes[keep]
    inner = np.zeros(total + 1, np.int32)
    np.cumsum(np.bincount(slot, minlength=total), out=inner[1:])
    outer = np.zeros(n_rows + 1, np.int32)
    np.cumsum(frames_per_row, out=outer[1:])
    values = vocab.take(pa.array(codes, pa.int64())) if len(codes) else pa.array([], pa.string())
    frames = pa.ListArray.from_arrays(pa.array(inner), values)
    return pa.ListArray.from_arrays(pa.array(outer), frames, mask=pa.array(~valid))


@dataclasses.dataclass
class Attached:
    """Strong labels of a batch of segments, each array aligned with the batch (null: no strong labels)."""
    strong_events: pa.Array              # list<struct<label, label_name, start, end>>
    frame_labels: pa.Array               # list<list<string>>, one entry per embedding frame
    frame_positives_official: pa.Array   # list<list<string>>, per 0.96 s frame of the framed file
    frame_negatives: pa.Array            # list<list<string>>, idem, NOT_PRESENT
    joined: np.ndarray                   # int64: StrongIndex segment numbers matched by this batch
    events: int                          # events attached (over the batch's entries)
    events_clipped: int                  # of which ended past the segment's duration (end set to it)
    dead_letters: list[dict]             # events starting after the segment's end (not attached)
    segment_rows: np.ndarray | None = None  # int64 per entry: its StrongIndex segment number, -1 if none


@dataclasses.dataclass
class Coverage:
    segments: int              # strong segments in the file(s)
    events: int
    segments_joined: int       # strong segments matched by at least one built segment
    events_joined: int
    unjoined: pa.Table         # segment_id, video_id, start_ms, events, line_number (first line), file order


class StrongIndex:
    """One split's strong events (and framed posneg rows), ready to attach to batches of built segments.

    Built once per split (sorting 934,821 events takes about a second); :meth:`attach` is vectorized
    over a batch; :meth:`coverage` takes the union of the batches' ``joined`` and lists the strong
    segments no built segment matched (a whole-split property: never decide it per batch).
    """

    def __init__(self, events: pa.Table, names: Mapping[str, str], framed: pa.Table | None = None,
                 source: str = 'strong'):
        events = events.select(EVENTS_SCHEMA.names)
        ms = {c: keys.start_ms(events[c].to_numpy()) for c in ('onset', 'offset')}
        events = events.append_column('onset_ms', pa.array(ms['onset'])) \
                       .append_column('offset_ms', pa.array(ms['offset']))
        self.source = source
        self.events = _Grouped(events, ['onset_ms', 'label', 'offset_ms', 'line_number'])
        self.names = dict(names)
        t = self.events.table
        self._onset = t['onset_ms'].to_numpy()
        self._offset = t['offset_ms'].to_numpy()
        self._codes, self._vocab = _label_codes(t['label'].combine_chunks())
        self._label_names = pa.array([self.names.get(m) for m in self._vocab.to_pylist()], pa.string())
        self.framed = None
        if framed is not None:
            self.framed = _Grouped(framed.select(FRAMED_SCHEMA.names), ['onset', 'label'])
            f = self.framed.table
            self._framed_k = np.round(keys.start_ms(f['onset'].to_numpy()) / FRAMED_HOP_MS).astype(np.int64)
            self._framed_codes, self._framed_vocab = _label_codes(f['label'].combine_chunks())
            self._framed_present = f['present'].to_numpy(zero_copy_only=False)

    def attach(self, segment_ids: pa.Array, durations, num_frames, frame_hop) -> Attached:
        """Strong labels for each entry ``i`` of a batch: segment ``segment_ids[i]`` (``<YTID>_<start ms>``),
        ``durations[i]`` seconds long, with ``num_frames[i]`` embedding frames ``frame_hop[i]`` seconds
        apart (``RELEASED_HOP`` or ``COMPUTED_HOP``; scalars broadcast). Call once per (segment,
        embedding), then repeat the values over the segment's clip rows.

        An event ending past the duration is clipped to it (``events_clipped``); one starting after it is
        not attached and becomes a ``join-strong/event-after-segment-end`` dead letter.
        """
        if isinstance(segment_ids, pa.ChunkedArray):
            segment_ids = segment_ids.combine_chunks()
        segment_ids = pc.cast(segment_ids, pa.string())
        n = len(segment_ids)
        dur_ms, hop_ms = _ms(durations, n), _ms(frame_hop, n)
        frames_n = np.broadcast_to(np.asarray(num_frames, np.int64), (n,)).astype(np.int64)
        if (hop_ms <= 0).any() or (frames_n < 0).any() or (dur_ms < 0).any():
            raise ValueError('frame_hop must be > 0, num_frames and durations >= 0')
        group = self.events.lookup(segment_ids)
        valid = group >= 0
        row_all, ev_all = self.events.pairs(group)
        a, b, d = self._onset[ev_all], self._offset[ev_all], dur_ms[row_all]
        after = a > d
        clipped = ~after & (b > d)
        row, ev, a, b = row_all[~after], ev_all[~after], a[~after], np.minimum(b[~after], d[~after])
        struct = pa.StructArray.from_arrays(
            [self._vocab.take(pa.array(self._codes[ev])), self._label_names.take(pa.array(self._codes[ev])),
             pa.array(a / 1000.0), pa.array(b / 1000.0)], fields=list(STRONG_EVENT))
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(np.bincount(row, minlength=n), out=offsets[1:])
        strong_events = pa.ListArray.from_arrays(pa.array(offsets), struct, mask=pa.array(~valid))

        # Frames k with a < k*h + W and b > k*h, in integer ms: k in [(a - W) // h + 1, (b - 1) // h].
        h = hop_ms[row]
        lo = np.maximum((a - WINDOW_MS) // h + 1, 0)
        hi = np.minimum((b - 1) // h, frames_n[row] - 1)
        count = np.maximum(hi - lo + 1, 0)
        frames_per_row = np.where(valid, frames_n, 0)
        first_slot = np.concatenate([[0], np.cumsum(frames_per_row)[:-1]]).astype(np.int64)
        pair_of = np.repeat(np.arange(len(row)), count)
        k = _ranges(lo, count)
        frame_labels = _nested_lists(n, valid, frames_per_row, first_slot[row[pair_of]] + k,
                                     self._codes[ev[pair_of]], self._vocab)

        positives, negatives = self._framed_lists(segment_ids)
        # One dead letter per event, however many entries of the batch share its segment.
        late, where = np.unique(ev_all[after], return_index=True)
        late_dur = dur_ms[row_all[after][where]]
        dead = [self._after_end(e, d) for e, d in zip(late.tolist(), late_dur.tolist())]
        return Attached(strong_events, frame_labels, positives, negatives,
                        joined=np.unique(group[valid]), events=len(row), events_clipped=int(clipped.sum()),
                        dead_letters=dead, segment_rows=group)

    def _after_end(self, ev: int, dur_ms: int) -> dict:
        t = self.events.table
        return deadletter.dead_letter(
            Stage.JOIN_STRONG, 'event-after-segment-end', self.source,
            f'{t["label"][ev].as_py()} event starts at {self._onset[ev] / 1000:.3f} s, after the segment\'s '
            f'end ({dur_ms / 1000:.3f} s)', line_number=int(t['line_number'][ev].as_py()),
            video_id=t['video_id'][ev].as_py(), start_time_seconds=t['start_ms'][ev].as_py() / 1000.0)

    def _framed_lists(self, segment_ids: pa.Array) -> tuple[pa.Array, pa.Array]:
        n = len(segment_ids)
        if self.framed is None:
            none = pa.nulls(n, FRAME_LABELS)
            return none, none
        group = self.framed.lookup(segment_ids)
        valid = group >= 0
        row, fr = self.framed.pairs(group)
        k = self._framed_k[fr]
        # A segment's list runs to the last frame the file marks for it.
        last = np.full(n, -1, np.int64)
        np.maximum.at(last, row, k)
        frames_per_row = np.where(valid, last + 1, 0)
        first_slot = np.concatenate([[0], np.cumsum(frames_per_row)[:-1]]).astype(np.int64)
        present = self._framed_present[fr]
        out = []
        for want in (True, False):
            sel = present == want
            out.append(_nested_lists(n, valid, frames_per_row, first_slot[row[sel]] + k[sel],
                                     self._framed_codes[fr[sel]], self._framed_vocab))
        return out[0], out[1]

    def coverage(self, joined: np.ndarray) -> Coverage:
        """Counts over the whole split, given the union (or concatenation) of the batches' ``joined``."""
        hit = np.zeros(len(self.events), bool)
        hit[np.asarray(joined, np.int64)] = True
        t = self.events.table
        first = self.events.first
        miss = np.flatnonzero(~hit)
        unjoined = pa.table({
            'segment_id': self.events.segment_ids.take(pa.array(miss, pa.int64())),
            'video_id': t['video_id'].take(pa.array(first[miss], pa.int64())),
            'start_ms': t['start_ms'].take(pa.array(first[miss], pa.int64())),
            'events': pa.array(self.events.counts[miss]),
            'line_number': pa.array(self._first_lines()[miss]),
        })
        unjoined = unjoined.sort_by('line_number')
        return Coverage(segments=len(self.events), events=t.num_rows, segments_joined=int(hit.sum()),
                        events_joined=int(self.events.counts[hit].sum()), unjoined=unjoined)

    def _first_lines(self) -> np.ndarray:
        lines = self.events.table['line_number'].to_numpy()
        if not len(lines):
            return np.zeros(0, np.int64)
        return np.minimum.reduceat(lines, self.events.first)


def attach(events: pa.Table, segment_ids: pa.Array, durations, num_frames, frame_hop,
           names: Mapping[str, str], framed: pa.Table | None = None) -> Attached:
    """One-off :meth:`StrongIndex.attach` (build the index once per split instead when attaching batches)."""
    return StrongIndex(events, names, framed).attach(segment_ids, durations, num_frames, frame_hop)


def label_counts(events: pa.Table) -> pa.Table:
    """Per MID: ``strong_segments`` (segments with at least one event of it) and ``strong_events``, for the
    class table. Sorted by MID."""
    if events.num_rows == 0:
        return pa.table({'label': pa.array([], pa.string()), 'strong_segments': pa.array([], pa.int64()),
                         'strong_events': pa.array([], pa.int64())})
    t = events.select(['label', 'segment_id'])
    ev = t.group_by('label').aggregate([('segment_id', 'count')])
    seg = t.group_by('label').aggregate([('segment_id', 'count_distinct')])
    out = ev.join(seg, 'label').rename_columns(['label', 'strong_events', 'strong_segments'])
    return out.select(['label', 'strong_segments', 'strong_events']).sort_by('label')
