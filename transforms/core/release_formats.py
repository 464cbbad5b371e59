"""What each text file of the AudioSet release looks like, checked on the bytes as downloaded: the proof of
wholeness for files Google publishes without a checksum (a body cut short with no Content-Length to say
so, an error page served with 200, two versions spliced). Pure Python: no Beam, no network.

Every text file: valid UTF-8, no NUL byte, not an HTML or XML page, not empty, and ending with a newline
(every file of the release seen so far does; a body cut inside its last line does not). Then per file:

* segment CSVs: the three ``#`` header lines (``# Segments csv created ...``, ``# num_ytids=N, num_segs=N,
  ...``, ``# YTID, start_seconds, end_seconds, positive_labels``), rows that start with an 11-character
  YouTube id and a comma, and exactly ``num_segs`` of them;
* strong TSVs: the header row, then rows of 4 tab-separated fields (5 in the framed file, the last one
  ``PRESENT`` or ``NOT_PRESENT``), none empty, at least one row;
* ``mid_to_display_name.tsv``: no header, ``/m/...<TAB>name`` on every line;
* ``qa_true_counts.csv``: the header ``label_id,num_rated,num_true``, then ``MID,rated,true`` rows with
  counts that are integers, true <= rated;
* ``rerated_video_ids.txt``: one 11-character YouTube id a line.

The checks prove the file is whole and of the right kind; bad rows inside a whole file are the build's
business (it dead-letters them).

    >>> problem('rerated_video_ids.txt', [b'--4gqARaEJE\\nx_Y-z012345\\n']) is None
    True
    >>> problem('rerated_video_ids.txt', [b'<!DOCTYPE html><html>Service Unavailable</html>\\n'])
    'an HTML/XML page, not the file (a proxy or error page served with HTTP 200)'
"""
from __future__ import annotations

import codecs
import re
from typing import Callable, Iterable, Iterator

SEGMENTS_HEADER = '# YTID, start_seconds, end_seconds, positive_labels'
STRONG_HEADER = 'segment_id\tstart_time_seconds\tend_time_seconds\tlabel'
FRAMED_HEADER = STRONG_HEADER + '\tpresent'
QA_HEADER = 'label_id,num_rated,num_true'

_MARKUP = (b'<!doctype', b'<html', b'<?xml', b'<head', b'<body', b'<error')
_CREATED = re.compile(r'# Segments csv created \S.*')
_COUNTS = re.compile(r'# num_ytids=(\d+), num_segs=(\d+)(, .*)?')
_SEGMENT_ROW = re.compile(r'[A-Za-z0-9_-]{11},')
_YTID = re.compile(r'[A-Za-z0-9_-]{11}')
_MID = re.compile(r'/[a-z]+/\S+')
_HEAD_BYTES = 1024      # what the markup check looks at


class _Refused(Exception):
    """Why a file is not what it should be (the message)."""


def _cut(line: str) -> str:
    return repr(line if len(line) <= 80 else line[:80] + '...')


def _rechunk(chunks: Iterable[bytes], at_least: int) -> Iterator[bytes]:
    """``chunks`` with the first one at least ``at_least`` bytes long (unless the whole is shorter), so the
    start of the file is looked at in one piece however the caller reads."""
    head = b''
    it = iter(chunks)
    for data in it:
        head += data
        if len(head) >= at_least:
            break
    if head:
        yield head
    yield from it


def _lines(chunks: Iterable[bytes]) -> Iterator[tuple[int, str]]:
    """(line number from 1, line without its '\\n' or '\\r\\n') of a text file given as byte chunks; raises
    _Refused for markup, a NUL byte, bytes that are not UTF-8, an empty file, a last line without '\\n'."""
    decoder = codecs.getincrementaldecoder('utf-8')('strict')
    seen, number, tail = 0, 0, ''
    for data in _rechunk(chunks, _HEAD_BYTES):
        if not seen:
            head = data[:_HEAD_BYTES].removeprefix(codecs.BOM_UTF8).lstrip().lower()
            if head.startswith(_MARKUP):
                raise _Refused('an HTML/XML page, not the file (a proxy or error page served with HTTP 200)')
            data = data.removeprefix(codecs.BOM_UTF8)
        if (nul := data.find(b'\0')) >= 0:
            raise _Refused(f'a NUL byte at byte {seen + nul:,}: binary data, not text')
        try:
            text = decoder.decode(data)
        except UnicodeDecodeError as e:
            raise _Refused(f'not UTF-8 text ({e.reason} at byte {seen + e.start:,})') from None
        seen += len(data)
        pieces = (tail + text).split('\n')
        tail = pieces.pop()
        for line in pieces:
            number += 1
            yield number, line.removesuffix('\r')
    try:
        decoder.decode(b'', final=True)
    except UnicodeDecodeError:
        raise _Refused(f'not UTF-8 text (a character cut at byte {seen:,}, the end)') from None
    if not seen:
        raise _Refused('empty (0 bytes)')
    if tail:
        raise _Refused(f'line {number + 1} is cut: the file does not end with a newline ({_cut(tail)})')


def _expect_header(lines: Iterator[tuple[int, str]], header: str, what: str) -> None:
    got = next(lines, None)
    if got is None or got[1] != header:
        raise _Refused(f'line 1 is {_cut(got[1]) if got else "missing"}, but {what} starts with the header '
                       f'{header!r}')


