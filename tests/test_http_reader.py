"""transforms.fileio.HttpReader against the loopback release server: resumes carry If-Range and never join
two versions, a ranged start on a changed resource starts over, a stalled or trickling server is bounded in
time, a cut body fails, and what Content-Length does to a body longer or absent. Real urllib and
http.server on 127.0.0.1."""
import time

import pytest

from tests.release_server import release_server
from transforms.fileio import HttpReader

PATH = '/data.bin'
BODY = bytes(range(256)) * 64          # 16 KiB
NEW = bytes(reversed(BODY))            # another version, same length


@pytest.fixture
def server():
    with release_server({PATH: BODY}) as s:
        yield s


def _reader(server, **kwargs) -> HttpReader:
    return HttpReader(server.url + PATH, **{'timeout': 5, 'retries': 3, 'backoff': 0.01, **kwargs})


def _all(reader: HttpReader) -> bytes:
    with reader:
        return b''.join(iter(lambda: reader.read(4096), b''))


@pytest.mark.parametrize('validators, kind', [('both', 'ETag'), ('etag', 'ETag'), ('last-modified', 'Last-Modified'),
                                              ('weak-etag', 'Last-Modified'), ('none', None)])
def test_validator_is_the_strong_etag_else_last_modified(server, validators, kind):
    server.validators = validators
    reader = _reader(server)
    headers = server.validator_headers(PATH, BODY)
    assert reader.etag == headers.get('ETag') and reader.last_modified == headers.get('Last-Modified')
    assert reader.validator == (headers[kind] if kind else None)
    assert _all(reader) == BODY and reader.size == len(BODY) and not reader.restarted


def test_a_dropped_connection_is_resumed_with_if_range(server):
    server.cut_once.add(PATH)
    reader = _reader(server)
    assert reader.read(len(BODY)) == BODY and reader.resumes == 1     # one read across the resume, whole
    etag = server.validator_headers(PATH, BODY)['ETag']
    assert server.ranges(PATH) == [None, f'bytes={len(BODY) // 2}-'] and server.if_ranges(PATH) == [None, etag]


