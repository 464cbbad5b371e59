"""AudioSet Strong: parsing the TSVs, and events on embedding frames checked frame by frame against a
plain-loop oracle (tests/strong_fixtures.py), on generated files in the release formats."""
import numpy as np
import pyarrow as pa
import pytest

from audioset_beam import schema
from tests import strong_fixtures as sf
from transforms.core import strong

NAMES = sf.display_names()
ODD = sf.outside_ontology()


def events_of(table: pa.Table) -> list[tuple[str, int, int, str]]:
    t = table.to_pydict()
    return [(s, round(a * 1000), round(b * 1000), m)
            for s, a, b, m in zip(t['segment_id'], t['onset'], t['offset'], t['label'])]


def tsv(*rows: str, header: str = sf.HEADER) -> bytes:
    return (header + '\n' + ''.join(r + '\n' for r in rows)).encode()


def test_real_display_names_parse_whole():
    parsed = strong.parse_display_names(sf.NAMES_TSV.read_bytes())
    assert len(parsed.names) == 456 and not parsed.dead_letters
    assert parsed.names['/g/11b630rrvh'] == 'Kettle whistle'
    assert len(ODD) == 32 and all(m in parsed.names for m in ODD)


def test_display_names_bad_and_repeated_lines():
    parsed = strong.parse_display_names(b'/m/a\tA\nno tab here\n/m/a\tagain\n\n/m/b\tB\r\n', 'n.tsv')
    assert parsed.names == {'/m/a': 'A', '/m/b': 'B'}
    assert [(d['line_number'], d['reason']) for d in parsed.dead_letters] == \
        [(2, 'bad-display-name'), (3, 'duplicate-mid')]


def test_segment_ids_split_on_the_last_underscore():
    data = tsv('-a_b_c_30000\t0.000\t1.500\t/m/09x0r',
               '--4gqARaEJE_0\t3.456\t3.456\t/m/04rlf',
               'x_Y-z_012345_7000\t.5\t10.\t' + ODD[0])
    parsed = strong.parse_events(data, 't.tsv')
    assert not parsed.dead_letters and parsed.lines == 3
    t = parsed.table.to_pydict()
    assert t['video_id'] == ['-a_b_c', '--4gqARaEJE', 'x_Y-z_012345']
    assert t['start_ms'] == [30000, 0, 7000]
    assert t['segment_id'] == ['-a_b_c_30000', '--4gqARaEJE_0', 'x_Y-z_012345_7000']
    assert t['onset'] == [0.0, 3.456, 0.5] and t['offset'] == [1.5, 3.456, 10.0]
    assert t['line_number'] == [2, 3, 4]
    assert parsed.table.schema == strong.EVENTS_SCHEMA


def test_header_only_file_is_empty_and_clean():
    for data in (tsv(), (sf.HEADER + '\r\n').encode(), sf.HEADER.encode()):
        parsed = strong.parse_events(data, 't.tsv')
        assert parsed.table.num_rows == 0 and parsed.dead_letters == [] and parsed.lines == 0
    framed = strong.parse_framed(tsv(header=sf.FRAMED_HEADER), 'f.tsv')
    assert framed.table.schema == strong.FRAMED_SCHEMA and framed.table.num_rows == 0 and not framed.dead_letters


def test_empty_file_and_wrong_header_are_one_dead_letter_for_the_file():
    empty = strong.parse_events(b'\n', 't.tsv', 'eval')
    assert [(d['reason'], d['records']) for d in empty.dead_letters] == [('empty-file', 0)]
    headless = strong.parse_events(b'a_0\t0.000\t1.000\t/m/09x0r\nb_0\t0.000\t1.000\t/m/09x0r\n', 't.tsv')
    swapped = strong.parse_events(tsv('a_0\t0.000\t1.000\t/m/09x0r',
                                      header='segment_id\tend_time_seconds\tstart_time_seconds\tlabel'), 't.tsv')
    framed_as_events = strong.parse_events(tsv(header=sf.FRAMED_HEADER), 't.tsv')
    for parsed, records in ((headless, 1), (swapped, 1), (framed_as_events, 0)):
        assert parsed.table.num_rows == 0
        assert [(d['reason'], d['line_number'], d['records'], d['stage']) for d in parsed.dead_letters] == \
            [('bad-header', 1, records, 'parse-strong')]


