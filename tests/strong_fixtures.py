"""Generators of AudioSet Strong inputs in the release formats (made at test time, never hand-edited), and
an independent per-frame oracle, written with plain loops, to check transforms/core/strong.py against.

``write_strong_files(dest, train_segments, eval_segments)`` writes ``audioset_train_strong.tsv``,
``audioset_eval_strong.tsv``, ``audioset_eval_strong_framed_posneg.tsv`` and the real
``mid_to_display_name.tsv`` for given (segment_id, duration seconds) pairs, and returns what it wrote.
"""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import shutil

import numpy as np

from tests.fixtures import SAMPLE

NAMES_TSV = SAMPLE / 'mid_to_display_name.tsv'
TRAIN, EVAL, FRAMED, NAMES = ('audioset_train_strong.tsv', 'audioset_eval_strong.tsv',
                              'audioset_eval_strong_framed_posneg.tsv', 'mid_to_display_name.tsv')
HEADER = 'segment_id\tstart_time_seconds\tend_time_seconds\tlabel'
FRAMED_HEADER = HEADER + '\tpresent'
WINDOW_MS, FRAMED_HOP_MS = 960, 960


def display_names() -> dict[str, str]:
    """The real mid_to_display_name.tsv, read with plain Python."""
    return dict(line.split('\t', 1) for line in NAMES_TSV.read_text().splitlines() if line)


def outside_ontology() -> list[str]:
    """Strong MIDs that ontology.json lacks (real labels: audioset/ontology#6, #9)."""
    ids = {node['id'] for node in json.loads((SAMPLE / 'ontology.json').read_text())}
    return sorted(set(display_names()) - ids)


def seconds(ms: int) -> str:
    return f'{ms // 1000}.{ms % 1000:03d}'


@dataclasses.dataclass
class StrongFixture:
    dir: pathlib.Path
    train: list[tuple[str, int, int, str]]             # (segment_id, onset ms, offset ms, MID), file order
    eval: list[tuple[str, int, int, str]]
    framed: list[tuple[str, int, int, str, bool]]      # (segment_id, frame start ms, end ms, MID, present)
    bad_lines: dict[str, list[tuple[int, str]]]        # file name -> [(line number, reason)]


def edge_events(duration_ms: int, mids: list[str]) -> list[tuple[int, int, str]]:
    """Events on the frame edges that decide the rule: end exactly on a released frame start, zero length
    on an edge and inside a window, a whole released window, crossing an edge, two overlapping events of one
    label, one reaching past the segment's end."""
    a, b, c, d = mids[:4]
    events = [(0, 1000, a), (960, 960, b), (500, 500, c), (1000, 1960, d), (900, 1050, b),
              (2000, 4000, c), (3000, 5000, c), (3840, 3840, a)]
    end = max(duration_ms - 500, 0)
    events.append((end, duration_ms + 700, d))
    return [(s, e, m) for s, e, m in events if s <= duration_ms]


