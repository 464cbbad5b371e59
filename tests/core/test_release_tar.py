"""The streaming tarball walker (transforms/core/release_tar.py) and the release table (release.py), on
archives written by Python's tarfile and damaged on purpose."""
import gzip
import io
import tarfile

import pytest

from transforms.core import release, release_tar


def _tar(members, fmt=tarfile.GNU_FORMAT, compress=True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz' if compress else 'w', format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _units(data: bytes, chunk: int = 4096):
    f = io.BytesIO(data)
    return list(release_tar.iter_members(release_tar.Stream(f.read, chunk)))


MEMBERS = [('audioset_v1_embeddings', None), ('audioset_v1_embeddings/eval', None),
           ('audioset_v1_embeddings/eval/ab.tfrecord', b'x' * 3000),
           ('audioset_v1_embeddings/eval/cd.tfrecord', bytes(range(256)) * 7),
           ('audioset_v1_embeddings/unbal_train/ef.tfrecord', b'y' * 513)]


@pytest.mark.parametrize('compress', [True, False])
@pytest.mark.parametrize('fmt', [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_members_come_back_whole_in_order(compress, fmt):
    units = _units(_tar(MEMBERS, fmt, compress), chunk=1000)
    assert [(u.kind, u.name) for u in units] == [('dir', n) if d is None else ('file', n) for n, d in MEMBERS]
    assert [u.data for u in units if u.kind == 'file'] == [d for _, d in MEMBERS if d is not None]
    assert not any(u.truncated for u in units)


def test_long_names_and_links():
    long = 'audioset_v1_embeddings/eval/' + 'z' * 150 + '.tfrecord'
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        units = _units(_tar([(long, b'abc'), ('audioset_v1_embeddings/eval/ln.tfrecord', 'ab.tfrecord')], fmt))
        assert [(u.kind, u.name) for u in units] == [('file', long), ('other', 'audioset_v1_embeddings/eval/ln.tfrecord')]
        assert units[0].data == b'abc'


def test_several_gzip_members_and_zero_padding():
    a, b = _tar(MEMBERS[:3], compress=False), _tar(MEMBERS[3:], compress=False)
    data = gzip.compress(a) + gzip.compress(b) + bytes(100)
    units = _units(data)
    assert [u.name for u in units] == [n for n, _ in MEMBERS]
    assert all(u.kind != 'damage' for u in units)


def test_truncated_download_keeps_what_arrived():
    data = _tar(MEMBERS)
    units = _units(data[:len(data) * 2 // 3])
    assert units[-1].kind == 'damage' and units[-1].reason == 'truncated-gzip'
    files = [u for u in units if u.kind == 'file']
    assert files and files[0].data == MEMBERS[2][1]
    assert sum(1 for u in files if u.truncated) <= 1
    # a plain tar cut inside a member: the member comes back short, then the archive says it ended early
    plain = _tar(MEMBERS, compress=False)
    units = _units(plain[:512 * 4 + 1000])
    assert [u.kind for u in units][-2:] == ['file', 'damage'] and units[-2].truncated
    assert units[-1].reason == 'truncated-tar'


def test_corrupt_gzip_and_trailing_garbage():
    data = bytearray(_tar(MEMBERS))
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    units = _units(bytes(data))
    assert units[-1].reason == 'corrupt-gzip'
    units = _units(_tar(MEMBERS) + b'not gzip at all')
    assert [u.name for u in units[:-1]] == [n for n, _ in MEMBERS] and units[-1].reason == 'corrupt-gzip'


def test_corrupt_header_resynchronises_on_the_next_member():
    plain = bytearray(_tar(MEMBERS, compress=False))
    # the header of the first shard member (after two directory headers) gets a wrong checksum
    at = 2 * 512
    assert plain[at:at + 22] == b'audioset_v1_embeddings'
    plain[at + 148:at + 156] = b'0000000\x00'
    units = _units(bytes(plain))
    kinds = [(u.kind, u.name, u.reason) for u in units]
    assert ('damage', None, 'corrupt-tar-header') in kinds
    damage = next(u for u in units if u.kind == 'damage')
    assert damage.offset == at and damage.size == 512 + 3072   # the header and the member's padded data
    assert [u.name for u in units if u.kind == 'file'] == [n for n, d in MEMBERS[3:]]


def test_source_failure_is_the_last_unit():
    data = _tar(MEMBERS)
    f = io.BytesIO(data)
    calls = []

    def read(n):
        calls.append(n)
        if len(calls) > 1:
            raise ConnectionResetError('peer reset')
        return f.read(200)
    units = list(release_tar.iter_members(release_tar.Stream(read, 200)))
    assert units[-1].reason == 'unreadable' and 'ConnectionResetError' in units[-1].error


def test_member_names():
    assert release_tar.shard_member('./audioset_v1_embeddings/bal_train/-_.tfrecord') == ('bal_train', '-_.tfrecord')
    for bad in ('audioset_v1_embeddings/balanced/ab.tfrecord', 'eval/ab.tfrecord', 'audioset_v1_embeddings/eval/x/ab.tfrecord',
                'audioset_v1_embeddings/eval/ab.tfrecord.bak', 'audioset_v1_embeddings/eval/'):
        assert release_tar.shard_member(bad) is None, bad
    assert release_tar.split_folder_of('audioset_v1_embeddings/eval/README') == 'eval'
    assert release_tar.is_tar_name('gs://b/x/features.tar.gz') and not release_tar.is_tar_name('/x/features')


def test_release_table_and_verification():
    names = [f.name for f in release.select([])]
    assert names == ['eval_segments.csv', 'balanced_train_segments.csv', 'unbalanced_train_segments.csv',
                     'class_labels_indices.csv', 'ontology.json']
    tarball = next(f for f in release.FILES if f.name == release.TARBALL)
    assert tarball.url('eu') == 'https://storage.googleapis.com/eu_audioset/youtube_corpus/v1/features/features.tar.gz'
    assert tarball.sha256 == 'cd95d500ab2422d4233cb822e25cf73033633e2068eab64d39024e85125cb760'
    assert tarball.url('us', 'http://127.0.0.1:1/x/') == 'http://127.0.0.1:1/x/v1/features/features.tar.gz'
    onto = next(f for f in release.FILES if f.name == 'ontology.json')
    assert onto.url('asia') == release.ONTOLOGY_URL and onto.url('us', 'http://h') == 'http://h/ontology.json'
    with pytest.raises(ValueError, match='mirror'):
        tarball.url('mars')
    assert release.verify(onto, onto.size, onto.sha256) is None
    assert 'expected' in release.verify(onto, onto.size, '0' * 64)
    assert 'Content-Length' in release.verify(tarball, 10, tarball.sha256, announced=20)
    present = {'/r/class_labels_indices.csv', '/r/audioset_eval_strong.tsv', '/r/qa_true_counts.csv'}
    flags = release.release_flags('/r/', present.__contains__)
    assert flags == {'features_dir': '/r', 'segments_dir': '/r', 'class_index': '/r/class_labels_indices.csv',
                     'label_quality': '/r/qa_true_counts.csv', 'strong_labels': '/r'}


def test_an_archive_cut_at_a_member_boundary_says_so():
    # tar's end-of-archive blocks are the only proof that the last member was the last: a tar cut right
    # after a member (then compressed whole, so gzip sees nothing wrong) must not read as complete
    plain = _tar(MEMBERS, compress=False)
    whole = _units(plain)
    assert all(u.kind != 'damage' for u in whole)
    last = whole[-1]
    last_end = last.offset + 512 + -(-last.size // 512) * 512
    assert plain[last_end:last_end + 1024] == bytes(1024)
    second = whole[-2]
    second_end = second.offset + 512 + -(-second.size // 512) * 512
    for data in (plain[:last_end], gzip.compress(plain[:last_end]), gzip.compress(plain[:second_end])):
        units = _units(data)
        assert units[-1].kind == 'damage' and units[-1].reason == 'truncated-tar', units[-1]
        assert 'end-of-archive' in units[-1].error
    # cut inside the end blocks or their padding: nothing is lost, nothing is said
    assert all(u.kind != 'damage' for u in _units(plain[:last_end + 512]))
    assert all(u.kind != 'damage' for u in _units(gzip.compress(plain[:last_end + 700])))
    assert [u.reason for u in _units(b'')] == ['empty-tarball']
    assert [u.reason for u in _units(gzip.compress(b''))] == ['empty-tarball']


def _huge_member_stream(name: str, size: int, kind: bytes = tarfile.REGTYPE):
    """A plain tar whose one member declares ``size`` bytes, generated as it is read (never in memory)."""
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    head = info.tobuf(tarfile.GNU_FORMAT)
    tail = bytes(-size % 512) + bytes(1024)
    sent = 0

    def read(n):
        nonlocal sent
        if sent < len(head):
            out = head[sent:sent + n]
        elif sent < len(head) + size:
            out = bytes(min(n, len(head) + size - sent))
        else:
            k = sent - len(head) - size
            out = tail[k:k + n]
        sent += len(out)
        return out
    return read


def test_a_member_not_kept_streams_past_without_being_held():
    import tracemalloc
    size = 300 << 20
    tracemalloc.start()
    try:
        units = list(release_tar.iter_members(release_tar.Stream(_huge_member_stream('README', size)),
                                              keep=lambda name, n: name.endswith('.tfrecord')))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(u.kind, u.name, u.data, u.size, u.truncated) for u in units] == [('file', 'README', None, size, False)]
    assert peak < 16 << 20, peak          # chunks of 1 MB come and go; 300 MB never accumulate
    # a long-name header declaring a huge size is damage, skipped, never held
    units = list(release_tar.iter_members(release_tar.Stream(
        _huge_member_stream('././@LongLink', 64 << 20, tarfile.GNUTYPE_LONGNAME))))
    assert [u.reason for u in units if u.kind == 'damage'] == ['corrupt-tar-header']
    # a kept member cut short says so (the walk holds what arrived)
    read = _huge_member_stream('audioset_v1_embeddings/eval/ab.tfrecord', 5000)
    units = list(release_tar.iter_members(release_tar.Stream(lambda n, r=read: r(min(n, 1000)), 1000),
                                          keep=lambda name, n: True))
    assert units[0].kind == 'file' and len(units[0].data) == 5000 and not units[0].truncated


@pytest.mark.parametrize('byte', [-8, -1])   # the gzip trailer: CRC-32, then the length mod 2^32
def test_a_wrong_gzip_trailer_is_corrupt(byte):
    data = bytearray(_tar(MEMBERS))
    data[byte] ^= 1
    units = _units(bytes(data))
    assert units[-1].kind == 'damage' and units[-1].reason == 'corrupt-gzip'
    assert ('data check' if byte == -8 else 'length check') in units[-1].error
