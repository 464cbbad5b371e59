"""Which segments to fetch: rows of the build's ``missing_features`` table or of a segments CSV, filtered
by split and label (optionally with every ontology descendant of a label), deterministic and deduplicated.
"""
from __future__ import annotations

import dataclasses
import math
import posixpath
import urllib.parse

import pyarrow as pa

from audioset_beam import layout
from audioset_beam.schema import SPLITS
from transforms.core.download.naming import _YTID, clip_name
from transforms.core.ontology import Ontology, Vocabulary
from transforms.core.segments_csv import parse_segments_csv


@dataclasses.dataclass(frozen=True)
class Segment:
    ytid: str
    start_ms: int
    end_ms: int
    split: str
    labels: tuple[str, ...]
    source: str  # '<csv>:<line>' the row came from, for messages

    @property
    def segment_id(self) -> str:
        return layout.segment_id(self.ytid, self.start_ms)

    @property
    def start(self) -> float:
        return self.start_ms / 1000

    @property
    def end(self) -> float:
        return self.end_ms / 1000

    @property
    def clip_name(self) -> str:
        return clip_name(self.ytid, self.start_ms, self.end_ms)


def _segment(ytid, start, end, labels, split: str, source: str) -> Segment:
    """One row as a Segment; ValueError for anything no clip can be made of (a crafted or damaged row)."""
    if not isinstance(ytid, str) or not _YTID.match(ytid):
        raise ValueError(f'bad YouTube id {ytid!r}')
    for name, t in (('start', start), ('end', end)):
        if not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise ValueError(f'bad {name} time {t!r}')
    seg = Segment(ytid, layout.start_ms(start), layout.start_ms(end), split,
                  tuple(str(m) for m in labels or ()), source)
    if not seg.start_ms < seg.end_ms:
        raise ValueError(f'start {start!r} is not before end {end!r}')
    return seg


def _segments(table: pa.Table, split: str, csv_file: str | None) -> tuple[list[Segment], list[dict]]:
    cols = table.to_pydict()
    files = cols.get('csv_file') or [csv_file] * table.num_rows
    good, bad = [], []
    for v, s, e, lab, f, line in zip(cols['video_id'], cols['start_time_seconds'], cols['end_time_seconds'],
                                     cols['labels'], files, cols['line_number']):
        try:
            good.append(_segment(v, s, e, lab, split, f'{f}:{line}'))
        except ValueError as err:
            bad.append({'line_number': line, 'source': f, 'error': str(err)})
    return good, bad


def from_missing_features(table: pa.Table, split: str) -> tuple[list[Segment], list[dict]]:
    """Rows of one ``missing_features/split=<split>`` file (MISSING_FEATURES schema), in file order, and
    the rows no clip can be made of (bad id or times), each ``{line_number, source, error}``."""
    return _segments(table, split, None)


def from_segments_csv(data: bytes, source: str, split: str, vocab: Vocabulary) -> tuple[list[Segment], list[dict]]:
    """Rows of a released segments CSV, and the dead letters of the lines that do not parse."""
    parsed = parse_segments_csv(data, source, split, vocab.known_mids)
    good, bad = _segments(parsed.table, split, source)
    return good, parsed.dead_letters + bad


def split_of_csv(path: str) -> str:
    """The split a segments CSV holds: from its release name, else its file name without ``.csv``."""
    name = posixpath.basename(path.rstrip('/'))
    return layout.SEGMENT_CSVS.get(name, name[:-4] if name.endswith('.csv') else name)


def split_of_path(path: str) -> str | None:
    """The ``split=<value>`` hive segment of a path, decoded; None when there is none."""
    for part in path.split('/'):
        if part.startswith('split='):
            return urllib.parse.unquote(part[len('split='):])
    return None


def normalize_splits(values: list[str]) -> frozenset[str]:
    """Split names as the build writes them; the release folder names (bal_train, ...) are accepted too."""
    out = set()
    for v in values:
        v = v.strip()
        if v:
            out.add(layout.FEATURE_FOLDERS.get(v, v))
    unknown = out - set(SPLITS)
    if unknown:
        raise ValueError(f'unknown split(s) {sorted(unknown)}; expected some of {list(SPLITS)} '
                         f'(or {list(layout.FEATURE_FOLDERS)})')
    return frozenset(out)


def descendants(ontology: Ontology, mids) -> frozenset[str]:
    """Every class below any of ``mids`` in the ontology DAG (not the MIDs themselves)."""
    found: set[str] = set()
    todo = [c for m in mids if m in ontology.by_mid for c in ontology.by_mid[m].child_ids]
    while todo:
        m = todo.pop()
        if m not in found:
            found.add(m)
            todo.extend(ontology.by_mid[m].child_ids)
    return frozenset(found)


def resolve_labels(values: list[str], vocab: Vocabulary, include_descendants: bool = False) -> frozenset[str]:
    """MIDs for ``--labels`` values: MIDs or display names (any case), comma-separated.

    A value that is itself a known name is taken whole, because some names hold commas
    ("Accelerating, revving, vroom"). Raises ValueError naming every value it cannot resolve.
    """
    by_name: dict[str, set[str]] = {}
    for mid, name in vocab.names.items():
        by_name.setdefault(name.casefold(), set()).add(mid)
    known = vocab.known_mids

    def lookup(token: str) -> set[str] | None:
        token = token.strip()
        if token in known:
            return {token}
        return by_name.get(token.casefold())

    mids: set[str] = set()
    unknown = []
    for value in values:
        got = lookup(value)
        if got is None:
            parts = [p for p in value.split(',') if p.strip()]
            resolved = [lookup(p) for p in parts]
            unknown += [p.strip() for p, r in zip(parts, resolved) if r is None]
            got = set().union(*(r for r in resolved if r))
        mids |= got
    if unknown:
        raise ValueError(f'unknown label(s) {unknown}: give MIDs (e.g. /m/04rlf) or display names from the '
                         'class index or ontology (e.g. Music)')
    if include_descendants:
        mids |= descendants(vocab.ontology, mids)
    return frozenset(mids)


def select(segments: list[Segment], splits: frozenset[str] | None = None, labels: frozenset[str] | None = None,
           limit: int | None = None) -> list[Segment]:
    """Segments in input order that pass the filters, the first row per segment id, at most ``limit``.

    The result depends only on the inputs and the filters, so a rerun with the same flags selects the
    same segments (and the ledger tells which of them are done).
    """
    seen: set[str] = set()
    out = []
    for s in segments:
        if splits is not None and s.split not in splits:
            continue
        if labels is not None and labels.isdisjoint(s.labels):
            continue
        if s.segment_id in seen:  # one clip per segment id, whichever split or CSV lists it
            continue
        seen.add(s.segment_id)
        out.append(s)
        if limit is not None and len(out) >= limit:
            break
    return out
