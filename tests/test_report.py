"""report.html in a real browser (Debian's headless Chromium, driven by playwright): it loads offline with no
console error, every figure is drawn, and its numbers are the manifest's and classes.parquet's."""
import json
import os
import pathlib
import shutil

import pyarrow.parquet as pq
import pytest

from pipelines import build_dataset
from pipelines import report as report_cli
from tests.fixtures import SAMPLE, build_args, copy_sample

CHROMIUM = '/usr/bin/chromium'
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync']
FIGURES = ['segments-per-split', 'class-distribution', 'ontology-branches', 'labels-per-segment',
           'frames-per-segment', 'label-pairs', 'missing-features', 'dead-letters']


@pytest.fixture(scope='module')
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f'{CHROMIUM} is missing: ./run_tests.sh installs it (scripts/ensure_system.sh)')
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp('report') / 'out'
    manifest = build_dataset.run(['--output_dir', str(out)])
    return out, manifest


def _open(browser, path: pathlib.Path, screenshot: pathlib.Path):
    """Loads the page; returns it with the console errors and the requests made outside file://."""
    page = browser.new_page(viewport={'width': 1200, 'height': 900})
    errors, remote = [], []
    page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.on('request', lambda r: remote.append(r.url) if not r.url.startswith(('file://', 'data:')) else None)
    page.goto(path.as_uri(), wait_until='load')
    page.screenshot(path=str(screenshot), full_page=True)
    if os.environ.get('AUDIOSET_REPORT_SCREENSHOT'):
        shutil.copyfile(screenshot, os.environ['AUDIOSET_REPORT_SCREENSHOT'])
    return page, errors, remote


