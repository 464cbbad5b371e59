"""transforms.core.report_stats and report_page: the numbers behind the figures, and the page's
machine-checkable numbers."""
import json
import re

import numpy as np
import pyarrow as pa
import pytest

from transforms.core import report_stats as stats
from transforms.core.report_page import render


def test_dequantize_matches_youtube8m():
    q = np.array([0, 128, 255], np.uint8)
    assert np.allclose(stats.dequantize(q), q * 4.0 / 255.0 + (4.0 / 512.0 - 2.0))


def test_byte_histogram_and_quantiles():
    frames = np.zeros((4, 128), np.uint8)
    frames[:, 0] = [10, 20, 30, 40]
    frames[:, 1] = 7
    hist = stats.byte_histogram(frames)
    assert hist.shape == (128, 256) and hist.sum() == 4 * 128
    assert hist[0, 10] == hist[0, 40] == 1 and hist[1, 7] == 4
    q25, q50, q75 = stats.histogram_quantiles(hist)
    assert (q25[0], q50[0], q75[0]) == (10, 20, 30) and q50[1] == 7
    assert np.isnan(stats.histogram_quantiles(np.zeros((128, 256), np.int64))).all()


def test_agreement_finds_the_shift():
    rng = np.random.default_rng(0)
    released = rng.integers(0, 256, (10, 128), dtype=np.uint8)
    same = stats.agreement('a_0', 'eval', released, released)
    assert same.mean_abs_diff == 0 and same.cosine == pytest.approx(1, abs=1e-5) and same.best_offset == 0
    shifted = stats.agreement('a_0', 'eval', released[2:], released)   # computed frame i == released i + 2
    assert shifted.best_offset == 2 and shifted.best_cosine == pytest.approx(1, abs=1e-5)
    assert shifted.cosine < 0.99 and shifted.mean_abs_diff > 0
    short = stats.agreement('a_0', 'eval', released[:9], released)    # 9 frames against 10
    assert short.best_offset == 0 and short.mean_abs_diff == 0


def test_distributions_from_rows():
    order = {'/m/a': 0, '/m/b': 1, '/m/c': 2}
    d = stats.distributions_from_rows([['/m/b', '/m/a'], ['/m/a', '/m/b', '/m/c'], ['/m/c'], ['/m/c', '/m/c']],
                                      [10, 10, 3, 10], order)
    assert d['labels_per_segment'] == {'1': 2, '2': 1, '3': 1}     # a repeated MID counts once
    assert d['frames_per_segment'] == {'3': 1, '10': 3}
    assert d['top_label_pairs'] == [['/m/a', '/m/b', 2], ['/m/a', '/m/c', 1], ['/m/b', '/m/c', 1]]


def _classes() -> pa.Table:
    mids = ['/m/root', '/m/a', '/m/b']
    return pa.table({
        'index': pa.array([None, 0, 1], pa.int32()), 'mid': mids, 'name': ['Root', 'A', 'B'],
        'depth': pa.array([0, 1, 1], pa.int32()), 'is_label': [False, True, True],
        'segments_eval': pa.array([0, 5, 2], pa.int64()),
        'segments_with_descendants_eval': pa.array([6, 5, 2], pa.int64()),
        'num_rated': pa.array([None, 10, None], pa.int64()), 'num_true': pa.array([None, 7, None], pa.int64()),
        'quality': pa.array([None, 0.7, None], pa.float64()),
    })


def _manifest() -> dict:
    return {'status': 'complete', 'finished': 'now',
            'splits': {'eval': {'records_in': 8, 'segments_out': 6, 'clip_rows': 7, 'partitions': 2,
                                'dead_letters': 2}},
            'csv': {'eval': {'rows_in': 9, 'rows_matched': 6, 'rows_missing_features': 3}},
            'dead_letters': {'total': 2, 'by_stage_and_reason': {'read-shard/data-crc-mismatch': 2}, 'path': 'x'},
            'distributions': {'eval': {'labels_per_segment': {'1': 5, '2': 1}, 'frames_per_segment': {'10': 6},
                                       'top_label_pairs': [['/m/a', '/m/b', 1]]}}}


