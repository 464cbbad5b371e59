"""report.html: what a build made, drawn (matplotlib, inline SVG) from its small tables. Pure: data -> HTML.

``render(ReportInput) -> str`` is one self-contained page (no script, no external resource) with a figure
per view of the dataset, each with a one-line caption, and every number that also exists in manifest.json
carried as ``data-key`` (the JSON list of keys leading to it) and ``data-value``, so a test can compare the
page with the manifest; numbers from classes.parquet carry ``data-class`` and ``data-column`` instead.
The gathering (files, local or gs://) is transforms.report; nothing here reads a file.
"""
from __future__ import annotations

import dataclasses
import datetime
import html
import io
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.core.schema import EMBEDDING_DIM, SPLITS

TOP_PAIRS = 20          # label pairs kept by the fallback count (the manifest keeps as many)
NAMED_CLASSES = 5       # top and bottom classes named in the class distribution
MAX_OFFSET = 3          # frame offsets tried when aligning a computed embedding with its released twin
STRONG_SPLITS = ('train', 'eval')   # AudioSet Strong's files (classes.parquet strong_*_<split>)

# Split colours, the same in every figure.
_COLOURS = {'eval': '#1f77b4', 'balanced_train': '#ff7f0e', 'unbalanced_train': '#2ca02c',
            'unlabelled': '#7f7f7f'}


def dequantize(q: np.ndarray) -> np.ndarray:
    """uint8 quantized VGGish PCA values -> float32, as YouTube-8M's tools do: q * 4/255 + (4/512 - 2)."""
    return q.astype(np.float32) * np.float32(4.0 / 255.0) + np.float32(4.0 / 512.0 - 2.0)


def byte_histogram(frames: np.ndarray) -> np.ndarray:
    """[n, 128] uint8 frames -> [128, 256] int64: how often each byte value occurs in each dimension."""
    frames = np.asarray(frames, np.uint8).reshape(-1, EMBEDDING_DIM)
    flat = (np.arange(EMBEDDING_DIM, dtype=np.int64) * 256 + frames.astype(np.int64)).ravel()
    return np.bincount(flat, minlength=EMBEDDING_DIM * 256).reshape(EMBEDDING_DIM, 256)


def histogram_quantiles(hist: np.ndarray, qs=(0.25, 0.5, 0.75)) -> np.ndarray:
    """[128, 256] byte histograms -> [len(qs), 128]: the lowest byte value at or below which each quantile
    of a dimension's values lies (NaN for a dimension with no values)."""
    cum = np.cumsum(hist, axis=1)
    total = cum[:, -1:]
    out = np.full((len(qs), hist.shape[0]), np.nan)
    for i, q in enumerate(qs):
        has = total[:, 0] > 0
        out[i, has] = np.argmax(cum[has] >= q * total[has], axis=1)
    return out


@dataclasses.dataclass(frozen=True)
class Agreement:
    """A computed embedding against the released one of the same segment."""
    segment_id: str
    split: str
    mean_abs_diff: float   # bytes, frame by frame without shifting, over the frames both have
    cosine: float          # mean cosine of the dequantized frames, without shifting
    best_offset: int       # k maximizing the mean cosine of computed frame i with released frame i + k
    best_cosine: float     # that mean cosine


def agreement(segment_id: str, split: str, computed: np.ndarray, released: np.ndarray,
              max_offset: int = MAX_OFFSET) -> Agreement:
    """Compares two [frames, 128] uint8 embeddings of one segment (their frame counts may differ)."""
    c, r = np.asarray(computed, np.uint8).reshape(-1, EMBEDDING_DIM), np.asarray(released, np.uint8).reshape(-1, EMBEDDING_DIM)
    n = min(len(c), len(r))
    mad = float(np.abs(c[:n].astype(np.int16) - r[:n].astype(np.int16)).mean()) if n else math.nan
    cx, rx = dequantize(c), dequantize(r)
    cx /= np.maximum(np.linalg.norm(cx, axis=1, keepdims=True), 1e-12)
    rx /= np.maximum(np.linalg.norm(rx, axis=1, keepdims=True), 1e-12)
    by_offset = {}
    for k in range(-max_offset, max_offset + 1):
        lo, hi = max(0, -k), min(len(c), len(r) - k)
        if hi > lo:
            by_offset[k] = float(np.mean(np.sum(cx[lo:hi] * rx[lo + k:hi + k], axis=1)))
    best = max(sorted(by_offset, key=abs), key=lambda k: by_offset[k]) if by_offset else 0
    return Agreement(segment_id, split, mad, by_offset.get(0, math.nan), best, by_offset.get(best, math.nan))


