"""transforms/core/release_formats.py and release.inspect/verify: the real release files pass, and each
way a download goes wrong (cut, spliced, an error page, binary, another file) is named. Pure Python."""
import hashlib

import pytest

from tests.fixtures import SAMPLE
from tests.strong_fixtures import write_strong_files
from transforms.core import release, release_formats
from transforms.core.release_formats import problem

EVAL = (SAMPLE / 'segments' / 'eval_segments.csv').read_bytes()
BALANCED = (SAMPLE / 'segments' / 'balanced_train_segments.csv').read_bytes()
NAMES = (SAMPLE / 'mid_to_display_name.tsv').read_bytes()
SEGMENTS = 'unbalanced_train_segments.csv'


def _chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize('name, data', [('eval_segments.csv', EVAL), ('balanced_train_segments.csv', BALANCED),
                                        (SEGMENTS, EVAL), ('mid_to_display_name.tsv', NAMES)])
@pytest.mark.parametrize('chunk', [7, 1 << 20])
def test_the_real_files_pass_however_they_are_read(name, data, chunk):
    assert problem(name, _chunked(data, chunk)) is None


def test_a_byte_at_a_time():
    head = NAMES[:NAMES.index(b'\n', 4000) + 1]
    assert problem('mid_to_display_name.tsv', _chunked(head, 1)) is None
    assert 'an HTML' in problem('mid_to_display_name.tsv', _chunked(b'  <html>\n', 1))


@pytest.fixture(scope='module')
def strong(tmp_path_factory):
    d = write_strong_files(tmp_path_factory.mktemp('strong'), [('s9d-2nhuJCQ_30000', 10.0)],
                           [('-_a_b_c_d_e_0', 10.0)]).dir
    return {n: (d / n).read_bytes() for n in release.STRONG_FILES[:3]}