@pytest.mark.parametrize('validators', ['both', 'last-modified'])
def test_a_resource_changed_mid_transfer_is_never_spliced(server, validators):
    server.validators = validators
    server.cut_once.add(PATH)
    server.change_after[PATH] = NEW
    reader = _reader(server)
    got = b''
    with pytest.raises(HttpReader.Changed, match=r'/data.bin: changed on the server during the download \(HTTP 200 '
                                                 r'to a resume with If-Range: .*\) at byte 8,192 of 16384'):
        while data := reader.read(4096):
            got += data
    assert got == BODY[:len(BODY) // 2]          # only bytes of the first version were ever returned


def test_without_validators_a_server_ignoring_range_is_not_resumed(server):
    server.validators = 'none'
    server.ignore_range.add(PATH)
    server.cut_once.add(PATH)
    reader = _reader(server)
    with pytest.raises(HttpReader.Changed, match='HTTP 200 to a Range request, and no ETag or Last-Modified'):
        _all(reader)


def test_a_ranged_start_with_a_matching_validator_continues(server):
    etag = server.validator_headers(PATH, BODY)['ETag']
    reader = _reader(server, start=1000, validator=etag)
    assert reader.pos == 1000 and not reader.restarted
    assert _all(reader) == BODY[1000:] and reader.size == len(BODY)
    assert server.if_ranges(PATH) == [etag]


@pytest.mark.parametrize('how', ['stale validator', 'no validator, range ignored'])
def test_a_ranged_start_on_another_version_starts_over(server, how):
    old = server.validator_headers(PATH, BODY)['ETag']
    server.files[PATH] = NEW
    if how == 'stale validator':
        reader = _reader(server, start=1000, validator=old)
    else:
        server.ignore_range.add(PATH)
        reader = _reader(server, start=1000)
    assert reader.restarted and reader.pos == 0
    assert reader.validator == server.validator_headers(PATH, NEW)['ETag']
    assert _all(reader) == NEW                   # the whole new version, nothing skipped
    assert len(server.requests) == 1             # the 200 answer is used, not asked again


def test_a_server_that_ignores_if_range_is_caught_by_the_validator_it_sends(server):
    """A careless server (or proxy) serves the range from its new version; the ETag of that 206 answer
    still tells: a start starts over, a resume raises."""
    server.ignore_if_range.add(PATH)
    old = server.validator_headers(PATH, BODY)['ETag']
    server.files[PATH] = NEW
    reader = _reader(server, start=1000, validator=old)
    assert reader.restarted and _all(reader) == NEW
    server.files[PATH] = BODY
    server.cut_once.add(PATH)
    server.change_after[PATH] = NEW
    with pytest.raises(HttpReader.Changed, match=r'changed on the server during the download \(now "'):
        _all(_reader(server))


def test_a_start_at_the_end_reads_nothing_and_one_past_it_starts_over(server):
    etag = server.validator_headers(PATH, BODY)['ETag']
    reader = _reader(server, start=len(BODY), validator=etag)
    assert reader.size == len(BODY) and reader.read(10) == b'' and not reader.restarted
    reader = _reader(server, start=len(BODY) + 5, validator=etag)   # longer than the resource: not its copy
    assert reader.restarted and _all(reader) == BODY


def test_a_body_that_stays_short_raises_after_the_retries(server):
    server.cut_always.add(PATH)
    reader = _reader(server, retries=2)
    with pytest.raises(OSError, match=r'/data.bin: stopped at byte 8,192 of 16384 and 2 resumes failed \(the '
                                      r'connection closed early\)'):
        _all(reader)
    assert len(server.requests) == 3
    reader = _reader(server, retries=1)          # one read across the failure: what arrived, then the error
    assert reader.read(len(BODY)) == BODY[:len(BODY) // 2]
    with pytest.raises(OSError, match='1 resumes failed'):
        reader.read(10)


def test_a_stalled_server_fails_within_timeout_times_attempts(server):
    server.stall.add(PATH)           # headers, then nothing
    timeout, retries, backoff = 0.3, 2, 0.05
    reader = _reader(server, timeout=timeout, retries=retries, backoff=backoff)
    t0 = time.monotonic()
    with pytest.raises(OSError, match=r'stopped at byte 0 of 16384 and 2 resumes failed \(TimeoutError'):
        reader.read(4096)
    elapsed = time.monotonic() - t0
    bound = timeout * (retries + 1) + backoff * (2 ** retries - 1)
    assert bound * 0.9 <= elapsed < bound + 1.5, elapsed
    assert len(server.requests) == retries + 1


def test_a_trickling_server_stops_at_the_deadline(server):
    server.trickle[PATH] = 0.05      # a byte every 50 ms: every single read is quick, the whole would take 14 min
    reader = _reader(server, timeout=1, deadline_s=0.6)
    t0 = time.monotonic()
    got = 0
    with pytest.raises(HttpReader.DeadlineExceeded, match=rf'{server.url}/data.bin: not downloaded within its '
                                                          r'deadline of 0.6 s \(\d+ of 16384 bytes received\)') as e:
        while data := reader.read(4096):
            got += len(data)
    assert 0 < got < 20 and f'({got} of' in str(e.value)
    assert time.monotonic() - t0 < 0.6 + 1 + 0.5     # within deadline + timeout
    assert isinstance(e.value, TimeoutError)


def test_the_deadline_covers_the_waits_between_resumes(server):
    server.cut_always.add(PATH)
    reader = _reader(server, retries=10, backoff=3, deadline_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(HttpReader.DeadlineExceeded):
        _all(reader)
    assert time.monotonic() - t0 < 1.5           # not the 3 s of its first wait


def test_a_body_longer_than_content_length_is_read_up_to_it(server):
    """HTTP frames a body by Content-Length: bytes sent beyond it are not part of the response and are never
    read. The reader returns what was announced; a caller proves the file whole by its checksum or format."""
    server.short_length.add(PATH)
    reader = _reader(server)
    assert reader.size == len(BODY) // 2 and _all(reader) == BODY[:len(BODY) // 2]


def test_without_content_length_the_body_ends_with_the_connection(server):
    server.no_length.add(PATH)
    reader = _reader(server)
    assert reader.size is None and _all(reader) == BODY
    server.cut_once.add(PATH)        # a cut is indistinguishable from the end: the size is unknown
    reader = _reader(server)
    assert reader.size is None and _all(reader) == BODY[:len(BODY) // 2]


def test_read_all_and_readinto(server):
    with _reader(server) as reader:
        assert reader.read() == BODY
    with _reader(server) as reader:
        buf = bytearray(100)
        assert reader.readinto(buf) == 100 and bytes(buf) == BODY[:100]


def test_a_404_is_file_not_found(server):
    with pytest.raises(FileNotFoundError):
        HttpReader(server.url + '/nothing', timeout=5)