def distributions_from_rows(labels: list, num_frames: list, class_order: dict[str, int],
                            top: int = TOP_PAIRS) -> dict:
    """One split's segments (each segment once: its labels and frame count) -> the manifest's
    ``distributions[split]`` shape: labels_per_segment and frames_per_segment histograms (str keys) and
    top_label_pairs [[mid_a, mid_b, n], ...], most frequent first (ties: by class index order)."""
    order = lambda mid: (class_order.get(mid, len(class_order)), mid)  # noqa: E731
    per_segment: dict[int, int] = {}
    frames: dict[int, int] = {}
    pairs: dict[tuple[str, str], int] = {}
    for labs, nf in zip(labels, num_frames):
        labs = sorted(set(labs or ()), key=order)
        per_segment[len(labs)] = per_segment.get(len(labs), 0) + 1
        frames[int(nf)] = frames.get(int(nf), 0) + 1
        for i, a in enumerate(labs):
            for b in labs[i + 1:]:
                pairs[(a, b)] = pairs.get((a, b), 0) + 1
    ranked = sorted(pairs.items(), key=lambda kv: (-kv[1], order(kv[0][0]), order(kv[0][1])))[:top]
    return {'labels_per_segment': {str(k): v for k, v in sorted(per_segment.items())},
            'frames_per_segment': {str(k): v for k, v in sorted(frames.items())},
            'top_label_pairs': [[a, b, n] for (a, b), n in ranked]}


@dataclasses.dataclass
class Computed:
    """What the report shows about computed embeddings (transforms.report reads them)."""
    rows: int                          # computed primary rows (one per computed segment and split)
    fingerprints: dict                 # model_fingerprint -> rows
    official: bool                     # made by the official VGGish weights, as far as the build knows
    official_reason: str               # why the report believes that, in words
    computed_hist: np.ndarray          # [128, 256] byte counts of the computed frames
    released_hist: np.ndarray          # [128, 256] byte counts of the released reference frames
    released_reference: str            # which released frames those are, in words
    pairs: list                        # Agreement per segment compared
    pairs_total: int                   # segments with both a released and a computed embedding


@dataclasses.dataclass
class ReportInput:
    output_dir: str
    manifest: dict
    classes: pa.Table                  # classes.parquet
    distributions: dict                # split -> the manifest's distributions[split] shape
    distributions_source: str          # 'manifest' or how they were counted
    missing_files: dict                # split -> rows in missing_features/split=<split>/ (Parquet footers)
    dead_letter_examples: list         # a few rows of dead_letters/ (stage, reason, source, error)
    computed: Computed | None = None
    generated: str = ''                # UTC time of writing


# -- figures -----------------------------------------------------------------------------------------------

