"""report.html's figures: matplotlib drawings of a build's small tables, each returned as an inline <svg>
(text as text, deterministic ids). Names from the data are drawn literally (``_plain``: no TeX). Pure: no file.
"""
from __future__ import annotations

import io
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audioset_beam.schema import EMBEDDING_DIM, SPLITS
from transforms.core.report_stats import MAX_OFFSET, Computed, histogram_quantiles, manifest_splits, strong_columns

NAMED_CLASSES = 5       # top and bottom classes named in the class distribution

# Split colours, the same in every figure.
_COLOURS = {'eval': '#1f77b4', 'balanced_train': '#ff7f0e', 'unbalanced_train': '#2ca02c',
            'unlabelled': '#7f7f7f'}


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


def fig_segments_per_split(manifest: dict) -> str:
    splits = manifest_splits(manifest)
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