def check_segments_csv(lines: Iterator[tuple[int, str]]) -> None:
    """A segment CSV: the three header lines, rows starting ``<11-character YTID>,``, exactly num_segs."""
    expected = (('# Segments csv created <date>', _CREATED.fullmatch),
                ('# num_ytids=N, num_segs=N, ...', _COUNTS.fullmatch),
                (SEGMENTS_HEADER, lambda s: s == SEGMENTS_HEADER or None))
    declared = None
    for number, (want, match) in enumerate(expected, start=1):
        line = next(lines, (None, None))[1]
        m = match(line) if line is not None else None
        if not m:
            raise _Refused(f'line {number} is {_cut(line) if line is not None else "missing"}, but a segment CSV '
                           f'has {want!r} there')
        if want.startswith('# num_ytids'):
            declared = int(m.group(2))
    rows = 0
    for number, line in lines:
        if not line.strip():
            continue
        if not _SEGMENT_ROW.match(line):
            raise _Refused(f'line {number} is {_cut(line)}: not a segment row (YTID, start, end, "labels")')
        rows += 1
    if rows != declared:
        raise _Refused(f'{rows:,} rows, but its header says num_segs={declared:,} (a cut or altered download)')


def _check_tsv(lines: Iterator[tuple[int, str]], header: str, what: str) -> None:
    _expect_header(lines, header, what)
    fields, rows = header.count('\t') + 1, 0
    for number, line in lines:
        if not line:
            continue
        parts = line.split('\t')
        if len(parts) != fields or not all(parts):
            raise _Refused(f'line {number} is {_cut(line)}: not {fields} non-empty tab-separated fields')
        if header == FRAMED_HEADER and parts[-1] not in ('PRESENT', 'NOT_PRESENT'):
            raise _Refused(f'line {number} is {_cut(line)}: present must be PRESENT or NOT_PRESENT')
        rows += 1
    if not rows:
        raise _Refused(f'the header and no rows: not {what}')


def check_strong_tsv(lines: Iterator[tuple[int, str]]) -> None:
    """audioset_{train,eval}_strong.tsv: the header row, then rows of 4 non-empty tab-separated fields."""
    _check_tsv(lines, STRONG_HEADER, 'a strong-label TSV')


def check_framed_tsv(lines: Iterator[tuple[int, str]]) -> None:
    """audioset_eval_strong_framed_posneg.tsv: the header row, then rows of 5 fields ending in
    PRESENT/NOT_PRESENT."""
    _check_tsv(lines, FRAMED_HEADER, 'the framed strong-label TSV')


def check_display_names(lines: Iterator[tuple[int, str]]) -> None:
    """mid_to_display_name.tsv: no header; ``MID<TAB>name`` on every line."""
    rows = 0
    for number, line in lines:
        mid, tab, name = line.partition('\t')
        if not (_MID.fullmatch(mid) and tab and name.strip()):
            raise _Refused(f'line {number} is {_cut(line)}: not MID<TAB>display name')
        rows += 1
    if not rows:
        raise _Refused('no rows')


def check_qa_counts(lines: Iterator[tuple[int, str]]) -> None:
    """qa_true_counts.csv: the header, then ``MID,num_rated,num_true`` rows, true <= rated."""
    _expect_header(lines, QA_HEADER, 'qa_true_counts.csv')
    rows = 0
    for number, line in lines:
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(',')]
        if len(parts) != 3 or not _MID.fullmatch(parts[0]) or not (parts[1].isdigit() and parts[2].isdigit()) \
                or int(parts[2]) > int(parts[1]):
            raise _Refused(f'line {number} is {_cut(line)}: not MID,num_rated,num_true (integers, true <= rated)')
        rows += 1
    if not rows:
        raise _Refused('the header and no rows')


def check_video_ids(lines: Iterator[tuple[int, str]]) -> None:
    """rerated_video_ids.txt: one 11-character YouTube id a line."""
    rows = 0
    for number, line in lines:
        if not _YTID.fullmatch(line.strip()):
            raise _Refused(f'line {number} is {_cut(line)}: not an 11-character YouTube id')
        rows += 1
    if not rows:
        raise _Refused('no ids')


CHECKS: dict[str, Callable[[Iterator[tuple[int, str]]], None]] = {
    'eval_segments.csv': check_segments_csv,
    'balanced_train_segments.csv': check_segments_csv,
    'unbalanced_train_segments.csv': check_segments_csv,
    'audioset_train_strong.tsv': check_strong_tsv,
    'audioset_eval_strong.tsv': check_strong_tsv,
    'audioset_eval_strong_framed_posneg.tsv': check_framed_tsv,
    'mid_to_display_name.tsv': check_display_names,
    'qa_true_counts.csv': check_qa_counts,
    'rerated_video_ids.txt': check_video_ids,
}


def problem(name: str, chunks: Iterable[bytes]) -> str | None:
    """Why the bytes ``chunks`` are not the release file ``name``, or None (also for a file without a format
    check here: the tarball, the class index, the ontology, which have checksums). Reads ``chunks`` only as
    far as the first problem."""
    check = CHECKS.get(name)
    if check is None:
        return None
    try:
        check(_lines(chunks))
    except _Refused as e:
        return str(e)
    return None
