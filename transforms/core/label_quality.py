"""Google's per-class label quality, ``qa_true_counts.csv``: how many re-rated segments confirmed a label.

Format (http://storage.googleapis.com/us_audioset/youtube_corpus/v1/qa/qa_true_counts.csv): a header
``label_id,num_rated,num_true``, then one row per class in class-index order, ``label_id`` a MID. About
ten segments were re-rated per class; ``0,0`` means the class was not assessed.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import re

HEADER = ['label_id', 'num_rated', 'num_true']
# ASCII digits only: str.isdigit() and int() also take '٣' (read as 3) or '²' (which int() then refuses).
_COUNT = re.compile(r'[0-9]{1,18}')


@dataclasses.dataclass(frozen=True)
class LabelQuality:
    source: str
    counts: dict  # MID -> (num_rated, num_true)

    def quality(self, mid: str) -> float | None:
        """num_true / num_rated; None when the class was not assessed or is not in the file."""
        rated, true = self.counts.get(mid, (0, 0))
        return true / rated if rated else None


def parse_label_quality(data: bytes, source: str, class_mids) -> LabelQuality:
    """Parses and checks the file; raises ValueError naming the file and line on anything malformed: a
    wrong header, a row that is not three fields, a count that is not a non-negative integer in ASCII
    digits, more true than rated, a MID that is not in the class index, or a MID listed twice. Line numbers
    are the file's lines (a quoted field may span several)."""
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        raise ValueError(f'{source}: not UTF-8 text ({e.reason} at byte {e.start})') from None
    reader = csv.reader(io.StringIO(text))
    try:
        # (first line of the row, row): reader.line_num is the last line a row read.
        rows = []
        start = 1
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as e:
        raise ValueError(f'{source}: line {reader.line_num}: not CSV ({e})') from None
    if not rows or [c.strip() for c in rows[0][1]] != HEADER:
        got = ','.join(rows[0][1]) if rows else '(empty file)'
        raise ValueError(f'{source}: line 1: expected the header "{",".join(HEADER)}", got {got!r}')
    known = set(class_mids)
    counts: dict = {}
    lines: dict = {}
    for line, row in rows[1:]:
        if not row or not ''.join(row).strip():
            continue
        if len(row) != 3:
            raise ValueError(f'{source}: line {line}: expected 3 fields label_id,num_rated,num_true, got {row!r}')
        mid, rated, true = (c.strip() for c in row)
        if not (_COUNT.fullmatch(rated) and _COUNT.fullmatch(true)):
            raise ValueError(f'{source}: line {line}: num_rated and num_true must be non-negative integers '
                             f'(ASCII digits 0-9, at most 18), got {rated!r}, {true!r}')
        rated_n, true_n = int(rated), int(true)
        if true_n > rated_n:
            raise ValueError(f'{source}: line {line}: num_true {true_n} is more than num_rated {rated_n}')
        if mid not in known:
            raise ValueError(f'{source}: line {line}: {mid!r} is not a MID of the class index')
        if mid in lines:
            raise ValueError(f'{source}: line {line}: {mid} listed twice (first on line {lines[mid]})')
        lines[mid] = line
        counts[mid] = (rated_n, true_n)
    return LabelQuality(source, counts)