def _figure(width: float, height: float, rows: int = 1, cols: int = 1, left: float = 0.9, **kwargs):
    """A figure with fixed margins in inches (``left`` room for tick labels): a layout engine (constrained
    or tight) would draw every figure twice, half of the report's time."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - 0.25 / width, bottom=0.6 / height, top=1 - 0.35 / height,
                        hspace=0.75 * rows / height, wspace=0.3)
    return fig, fig.subplots(rows, cols, squeeze=False, **kwargs)


def _svg(fig) -> str:
    """The figure as an inline <svg> element: text as text, no XML prolog, deterministic ids."""
    import matplotlib
    buf = io.StringIO()
    with matplotlib.rc_context({'svg.fonttype': 'none', 'svg.hashsalt': 'audioset-report',
                                'font.family': 'sans-serif'}):
        fig.savefig(buf, format='svg', metadata={'Date': None, 'Creator': None})
    text = buf.getvalue()
    return text[text.index('<svg'):]


def _plain(text) -> str:
    """``text`` (a class name, a split, a dead-letter reason) as matplotlib draws it literally: a ``$``
    would start TeX math (``$\\frac{1}{0}$`` fails to draw, a pair of dollars renders as math), and ``\\$`` is
    drawn as a dollar sign, whatever surrounds it. The SVG writer escapes ``<`` and ``&`` itself."""
    return str(text).replace('$', r'\$')


def _no_data(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha='center', va='center', transform=ax.transAxes, fontsize=11, color='#555')
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def _splits(manifest: dict) -> list[str]:
    known = set(manifest.get('splits', {}))
    return [s for s in SPLITS if s in known] + sorted(known - set(SPLITS))


def fig_segments_per_split(manifest: dict) -> str:
    splits = _splits(manifest)
    fig, ax = _figure(7, 2.4, left=1.3)
    ax = ax[0, 0]
    if not splits:
        _no_data(ax, 'no released segments')
        return _svg(fig)
    counts = [manifest['splits'][s].get('segments_out', 0) for s in splits]
    dead = [manifest['splits'][s].get('dead_letters', 0) for s in splits]
    y = np.arange(len(splits))
    ax.barh(y, counts, color=[_COLOURS.get(s, '#555') for s in splits], label='segments built')
    ax.barh(y, dead, left=counts, color='#d62728', label='records dead-lettered')
    for yi, c in zip(y, counts):
        ax.text(c, yi, f' {c:,}', va='center', fontsize=9)
    ax.set_yticks(y, [_plain(s) for s in splits])
    ax.invert_yaxis()
    ax.set_xlabel('segments')
    ax.set_xlim(0, max(c + d for c, d in zip(counts, dead)) * 1.18 or 1)
    if any(dead):
        ax.legend(loc='lower right', fontsize=8)
    return _svg(fig)


def _label_counts(classes: pa.Table, column: str) -> tuple[list[str], np.ndarray]:
    """(names, counts) of the class-index labels in ``column``, most segments first."""
    labels = classes.filter(classes['is_label']) if 'is_label' in classes.column_names else classes
    names = labels['name'].to_pylist()
    counts = np.asarray(labels[column].fill_null(0).to_numpy(zero_copy_only=False), np.int64)
    order = np.lexsort((np.arange(len(counts)), -counts))
    return [names[i] for i in order], counts[order]


def fig_class_distribution(classes: pa.Table, splits: list[str]) -> str:
    splits = [s for s in splits if f'segments_{s}' in classes.column_names]
    fig, axes = _figure(10, 2.9 * max(1, len(splits)), max(1, len(splits)), 1)
    if not splits:
        _no_data(axes[0, 0], 'no split has segments')
        return _svg(fig)
    for ax, split in zip(axes[:, 0], splits):
        names, counts = _label_counts(classes, f'segments_{split}')
        positive = counts[counts > 0]
        x = np.arange(len(counts))
        # A step line over every label (one SVG path, not 527 bars); labels without segments sit below 1.
        ax.stairs(np.where(counts > 0, counts, 0.5), np.arange(len(counts) + 1), fill=True,
                  color=_COLOURS.get(split, '#555'), alpha=0.8, baseline=0.5)
        ax.set_yscale('log')
        ax.set_xlim(0, len(counts))
        ax.set_ylim(0.5, max(2, counts.max() * 8))
        ax.set_ylabel('segments (log)')
        ax.set_title(f'{_plain(split)}: {len(positive)} of {len(counts)} labels have segments', fontsize=10,
                     loc='left')
        named = list(range(min(NAMED_CLASSES, len(positive))))
        named += [i for i in range(max(len(named), len(positive) - NAMED_CLASSES), len(positive))]
        for rank, i in enumerate(named):
            top = i < NAMED_CLASSES
            row = rank % NAMED_CLASSES
            ax.annotate(f'{_plain(names[i])} ({counts[i]:,})', (x[i] + 0.5, counts[i]),
                        xytext=(0.12, 0.93 - 0.11 * row) if top else (0.97, 0.93 - 0.11 * row),
                        textcoords='axes fraction', ha='left' if top else 'right', va='top', fontsize=7.5,
                        arrowprops={'arrowstyle': '-', 'color': '#bbb', 'lw': 0.5})
        ax.set_xticks([])
    axes[-1, 0].set_xlabel('labels, most segments first')
    return _svg(fig)


def fig_ontology_branches(classes: pa.Table, splits: list[str]) -> str:
    roots = classes.filter(pc.equal(classes['depth'], 0)).to_pylist()
    splits = [s for s in splits if f'segments_with_descendants_{s}' in classes.column_names]
    fig, ax = _figure(9, 0.45 * max(len(roots), 2) + 1.2, left=3.1)
    ax = ax[0, 0]
    if not roots or not splits:
        _no_data(ax, 'no ontology roots or no splits')
        return _svg(fig)
    roots.sort(key=lambda r: -sum(r[f'segments_with_descendants_{s}'] or 0 for s in splits))
    y = np.arange(len(roots))
    h = 0.8 / len(splits)
    for i, s in enumerate(splits):
        vals = [r[f'segments_with_descendants_{s}'] or 0 for r in roots]
        ax.barh(y + (i - (len(splits) - 1) / 2) * h, vals, height=h, color=_COLOURS.get(s, '#555'),
                label=_plain(s))
    ax.set_yticks(y, [_plain(r['name']) for r in roots])
    ax.invert_yaxis()
    ax.set_xlabel('segments with a label in the branch')
    ax.legend(fontsize=8, loc='lower right')
    return _svg(fig)


def _hist_axes(ax, hists: dict[str, dict], xlabel: str, log: bool) -> None:
    keys = sorted({int(k) for h in hists.values() for k in h})
    if not keys:
        _no_data(ax, 'no segments')
        return
    splits = list(hists)
    w = 0.8 / max(1, len(splits))
    for i, s in enumerate(splits):
        vals = [hists[s].get(str(k), 0) for k in keys]
        ax.bar(np.arange(len(keys)) + (i - (len(splits) - 1) / 2) * w, vals, width=w,
               color=_COLOURS.get(s, '#555'), label=_plain(s))
    ax.set_xticks(np.arange(len(keys)), [str(k) for k in keys])
    ax.set_xlabel(xlabel)
    ax.set_ylabel('segments' + (' (log)' if log else ''))
    if log:
        ax.set_yscale('log')
    ax.legend(fontsize=8)


def fig_histograms(distributions: dict, key: str, xlabel: str, log: bool) -> str:
    fig, ax = _figure(8, 2.8)
    _hist_axes(ax[0, 0], {s: d.get(key, {}) for s, d in distributions.items()}, xlabel, log)
    return _svg(fig)


def fig_label_pairs(distributions: dict, names: dict[str, str], top: int = 10) -> str:
    splits = [s for s, d in distributions.items() if d.get('top_label_pairs')]
    fig, axes = _figure(10, max(1, len(splits)) * (0.24 * top + 0.9), max(1, len(splits)), 1, left=3.4)
    if not splits:
        _no_data(axes[0, 0], 'no segment has two labels')
        return _svg(fig)
    for ax, s in zip(axes[:, 0], splits):
        pairs = distributions[s]['top_label_pairs'][:top]
        y = np.arange(len(pairs))
        ax.barh(y, [p[2] for p in pairs], color=_COLOURS.get(s, '#555'))
        ax.set_yticks(y, [_plain(f'{names.get(a, a)} + {names.get(b, b)}') for a, b, _ in pairs], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(_plain(s), fontsize=10, loc='left')
        ax.set_xlabel('segments with both labels')
    return _svg(fig)


def fig_missing_features(manifest: dict) -> str:
    csv = manifest.get('csv') or {}
    splits = [s for s in SPLITS if s in csv] + sorted(set(csv) - set(SPLITS))
    fig, ax = _figure(8, 0.6 * max(len(splits), 2) + 1, left=1.3)
    ax = ax[0, 0]
    if not splits:
        _no_data(ax, 'no segments CSV was given')
        return _svg(fig)
    y = np.arange(len(splits))
    matched = [csv[s].get('rows_matched', 0) for s in splits]
    missing = [csv[s].get('rows_missing_features', 0) for s in splits]
    ax.barh(y, matched, color='#2ca02c', label='CSV rows with an embedding')
    ax.barh(y, missing, left=matched, color='#bbbbbb', label='CSV rows without one (missing_features/)')
    for yi, m, n in zip(y, matched, missing):
        total = m + n
        ax.text(total, yi, f' {n:,} missing ({n / total:.0%})' if total else ' 0', va='center', fontsize=9)
    ax.set_yticks(y, [_plain(s) for s in splits])
    ax.invert_yaxis()
    ax.set_xlim(0, max(m + n for m, n in zip(matched, missing)) * 1.3 or 1)
    ax.set_xlabel('segments CSV rows')
    ax.legend(fontsize=8, loc='lower right')
    return _svg(fig)


def fig_dead_letters(by_stage_and_reason: dict) -> str:
    items = sorted(by_stage_and_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    fig, ax = _figure(9, 0.3 * max(len(items), 3) + 1, left=3.2)
    ax = ax[0, 0]
    if not items:
        _no_data(ax, 'no input was rejected: no dead letters')
        return _svg(fig)
    stages = sorted({k.split('/', 1)[0] for k, _ in items})
    colours = dict(zip(stages, ['#d62728', '#9467bd', '#8c564b', '#e377c2', '#bcbd22', '#17becf', '#7f7f7f']
                       * (len(stages) // 7 + 1)))
    y = np.arange(len(items))
    ax.barh(y, [n for _, n in items], color=[colours[k.split('/', 1)[0]] for k, _ in items])
    for yi, (_, n) in zip(y, items):
        ax.text(n, yi, f' {n:,}', va='center', fontsize=8)
    ax.set_yticks(y, [_plain(k) for k, _ in items], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale('log' if max(n for _, n in items) > 100 * max(1, min(n for _, n in items)) else 'linear')
    ax.set_xlabel('dead letters (stage/reason)')
    return _svg(fig)


def fig_label_quality(classes: pa.Table, named: int = NAMED_CLASSES) -> str:
    rows = [r for r in classes.select(['name', 'num_rated', 'num_true', 'quality']).to_pylist()
            if r['quality'] is not None]
    rows.sort(key=lambda r: (r['quality'], -(r['num_rated'] or 0), r['name']))
    fig, ax = _figure(10, 3.2)
    ax = ax[0, 0]
    if not rows:
        _no_data(ax, 'no class was rated')
        return _svg(fig)
    q = np.array([r['quality'] for r in rows])
    ax.stairs(q, np.arange(len(q) + 1), fill=True, color='#9467bd', alpha=0.8)
    ax.set_xlim(0, len(q))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel('confirmed / rated')
    ax.set_xlabel(f'{len(q)} rated classes, lowest quality first')
    for rank, i in enumerate(range(min(named, len(rows)))):
        ax.annotate(f'{_plain(rows[i]["name"])} ({rows[i]["num_true"]}/{rows[i]["num_rated"]})', (i + 0.5, q[i]),
                    xytext=(6, 60 - 11 * rank), textcoords='offset points', fontsize=7.5,
                    arrowprops={'arrowstyle': '-', 'color': '#999', 'lw': 0.5})
    return _svg(fig)


def strong_columns(classes: pa.Table) -> list[str]:
    """The strong_segments_<split> columns holding any value (none without --strong_labels)."""
    return [f'strong_segments_{s}' for s in STRONG_SPLITS
            if f'strong_segments_{s}' in classes.column_names and classes[f'strong_segments_{s}'].null_count
            < classes.num_rows]


def fig_strong_coverage(classes: pa.Table) -> str:
    cols = strong_columns(classes)
    fig, axes = _figure(10, 2.8 * max(1, len(cols)), max(1, len(cols)), 1)
    if not cols:
        _no_data(axes[0, 0], 'no strong labels')
        return _svg(fig)
    for ax, col in zip(axes[:, 0], cols):
        split = col[len('strong_segments_'):]
        seg = np.asarray(classes[col].fill_null(0).to_numpy(zero_copy_only=False), np.int64)
        ev_col = f'strong_events_{split}'
        events = np.asarray(classes[ev_col].fill_null(0).to_numpy(zero_copy_only=False), np.int64) \
            if ev_col in classes.column_names else np.zeros_like(seg)
        order = np.lexsort((np.arange(len(seg)), -seg))
        seg, events = seg[order], events[order]
        n = int((seg > 0).sum())
        seg, events = seg[:n], events[:n]
        if not n:
            _no_data(ax, f'{split}: no class has strong labels')
            continue
        edges = np.arange(n + 1)
        ax.stairs(events, edges, fill=True, color='#17becf', alpha=0.5, label='events', baseline=0.5)
        ax.stairs(seg, edges, fill=True, color='#1f77b4', alpha=0.8, label='segments', baseline=0.5)
        ax.set_yscale('log')
        ax.set_xlim(0, n)
        ax.set_title(f'strong {_plain(split)}: {n} classes with strong labels', fontsize=10, loc='left')
        ax.set_ylabel('count (log)')
        ax.set_xticks([])
        ax.legend(fontsize=8)
        names = classes['name'].to_pylist()
        for rank in range(min(3, n)):
            ax.annotate(f'{_plain(names[order[rank]])} ({seg[rank]:,})', (rank + 0.5, seg[rank]),
                        xytext=(8, -10 - 10 * rank), textcoords='offset points', fontsize=7.5)
    axes[-1, 0].set_xlabel('classes, most strongly labelled segments first')
    return _svg(fig)


def fig_embedding_distribution(c: Computed) -> str:
    fig, ax = _figure(10, 3.2)
    ax = ax[0, 0]
    dims = np.arange(EMBEDDING_DIM)
    for hist, colour, label in ((c.released_hist, '#1f77b4', 'released'), (c.computed_hist, '#d62728', 'computed')):
        if not hist.sum():
            continue
        q25, q50, q75 = histogram_quantiles(hist)
        ax.fill_between(dims, q25, q75, step='mid', color=colour, alpha=0.25, lw=0)
        ax.step(dims, q50, where='mid', color=colour, lw=1, label=f'{label}: median and 25-75%')
    ax.set_xlim(-0.5, EMBEDDING_DIM - 0.5)
    ax.set_ylim(0, 255)
    ax.set_xlabel('embedding dimension (PCA component)')
    ax.set_ylabel('byte value')
    ax.legend(fontsize=8, loc='upper right')
    return _svg(fig)


def fig_agreement(pairs: list) -> str:
    fig, axes = _figure(10, 2.6, 1, 3)
    ax1, ax2, ax3 = axes[0]
    if not pairs:
        for ax in axes[0]:
            _no_data(ax, 'no segment has both')
        return _svg(fig)
    mad = [p.mean_abs_diff for p in pairs]
    cos = [p.cosine for p in pairs if not math.isnan(p.cosine)]
    offsets = [p.best_offset for p in pairs]
    ax1.hist(mad, bins=20, color='#8c564b')
    ax1.set_xlabel('mean |computed - released| (bytes)')
    ax1.set_ylabel('segments')
    ax2.hist(cos, bins=20, range=(-1, 1), color='#9467bd')
    ax2.set_xlabel('cosine, dequantized frames')
    ks = np.arange(-MAX_OFFSET, MAX_OFFSET + 1)
    ax3.bar(ks, [offsets.count(int(k)) for k in ks], color='#17becf')
    ax3.set_xticks(ks)
    ax3.set_xlabel('best-aligning frame offset')
    return _svg(fig)


# -- HTML --------------------------------------------------------------------------------------------------

_CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1080px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #444; font-size: 0.92em; margin-top: 0.3em; }
.warning { background: #fff3cd; border: 1px solid #e0b100; padding: 0.6em 0.9em; }
.note { color: #555; font-size: 0.9em; } code { font-size: 0.95em; }
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def number(value, key: list | None = None, cls: str | None = None, column: str | None = None) -> str:
    """A number as text (thousands separated) in a <span> that says where it comes from: ``key`` is its
    path in manifest.json; ``cls`` and ``column`` its cell in classes.parquet."""
    attrs = ''
    if key is not None:
        attrs += f" data-key='{_esc(json.dumps(key))}'"
    if cls is not None:
        attrs += f' data-class="{_esc(cls)}" data-column="{_esc(column)}"'
    shown = f'{value:,}' if isinstance(value, int) and not isinstance(value, bool) else _esc(value)
    return f'<span class="n"{attrs} data-value="{_esc(json.dumps(value))}">{shown}</span>'


def _table(head: list[str], rows: list[list[str]], numeric_from: int = 1, table_id: str = '') -> str:
    ident = f' id="{table_id}"' if table_id else ''
    th = ''.join(f'<th{" class=n" if i >= numeric_from else ""}>{h}</th>' for i, h in enumerate(head))
    body = ''.join('<tr>' + ''.join(f'<td{" class=n" if i >= numeric_from else ""}>{c}</td>'
                                    for i, c in enumerate(r)) + '</tr>' for r in rows)
    return f'<table{ident}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


class _Page:
    def __init__(self):
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def figure(self, ident: str, svg: str, caption: str) -> None:
        self.parts.append(f'<figure id="fig-{ident}" class="report-figure">{svg}'
                          f'<figcaption>{_esc(caption)}</figcaption></figure>')


def _numeric_leaves(obj, path: list) -> list[tuple[list, object]]:
    """(path, value) of every int/float under ``obj`` (booleans excluded), in key order."""
    if isinstance(obj, dict):
        return [leaf for k in sorted(obj) for leaf in _numeric_leaves(obj[k], path + [k])]
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return [(path, obj)]
    return []


def render(data: ReportInput) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    m, classes = data.manifest, data.classes
    names = dict(zip(classes['mid'].to_pylist(), classes['name'].to_pylist()))
    splits = _splits(m)
    page = _Page()
    title = f'AudioSet build report: {data.output_dir}'
    page.add(f'<h1>{_esc(title)}</h1>')
    page.add(f'<p class="note">Built {_esc(m.get("finished", "?"))}, status {_esc(m.get("status", "?"))}; '
             f'report written {_esc(data.generated)}. Every number here comes from <code>manifest.json</code> '
             'or <code>classes.parquet</code> of this output.</p>')

    # Summary table: the manifest's own numbers, with their keys.
    rows = []
    for s in splits:
        sp = m['splits'][s]
        row = [_esc(s)] + [number(sp.get(k, 0), ['splits', s, k]) for k in
                           ('records_in', 'segments_out', 'clip_rows', 'partitions', 'dead_letters')]
        csv = (m.get('csv') or {}).get(s)
        row.append(number(csv['rows_missing_features'], ['csv', s, 'rows_missing_features'])
                   if csv and 'rows_missing_features' in csv else '-')
        rows.append(row)
    page.add('<h2 id="summary">Segments per split</h2>')
    page.add(_table(['split', 'records in', 'segments', 'clip rows', 'classes', 'dead letters',
                     'CSV rows without embedding'], rows, table_id='splits'))
    page.figure('segments-per-split', fig_segments_per_split(m),
                'Segments built per split (bars) and input records rejected as dead letters (red, if any).')
    leak = (m.get('leakage') or {}).get('segments', 0)
    if leak:
        page.add(f'<p class="warning">{number(leak, ["leakage", "segments"])} segments are in more than one '
                 'split (train/eval leakage; manifest <code>leakage</code>).</p>')

    page.add('<h2 id="classes">Classes</h2>')
    page.figure('class-distribution', fig_class_distribution(classes, splits),
                'Segments per label in each split, all labels of the class index on a log scale, most frequent '
                'first; the top and bottom labels with segments are named.')
    top_rows = []
    for s in splits:
        col = f'segments_{s}'
        if col not in classes.column_names:
            continue
        lab = classes.filter(classes['is_label']) if 'is_label' in classes.column_names else classes
        ranked = sorted(zip(lab['mid'].to_pylist(), lab[col].fill_null(0).to_pylist()), key=lambda t: (-t[1], t[0]))
        with_segments = [t for t in ranked if t[1] > 0]
        for where, chosen in (('top', with_segments[:NAMED_CLASSES]), ('bottom', with_segments[-NAMED_CLASSES:])):
            for mid, n in chosen:
                top_rows.append([_esc(s), where, _esc(names.get(mid, mid)), f'<code>{_esc(mid)}</code>',
                                 number(n, cls=mid, column=col)])
    page.add(_table(['split', 'end', 'class', 'MID', 'segments'], top_rows, numeric_from=4, table_id='top-classes'))
    page.figure('ontology-branches', fig_ontology_branches(classes, splits),
                'Segments under each top-level branch of the ontology (depth 0), counting a segment once per '
                'branch any of its labels or their ancestors fall in.')
    branch_rows = []
    for r in classes.filter(pc.equal(classes['depth'], 0)).to_pylist():
        branch_rows.append([_esc(r['name'])] + [
            number(r.get(f'segments_with_descendants_{s}') or 0, cls=r['mid'], column=f'segments_with_descendants_{s}')
            for s in splits])
    page.add(_table(['branch'] + [_esc(s) for s in splits], branch_rows, table_id='branches'))

    page.add('<h2 id="segments">Labels and frames per segment</h2>')
    dist = {s: data.distributions[s] for s in sorted(data.distributions, key=lambda s: (
        SPLITS.index(s) if s in SPLITS else len(SPLITS), s))}
    from_manifest = data.distributions_source == 'manifest'
    if not from_manifest:
        page.add(f'<p class="note">This manifest has no <code>distributions</code>: counted from '
                 f'{_esc(data.distributions_source)}.</p>')
    page.figure('labels-per-segment', fig_histograms(dist, 'labels_per_segment', 'labels per segment', False),
                'How many positive labels a segment has, per split.')
    page.figure('frames-per-segment', fig_histograms(dist, 'frames_per_segment', 'frames (1 s each) per segment', True),
                'How many 1-second embedding frames a segment has (10 for a full clip), per split, log scale.')
    hist_rows = []
    for s, d in dist.items():
        for what in ('labels_per_segment', 'frames_per_segment'):
            for k, v in sorted(d.get(what, {}).items(), key=lambda kv: int(kv[0])):
                key = ['distributions', s, what, k] if from_manifest else None
                hist_rows.append([_esc(s), what.replace('_', ' '), _esc(k), number(v, key)])
    page.add('<details><summary>The counts</summary>'
             + _table(['split', 'histogram', 'value', 'segments'], hist_rows, numeric_from=3, table_id='histograms')
             + '</details>')
    page.figure('label-pairs', fig_label_pairs(dist, names),
                'The most frequent pairs of labels on one segment, per split.')
    pair_rows = []
    for s, d in dist.items():
        for i, (a, b, n) in enumerate(d.get('top_label_pairs', [])[:10]):
            key = ['distributions', s, 'top_label_pairs', i, 2] if from_manifest else None
            pair_rows.append([_esc(s), _esc(names.get(a, a)), _esc(names.get(b, b)), number(n, key)])
    page.add(_table(['split', 'label', 'label', 'segments'], pair_rows, numeric_from=3, table_id='pairs'))

    page.add('<h2 id="missing">Missing features</h2>')
    page.figure('missing-features', fig_missing_features(m),
                'Segments CSV rows with and without an embedding in the shards; those without are listed in '
                'missing_features/ (audio to fetch).')
    miss_rows = []
    for s, c in sorted((m.get('csv') or {}).items()):
        in_files = data.missing_files.get(s)
        miss_rows.append([_esc(s), number(c.get('rows_in', 0), ['csv', s, 'rows_in']),
                          number(c.get('rows_matched', 0), ['csv', s, 'rows_matched']),
                          number(c.get('rows_missing_features', 0), ['csv', s, 'rows_missing_features']),
                          f'{in_files:,}' if in_files is not None else 'no file'])
        if in_files is not None and in_files != c.get('rows_missing_features', 0):
            page.add(f'<p class="warning">{_esc(s)}: missing_features/ holds {in_files:,} rows, the manifest says '
                     f'{c.get("rows_missing_features", 0):,}.</p>')
    page.add(_table(['split', 'CSV rows', 'with embedding', 'without', 'rows in missing_features/'], miss_rows,
                    table_id='missing'))

    page.add('<h2 id="dead-letters">Dead letters</h2>')
    dl = m.get('dead_letters') or {}
    by = dl.get('by_stage_and_reason', {})
    page.figure('dead-letters', fig_dead_letters(by),
                'Rejected inputs by stage and reason (each is a row of dead_letters/ with its file and position).')
    page.add(f'<p>{number(dl.get("total", 0), ["dead_letters", "total"])} dead letters in '
             f'<code>{_esc(dl.get("path", ""))}</code>.</p>')
    if by:
        page.add(_table(['stage/reason', 'dead letters'],
                        [[f'<code>{_esc(k)}</code>', number(v, ['dead_letters', 'by_stage_and_reason', k])]
                         for k, v in sorted(by.items())], table_id='dead-letter-reasons'))
    if data.dead_letter_examples:
        page.add('<p>Examples:</p>' + _table(
            ['stage', 'reason', 'source', 'error'],
            [[_esc(r.get('stage')), _esc(r.get('reason')), f'<code>{_esc(r.get("source"))}</code>',
              _esc(str(r.get('error', ''))[:200])] for r in data.dead_letter_examples], numeric_from=9))

    if 'quality' in classes.column_names and classes['quality'].null_count < classes.num_rows:
        page.add('<h2 id="label-quality">Label quality</h2>')
        page.figure('label-quality', fig_label_quality(classes),
                    'Share of re-rated segments whose label was confirmed (qa_true_counts.csv), per rated class, '
                    'lowest first.')
        worst = sorted((r for r in classes.select(['mid', 'name', 'num_rated', 'num_true', 'quality']).to_pylist()
                        if r['quality'] is not None), key=lambda r: (r['quality'], r['name']))[:10]
        page.add(_table(['class', 'rated', 'confirmed', 'quality'],
                        [[_esc(r['name']), number(r['num_rated'], cls=r['mid'], column='num_rated'),
                          number(r['num_true'], cls=r['mid'], column='num_true'),
                          number(round(r['quality'], 4), cls=r['mid'], column='quality')] for r in worst],
                        table_id='label-quality-worst'))

    strong = m.get('strong')
    if strong_columns(classes) or strong:
        page.add('<h2 id="strong">Strong labels</h2>')
        page.figure('strong-coverage', fig_strong_coverage(classes),
                    'Classes by segments (and events) with strong, time-stamped labels in AudioSet Strong.')
        if isinstance(strong, dict):
            page.add(_table(['manifest strong', 'value'],
                            [[f'<code>{_esc(".".join(map(str, p)))}</code>', number(v, ['strong'] + p)]
                             for p, v in _numeric_leaves(strong, [])], table_id='strong'))

    if m.get('audio') or data.computed is not None:
        page.add('<h2 id="computed">Computed embeddings</h2>')
        audio = m.get('audio') or {}
        page.add(_table(['manifest audio', 'value'],
                        [[f'<code>{_esc(".".join(map(str, p)))}</code>', number(v, ['audio'] + p)]
                         for p, v in _numeric_leaves(audio, [])], table_id='audio'))
        c = data.computed
        if c is None or not c.rows:
            page.add('<p>No computed embedding is in clips/.</p>')
        else:
            _computed_section(page, c)

    body = '\n'.join(page.parts)
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_esc(title)}</title>'
            f'<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n')


def _computed_section(page: _Page, c: Computed) -> None:
    if not c.official:
        page.add('<p class="warning" id="model-warning"><strong>Not the official VGGish model</strong>: '
                 f'{_esc(c.official_reason)} The comparisons below with the released embeddings are '
                 'meaningless for these weights (test weights?): they only show that the numbers are computed.</p>')
    else:
        page.add(f'<p class="note" id="model-note">{_esc(c.official_reason)}</p>')
    page.add(_table(['model_fingerprint', 'computed segments'],
                    [[f'<code>{_esc(fp)}</code>', f'{n:,}'] for fp, n in sorted(c.fingerprints.items())],
                    table_id='fingerprints'))
    page.figure('embedding-distribution', fig_embedding_distribution(c),
                f'Per dimension: median and interquartile range of the computed bytes ({c.rows:,} segments) '
                f'against {c.released_reference}.')
    if c.pairs_total:
        mad = np.array([p.mean_abs_diff for p in c.pairs])
        cos = np.array([p.cosine for p in c.pairs])
        shift = np.array([p.best_offset for p in c.pairs])
        med = lambda a: float(np.nanmedian(a)) if len(a) and not np.all(np.isnan(a)) else math.nan  # noqa: E731
        page.add(f'<p>{c.pairs_total:,} segments have both a released and a computed embedding; '
                 f'{len(c.pairs):,} compared. Median mean absolute byte difference {med(mad):.2f}, median cosine {med(cos):.3f}, '
                 f'{int((shift == 0).sum()):,} best aligned without shifting.</p>')
    page.figure('embedding-agreement', fig_agreement(c.pairs),
                'Segments with both embeddings: mean absolute byte difference, cosine of the dequantized frames, '
                'and the frame offset that aligns them best.')
    if c.pairs:
        page.add('<details><summary>Per segment</summary>' + _table(
            ['segment', 'split', 'mean |diff|', 'cosine', 'best offset', 'cosine there'],
            [[f'<code>{_esc(p.segment_id)}</code>', _esc(p.split), f'{p.mean_abs_diff:.2f}', f'{p.cosine:.3f}',
              str(p.best_offset), f'{p.best_cosine:.3f}'] for p in c.pairs[:200]], numeric_from=2,
            table_id='agreement') + '</details>')


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
