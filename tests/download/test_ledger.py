"""The ledger: latest line wins, torn lines are skipped, one run per folder, copies merge."""
import json

import pytest

from transforms.core.download import ledger


def _row(segment_id, status, finished, attempts=1):
    return ledger.record(segment_id=segment_id, ytid=segment_id.rsplit('_', 1)[0], start=0.0, end=10.0,
                         split='eval', status=status, message='', attempts=attempts, started=finished,
                         finished=finished)


def test_latest_line_wins_and_survives_reopening(tmp_path):
    path = str(tmp_path / ledger.FILE_NAME)
    with ledger.Ledger(path) as book:
        book.append(_row('-a_b_0', 'rate_limited', '2025-01-01T00:00:00', 1))
        book.append(_row('c_1000', 'removed', '2025-01-01T00:00:01', 1))
        book.append(_row('-a_b_0', 'ok', '2025-01-01T00:00:02', 2))
    with ledger.Ledger(path) as book:
        assert {k: (v['status'], v['attempts']) for k, v in book.latest.items()} == {
            '-a_b_0': ('ok', 2), 'c_1000': ('removed', 1)}
    lines = (tmp_path / ledger.FILE_NAME).read_text().splitlines()
    assert len(lines) == 3 and all(list(json.loads(line)) == list(ledger.FIELDS) for line in lines)


def test_a_torn_last_line_is_skipped_and_closed(tmp_path):
    path = tmp_path / ledger.FILE_NAME
    good = json.dumps(_row('x_0', 'ok', 't1'))
    path.write_text(good + '\n' + good[:40])  # killed mid-write
    with ledger.Ledger(str(path)) as book:
        assert book.bad_lines == 1 and set(book.latest) == {'x_0'}
        book.append(_row('y_0', 'geo', 't2'))
    with ledger.Ledger(str(path)) as book:
        assert set(book.latest) == {'x_0', 'y_0'} and book.bad_lines == 1


def test_one_run_per_folder(tmp_path):
    path = str(tmp_path / ledger.FILE_NAME)
    with ledger.Ledger(path):
        with pytest.raises(RuntimeError, match='another download run'):
            ledger.Ledger(path)
    ledger.Ledger(path).close()  # released with the first


def test_merge_keeps_each_line_once_in_time_order():
    a = [json.dumps(_row('x_0', 'error', 't1')), json.dumps(_row('x_0', 'ok', 't3', 2))]
    b = [a[0], json.dumps(_row('y_0', 'removed', 't2')), '{"torn']
    merged = ledger.merge('\n'.join(a).encode(), '\n'.join(b).encode())
    latest, bad = ledger.parse_lines(merged)
    assert bad == 0 and len(merged.splitlines()) == 3
    assert {k: v['status'] for k, v in latest.items()} == {'x_0': 'ok', 'y_0': 'removed'}


def test_record_checks_its_fields():
    with pytest.raises(TypeError):
        ledger.record(segment_id='x_0', status='ok', colour='red')
    with pytest.raises(ValueError):
        ledger.record(segment_id='x_0', status='fine')
