"""report.html itself: one self-contained page (no script, no external resource) with a figure per view
of the dataset, each with a one-line caption, and every number that also exists in manifest.json carried as
``data-key`` (the JSON list of keys leading to it) and ``data-value``, so a test can compare the page with
the manifest; numbers from classes.parquet carry ``data-class`` and ``data-column`` instead.
``render(ReportInput) -> str``; the gathering (files, local or gs://) is transforms.report. Pure: no file.
"""
from __future__ import annotations

import datetime
import html
import json
import math

import numpy as np
import pyarrow.compute as pc

from audioset_beam.schema import SPLITS
from transforms.core.report_figures import (
    NAMED_CLASSES, fig_agreement, fig_class_distribution, fig_dead_letters, fig_embedding_distribution,
    fig_histograms, fig_label_pairs, fig_label_quality, fig_missing_features, fig_ontology_branches,
    fig_segments_per_split, fig_strong_coverage)
from transforms.core.report_stats import Computed, ReportInput, manifest_splits, strong_columns

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
    splits = manifest_splits(m)
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
