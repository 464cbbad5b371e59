"""AudioSet Strong in the build (issue 12), end to end: strong TSVs generated in the release's format for
segments of the bundled sample (plus segments the build does not have, and damaged lines), then every
strong column, missing_strong/, the class counts and the manifest checked against the generator's own
record of what it wrote and a plain-loop per-frame oracle (tests.strong_fixtures), not the build's code."""
import collections
import functools
import http.server
import json
import shutil
import threading

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipelines import build_dataset
from pipelines.console import cli_status
from pipelines.errors import EXIT_FAILED, EXIT_INPUT
from tests.fixtures import SAMPLE
from tests.strong_fixtures import (EVAL, FRAMED, FRAMED_HEADER, HEADER, NAMES, TRAIN, oracle_frame_labels,
                                   write_strong_files, write_tsv)

ABSENT_TRAIN, ABSENT_EVAL = ('absentAAAAA_30000', 10.0), ('absentBBBBB_0', 10.0)


def _sample_segments():
    """(segment_id, duration s, frames) per release folder, read with TensorFlow's own parser."""
    import tensorflow as tf
    out = {}
    for folder in ('eval', 'bal_train', 'unbal_train'):
        for f in sorted((SAMPLE / 'features' / folder).glob('*.tfrecord')):
            for raw in tf.data.TFRecordDataset(str(f)):
                ex = tf.train.SequenceExample.FromString(raw.numpy())
                c = ex.context.feature
                vid = c['video_id'].bytes_list.value[0].decode()
                s, e = c['start_time_seconds'].float_list.value[0], c['end_time_seconds'].float_list.value[0]
                n = len(ex.feature_lists.feature_list['audio_embedding'].feature)
                out.setdefault(folder, []).append((f'{vid}_{round(s * 1000)}', round((e - s) * 1000), n))
    return out


@pytest.fixture(scope='module')
def build(tmp_path_factory):
    root = tmp_path_factory.mktemp('strong')
    segs = _sample_segments()
    train = [(i, d / 1000) for i, d, _ in segs['bal_train'][:40] + segs['unbal_train'][:20]] + [ABSENT_TRAIN]
    # Eval: every third segment is in the posneg file, as in the release (a subset of the eval strong set).
    evals = [(i, d / 1000) for i, d, _ in segs['eval'][:30]] + [ABSENT_EVAL]
    fx = write_strong_files(root / 'strong', train, evals, framed_segments=evals[::3], bad_lines=True)
    out = root / 'out'
    manifest = build_dataset.run(['--output_dir', str(out), '--strong_labels', str(fx.dir)])
    frames = {i: (d, n) for v in segs.values() for i, d, n in v}
    return out, manifest, fx, frames


def _clips(out, columns):
    return ds.dataset(out / 'clips', partitioning='hive').to_table(
        filter=ds.field('is_primary'), columns=['segment_id', 'split', 'num_frames'] + columns).to_pylist()


def _events(rows):
    by = collections.defaultdict(list)
    for seg, a, b, mid in rows:
        by[seg].append((a, b, mid))
    return by


def _strong_rows(build, column):
    """(clip row, its generated events, duration ms) of every primary clip with strong labels; the others
    must have ``column`` null. Checks that all 90 sample segments given strong labels (60 train + 30 eval)
    are among them."""
    out, _, fx, frames = build
    want = {**_events(fx.train), **_events(fx.eval)}
    found = []
    for r in _clips(out, [column]):
        events = want.get(r['segment_id'])
        if events is None:
            assert r[column] is None
        else:
            found.append((r, events, frames[r['segment_id']][0]))
    assert len(found) == 90
    return found


def test_every_strong_segment_gets_its_events_clipped_and_sorted(build):
    fx = build[2]
    names = dict(line.split('\t', 1) for line in (fx.dir / 'mid_to_display_name.tsv').read_text().splitlines())
    for r, events, dur in _strong_rows(build, 'strong_events'):
        expect = [(int(a), int(min(b, dur)), m) for a, b, m in events if a <= dur]
        got = [(round(e['start'] * 1000), round(e['end'] * 1000), e['label']) for e in r['strong_events']]
        assert sorted(got) == sorted(expect)
        assert got == sorted(got, key=lambda e: (e[0], e[2], e[1]))  # sorted by start, label, end
        assert all(e['label_name'] == names[e['label']] for e in r['strong_events'])