def test_bad_lines_become_dead_letters_with_file_and_line(tmp_path):
    fx = sf.write_strong_files(tmp_path, [('-a_b_30000', 10.0), ('c_d_0', 8.5)], [('e_0', 10.0)], bad_lines=True)
    parsed = strong.parse_events((tmp_path / sf.TRAIN).read_bytes(), 'train.tsv', 'unbalanced_train', NAMES)
    assert [(d['line_number'], d['reason']) for d in parsed.dead_letters] == fx.bad_lines[sf.TRAIN]
    assert all(d['source'] == 'train.tsv' and d['stage'] == 'parse-strong' and d['split'] == 'unbalanced_train'
               for d in parsed.dead_letters)
    by_reason = {d['reason']: d for d in parsed.dead_letters}
    assert by_reason['negative-time']['video_id'] == 'abc'
    assert by_reason['negative-time']['start_time_seconds'] == 1.0
    assert by_reason['bad-field-count']['video_id'] is None
    assert events_of(parsed.table) == fx.train
    assert parsed.lines == len(fx.train) + len(sf.BAD_EVENT_LINES)
    framed = strong.parse_framed((tmp_path / sf.FRAMED).read_bytes(), 'framed.tsv')
    assert [(d['line_number'], d['reason']) for d in framed.dead_letters] == fx.bad_lines[sf.FRAMED]
    t = framed.table.to_pydict()
    assert list(zip(t['segment_id'], [round(x * 1000) for x in t['onset']], [round(x * 1000) for x in t['offset']],
                    t['label'], t['present'])) == fx.framed


def test_unknown_mid_is_a_dead_letter_only_against_a_vocabulary():
    data = tsv('a_0\t0.000\t1.000\t/m/not_a_strong_mid', 'a_0\t0.000\t1.000\t' + ODD[1])
    assert strong.parse_events(data, 't').table.num_rows == 2
    parsed = strong.parse_events(data, 't', known_mids=NAMES)
    assert [(d['line_number'], d['reason']) for d in parsed.dead_letters] == [(2, 'unknown-mid')]
    assert parsed.table['label'].to_pylist() == [ODD[1]]


def test_crlf_blank_lines_and_a_line_number_as_sed_counts():
    data = (sf.HEADER + '\r\n\r\na_0\t0.000\t1.000\t/m/09x0r\r\n\nb\x0cc_0\t0.0\t1.0\t/m/09x0r\n'
            'd_0\t1.000\t0.500\t/m/09x0r\n').encode()
    parsed = strong.parse_events(data, 't')
    assert parsed.table['line_number'].to_pylist() == [3]
    assert [(d['line_number'], d['reason']) for d in parsed.dead_letters] == \
        [(5, 'bad-segment-id'), (6, 'end-before-start')]


def index_for(rows, framed=None) -> strong.StrongIndex:
    events = strong.parse_events(tsv(*rows), 't.tsv', known_mids=NAMES)
    assert not events.dead_letters
    return strong.StrongIndex(events.table, NAMES, framed)


def test_frame_edges_for_released_and_computed_frames():
    a, b, c, d = ODD[0], '/m/09x0r', '/m/04rlf', '/m/0jbk'
    idx = index_for([f's_0\t0.000\t1.000\t{a}',      # ends on released frame 1's start: frame 0 only
                     f's_0\t0.960\t0.960\t{b}',      # an instant on an edge: no frame
                     f's_0\t0.500\t0.500\t{c}',      # an instant inside frame 0
                     f's_0\t1.000\t1.960\t{d}',      # exactly released frame 1's window
                     f's_0\t0.980\t0.990\t{b}'])     # in the 40 ms gap between released windows; computed frame 1
    released = idx.attach(pa.array(['s_0']), 10.0, 3, strong.RELEASED_HOP).frame_labels[0].as_py()
    computed = idx.attach(pa.array(['s_0']), 10.0, 3, strong.COMPUTED_HOP).frame_labels[0].as_py()
    assert released == [sorted([a, c]), [d], []]
    assert computed == [sorted([a, c]), sorted([a, b, d]), [d]]