def random_events(rng: np.random.Generator, duration_ms: int, mids: list[str], n: int) -> list[tuple[int, int, str]]:
    """``n`` events whose times are often on (or 1 ms off) a 1 s or 0.96 s frame edge, some of zero length,
    some reaching past the end."""
    out = []
    for _ in range(n):
        times = []
        for _ in range(2):
            kind = rng.integers(4)
            if kind == 0:
                t = int(rng.integers(0, duration_ms + 1))
            else:
                step = (1000, 960, 960)[kind - 1]
                t = int(rng.integers(0, duration_ms // step + 1)) * step + int(rng.integers(-1, 2)) * (kind == 3)
            times.append(min(max(t, 0), duration_ms))
        s, e = sorted(times)
        roll = rng.random()
        if roll < 0.1:
            e = s
        elif roll < 0.2:
            e = duration_ms + int(rng.integers(1, 1500))
        out.append((s, e, mids[int(rng.integers(len(mids)))]))
    return out


def framed_rows(segment_id: str, duration_ms: int, events: list[tuple[int, int, str]], extra: list[str]):
    """The posneg file's rows of a segment: every 0.96 s frame, every label of its events plus ``extra``,
    PRESENT where an event overlaps the frame (the frame rule, plain loops)."""
    rows = []
    labels = sorted({m for _, _, m in events} | set(extra))
    for k in range(math.ceil(duration_ms / FRAMED_HOP_MS)):
        w0, w1 = k * FRAMED_HOP_MS, min((k + 1) * FRAMED_HOP_MS, duration_ms)
        for m in labels:
            present = any(overlaps(s, min(e, duration_ms), w0, w1) for s, e, mm in events if mm == m)
            rows.append((segment_id, w0, w1, m, present))
    return rows


def overlaps(a: int, b: int, w0: int, w1: int) -> bool:
    """The frame rule, stated without the implementation's inequalities: a positive-length event overlaps a
    window by a positive length; an instant lies strictly inside it (PretrainedSED's floor/ceil)."""
    if a == b:
        return w0 < a < w1
    return max(a, w0) < min(b, w1)


def oracle_frame_labels(events: list[tuple[int, int, str]], duration_ms: int, num_frames: int,
                        hop_ms: int) -> list[list[str]]:
    """Per embedding frame k (window [k * hop, k * hop + 960) ms), the sorted MIDs of the events that
    overlap it, events clipped to the duration and those starting after it left out; plain loops."""
    frames = []
    for k in range(num_frames):
        w0 = k * hop_ms
        w1 = w0 + WINDOW_MS
        frames.append(sorted({m for s, e, m in events
                              if s <= duration_ms and overlaps(s, min(e, duration_ms), w0, w1)}))
    return frames


def write_tsv(path: pathlib.Path, header: str, rows: list[str]) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + '\n' + ''.join(r + '\n' for r in rows), encoding='utf-8')
    return path


def _event_line(row) -> str:
    return f'{row[0]}\t{seconds(row[1])}\t{seconds(row[2])}\t{row[3]}'


BAD_EVENT_LINES = [
    ('only\tthree\tfields', 'bad-field-count'),
    ('nounderscore\t0.000\t1.000\t/m/09x0r', 'bad-segment-id'),
    ('abc_def_030000\t0.000\t1.000\t/m/09x0r', 'bad-segment-id'),
    ('abc_1000\tzero\t1.000\t/m/09x0r', 'bad-time'),
    ('abc_1000\t-1.000\t1.000\t/m/09x0r', 'negative-time'),
    ('abc_1000\t2.000\t1.000\t/m/09x0r', 'end-before-start'),
    ('abc_1000\t0.000\t1.000\tspeech', 'bad-label'),
    ('abc_1000\t0.000\t1.000\t/m/0notaclass', 'unknown-mid'),   # in neither the ontology nor the names file
    ('abc_1000\t\u0663.000\t5.000\t/m/09x0r', 'bad-time'),          # Arabic-Indic 3: float() would take it
]
BAD_FRAMED_LINES = [
    ('abc_1000\t0.000\t0.960\t/m/09x0r\tMAYBE', 'bad-present'),
    ('abc_1000\t0.500\t1.460\t/m/09x0r\tPRESENT', 'off-grid-frame'),
    ('abc_1000\t0.000\t0.960\t/m/09x0r', 'bad-field-count'),
]


def write_strong_files(dest: pathlib.Path, train_segments, eval_segments, framed_segments=None, seed: int = 0,
                       events_per_segment: int = 6, bad_lines: bool = False) -> StrongFixture:
    """The three strong TSVs and the real names file in ``dest``, for (segment_id, duration s) pairs.

    Each segment gets the edge events of :func:`edge_events` (with a MID outside the ontology among them)
    and ``events_per_segment`` random ones; rows are shuffled (the parser must not rely on file order).
    ``framed_segments`` (default: all eval segments) go into the posneg file. With ``bad_lines``, lines
    from ``BAD_EVENT_LINES``/``BAD_FRAMED_LINES`` are appended to the train and framed files (their line
    numbers and reasons are returned).
    """
    rng = np.random.default_rng(seed)
    names = sorted(display_names())
    odd = outside_ontology()
    written: dict[str, list] = {}
    framed_ids = {s for s, _ in (eval_segments if framed_segments is None else framed_segments)}
    framed: list[tuple[str, int, int, str, bool]] = []
    for file, segments in ((TRAIN, train_segments), (EVAL, eval_segments)):
        rows = []
        for segment_id, duration in segments:
            dur = int(round(duration * 1000))
            mids = [odd[int(rng.integers(len(odd)))]] + [names[int(i)] for i in rng.choice(len(names), 5, False)]
            events = edge_events(dur, mids) + random_events(rng, dur, mids, events_per_segment)
            rows += [(segment_id, s, e, m) for s, e, m in events]
            if file == EVAL and segment_id in framed_ids:
                framed += framed_rows(segment_id, dur, events, [names[int(rng.integers(len(names)))]])
        rows = [rows[i] for i in rng.permutation(len(rows))]
        written[file] = rows
    bad: dict[str, list[tuple[int, str]]] = {TRAIN: [], EVAL: [], FRAMED: []}
    lines = {TRAIN: [_event_line(r) for r in written[TRAIN]], EVAL: [_event_line(r) for r in written[EVAL]],
             FRAMED: [_event_line(r) + ('\tPRESENT' if r[4] else '\tNOT_PRESENT') for r in framed]}
    if bad_lines:
        for file, extra in ((TRAIN, BAD_EVENT_LINES), (FRAMED, BAD_FRAMED_LINES)):
            for text, reason in extra:
                lines[file].append(text)
                bad[file].append((len(lines[file]) + 1, reason))
    write_tsv(dest / TRAIN, HEADER, lines[TRAIN])
    write_tsv(dest / EVAL, HEADER, lines[EVAL])
    write_tsv(dest / FRAMED, FRAMED_HEADER, lines[FRAMED])
    shutil.copyfile(NAMES_TSV, dest / NAMES)
    return StrongFixture(dest, written[TRAIN], written[EVAL], framed, bad)


def release_sized_tsv(segments: int = 103_463, events: int = 934_821, seed: int = 0) -> bytes:
    """A train-strong-shaped TSV at the release's size (default: 103,463 segments, 934,821 events), for
    measuring the parser (a few seconds to make)."""
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-', np.uint8)
    ids = alphabet[rng.integers(0, len(alphabet), (segments, 11))].view('S11').ravel()
    starts = rng.integers(0, 300, segments) * 1000
    seg = np.sort(rng.integers(0, segments, events))
    onset = rng.integers(0, 10_000, events)
    offset = np.minimum(onset + rng.integers(0, 5_000, events), 10_000)
    mids = sorted(display_names())
    label = rng.integers(0, len(mids), events)
    lines = [HEADER]
    idx = ids.astype(str)
    for i in range(events):
        s = seg[i]
        lines.append(f'{idx[s]}_{starts[s]}\t{seconds(int(onset[i]))}\t{seconds(int(offset[i]))}\t{mids[label[i]]}')
    return ('\n'.join(lines) + '\n').encode()