def test_frame_labels_follow_the_frame_rule_on_released_frames(build):
    for r, events, dur in _strong_rows(build, 'frame_labels'):
        assert len(r['frame_labels']) == r['num_frames']
        assert [sorted(f) for f in r['frame_labels']] == oracle_frame_labels(events, dur, r['num_frames'], 1000)


def test_official_framed_labels_come_from_the_posneg_file(build):
    out, _, fx, _ = build
    present, absent = collections.defaultdict(dict), collections.defaultdict(dict)
    for seg, a, _, mid, is_present in fx.framed:
        (present if is_present else absent)[seg].setdefault(a // 960, set()).add(mid)
    rows = _clips(out, ['frame_positives_official', 'frame_negatives'])
    got = 0
    for r in rows:
        seg = r['segment_id']
        if seg not in present and seg not in absent:
            assert r['frame_positives_official'] is None and r['frame_negatives'] is None
            continue
        got += 1
        last = max(list(present[seg]) + list(absent[seg]))
        assert [sorted(f) for f in r['frame_positives_official']] == \
            [sorted(present[seg].get(k, ())) for k in range(last + 1)]
        assert [sorted(f) for f in r['frame_negatives']] == [sorted(absent[seg].get(k, ())) for k in range(last + 1)]
    assert got == 10  # evals[::3] of the 30 sample eval segments; the absent one is not built


def test_strong_segments_no_clip_took_are_listed_with_their_file_and_line(build):
    out, manifest, fx, _ = build
    t = pq.read_table(out / 'missing_strong').to_pylist()
    by_split = {r['split']: r for r in t}
    assert set(by_split) == {'train', 'eval'} and len(t) == 2
    for split, file, (seg, _), rows in (('train', TRAIN, ABSENT_TRAIN, fx.train), ('eval', EVAL, ABSENT_EVAL, fx.eval)):
        r = by_split[split]
        assert r['segment_id'] == seg and r['strong_file'].endswith(file)
        lines = [n + 2 for n, row in enumerate(rows) if row[0] == seg]
        assert r['line_number'] == min(lines) and r['events'] == len(lines)
    s = manifest['strong']
    assert s['train']['segments'] == 61 and s['train']['segments_joined'] == 60
    assert s['train']['events'] == len(fx.train)
    assert s['train']['events_joined'] == sum(1 for row in fx.train if row[0] != ABSENT_TRAIN[0])
    assert s['eval']['segments'] == 31 and s['eval']['segments_joined'] == 30
    assert s['eval']['events'] == len(fx.eval)
    for split in ('train', 'eval'):  # every event: attached, started after its segment, or not joined
        assert s[split]['events_attached'] + s[split]['events_after_segment_end'] == s[split]['events_joined']
        assert s[split]['events_after_segment_end'] == 0  # the fixtures never start an event after the end


def test_damaged_strong_lines_are_dead_letters_with_file_and_line(build):
    out, manifest, fx, _ = build
    dead = [r for r in pq.read_table(out / 'dead_letters').to_pylist() if r['stage'] == 'parse-strong']
    got = sorted((r['source'].rsplit('/', 1)[-1], r['line_number'], r['reason']) for r in dead)
    want = sorted((f, n, why) for f in (TRAIN, FRAMED) for n, why in fx.bad_lines[f])
    assert got == want
    files = manifest['strong']['files']
    for role, file, good in (('train', TRAIN, len(fx.train)), ('eval', EVAL, len(fx.eval)),
                             ('framed', FRAMED, len(fx.framed))):
        assert files[role]['file'].endswith(file) and files[role]['dropped'] is None
        assert files[role]['lines_rejected'] == len(fx.bad_lines[file])
        assert files[role]['lines_in'] == good + len(fx.bad_lines[file]) and files[role]['rows_ok'] == good
    assert files['names']['lines_in'] == files['names']['rows_ok'] == 456 and files['names']['lines_rejected'] == 0


def test_a_mid_neither_the_ontology_nor_the_names_file_knows_is_a_dead_letter_not_a_class(build):
    out, _, fx, _ = build
    unknown = [(n, r) for n, r in fx.bad_lines[TRAIN] if r == 'unknown-mid']
    dead = [r for r in pq.read_table(out / 'dead_letters').to_pylist() if r['reason'] == 'unknown-mid']
    assert [(r['stage'], r['source'].rsplit('/', 1)[-1], r['line_number']) for r in dead] == \
        [('parse-strong', TRAIN, n) for n, _ in unknown]
    classes = pq.read_table(out / 'classes.parquet').to_pylist()
    assert '/m/0notaclass' not in {c['mid'] for c in classes}
    assert all(c['name'] for c in classes if c['strong_events_train'] or c['strong_events_eval'])


def test_class_table_counts_strong_segments_and_events_per_split(build):
    out, _, fx, _ = build
    classes = {r['mid']: r for r in pq.read_table(out / 'classes.parquet').to_pylist()}
    for split, rows in (('train', fx.train), ('eval', fx.eval)):
        events = collections.Counter(mid for _, _, _, mid in rows)
        segments = collections.Counter(mid for _, mid in {(seg, mid) for seg, _, _, mid in rows})
        for mid, n in events.items():
            assert classes[mid][f'strong_events_{split}'] == n
            assert classes[mid][f'strong_segments_{split}'] == segments[mid]
    # Strong MIDs missing from ontology.json still get a row, named from mid_to_display_name.tsv.
    onto = {n['id'] for n in json.loads((SAMPLE / 'ontology.json').read_text())}
    odd = {mid for _, _, _, mid in fx.train} - onto
    assert odd and all(not classes[m]['in_ontology'] and classes[m]['name'] for m in odd)


def test_a_build_without_strong_labels_has_null_strong_columns(build):
    out, _, _, _ = build
    schema = ds.dataset(out / 'clips', partitioning='hive').schema
    assert {'strong_events', 'frame_labels', 'frame_positives_official', 'frame_negatives'} <= set(schema.names)


def test_a_folder_without_strong_files_is_a_clear_error(tmp_path, capsys):
    (tmp_path / 'empty').mkdir()
    code = cli_status(build_dataset._main, ['--output_dir', str(tmp_path / 'o'), '--strong_labels',
                                            str(tmp_path / 'empty')])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT
    assert 'error:' in err and '--strong_labels' in err and 'audioset_train_strong.tsv' in err
    assert 'Traceback' not in err
    assert not (tmp_path / 'o' / 'manifest.json').exists()


def _fail(tmp_path, capsys, strong_dir, *flags):
    code = cli_status(build_dataset._main, ['--output_dir', str(tmp_path / 'o'), '--strong_labels',
                                            str(strong_dir), *flags])
    return code, capsys.readouterr().err


def test_strong_files_dropped_whole_fail_the_run_naming_each_file_and_why(build, tmp_path, capsys):
    """No header, an extra column, nothing but garbage: each file is lost whole, so the run fails (exit 1)
    with each named, though every other input is fine; each garbage line is still a dead letter."""
    fx = build[2]
    d = tmp_path / 'strong'
    train = (fx.dir / TRAIN).read_text().splitlines()[1:]
    write_tsv(d / TRAIN, train[0], train[1:])                                      # no header
    write_tsv(d / EVAL, HEADER + '\tcomment', [r + '\tx' for r in (fx.dir / EVAL).read_text().splitlines()[1:]])
    write_tsv(d / FRAMED, FRAMED_HEADER, ['garbage', 'more\tgarbage', '<html>'])  # nothing parseable
    shutil.copyfile(fx.dir / NAMES, d / NAMES)
    code, err = _fail(tmp_path, capsys, d)
    assert code == EXIT_FAILED and 'Traceback' not in err
    assert f'{d / TRAIN}: AudioSet Strong file not used at all: bad header' in err
    assert f'{d / EVAL}: AudioSet Strong file not used at all: bad header' in err and '(5 fields)' in err
    assert f'{d / FRAMED}: AudioSet Strong file not used at all: none of its 3 lines is usable' in err
    assert not (tmp_path / 'o' / 'manifest.json').exists()
    dead = pq.read_table(tmp_path / 'o' / 'dead_letters').to_pylist()
    got = sorted((r['source'].rsplit('/', 1)[-1], r['line_number'], r['reason']) for r in dead
                 if r['stage'] == 'parse-strong')
    assert got == sorted([(TRAIN, 1, 'bad-header'), (EVAL, 1, 'bad-header'), (FRAMED, 2, 'bad-field-count'),
                          (FRAMED, 3, 'bad-field-count'), (FRAMED, 4, 'bad-field-count')])


def test_strong_lines_count_against_max_bad_fraction(build, tmp_path, capsys):
    """The fixture's train file has 9 bad lines of 924 (~1%): fine at 0.05, a failure at 0.005."""
    fx = build[2]
    rejected = len(fx.bad_lines[TRAIN])
    code, err = _fail(tmp_path, capsys, fx.dir, '--max_bad_fraction', '0.005')
    lines = len(fx.train) + rejected
    assert code == EXIT_FAILED and 'Traceback' not in err
    assert f'{fx.dir / TRAIN}: {rejected} of {lines} lines rejected ({rejected / lines:.1%})' in err
    assert str(fx.dir / FRAMED) not in err   # 3 of 795 lines: under 0.005


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    """(folder served, its URL) over a loopback HTTP server: HEAD and GET of files, 404 otherwise, no listing
    needed."""
    root = tmp_path / 'www'
    root.mkdir()
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def test_strong_labels_over_http_build_the_same_clips_and_classes(build, http_root, tmp_path):
    local_out, local_manifest, fx, _ = build
    root, url = http_root
    shutil.copytree(fx.dir, root / 'strong')
    out = tmp_path / 'o'
    assert cli_status(build_dataset._main, ['--output_dir', str(out), '--strong_labels', f'{url}/strong']) == 0
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['inputs']['strong_labels']['files'] == {
        role: f'{url}/strong/{name}' for role, name in (('train', TRAIN), ('eval', EVAL), ('framed', FRAMED),
                                                          ('names', NAMES))}
    columns = ['strong_events', 'frame_labels', 'frame_positives_official', 'frame_negatives']
    key = lambda r: (r['segment_id'], r['split'])  # noqa: E731
    assert sorted(_clips(out, columns), key=key) == sorted(_clips(local_out, columns), key=key)
    assert pq.read_table(out / 'classes.parquet') == pq.read_table(local_out / 'classes.parquet')
    for role in ('train', 'eval', 'framed', 'names'):
        got, want = manifest['strong']['files'][role], local_manifest['strong']['files'][role]
        assert got['file'].startswith(url) and {**got, 'file': 0} == {**want, 'file': 0}
    dead = [r for r in pq.read_table(out / 'dead_letters').to_pylist() if r['stage'] == 'parse-strong']
    assert dead and all(r['source'].startswith(f'{url}/strong/') for r in dead)


def test_strong_labels_over_http_without_the_files_or_the_server_is_a_clear_error(http_root, tmp_path, capsys):
    root, url = http_root
    (root / 'strong').mkdir()
    code, err = _fail(tmp_path, capsys, f'{url}/strong')
    assert code == EXIT_INPUT and 'error: --strong_labels' in err and TRAIN in err and 'Traceback' not in err
    code, err = _fail(tmp_path, capsys, 'http://127.0.0.1:9/strong')   # the discard port: nothing listens
    assert code == EXIT_INPUT and 'error: --strong_labels http://127.0.0.1:9/strong: cannot be read' in err
    assert 'Traceback' not in err