def test_events_sorted_clipped_overlapping_kept_and_frames_unioned():
    m = '/m/09x0r'
    idx = index_for([f'v_0\t3.000\t5.000\t{m}', f'v_0\t2.000\t4.000\t{m}', f'v_0\t2.000\t2.500\t/m/04rlf',
                     f'v_0\t9.500\t10.700\t{m}', f'v_0\t10.200\t10.900\t{m}'])
    at = idx.attach(pa.array(['v_0']), [10.0], [10], [1.0])
    assert at.strong_events.type == schema.STRONG_EVENTS
    assert [(e['label'], e['start'], e['end']) for e in at.strong_events[0].as_py()] == \
        [('/m/04rlf', 2.0, 2.5), (m, 2.0, 4.0), (m, 3.0, 5.0), (m, 9.5, 10.0)]
    assert at.strong_events[0].as_py()[0]['label_name'] == NAMES['/m/04rlf']
    frames = at.frame_labels[0].as_py()
    assert frames[3] == [m] and frames[2] == ['/m/04rlf', m] and frames[9] == [m]
    assert at.events == 4 and at.events_clipped == 1
    assert [(d['reason'], d['line_number'], d['video_id'], d['stage']) for d in at.dead_letters] == \
        [('event-after-segment-end', 6, 'v', 'join-strong')]


def test_segments_without_strong_labels_are_null_not_empty():
    fx_rows = ['a_0\t0.000\t1.000\t/m/09x0r']
    framed = strong.parse_framed(tsv('a_0\t0.000\t0.960\t/m/09x0r\tPRESENT', header=sf.FRAMED_HEADER), 'f')
    idx = index_for(fx_rows, framed.table)
    at = idx.attach(pa.array(['b_0', 'a_0', 'a_10000']), 10.0, [10, 0, 10], 1.0)
    for arr in (at.strong_events, at.frame_labels, at.frame_positives_official, at.frame_negatives):
        assert arr.is_null().to_pylist() == [True, False, True]
    assert at.frame_labels[1].as_py() == []           # has events, no frames
    assert at.frame_positives_official[1].as_py() == [['/m/09x0r']] and at.frame_negatives[1].as_py() == [[]]
    none = index_for(fx_rows).attach(pa.array(['a_0']), 10.0, 10, 1.0)
    assert none.frame_negatives.type == schema.FRAME_LABELS and none.frame_negatives.null_count == 1


def random_segments(rng, n):
    """Segment ids with '_' and a leading '-', durations (some short), generated events, as the oracle sees
    them; the files are written by strong_fixtures in the release format."""
    segs = []
    for i in range(n):
        dur_ms = 10_000 if rng.random() < 0.6 else int(rng.integers(1, 10_001))
        segs.append((f'-{i}_x{"_" * int(rng.integers(3))}{i}_{int(rng.integers(0, 500)) * 1000}', dur_ms / 1000))
    return segs


