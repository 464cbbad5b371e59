"""The seal's arithmetic (``verify_and_summarize``) on hand-made run stats and real tiny Parquet files: every
check it makes is shown failing on an input made wrong in exactly one way, and passing at its boundary.

The expected numbers are counted by hand here; the files are written with pyarrow directly, and rewritten
behind the seal's back to be readable but wrong."""
from __future__ import annotations

import copy
import pathlib
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from transforms.core.seal import BuildFailed
from transforms.sinks import verify_and_summarize
from transforms.write import WrittenFile

SPEECH, MUSIC = '/m/09x0r', '/m/04rlf'


def _part(root: pathlib.Path, split: str, label: str, rows: int) -> pathlib.Path:
    folder = root / 'clips' / f'split={split}' / f'label={label.replace("/", "%2F")}'
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / 'part-00000.parquet'
    pq.write_table(pa.table({'segment_id': [f'seg{i}_0' for i in range(rows)]}), path)
    return path


class Run:
    """A tiny, consistent run, by hand: eval read 25 records, 24 segments were built and 1 record was
    dead-lettered (4%); of the 24 segments 16 carry Speech and 12 Music (4 both): 28 segment-label pairs,
    one clips file per label. The eval CSV declares 30 rows in its header and has them all."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.stats = {
            'splits': {'eval': {'records_in': 25, 'segments_out': 24, 'dead_letters': 1}},
            'positive': {'eval': {SPEECH: 16, MUSIC: 12}},
            'csv': {'eval': {'file': 'eval_segments.csv', 'rows_in': 30, 'rows_declared_in_header': 30,
                             'rows_rejected': 0}},
        }
        self.files = [WrittenFile('clips', str(_part(root, 'eval', SPEECH, 16)), 16, (('split', 'eval'), ('label', SPEECH))),
                      WrittenFile('clips', str(_part(root, 'eval', MUSIC, 12)), 12, (('split', 'eval'), ('label', MUSIC)))]

    def seal(self, max_bad_fraction: float = 0.05) -> dict:
        return verify_and_summarize(copy.deepcopy(self.stats), list(self.files), str(self.root), max_bad_fraction)


@pytest.fixture
def run(tmp_path):
    return Run(tmp_path)


def test_a_consistent_run_seals_and_says_what_it_counted(run):
    body = run.seal()
    assert body['status'] == 'complete'
    assert body['splits']['eval'] == {'records_in': 25, 'segments_out': 24, 'dead_letters': 1, 'clip_rows': 28,
                                      'adds_up': True, 'partitions': 2}
    assert body['partition_rows'] == {'eval': {SPEECH: 16, MUSIC: 12}}
    assert body['tables'] == {'clips': {'files': 2, 'rows': 28}}
    assert body['csv']['eval']['rows_short_of_header'] == 0


def test_a_file_rewritten_readable_with_one_row_fewer_fails(run):
    path = pathlib.Path(run.files[0].path)
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 1), path)   # a valid Parquet file, one row short
    assert pq.ParquetFile(path).metadata.num_rows == 15
    with pytest.raises(BuildFailed, match=rf'output verification failed:\n  {re.escape(str(path))}: 15 rows, expected 16'):
        run.seal()


def test_a_file_rewritten_with_one_row_more_fails(run):
    path = pathlib.Path(run.files[1].path)
    _part(run.root, 'eval', MUSIC, 13)
    with pytest.raises(BuildFailed, match=rf'{re.escape(str(path))}: 13 rows, expected 12'):
        run.seal()


def test_a_missing_or_unreadable_file_fails(run, tmp_path):
    pathlib.Path(run.files[0].path).unlink()
    pathlib.Path(run.files[1].path).write_bytes(b'PAR1 not really')
    with pytest.raises(BuildFailed) as failure:
        run.seal()
    assert f'{run.files[0].path}: missing' in str(failure.value)
    assert f'{run.files[1].path}: unreadable' in str(failure.value)


@pytest.mark.parametrize('field, value', [
    ('records_in', 26),      # a record read but neither built nor dead-lettered: lost silently
    ('segments_out', 23),    # a segment counted out that is not there
    ('dead_letters', 2),     # an extra dead letter the other counts miss
    ('dead_letters', 0),     # a rejection that was never written down
])
def test_records_in_must_equal_segments_out_plus_dead_letters(run, field, value):
    run.stats['splits']['eval'][field] = value
    s = {**run.stats['splits']['eval']}
    with pytest.raises(BuildFailed, match=rf'counts do not add up:\n  eval: records in {s["records_in"]} != segments '
                                          rf'out {s["segments_out"]} \+ dead letters {s["dead_letters"]}'):
        run.seal(max_bad_fraction=1.0)


def test_the_records_balance_is_checked_in_every_split(run):
    # A second split that adds up must not hide one that does not.
    run.stats['splits']['balanced_train'] = {'records_in': 3, 'segments_out': 3, 'dead_letters': 0}
    run.stats['positive']['balanced_train'] = {SPEECH: 3}
    run.files.append(WrittenFile('clips', str(_part(run.root, 'balanced_train', SPEECH, 3)), 3,
                                 (('split', 'balanced_train'), ('label', SPEECH))))
    assert run.seal()['splits']['balanced_train']['clip_rows'] == 3
    run.stats['splits']['balanced_train']['records_in'] = 4
    with pytest.raises(BuildFailed, match='balanced_train: records in 4 != segments out 3'):
        run.seal()


@pytest.mark.parametrize('pairs', [{SPEECH: 16, MUSIC: 13}, {SPEECH: 16, MUSIC: 11}, {SPEECH: 16}])
def test_clip_rows_must_equal_segment_label_pairs(run, pairs):
    run.stats['positive']['eval'] = pairs
    with pytest.raises(BuildFailed, match=rf'eval: clip rows 28 != segment-label pairs {sum(pairs.values())}'):
        run.seal()


def test_clip_rows_of_a_split_without_record_counts_are_checked_too(run):
    # Computed clips only (no released records): no 'splits' entry, but their rows must still add up.
    run.stats['positive']['unlabelled'] = {'unlabelled': 2}
    run.files.append(WrittenFile('clips', str(_part(run.root, 'unlabelled', 'unlabelled', 1)), 1,
                                 (('split', 'unlabelled'), ('label', 'unlabelled'))))
    with pytest.raises(BuildFailed, match='unlabelled: clip rows 1 != segment-label pairs 2'):
        run.seal()


@pytest.mark.parametrize('rows_in, fails', [(95, False), (94, True)])
def test_a_csv_shorter_than_its_header_counts_the_missing_rows_as_rejected(run, rows_in, fails):
    # 100 declared: 5 missing is exactly 5% (passes a 0.05 threshold), 6 missing is above it.
    run.stats['csv']['eval'].update(rows_in=rows_in, rows_declared_in_header=100)
    if not fails:
        assert run.seal()['csv']['eval']['rows_short_of_header'] == 100 - rows_in
        return
    with pytest.raises(BuildFailed, match=r'(?s)too much bad input.*eval_segments.csv: 0 of 94 lines rejected, and 6 '
                                          r'rows fewer than its header declares \(100\): a truncated file\?'):
        run.seal()


def test_a_truncated_csv_adds_its_missing_rows_to_the_rejected_ones(run):
    # 3 rejected lines alone (3%) and 3 missing rows alone pass; together (6%) they do not.
    run.stats['csv']['eval'].update(rows_in=100, rows_declared_in_header=100, rows_rejected=3)
    run.seal()
    run.stats['csv']['eval'].update(rows_in=97, rows_declared_in_header=100, rows_rejected=0)
    run.seal()
    run.stats['csv']['eval'].update(rows_in=97, rows_declared_in_header=100, rows_rejected=3)
    with pytest.raises(BuildFailed, match='eval_segments.csv: 3 of 97 lines rejected, and 3 rows fewer'):
        run.seal()


def test_a_csv_without_num_segs_is_judged_by_its_rows(run):
    run.stats['csv']['eval'].update(rows_in=100, rows_declared_in_header=None, rows_rejected=5)
    assert run.seal()['csv']['eval']['rows_short_of_header'] == 0
    run.stats['csv']['eval']['rows_rejected'] = 6
    with pytest.raises(BuildFailed, match='eval_segments.csv: 6 of 100 lines rejected'):
        run.seal()


def _records(run, records_in: int, dead: int) -> None:
    run.stats['splits']['eval'].update(records_in=records_in, segments_out=records_in - dead, dead_letters=dead)
    run.stats['positive']['eval'] = {SPEECH: 16, MUSIC: 12}


@pytest.mark.parametrize('dead, fails', [(5, False), (6, True)])
def test_the_bad_record_threshold_at_and_just_above(run, dead, fails):
    _records(run, 100, dead)
    if not fails:
        assert run.seal(0.05)['splits']['eval']['dead_letters'] == 5
        return
    with pytest.raises(BuildFailed, match=r'(?s)too much bad input \(more than --max_bad_fraction=0.05\):\n  '
                                          r'eval: 6 of 100 records rejected \(6.0%\).*dead_letters'):
        run.seal(0.05)


def test_the_threshold_is_a_fraction_of_each_split_not_of_the_run(run):
    # 2 of 10 eval records rejected (20%) is too many at 0.1, even beside a clean split of 1,000 records.
    _records(run, 10, 2)
    run.stats['splits']['balanced_train'] = {'records_in': 1000, 'segments_out': 1000, 'dead_letters': 0}
    run.stats['positive']['balanced_train'] = {SPEECH: 1000}
    run.files.append(WrittenFile('clips', str(_part(run.root, 'balanced_train', SPEECH, 1000)), 1000,
                                 (('split', 'balanced_train'), ('label', SPEECH))))
    with pytest.raises(BuildFailed, match=r'eval: 2 of 10 records rejected \(20.0%\)'):
        run.seal(0.1)
    assert run.seal(0.2)['splits']['eval']['dead_letters'] == 2


class TestAudio:
    """Audio files: files in = computed segments out (over every split) + audio dead letters."""

    @staticmethod
    def _audio(run, files_in: int, dead: int, out: dict) -> None:
        run.stats['audio'] = {'files_in': files_in, 'dead_letters': dead, 'embedded': sum(out.values())}
        run.stats['computed'] = {split: {'segments_out': n} for split, n in out.items()}

    def test_adds_up_over_splits(self, run):
        self._audio(run, 20, 1, {'eval': 12, 'balanced_train': 7})
        body = run.seal()
        assert body['audio']['segments_out'] == 19 and body['audio']['adds_up'] is True
        assert body['audio']['computed_by_split'] == {'eval': {'segments_out': 12}, 'balanced_train': {'segments_out': 7}}

    @pytest.mark.parametrize('files_in, dead, out', [(20, 0, {'eval': 12, 'balanced_train': 7}),
                                                     (20, 2, {'eval': 12, 'balanced_train': 7}),
                                                     (20, 1, {'eval': 12})])
    def test_a_file_lost_or_counted_twice_fails(self, run, files_in, dead, out):
        self._audio(run, files_in, dead, out)
        with pytest.raises(BuildFailed, match=rf'audio: files in {files_in} != clips out {sum(out.values())} '
                                              rf'\+ dead letters {dead}'):
            run.seal(max_bad_fraction=1.0)

    @pytest.mark.parametrize('dead, fails', [(1, False), (2, True)])
    def test_the_audio_threshold(self, run, dead, fails):
        self._audio(run, 20, dead, {'eval': 20 - dead})
        if not fails:
            run.seal(0.05)
            return
        with pytest.raises(BuildFailed, match=r'audio: 2 of 20 files rejected \(10.0%\)'):
            run.seal(0.05)


def test_a_wrong_count_is_reported_before_too_much_bad_input(run):
    # Both wrong: the accounting (a bug) is what the error leads with, not the threshold (bad input).
    _records(run, 100, 50)
    run.stats['splits']['eval']['records_in'] = 101
    with pytest.raises(BuildFailed, match='counts do not add up'):
        run.seal(0.05)


def test_an_input_not_read_whole_fails_whatever_the_threshold(run):
    # A reader that saw a stream cut short (here a CSV short of its num_segs) says so in incomplete_inputs:
    # the seal refuses even when the counts add up and any fraction of bad input is allowed.
    run.stats['incomplete_inputs'] = [{'source': 'eval_segments.csv', 'reason': 'truncated-csv',
                                       'records_estimated': 0, 'error': '29 data lines, 1 fewer than num_segs=30'}]
    with pytest.raises(BuildFailed, match=r'(?s)not read whole.*eval_segments.csv: truncated-csv: 29 data lines'):
        run.seal(max_bad_fraction=1.0)


def test_the_accounting_is_pure_over_the_footer_counts_it_is_given(run):
    """``transforms.core.seal.summarize`` reads nothing: the footers' row counts come in as a dict, so
    each rule can be checked without a file (the I/O half, verify_and_summarize, is tested above)."""
    from transforms.core import seal
    found = {f.path: f.rows for f in run.files}
    body = seal.summarize(copy.deepcopy(run.stats), run.files, found, 'dead_letters/', 0.05)
    assert body['splits']['eval']['clip_rows'] == 28
    for wrong, why in ((run.files[0].rows - 1, '15 rows, expected 16'), ('missing', 'missing'),
                       ('unreadable (ArrowInvalid: x)', 'unreadable (ArrowInvalid: x)')):
        with pytest.raises(BuildFailed, match=re.escape(f'{run.files[0].path}: {why}')):
            seal.summarize(copy.deepcopy(run.stats), run.files, {**found, run.files[0].path: wrong}, 'd/', 0.05)
    assert seal.file_problems(run.files, {}) == [f'{f.path}: missing' for f in run.files]