def test_strong_files_pass_and_their_damage_is_named(strong):
    train, framed = 'audioset_train_strong.tsv', 'audioset_eval_strong_framed_posneg.tsv'
    for name, data in strong.items():
        assert problem(name, [data]) is None, name
    assert 'starts with the header' in problem(train, [strong[train].split(b'\n', 1)[1]])
    assert 'starts with the header' in problem(train, [strong[framed]])      # the framed file is not the events'
    assert 'the header and no rows' in problem(train, [strong[train].split(b'\n', 1)[0] + b'\n'])
    assert 'not 4 non-empty tab-separated fields' in problem(train, [strong[train] + b'abc_0\t0.0\t1.0\n'])
    assert 'PRESENT or NOT_PRESENT' in problem(framed, [strong[framed].replace(b'PRESENT\n', b'PRES\n', 1)])
    cut = strong[framed][:len(strong[framed]) // 2]
    assert 'does not end with a newline' in problem(framed, [cut])


def _csv(rows: bytes, num_segs: int) -> bytes:
    return (b'# Segments csv created Sun Mar  5 10:54:25 2017\n'
            b'# num_ytids=%d, num_segs=%d, num_unique_labels=527, num_positive_labels=9\n' % (num_segs, num_segs)
            + b'# YTID, start_seconds, end_seconds, positive_labels\n' + rows)


def test_segment_csv_rows_must_add_up_to_num_segs():
    rows = EVAL.splitlines(keepends=True)[3:]
    assert problem(SEGMENTS, [_csv(b''.join(rows[:10]), 10)]) is None
    assert problem(SEGMENTS, [_csv(b''.join(rows[:9]), 10)]) == '9 rows, but its header says num_segs=10 (a cut ' \
                                                                  'or altered download)'
    assert '11 rows' in problem(SEGMENTS, [_csv(b''.join(rows[:11]), 10)])
    # cut at a line end, the file still ends with a newline: the count tells
    assert 'num_segs=20,371' in problem(SEGMENTS, [EVAL[:EVAL.index(b'\n', len(EVAL) // 2) + 1]])


@pytest.mark.parametrize('header, where', [
    (b'# YTID, start_seconds, end_seconds, positive_labels\n', 'line 1'),
    (b'# Segments csv created x\n# num_segs=3\n', 'line 2'),
    (b'# Segments csv created x\n# num_ytids=1, num_segs=1\n# YTID,start,end,labels\n', 'line 3'),
])
def test_segment_csv_headers(header, where):
    assert where in problem(SEGMENTS, [header + b'--4gqARaEJE, 0.000, 10.000, "/m/09x0r"\n'])
    assert 'line 2 is missing' in problem(SEGMENTS, [b'# Segments csv created x\n'])


def test_a_splice_of_junk_before_a_csv_is_refused():
    assert 'line 1' in problem(SEGMENTS, [b'\x01\x02junk junk\n' + EVAL])
    assert 'not a segment row' in problem(SEGMENTS, [EVAL + b'<html>\n'])


@pytest.mark.parametrize('page', [b'<!DOCTYPE html>\n<html><body>503</body></html>\n', b'  <HTML>\n',
                                  b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code></Error>\n",
                                  b'\xef\xbb\xbf<html>\n'])
def test_error_pages_are_refused_for_every_checked_file(page):
    for name in release_formats.CHECKS:
        assert problem(name, [page]).startswith('an HTML/XML page'), name


def test_text_damage_common_to_every_file():
    assert problem(SEGMENTS, []) == 'empty (0 bytes)'
    assert problem('rerated_video_ids.txt', [b'--4gqARaEJE\n\x00\x00\n']) == 'a NUL byte at byte 12: binary data, ' \
                                                                           'not text'
    assert 'not UTF-8 text (invalid start byte at byte 12)' in problem('rerated_video_ids.txt',
                                                                        [b'--4gqARaEJE\n\xff\n'])
    # a multi-byte character cut by the end of the body
    assert 'a character cut at byte' in problem('mid_to_display_name.tsv', [b'/m/0\tCaf\xc3'])
    assert problem('mid_to_display_name.tsv', [b'/m/0\tCaf\xc3\xa9\r\n']) is None    # CRLF and UTF-8 are fine


def test_qa_counts_and_rerated_ids():
    qa = 'qa_true_counts.csv'
    assert problem(qa, [b'label_id,num_rated,num_true\n/m/09x0r,10,9\n/t/dd00088,0,0\n']) is None
    assert 'starts with the header' in problem(qa, [b'/m/09x0r,10,9\n'])
    assert 'true <= rated' in problem(qa, [b'label_id,num_rated,num_true\n/m/09x0r,9,10\n'])
    assert 'true <= rated' in problem(qa, [b'label_id,num_rated,num_true\n0,10,9\n'])        # not a MID
    assert 'no rows' in problem(qa, [b'label_id,num_rated,num_true\n'])
    ids = 'rerated_video_ids.txt'
    assert problem(ids, [b'--4gqARaEJE\nx_Y-z012345\n']) is None
    assert 'not an 11-character YouTube id' in problem(ids, [b'--4gqARaEJE\nx_Y-z01234\n'])
    assert 'not MID<TAB>display name' in problem('mid_to_display_name.tsv', [NAMES + b'/m/0x\t\n'])


def test_files_with_a_checksum_and_no_format_are_not_looked_at():
    assert problem('features.tar.gz', [b'<html>']) is None
    assert problem('ontology.json', [b'\x00']) is None


def test_inspect_hashes_everything_even_past_a_format_problem():
    data = b'<html>\n' + bytes(range(256)) * 100000          # 25 MB: several chunks
    size, digest, why = release.inspect('qa_true_counts.csv', _chunk_reader(data), chunk=1 << 20)
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest()) and why.startswith('an HTML')
    size, digest, why = release.inspect('features.tar.gz', _chunk_reader(data), chunk=1 << 20)
    assert (size, digest, why) == (len(data), hashlib.sha256(data).hexdigest(), None)


def _chunk_reader(data: bytes):
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        pos += n
        return data[pos - n:pos]
    return read


def test_verify_names_the_first_problem():
    f = next(f for f in release.FILES if f.name == 'eval_segments.csv')
    assert release.verify(f, f.size, f.sha256, f.size) is None
    assert 'Content-Length says 10' in release.verify(f, f.size, f.sha256, 10)
    assert release.verify(f, f.size, f.sha256, None, 'empty') == 'not eval_segments.csv as released: empty'
    assert 'the release says 1,143,389' in release.verify(f, 5, f.sha256)
    assert release.verify(f, f.size, '0' * 64).startswith('sha256 000')
    assert release.verified_by(f) == 'sha256'
    assert release.verified_by(next(f for f in release.FILES if f.name == SEGMENTS)) == 'format'