@pytest.mark.parametrize('seed', [1, 2])
def test_every_frame_matches_the_oracle(tmp_path, seed):
    rng = np.random.default_rng(seed)
    train = random_segments(rng, 300)
    fx = sf.write_strong_files(tmp_path, train, [], seed=seed, events_per_segment=8)
    parsed = strong.parse_events((tmp_path / sf.TRAIN).read_bytes(), 'train.tsv', known_mids=NAMES)
    assert not parsed.dead_letters and events_of(parsed.table) == fx.train
    idx = strong.StrongIndex(parsed.table, NAMES, source='train.tsv')
    by_segment: dict[str, list] = {}
    for s, a, b, m in fx.train:
        by_segment.setdefault(s, []).append((a, b, m))
    # Each segment twice (released and computed frames), some with a shorter duration than annotated (events
    # start after the end), plus segments with no strong labels; in random order.
    entries = []
    for s, dur in train:
        dur_ms = round(dur * 1000)
        if rng.random() < 0.2:
            dur_ms = int(rng.integers(0, dur_ms + 1))
        for hop in (1000, 960):
            entries.append((s, dur_ms, int(rng.integers(0, 12)), hop))
    entries += [(f'none{i}_0', 10_000, 10, 1000) for i in range(5)]
    entries = [entries[i] for i in rng.permutation(len(entries))]
    at = idx.attach(pa.array([e[0] for e in entries]), [e[1] / 1000 for e in entries],
                    np.array([e[2] for e in entries]), np.array([e[3] / 1000 for e in entries]))
    frames, events = at.frame_labels.to_pylist(), at.strong_events.to_pylist()
    checked = clipped = attached = 0
    late = set()
    for i, (s, dur_ms, n_frames, hop) in enumerate(entries):
        if s not in by_segment:
            assert frames[i] is None and events[i] is None
            continue
        evs = by_segment[s]
        assert frames[i] == sf.oracle_frame_labels(evs, dur_ms, n_frames, hop), (s, dur_ms, n_frames, hop)
        checked += n_frames
        want = sorted((a, m, min(b, dur_ms)) for a, b, m in evs if a <= dur_ms)
        got = [(round(e['start'] * 1000), e['label'], round(e['end'] * 1000)) for e in events[i]]
        assert got == want and all(e['label_name'] == NAMES[e['label']] for e in events[i])
        attached += len(want)
        clipped += sum(a <= dur_ms < b for a, b, m in evs)
        late |= {(s, a, b, m) for a, b, m in evs if a > dur_ms}
    assert checked > 2000 and at.events == attached and at.events_clipped == clipped > 0
    assert len(at.dead_letters) == len(late) > 0   # one per event, though each segment comes twice
    assert len(at.joined) == len(train)