def test_render_carries_manifest_numbers_and_every_figure():
    m = _manifest()
    page = render(stats.ReportInput('out', m, _classes(), m['distributions'], 'manifest', {'eval': 3},
                                    [{'stage': 'read-shard', 'reason': 'data-crc-mismatch',
                                      'source': 's.tfrecord', 'error': '<bad>'}]))
    assert '<script' not in page and not re.search(r'''(src|href|url)\s*[=(]\s*["']?\s*(https?:|//)''', page)
    figures = re.findall(r'<figure id="fig-([a-z-]+)"', page)
    assert figures == ['segments-per-split', 'class-distribution', 'ontology-branches', 'labels-per-segment',
                       'frames-per-segment', 'label-pairs', 'missing-features', 'dead-letters', 'label-quality']
    assert all(f'<figcaption>' in chunk for chunk in page.split('<figure ')[1:])
    keyed = re.findall(r"data-key='([^']+)' data-value=\"([^\"]+)\"", page)
    assert len(keyed) == 15   # 6 split + 3 csv + 3 histogram + 1 pair + 2 dead-letter numbers
    for key, value in keyed:
        obj = m
        for k in json.loads(key.replace('&quot;', '"')):
            obj = obj[k]
        assert obj == json.loads(value.replace('&quot;', '"'))
    assert '&lt;bad&gt;' in page and 'model-warning' not in page


def test_test_weights_are_called_meaningless():
    m = _manifest()
    empty = np.zeros((128, 256), np.int64)
    computed = stats.Computed(rows=1, fingerprints={'f' * 64: 1}, official=False, official_reason='test weights.',
                              computed_hist=empty + 1, released_hist=empty + 1, released_reference='them',
                              pairs=[stats.Agreement('v_0', 'eval', 3.0, 0.5, 1, 0.6)], pairs_total=1)
    page = render(stats.ReportInput('out', m, _classes(), m['distributions'], 'manifest', {}, [], computed))
    assert 'id="model-warning"' in page and 'meaningless' in page
    assert 'fig-embedding-distribution' in page and 'fig-embedding-agreement' in page
    computed.official, computed.official_reason = True, 'published weights.'
    page = render(stats.ReportInput('out', m, _classes(), m['distributions'], 'manifest', {}, [], computed))
    assert 'model-warning' not in page and 'published weights.' in page


HOSTILE = {'/m/root': r'Root $\frac{1}{0}$', '/m/a': 'A <script>alert(1)</script>', '/m/b': 'B & $\\foo$ \\$ \\'}


def test_class_names_are_drawn_and_shown_as_they_are():
    """Names come from the ontology, class index and mid_to_display_name.tsv: a ``$`` pair is TeX to
    matplotlib (an unknown macro such as ``$\\foo$`` stopped the report being drawn), ``<`` and ``&`` are
    markup to the page."""
    m = _manifest()
    classes = _classes()
    classes = classes.set_column(classes.schema.get_field_index('name'), 'name',
                                 pa.array([HOSTILE[mid] for mid in classes['mid'].to_pylist()]))
    m['distributions']['eval']['top_label_pairs'] = [['/m/a', '/m/b', 1]]
    page = render(stats.ReportInput('out', m, classes, m['distributions'], 'manifest', {}, []))
    assert '<script' not in page
    for name in HOSTILE.values():
        escaped = name.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
        assert escaped in page, name   # in the tables and, drawn as text, in the figures' SVG
    svgs = re.findall(r'<svg.*?</svg>', page, re.S)
    drawn = ' '.join(re.sub(r'<[^>]+>', ' ', svg) for svg in svgs)
    assert r'Root $\frac{1}{0}$' in drawn and 'A &lt;script&gt;' in drawn   # literally, not as TeX
    assert 'B &amp; $\\foo$ \\$ \\' in drawn
