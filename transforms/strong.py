"""ReadStrongLabels: the AudioSet Strong TSVs to per-split indexes that LabelSegments attaches to segments.

As with the segment CSVs, parsed events never travel through the runner: each file is parsed once and
written as an Arrow IPC file beside the spill; only the paths go as a side input, and each worker process
builds its StrongIndex once (``load_strong``).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import NamedTuple

import apache_beam as beam
from apache_beam import PCollection
from apache_beam.metrics import Metrics

from audioset_beam import layout
from audioset_beam.schema import STRONG_SPLITS
from transforms import fileio
from transforms.core import stats, strong
from transforms.core.release import STRONG_FILE_ROLES
from transforms.core.strong import StrongIndex
from transforms.deadletters import DEAD_LETTERS, STATS, tag_dead_letters
from transforms.segments import read_arrow, write_arrow

log = logging.getLogger(__name__)

# The files of AudioSet Strong, by role (defined with the release's other files).
FILES = STRONG_FILE_ROLES

_indexes: dict[tuple, dict[str, StrongIndex]] = {}
_lock = threading.Lock()


def find_strong_files(directory: str) -> dict[str, str]:
    """Role -> path of the AudioSet Strong files present in ``directory`` (local, gs:// or http(s)://: each
    known name is probed with one bounded request, nothing is listed, since HTTP cannot list). A name that
    is not there is left out; a server that cannot say (denied, timed out, HTTP 5xx) raises OSError."""
    found = {}
    for role, name in FILES.items():
        path = layout.join(directory, name)
        try:
            fileio.size_of(path)
        except FileNotFoundError:
            continue
        found[role] = path
    return found


def release_strong() -> None:
    """Drops this process's loaded strong indexes (see segments.release_indexes)."""
    with _lock:
        _indexes.clear()


def load_strong(paths: dict) -> dict[str, StrongIndex]:
    """Strong split ('train', 'eval') -> StrongIndex, from ReadStrongLabels' output; once per process."""
    key = tuple(sorted(paths.items()))
    with _lock:
        got = _indexes.get(key)
        if got is None:
            names = json.loads(fileio.read_bytes(paths['names'])) if 'names' in paths else {}
            got = {}
            for split in STRONG_SPLITS:
                if split in paths:
                    framed = read_arrow(paths['framed']) if split == 'eval' and 'framed' in paths else None
                    got[split] = StrongIndex(read_arrow(paths[split]), names, framed,
                                             source=paths.get(f'{split}_source', split))
            _indexes[key] = got
        return got


class _ParseStrongFn(beam.DoFn):
    def __init__(self, spill_dir: str, known_mids: frozenset[str] | None):
        self.spill_dir, self.known_mids = spill_dir, known_mids
        self.lines = Metrics.counter(self.__class__, 'strong-lines')
        self.rejected = Metrics.counter(self.__class__, 'strong-lines-rejected')

    def _count(self, st: dict, role: str, file_stats: dict) -> None:
        st.setdefault('strong', {}).setdefault('files', {})[role] = file_stats
        self.lines.inc(file_stats['lines_in'])
        self.rejected.inc(file_stats['lines_rejected'])

    def process(self, files: dict):
        started = time.perf_counter()
        st: dict = {}
        out: dict = {}
        names: dict = {}
        dead: list = []
        if 'names' in files:
            parsed_names = strong.parse_display_names(fileio.read_bytes(files['names']), files['names'])
            names, dead = parsed_names.names, list(parsed_names.dead_letters)
            self._count(st, 'names', parsed_names.stats(files['names']))
        # A MID that neither the ontology nor the names file knows is a dead letter, not a nameless class.
        known = frozenset(names) | (self.known_mids or frozenset())
        counts: dict = {}
        for role in (*STRONG_SPLITS, 'framed'):
            if role not in files:
                continue
            path = files[role]
            parse = strong.parse_framed if role == 'framed' else strong.parse_events
            parsed = parse(fileio.read_bytes(path), path, 'eval' if role == 'framed' else role, known or None)
            dead += parsed.dead_letters
            target = layout.join(self.spill_dir, 'strong', f'{role}.arrow')
            write_arrow(target, parsed.table)
            out[role], out[f'{role}_source'] = target, path
            t = parsed.table
            self._count(st, role, parsed.stats(path))
            if role != 'framed':
                for row in strong.label_counts(t).to_pylist():
                    counts.setdefault(role, {})[row['label']] = {'segments': row['strong_segments'],
                                                                 'events': row['strong_events']}
        if names:
            out['names'] = layout.join(self.spill_dir, 'strong', 'names.json')
            fileio.write_bytes(out['names'], json.dumps(names).encode())
        st['strong_classes'] = {'counts': counts, 'names': names}
        yield from tag_dead_letters(dead, log)
        stats.bump(st, 'timings', 'parse_strong', time.perf_counter() - started)
        yield beam.pvalue.TaggedOutput(STATS, st)
        yield out


class StrongOutputs(NamedTuple):
    """ReadStrongLabels' outputs."""
    index: PCollection[dict]        # one dict of spill paths (see ``load_strong``)
    dead_letters: PCollection[dict]
    stats: PCollection[dict]


class ReadStrongLabels(beam.PTransform):
    """PBegin -> StrongOutputs: one dict of spill paths (see ``load_strong``), dead letters, stats.

    ``files``: role -> path, from ``find_strong_files``. A line that cannot be used is a ``parse-strong``
    dead letter with file and line (see transforms.core.strong), counted per file in ``stats['strong']
    ['files'][role]`` (``lines_in``, ``lines_rejected``, ``dropped``: what the seal checks against
    --max_bad_fraction, see ``strong.file_problems``). ``known_mids``: the ontology's and class index's
    MIDs; an event whose MID is neither there nor in ``mid_to_display_name.tsv`` is an ``unknown-mid`` dead
    letter (without either, MIDs are not checked)."""

    def __init__(self, files: dict, spill_dir: str, known_mids: frozenset[str] | None = None):
        super().__init__()
        self.files, self.spill_dir = dict(files), spill_dir
        self.known_mids = frozenset(known_mids) if known_mids is not None else None

    def expand(self, pbegin: beam.pvalue.PBegin) -> StrongOutputs:
        out = (pbegin
               | 'StrongFiles' >> beam.Create([self.files])
               | 'ParseStrong' >> beam.ParDo(_ParseStrongFn(self.spill_dir, self.known_mids)).with_outputs(
                   DEAD_LETTERS, STATS, main='index'))
        return StrongOutputs(out.index, out[DEAD_LETTERS], out[STATS])