def _figures(page) -> dict:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('figure.report-figure')].map(f => {
        const svg = f.querySelector('svg'), r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
        return [f.id, {width: r.width, height: r.height, shapes: svg ? svg.querySelectorAll('path, text').length : 0,
                       caption: (f.querySelector('figcaption') || {}).textContent || ''}];
    }))""")


def _lookup(obj, keys):
    for k in keys:
        obj = obj[k]
    return obj


def _check_numbers(page, manifest: dict, classes: list[dict]) -> int:
    cells = page.evaluate("""() => [...document.querySelectorAll('[data-value]')].map(e => ({
        key: e.dataset.key || null, cls: e.dataset.class || null, column: e.dataset.column || null,
        value: e.dataset.value, text: e.textContent}))""")
    by_mid = {c['mid']: c for c in classes}
    for c in cells:
        value = json.loads(c['value'])
        assert c['text'].replace(',', '') == str(value), c
        if c['key']:
            assert _lookup(manifest, json.loads(c['key'])) == value, c
        else:
            expected = by_mid[c['cls']][c['column']]
            assert (round(expected, 4) if isinstance(expected, float) else expected) == value, c
    return len(cells)


def test_sample_report_in_a_browser(sample, browser, tmp_path):
    out, manifest = sample
    assert manifest['report'] == {'path': str(out / 'report.html'), 'seconds': manifest['report']['seconds']}
    page, errors, remote = _open(browser, out / 'report.html', tmp_path / 'report.png')
    assert errors == [] and remote == []
    figures = _figures(page)
    assert sorted(figures) == sorted(f'fig-{f}' for f in FIGURES)
    for name, f in figures.items():
        assert f['width'] > 200 and f['height'] > 100 and f['shapes'] > 0 and f['caption'], (name, f)
    classes = pq.read_table(out / 'classes.parquet').to_pylist()
    checked = page.evaluate("[...document.querySelectorAll('[data-key]')].map(e => e.dataset.key)")
    assert {json.dumps(['splits', s, 'segments_out']) for s in manifest['splits']} <= set(checked)
    assert json.dumps(['dead_letters', 'total']) in checked
    assert _check_numbers(page, manifest, classes) > 50
    assert (tmp_path / 'report.png').stat().st_size > 10_000
    # the top classes the page names are the most frequent ones in classes.parquet
    top = page.evaluate("[...document.querySelectorAll('#top-classes tbody tr')].filter(r => "
                        "r.cells[0].textContent == 'eval' && r.cells[1].textContent == 'top')"
                        ".map(r => r.cells[3].textContent)")
    ranked = sorted((c for c in classes if c['is_label']), key=lambda c: (-c['segments_eval'], c['mid']))
    assert top == [c['mid'] for c in ranked[:5]]


def test_cli_regenerates_the_report(sample, tmp_path, capsys):
    out, manifest = sample
    copy = tmp_path / 'copy'
    shutil.copytree(out, copy)
    (copy / 'report.html').unlink()
    assert report_cli.run([str(copy)]) == 0
    assert capsys.readouterr().out.strip() == str(copy / 'report.html')
    html = (copy / 'report.html').read_text()
    assert html.count('class="report-figure"') == len(FIGURES)
    # An older manifest without distributions: counted from the clips' labels and num_frames instead.
    older = {k: v for k, v in manifest.items() if k != 'distributions'}
    (copy / 'manifest.json').write_text(json.dumps(older))
    assert report_cli.run([str(copy)]) == 0
    html = (copy / 'report.html').read_text()
    assert 'has no <code>distributions</code>' in html
    if 'distributions' in manifest:
        from transforms.report import count_distributions, list_clip_files
        counted = count_distributions(list_clip_files(str(copy)), pq.read_table(copy / 'classes.parquet'))
        for split, d in manifest['distributions'].items():
            assert counted[split]['labels_per_segment'] == d['labels_per_segment']
            assert counted[split]['frames_per_segment'] == d['frames_per_segment']
            assert [p[2] for p in counted[split]['top_label_pairs']] == [p[2] for p in d['top_label_pairs']]


def test_cli_errors(tmp_path, capsys):
    from pipelines.errors import InputError, UsageError
    with pytest.raises(InputError, match='no manifest.json'):
        report_cli.run([str(tmp_path)])
    with pytest.raises(UsageError, match='only local paths and gs://'):
        report_cli.run(['s3://bucket/out'])


def test_computed_embeddings_with_test_weights_are_flagged(browser, tmp_path_factory, tmp_path):
    from transforms.core.vggish import write_random_weights
    files = write_random_weights(str(tmp_path_factory.mktemp('weights')), seed=7)
    inputs = copy_sample(tmp_path_factory.mktemp('in'), splits=(), shards_per_split=0)
    clips = sorted((SAMPLE / 'audio' / 'bal_train').glob('*.mp3'))
    for clip in clips:  # the shards with the clips' released embeddings
        shard = SAMPLE / 'features' / 'bal_train' / f'{clip.name[:2]}.tfrecord'
        (inputs / 'features' / 'bal_train').mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shard, inputs / 'features' / 'bal_train' / shard.name)
    out = tmp_path / 'out'
    manifest = build_dataset.run(build_args(inputs, out, '--audio_manifest',
                                            str(SAMPLE / 'audio' / 'bal_train' / 'manifest.csv'),
                                            '--vggish_checkpoint', files.checkpoint,
                                            '--vggish_pca_params', files.pca_params))
    assert 'error' not in manifest['report']
    page, errors, remote = _open(browser, out / 'report.html', tmp_path / 'computed.png')
    assert errors == [] and remote == []
    warning = page.text_content('#model-warning')
    assert 'Not the official VGGish model' in warning and 'meaningless' in warning
    figures = _figures(page)
    for name in ('fig-embedding-distribution', 'fig-embedding-agreement'):
        assert figures[name]['width'] > 200 and figures[name]['shapes'] > 10
    rows = page.evaluate("[...document.querySelectorAll('#agreement tbody tr')].map(r => r.cells[0].textContent)")
    assert sorted(r.rsplit('_', 1)[0] for r in rows) == sorted(c.stem for c in clips)  # each with its twin
    _check_numbers(page, manifest, pq.read_table(out / 'classes.parquet').to_pylist())


def test_cli_draws_class_names_with_tex_and_markup(sample, tmp_path, capsys):
    """A class name is drawn and shown as it is: ``$\\foo$`` is no TeX to matplotlib (it stopped the report
    being written, and the CLI then blamed the build), ``<script>`` and ``&`` are no markup to the page."""
    import pyarrow as pa
    out, _ = sample
    copy = tmp_path / 'copy'
    shutil.copytree(out, copy)
    (copy / 'report.html').unlink()
    classes = pq.read_table(copy / 'classes.parquet')
    hostile = [f'{name} $\\foo$ <script>x</script> & $\\frac{{1}}{{0}}$' for name in classes['name'].to_pylist()]
    pq.write_table(classes.set_column(classes.schema.get_field_index('name'), 'name', pa.array(hostile)),
                   copy / 'classes.parquet')
    assert report_cli.run([str(copy)]) == 0
    assert capsys.readouterr().out.strip() == str(copy / 'report.html')
    html = (copy / 'report.html').read_text()
    assert '<script' not in html and html.count('class="report-figure"') == len(FIGURES)
    shown = [n for n in hostile if n.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;') in html]
    assert any(n.startswith('Speech ') for n in shown) and len(shown) >= 10   # top classes, branches, pairs
