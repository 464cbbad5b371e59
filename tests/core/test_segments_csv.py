from tests.fixtures import SAMPLE
from transforms.core.segments_csv import SegmentIndex, parse_segments_csv
import numpy as np

KNOWN = frozenset({'/m/09x0r', '/t/dd00088', '/m/04rlf'})
HEADER = (b'# Segments csv created Sun Mar  5 10:54:25 2017\n'
          b'# num_ytids=3, num_segs=3, num_unique_labels=3, num_positive_labels=4\n'
          b'# YTID, start_seconds, end_seconds, positive_labels\n')


def test_quirks_dash_ids_underscores_and_quoted_lists():
    data = HEADER + (b'--4gqARaEJE, 0.000, 10.000, "/m/09x0r,/t/dd00088"\n'
                     b'-_a_b_c_d_e, 30.500, 40.000, "/m/04rlf"\n'
                     b'x_Y-z012345, 7.000, 17.000, /m/09x0r\n')
    parsed = parse_segments_csv(data, 'f.csv', 'eval', KNOWN)
    assert parsed.dead_letters == []
    assert parsed.declared_rows == 3 and parsed.lines == 3
    t = parsed.table.to_pydict()
    assert t['video_id'] == ['--4gqARaEJE', '-_a_b_c_d_e', 'x_Y-z012345']
    assert t['start_ms'] == [0, 30500, 7000]
    assert t['labels'] == [['/m/09x0r', '/t/dd00088'], ['/m/04rlf'], ['/m/09x0r']]
    assert t['line_number'] == [4, 5, 6]


def test_bad_lines_become_dead_letters_with_file_and_line():
    data = HEADER + (b'ok_________, 0.000, 10.000, "/m/09x0r"\n'
                     b'too_few, 1.0\n'
                     b'bad id!, 0.0, 10.0, "/m/09x0r"\n'
                     b'abc, zero, 10.0, "/m/09x0r"\n'
                     b'abc, 20.0, 10.0, "/m/09x0r"\n'
                     b'abc, 0.0, 10.0, "/m/09x0r\n'
                     b'abc, 0.0, 10.0, ""\n'
                     b'abc, 0.0, 10.0, "/m/nope"\n'
                     b'ok_________, 0.000, 10.000, "/m/04rlf"\n')
    parsed = parse_segments_csv(data, 'f.csv', 'eval', KNOWN)
    got = [(d['line_number'], d['reason']) for d in parsed.dead_letters]
    assert got == [(5, 'bad-field-count'), (6, 'bad-video-id'), (7, 'bad-time'), (8, 'bad-time'),
                   (9, 'bad-quoting'), (10, 'no-labels'), (11, 'unknown-mid'), (12, 'duplicate-segment')]
    assert all(d['source'] == 'f.csv' and d['stage'] == 'parse-csv' for d in parsed.dead_letters)
    assert parsed.table.num_rows == 1 and parsed.lines == 9


def test_real_csv_and_index_lookup():
    from transforms.core.ontology import ClassIndex
    mids = frozenset(ClassIndex.from_csv((SAMPLE / 'class_labels_indices.csv').read_bytes()).mids)
    parsed = parse_segments_csv((SAMPLE / 'segments' / 'balanced_train_segments.csv').read_bytes(), 'b', 'x', mids)
    assert parsed.table.num_rows == parsed.declared_rows == 22160 and not parsed.dead_letters
    index = SegmentIndex(parsed.table, 'b')
    first = parsed.table.slice(0, 3).to_pydict()
    rows, sub = index.lookup(first['video_id'] + ['nope_______'], np.array(first['start_ms'] + [0]))
    assert rows[-1] == -1
    assert [sub['video_id'][int(r)].as_py() for r in rows[:3]] == first['video_id']


def test_line_numbers_match_sed_despite_form_feeds_and_unicode_separators():
    # str.splitlines() would split on \f, \x1c, U+2028...; `sed -n` counts only '\n'.
    data = HEADER + ('a\fb_c, 0.000, 10.000, "/m/09x0r"\n'
                     'ok\u2028bad, 0.000, 10.000, "/m/09x0r"\r\n'
                     'good_______, 1.000, 11.000, "/m/09x0r"\r\n'
                     'abc, 0.0, 10.0, "/m/nope"\n').encode()
    parsed = parse_segments_csv(data, 'f.csv', 'eval', KNOWN)
    assert [(d['line_number'], d['reason']) for d in parsed.dead_letters] == [
        (4, 'bad-video-id'), (5, 'bad-video-id'), (7, 'unknown-mid')]
    assert parsed.table['line_number'].to_pylist() == [6]
    assert parsed.table['end_time_seconds'].to_pylist() == [11.0]


def test_a_mid_repeated_in_a_row_is_kept_once():
    data = HEADER + b'abc, 0.0, 10.0, "/m/09x0r,/m/04rlf,/m/09x0r, /m/04rlf"\n'
    parsed = parse_segments_csv(data, 'f.csv', 'eval', KNOWN)
    assert parsed.table['labels'].to_pylist() == [['/m/09x0r', '/m/04rlf']]
    assert parsed.duplicate_labels == 2 and not parsed.dead_letters


def test_index_lookup_is_exact_for_any_ids():
    data = HEADER + b''.join(f'id{i:09d}, {i % 7}.500, 20.0, "/m/09x0r"\n'.encode() for i in range(1000))
    parsed = parse_segments_csv(data, 'f.csv', 'eval', KNOWN)
    index = SegmentIndex(parsed.table, 'f.csv')
    ids = [f'id{i:09d}' for i in range(0, 1000, 3)] + ['id000000000', 'id000000001x']
    starts = np.array([(i % 7) * 1000 + 500 for i in range(0, 1000, 3)] + [501, 1500])
    rows, _ = index.lookup(ids, starts)
    assert rows[:-2].tolist() == list(range(0, 1000, 3)) and rows[-2:].tolist() == [-1, -1]
