"""AudioSet Strong files at the release's size and format for a benchmark corpus (make_release_corpus).

Writes ``DIR/strong/{audioset_train_strong,audioset_eval_strong,audioset_eval_strong_framed_posneg}.tsv``
and the real ``mid_to_display_name.tsv`` for segments of the corpus's own CSVs, so that
``--strong_labels DIR/strong`` joins them. At scale 1.0: train 103,463 segments (from balanced and
unbalanced train) with 934,821 events, eval 16,996 segments with 139,538 events, the framed file 14,203 of
those eval segments on 0.96 s frames; 456 MIDs. Event times are in milliseconds, many on a frame edge,
some of zero length, some past the segment's end, as in the real files.

    python -m benchmarks.make_strong_labels --corpus /data/release [--scale 1.0]
"""
from __future__ import annotations

import argparse
import csv
import json
import pathlib
import shutil
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
NAMES_TSV = REPO / 'sample_data' / 'mid_to_display_name.tsv'
RELEASE = {'train': (103_463, 934_821), 'eval': (16_996, 139_538), 'framed': 14_203}
HEADER = 'segment_id\tstart_time_seconds\tend_time_seconds\tlabel\n'


def _segments(csv_path: pathlib.Path) -> list[str]:
    """<YTID>_<start ms> of every row of a segments CSV (release format: 3 comment lines)."""
    out = []
    with open(csv_path, newline='') as f:
        for row in csv.reader(f, skipinitialspace=True):
            if not row or row[0].startswith('#'):
                continue
            out.append(f'{row[0]}_{round(float(row[1]) * 1000)}')
    return out


def _seconds(ms: np.ndarray) -> np.ndarray:
    return np.char.add(np.char.add((ms // 1000).astype(str), '.'), np.char.zfill((ms % 1000).astype(str), 3))


def _events(rng, segment_ids: np.ndarray, n_events: int, mids: np.ndarray):
    """Events spread over segments (at least one each), times on 1 s / 0.96 s edges or anywhere."""
    n = len(segment_ids)
    owner = np.concatenate([np.arange(n), rng.integers(0, n, max(n_events - n, 0))])
    owner.sort()
    m = len(owner)
    kind = rng.integers(0, 3, (2, m))
    any_ms = rng.integers(0, 10_001, (2, m))
    edge = np.where(kind == 1, rng.integers(0, 11, (2, m)) * 1000, rng.integers(0, 11, (2, m)) * 960)
    t = np.where(kind == 0, any_ms, np.minimum(edge, 10_000))
    a, b = t.min(axis=0), t.max(axis=0)
    roll = rng.random(m)
    b = np.where(roll < 0.05, a, np.where(roll < 0.08, 10_000 + rng.integers(1, 800, m), b))
    label = mids[rng.integers(0, len(mids), m)]
    return owner, a, b, label


def _write(path: pathlib.Path, header: str, columns) -> None:
    lines = columns[0]
    for c in columns[1:]:
        lines = np.char.add(np.char.add(lines, '\t'), c)
    path.write_text(header + '\n' + '\n'.join(lines.tolist()) + '\n')


def make_strong(corpus: pathlib.Path, scale: float = 1.0, seed: int = 0) -> dict:
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    csv_dir = corpus / 'csv'
    out = corpus / 'strong'
    out.mkdir(parents=True, exist_ok=True)
    names = [line.split('\t', 1)[0] for line in NAMES_TSV.read_text().splitlines() if line]
    mids = np.asarray(names)
    pools = {'train': _segments(csv_dir / 'balanced_train_segments.csv')
                      + _segments(csv_dir / 'unbalanced_train_segments.csv'),
             'eval': _segments(csv_dir / 'eval_segments.csv')}
    summary = {'scale': scale, 'dir': str(out)}
    framed_ids = None
    for split in ('train', 'eval'):
        n_seg, n_ev = RELEASE[split]
        pool = np.asarray(pools[split])
        n_seg = min(len(pool), max(1, round(n_seg * scale)))
        chosen = pool[rng.choice(len(pool), n_seg, replace=False)]
        owner, a, b, label = _events(rng, chosen, max(n_seg, round(n_ev * scale)), mids)
        order = rng.permutation(len(owner))  # the parser must not rely on file order
        _write(out / f'audioset_{split}_strong.tsv', HEADER.rstrip('\n'),
               [chosen[owner][order], _seconds(a)[order], _seconds(b)[order], label[order]])
        summary[split] = {'segments': int(n_seg), 'events': int(len(owner))}
        if split == 'eval':
            framed_ids = chosen[:min(len(chosen), round(RELEASE['framed'] * scale))]
            framed_owner, framed_labels = owner, label
    # Framed posneg: each framed segment, 11 frames of 0.96 s, its own event labels plus two others, PRESENT
    # or NOT_PRESENT (drawn: the build takes the file as it is, it does not re-derive it).
    keep = framed_owner < len(framed_ids)
    seg = np.repeat(framed_ids, 0) if not keep.any() else framed_ids[framed_owner[keep]]
    pairs = np.unique(np.char.add(np.char.add(seg, '\t'), framed_labels[keep]))
    extra = np.char.add(np.char.add(np.repeat(framed_ids, 2), '\t'), mids[rng.integers(0, len(mids), 2 * len(framed_ids))])
    pairs = np.unique(np.concatenate([pairs, extra]))
    k = np.tile(np.arange(11), len(pairs))
    split_pairs = np.char.partition(np.repeat(pairs, 11), '\t')
    rows, row_labels = split_pairs[:, 0], split_pairs[:, 2]
    start, end = k * 960, np.minimum(k * 960 + 960, 10_000)
    present = np.where(rng.random(len(rows)) < 0.3, 'PRESENT', 'NOT_PRESENT')
    _write(out / 'audioset_eval_strong_framed_posneg.tsv', HEADER.rstrip('\n') + '\tpresent',
           [rows, _seconds(start), _seconds(end), row_labels, present])
    summary['framed'] = {'segments': int(len(framed_ids)), 'rows': int(len(rows))}
    shutil.copyfile(NAMES_TSV, out / 'mid_to_display_name.tsv')
    summary['seconds'] = round(time.perf_counter() - started, 1)
    (out / 'strong.json').write_text(json.dumps(summary, indent=1) + '\n')
    return summary


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--corpus', required=True, help='a benchmarks.make_release_corpus output folder')
    p.add_argument('--scale', type=float, default=None, help='default: the corpus\'s own scale')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    corpus = pathlib.Path(args.corpus)
    scale = args.scale
    if scale is None:
        scale = json.loads((corpus / 'corpus.json').read_text())['scale']
    print(json.dumps(make_strong(corpus, scale, args.seed), indent=1))


if __name__ == '__main__':
    main()