def test_framed_positives_and_negatives_per_960ms_frame(tmp_path):
    evals = [('-ev_al_1_0', 10.0), ('_x_20000', 6.5), ('plain_30000', 10.0)]
    fx = sf.write_strong_files(tmp_path, [], evals, framed_segments=evals[:2], seed=3)
    events = strong.parse_events((tmp_path / sf.EVAL).read_bytes(), 'eval.tsv', known_mids=NAMES)
    framed = strong.parse_framed((tmp_path / sf.FRAMED).read_bytes(), 'framed.tsv', known_mids=NAMES)
    assert not events.dead_letters and not framed.dead_letters
    idx = strong.StrongIndex(events.table, NAMES, framed.table)
    at = idx.attach(pa.array([s for s, _ in evals]), [d for _, d in evals], 10, strong.COMPUTED_HOP)
    for i, (s, dur) in enumerate(evals[:2]):
        n = -(-round(dur * 1000) // 960)
        want_pos = [sorted(m for sid, w0, _, m, p in fx.framed if sid == s and w0 == 960 * k and p) for k in range(n)]
        want_neg = [sorted(m for sid, w0, _, m, p in fx.framed if sid == s and w0 == 960 * k and not p)
                    for k in range(n)]
        assert at.frame_positives_official[i].as_py() == want_pos
        assert at.frame_negatives[i].as_py() == want_neg
        # The file's PRESENT frames are the frame rule on a 960 ms grid: same as the computed frames' labels.
        assert want_pos[:10] == at.frame_labels[i].as_py()[:n]
    assert at.frame_positives_official[2].as_py() is None and at.frame_labels[2].as_py() is not None


def test_coverage_over_batches_lists_unjoined_segments():
    idx = index_for(['a_0\t0.000\t1.000\t/m/09x0r', 'b_1000\t0.000\t1.000\t/m/09x0r', 'a_0\t1.000\t2.000\t/m/04rlf',
                     '-c_d_2000\t0.000\t1.000\t/m/09x0r'])
    first = idx.attach(pa.array(['a_0', 'zz_0']), 10.0, 10, 1.0)
    second = idx.attach(pa.array(['a_0']), 10.0, 10, 0.96)
    cov = idx.coverage(np.concatenate([first.joined, second.joined]))
    assert (cov.segments, cov.events, cov.segments_joined, cov.events_joined) == (3, 4, 1, 2)
    assert cov.unjoined.to_pylist() == [
        {'segment_id': 'b_1000', 'video_id': 'b', 'start_ms': 1000, 'events': 1, 'line_number': 3},
        {'segment_id': '-c_d_2000', 'video_id': '-c_d', 'start_ms': 2000, 'events': 1, 'line_number': 5}]


def test_bad_frame_arguments_raise():
    idx = index_for(['a_0\t0.000\t1.000\t/m/09x0r'])
    for hop, frames in ((0.0, 10), (1.0, -1)):
        with pytest.raises(ValueError, match='frame_hop'):
            idx.attach(pa.array(['a_0']), 10.0, frames, hop)


def test_empty_index_attaches_nulls():
    idx = strong.StrongIndex(strong.EVENTS_SCHEMA.empty_table(), NAMES)
    at = idx.attach(pa.array(['a_0']), 10.0, 10, 1.0)
    assert at.strong_events.null_count == 1 and at.frame_labels.null_count == 1 and at.events == 0
    assert idx.coverage(at.joined).unjoined.num_rows == 0


def test_label_counts():
    parsed = strong.parse_events(tsv('a_0\t0.000\t1.000\t/m/09x0r', 'a_0\t2.000\t3.000\t/m/09x0r',
                                     'b_0\t0.000\t1.000\t/m/09x0r', 'b_0\t0.000\t1.000\t/m/04rlf'), 't')
    assert strong.label_counts(parsed.table).to_pylist() == [
        {'label': '/m/04rlf', 'strong_segments': 1, 'strong_events': 1},
        {'label': '/m/09x0r', 'strong_segments': 2, 'strong_events': 3}]


def test_parser_agrees_with_a_plain_python_parse_at_scale():
    data = sf.release_sized_tsv(segments=2_000, events=20_000, seed=5)
    parsed = strong.parse_events(data, 't', known_mids=NAMES)
    assert not parsed.dead_letters
    want = []
    for line in data.decode().splitlines()[1:]:
        s, a, b, m = line.split('\t')
        want.append((s, round(float(a) * 1000), round(float(b) * 1000), m))
    assert events_of(parsed.table) == want


@pytest.mark.parametrize('onset, offset', [('\u0663.000', '5.000'),      # Arabic-Indic 3: float() takes it
                                           ('1.\u0665', '5.000'),        # Arabic-Indic 5 after the point
                                           ('\uff13.0', '5.000'),         # fullwidth 3
                                           ('1.000', '\u00b2'),           # superscript 2: float() refuses it
                                           ('1.000', '\u0966\u0967.0')])  # Devanagari 01
def test_times_are_ascii_digits_only(onset, offset):
    parsed = strong.parse_events(tsv('a_0\t0.000\t1.000\t/m/09x0r', f'b_0\t{onset}\t{offset}\t/m/09x0r'), 't.tsv')
    assert parsed.table['segment_id'].to_pylist() == ['a_0']
    assert [(d['source'], d['line_number'], d['reason']) for d in parsed.dead_letters] == [('t.tsv', 3, 'bad-time')]


def test_segment_start_in_unicode_digits_is_a_bad_segment_id():
    parsed = strong.parse_events(tsv('a_\u0663000\t0.000\t1.000\t/m/09x0r'), 't.tsv')
    assert parsed.table.num_rows == 0
    assert [(d['line_number'], d['reason']) for d in parsed.dead_letters] == [(2, 'bad-segment-id')]


GOOD = 'a_0\t0.000\t1.000\t/m/09x0r'


@pytest.mark.parametrize('data, why', [
    (b'', 'empty file'),
    (b'\n\n', 'empty file'),
    (f'{GOOD}\n{GOOD}\n'.encode(), 'bad header'),                                  # no header
    (tsv(GOOD + '\tPRESENT', header=sf.FRAMED_HEADER), 'bad header'),              # an extra column
    (tsv('garbage', 'more garbage\t1', 'x_0\t1\t2\t3\t4'), 'none of its 3 lines is usable'),
    (tsv(GOOD + '\textra', GOOD + '\textra'), 'none of its 2 lines is usable'),    # extra column, header fine
    (tsv('a_0\t0.000\t1.000\t/m/unknown'), 'none of its 1 lines is usable'),       # only an unknown MID
])
def test_a_file_with_nothing_usable_is_dropped_whole_and_counted_in_lines(data, why):
    parsed = strong.parse_events(data, 't.tsv', known_mids=NAMES)
    assert parsed.table.num_rows == 0 and parsed.dropped and why in parsed.dropped
    st = parsed.stats('t.tsv')
    assert st['dropped'] == parsed.dropped and st['rows_ok'] == 0
    assert st['lines_rejected'] == st['lines_in'] == parsed.lines
    # Every line is a dead letter naming the file and its line (a bad header stands for the lines after it).
    assert all(d['source'] == 't.tsv' and d['line_number'] is not None for d in parsed.dead_letters
               if d['reason'] != 'empty-file')


def test_a_file_with_some_good_lines_is_not_dropped():
    for data in (tsv(), tsv(GOOD, 'garbage')):    # header only: a file with no events is not damage
        parsed = strong.parse_events(data, 't.tsv')
        assert parsed.dropped is None and parsed.stats('t.tsv')['dropped'] is None
    st = strong.parse_events(tsv(GOOD, 'garbage', GOOD, 'b_0\t2.000\t1.000\t/m/09x0r'), 't.tsv').stats('t.tsv')
    assert st == {'file': 't.tsv', 'lines_in': 4, 'lines_rejected': 2, 'rows_ok': 2, 'segments': 1, 'dropped': None}


def test_display_names_file_with_nothing_usable_is_dropped():
    assert 'empty' in strong.parse_display_names(b'\n', 'n.tsv').dropped
    junk = strong.parse_display_names(b'junk\nmore junk\n', 'n.tsv')
    assert junk.names == {} and 'none of its 2 lines is usable' in junk.dropped
    st = strong.parse_display_names(b'/m/a\tA\njunk\n', 'n.tsv').stats('n.tsv')
    assert st == {'file': 'n.tsv', 'lines_in': 2, 'lines_rejected': 1, 'rows_ok': 1, 'dropped': None}


def test_file_problems_threshold_in_lines_and_dropped_files_always():
    files = {'train': {'file': 'train.tsv', 'lines_in': 100, 'lines_rejected': 5, 'dropped': None},
             'eval': {'file': 'eval.tsv', 'lines_in': 100, 'lines_rejected': 6, 'dropped': None},
             'framed': {'file': 'framed.tsv', 'lines_in': 0, 'lines_rejected': 0, 'dropped': None},
             'names': {'file': 'names.tsv', 'lines_in': 3, 'lines_rejected': 3, 'dropped': 'bad header: x'}}
    whole, over = strong.file_problems({'files': files}, 0.05)
    assert whole == ['names.tsv: AudioSet Strong file not used at all: bad header: x']
    assert over == ['eval.tsv: 6 of 100 lines rejected (6.0%)']          # 5 of 100 is at the threshold: fine
    whole, over = strong.file_problems({'files': files}, 1.0)
    assert len(whole) == 1 and over == []                               # dropped whole fails whatever the threshold
    assert strong.file_problems(None, 0.05) == ([], []) and strong.file_problems({'train': {}}, 0.0) == ([], [])
