import gzip
import random
import struct
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.fixtures import SAMPLE, record
from transforms.core import tfrecord


def _payloads(data):
    return [r.payload for r in tfrecord.iter_records(data) if r.payload is not None]


def _random_payloads(n, seed=0, lo=1300, hi=1700):
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(lo, hi)) for _ in range(n)]


def _offsets(payloads):
    """Header offsets of each record in frame_all(payloads), and the end."""
    out = [0]
    for p in payloads:
        out.append(out[-1] + len(p) + 16)
    return out


def _check_contract(units, stream_size):
    """The module's guarantee: the units tile the stream, and indices are exact until the first estimate."""
    assert units
    assert units[0].offset == 0
    for a, b in zip(units, units[1:]):
        assert a.offset + a.nbytes == b.offset
    assert units[-1].offset + units[-1].nbytes == stream_size
    index, exact = 0, True
    for u in units:
        unnumbered = u.reason in ('not-a-tfrecord', 'empty-file') and u.index is None
        assert u.index == (index if exact else None) or unnumbered
        assert (u.payload is None) == (u.reason is not None) == (u.error is not None)
        assert u.records >= (0 if u.reason in ('empty-file', 'corrupt-gzip', 'corrupt-zlib') else 1)
        if u.payload is not None:
            assert (u.records, u.estimated, u.nbytes) == (1, False, len(u.payload) + 16)
        index += u.records
        exact = exact and not u.estimated


def _tf_write(path, payloads, compression):
    tf = pytest.importorskip('tensorflow')
    with tf.io.TFRecordWriter(str(path), tf.io.TFRecordOptions(compression_type=compression)) as w:
        for p in payloads:
            w.write(p)
    return path.read_bytes()


def test_round_trip_and_offsets():
    data = tfrecord.frame_all([b'a', b'bb', b''])
    framed = list(tfrecord.iter_records(data))
    assert [f.payload for f in framed] == [b'a', b'bb', b'']
    assert [f.index for f in framed] == [0, 1, 2]
    assert [f.offset for f in framed] == [0, 17, 35]
    assert [(f.records, f.estimated, f.nbytes, f.compressed) for f in framed] == [(1, False, 17, False),
                                                                                 (1, False, 18, False),
                                                                                 (1, False, 16, False)]
    assert tfrecord.sniff(data) == 'tfrecord'


def test_real_shard_counts_match_the_release_manifest():
    # --.tfrecord of bal_train holds 7 records according to the shared features_manifest.tsv
    data = (SAMPLE / 'features' / 'bal_train' / '--.tfrecord').read_bytes()
    framed = list(tfrecord.iter_records(data))
    assert len(framed) == 7 and all(f.payload is not None for f in framed)


def test_data_crc_mismatch_is_reported_and_reading_goes_on():
    data = bytearray(tfrecord.frame_all([b'first', b'second', b'third']))
    data[21 + 12] ^= 0xFF  # a byte inside 'second'
    framed = list(tfrecord.iter_records(bytes(data)))
    assert [(f.index, f.reason) for f in framed] == [(0, None), (1, 'data-crc-mismatch'), (2, None)]
    assert framed[1].offset == 21
    assert (framed[1].records, framed[1].estimated) == (1, False)  # exactly one record
    assert _payloads(bytes(data)) == [b'first', b'third']


def test_truncated_tail_is_one_damaged_unit():
    data = tfrecord.frame_all([b'first', b'second'])
    framed = list(tfrecord.iter_records(data[:-3]))
    assert [f.reason for f in framed] == [None, 'truncated-record']
    assert (framed[1].index, framed[1].records, framed[1].estimated) == (1, 1, False)
    framed = list(tfrecord.iter_records(data + b'\x01\x02'))
    assert [f.reason for f in framed] == [None, None, 'truncated-header']


def test_corrupt_length_resyncs_to_next_header():
    data = bytearray(tfrecord.frame_all([b'first', b'second', b'third']))
    struct.pack_into('<Q', data, 0, 999)  # length no longer matches its CRC
    framed = list(tfrecord.iter_records(bytes(data)))
    assert framed[0].reason == 'length-crc-mismatch' and framed[0].index == 0  # the first record it hid
    assert [f.payload for f in framed[1:]] == [b'second', b'third']
    assert [(f.offset, f.index) for f in framed[1:]] == [(21, None), (43, None)]  # offsets exact, indices unknown


def test_length_crc_damage_makes_later_indices_unknown_and_offsets_stay_exact():
    payloads = _random_payloads(40)
    offsets = _offsets(payloads)
    data = bytearray(tfrecord.frame_all(payloads))
    data[offsets[10] + 9] ^= 0x55  # the length CRC of record 10
    units = list(tfrecord.iter_records(bytes(data)))
    _check_contract(units, len(data))
    assert [u.index for u in units[:10]] == list(range(10))
    assert (units[10].offset, units[10].index, units[10].reason) == (offsets[10], 10, 'length-crc-mismatch')
    assert units[10].records == 1 and units[10].estimated
    assert [(u.payload, u.offset, u.index) for u in units[11:]] == [(p, o, None) for p, o in
                                                                    zip(payloads[11:], offsets[11:])]


@pytest.mark.parametrize('length', [1 << 40, tfrecord.MAX_RECORD_BYTES + 1, 10_000_000])
def test_implausible_length_with_a_valid_crc_resyncs(length):
    # 10 MB is under the cap but past the end of this ~60 KB file: as implausible, since records follow
    payloads = _random_payloads(40)
    offsets = _offsets(payloads)
    data = bytearray(tfrecord.frame_all(payloads))
    header = struct.pack('<Q', length)
    data[offsets[10]:offsets[10] + 12] = header + struct.pack('<I', tfrecord.masked_crc(header))
    units = list(tfrecord.iter_records(bytes(data)))
    _check_contract(units, len(data))
    bad = units[10]
    assert (bad.offset, bad.index, bad.reason, bad.records, bad.estimated) == (
        offsets[10], 10, 'implausible-length', 1, True)
    assert str(length) in bad.error
    assert [(u.payload, u.offset, u.index) for u in units[11:]] == [(p, o, None) for p, o in
                                                                    zip(payloads[11:], offsets[11:])]
    assert sum(u.records for u in units) == 40


def test_a_record_whose_length_is_wrong_but_crc_valid_does_not_swallow_the_rest():
    # a valid header whose length is wrong: the data CRC fails and no valid header follows it
    payloads = _random_payloads(40)
    offsets = _offsets(payloads)
    data = bytearray(tfrecord.frame_all(payloads))
    header = struct.pack('<Q', offsets[30] - offsets[10] - 16 + 5)
    data[offsets[10]:offsets[10] + 12] = header + struct.pack('<I', tfrecord.masked_crc(header))
    units = list(tfrecord.iter_records(bytes(data)))
    _check_contract(units, len(data))
    assert units[10].reason == 'data-crc-mismatch' and units[10].estimated
    assert [u.payload for u in units[11:]] == payloads[11:]


@pytest.mark.parametrize('fill', ['random', 'zeros', 'text', 'headers'])
@pytest.mark.parametrize('k', [1, 7, 50, 120])
def test_a_damaged_stretch_of_k_records_counts_about_k(fill, k):
    n = 240
    payloads = _random_payloads(n, seed=k)
    offsets = _offsets(payloads)
    data = bytearray(tfrecord.frame_all(payloads))
    first = 60
    lo, hi = offsets[first] + 3, offsets[first + k]  # from inside a header to the next intact one
    rng = random.Random(k)
    if fill == 'headers':  # the records' bytes stay, but every one of their length CRCs is damaged
        for j in range(first, first + k):
            data[offsets[j] + 8] ^= 0x10
    else:
        data[lo:hi] = {'random': rng.randbytes(hi - lo), 'zeros': bytes(hi - lo),
                       'text': (b'lorem ipsum dolor sit amet ' * (hi // 20))[:hi - lo]}[fill]
    units = list(tfrecord.iter_records(bytes(data)))
    _check_contract(units, len(data))
    bad = [u for u in units if u.payload is None]
    assert len(bad) == 1
    assert bad[0].offset == offsets[first] and bad[0].index == first and bad[0].estimated
    assert abs(bad[0].records - k) <= 1
    assert abs(sum(u.records for u in units) - n) <= 1
    assert [u.payload for u in units if u.payload is not None] == payloads[:first] + payloads[first + k:]


def test_half_the_file_lost_never_looks_like_one_record():
    payloads = _random_payloads(200)
    data = bytearray(tfrecord.frame_all(payloads))
    data[:len(data) // 2] = bytes(len(data) // 2)
    units = list(tfrecord.iter_records(bytes(data)))
    _check_contract(units, len(data))
    assert units[0].reason == 'length-crc-mismatch' and abs(units[0].records - 100) <= 2


@pytest.mark.parametrize('length, reason', [(1 << 40, 'implausible-length'), (50 << 20, 'implausible-length'),
                                            (100, 'data-crc-mismatch')])
@pytest.mark.parametrize('compress', [False, True])
def test_a_flood_of_valid_headers_that_frame_no_record_is_one_stretch(length, reason, compress):
    header = struct.pack('<Q', length)
    junk = (header + struct.pack('<I', tfrecord.masked_crc(header))) * 5000
    payloads = _random_payloads(20)
    data = tfrecord.frame_all(payloads[:10]) + junk + tfrecord.frame_all(payloads[10:])
    units = list(tfrecord.iter_records(gzip.compress(data) if compress else data))
    _check_contract(units, len(data))
    assert [u.reason for u in units if u.payload is None] == [reason]
    assert [u.payload for u in units if u.payload is not None] == payloads


@pytest.mark.parametrize('compression', ['GZIP', 'ZLIB'])
def test_tensorflow_compressed_files_give_every_record(tmp_path, compression):
    payloads = [record(f'vid{i:08d}', 10.0 * i, [i % 5], seed=i) for i in range(328)]
    data = _tf_write(tmp_path / 'x.tfrecord', payloads, compression)
    assert tfrecord.sniff(data) == compression.lower()
    units = list(tfrecord.iter_records(data))
    assert [u.payload for u in units] == payloads
    assert [u.index for u in units] == list(range(328))
    assert [u.offset for u in units] == _offsets(payloads)[:-1]  # offsets in the decompressed stream
    assert all(u.compressed and u.reason is None for u in units)


def test_python_gzip_zlib_and_concatenated_members():
    payloads = _random_payloads(50)
    plain = tfrecord.frame_all(payloads)
    cut = _offsets(payloads)[20] + 5  # members need not end at record boundaries
    for data in [gzip.compress(plain), zlib.compress(plain), gzip.compress(plain[:cut]) + gzip.compress(plain[cut:]),
                 gzip.compress(plain[:cut]) + bytes(100) + gzip.compress(plain[cut:]) + bytes(7)]:
        units = list(tfrecord.iter_records(data))
        assert [u.payload for u in units] == payloads
        assert [u.offset for u in units] == _offsets(payloads)[:-1]


@pytest.mark.parametrize('kind', ['gzip', 'zlib'])
def test_truncated_compressed_stream_gives_the_records_before_the_cut(kind):
    payloads = _random_payloads(100)
    compress = gzip.compress if kind == 'gzip' else zlib.compress
    whole = compress(tfrecord.frame_all(payloads))
    data = whole[:len(whole) // 2]
    units = list(tfrecord.iter_records(data))
    good = [u.payload for u in units if u.payload is not None]
    assert 40 <= len(good) <= 50 and good == payloads[:len(good)]
    assert units[-1].reason == f'truncated-{kind}' and kind in units[-1].error
    assert units[-1].index == len(good) and units[-1].records >= 1 and units[-1].compressed
    assert [u.reason for u in units[:-1]] == [None] * len(good)


def test_corrupt_gzip_stream_gives_the_records_before_the_damage_and_estimates_the_rest():
    # compressible payloads, so the damage lands in Huffman-coded data and zlib fails soon after it
    payloads = [(b'%d dog barks, ' % i) * random.Random(i).randint(80, 120) for i in range(400)]
    plain = tfrecord.frame_all(payloads)
    data = bytearray(gzip.compress(plain))
    data[len(data) // 2] ^= 0x5A
    units = list(tfrecord.iter_records(bytes(data)))
    last = units[-1]
    assert last.reason == 'corrupt-gzip' and 'gzip' in last.error and last.estimated
    good = [u.payload for u in units if u.payload is not None]
    assert good == payloads[:len(good)] and 100 < len(good) < 300
    assert abs(sum(u.records for u in units) - 400) <= 40  # the unread half, estimated from the ratio so far
    _check_contract(units, sum(u.nbytes for u in units))


def test_trailing_junk_after_a_gzip_stream_is_reported():
    payloads = _random_payloads(10)
    data = gzip.compress(tfrecord.frame_all(payloads)) + b'junk' * 500
    units = list(tfrecord.iter_records(data))
    assert [u.payload for u in units[:-1]] == payloads
    assert units[-1].reason == 'corrupt-gzip' and 'not a gzip member' in units[-1].error


def test_damage_inside_a_compressed_stream_resyncs_across_chunks():
    # a big record and a long damaged stretch span several of the decompressor's output chunks
    payloads = _random_payloads(30) + [bytes(3 << 20)] + _random_payloads(30, seed=1)
    offsets = _offsets(payloads)
    plain = bytearray(tfrecord.frame_all(payloads))
    plain[offsets[5] + 9] ^= 1  # a length CRC
    plain = bytes(plain[:offsets[40]] + bytes(5 << 20) + plain[offsets[45]:])  # records 40..44 -> 5 MB of zeros
    payloads = payloads[:40] + payloads[45:]
    units = list(tfrecord.iter_records(gzip.compress(plain)))
    _check_contract(units, len(plain))
    assert [u.reason for u in units if u.payload is None] == ['length-crc-mismatch', 'length-crc-mismatch']
    assert [u.payload for u in units if u.payload is not None] == payloads[:5] + payloads[6:]
    plain_units = list(tfrecord.iter_records(plain))
    assert [(u.offset, u.nbytes, u.records) for u in units] == [(u.offset, u.nbytes, u.records) for u in plain_units]


def test_not_a_tfrecord(tmp_path):
    table = pa.table({'x': list(range(1000))})
    pq.write_table(table, tmp_path / 'x.parquet')
    for data in [b'video_id, start, end, labels\n' * 400, random.Random(3).randbytes(100_000),
                 (tmp_path / 'x.parquet').read_bytes(), gzip.compress(b'hello\n' * 1000), b'\x00' * 3]:
        units = list(tfrecord.iter_records(data))
        assert len(units) == 1
        u = units[0]
        assert u.reason == 'not-a-tfrecord' and u.index is None and u.payload is None and u.estimated
        assert u.error.startswith('not a TFRecord file: no valid record header found in')
        assert str(u.nbytes) in u.error and repr(data[:8])[2:-1] in u.error or u.compressed
        assert u.records == max(1, round(u.nbytes / tfrecord.DEFAULT_RECORD_BYTES))
        if not u.compressed:
            assert tfrecord.sniff(data) == 'not-tfrecord' and u.nbytes == len(data)


def test_empty():
    assert list(tfrecord.iter_records(b'')) == [
        tfrecord.Framed(0, None, None, 'empty-file', 'empty file: 0 bytes', 0, False, 0, False)]
    assert tfrecord.sniff(b'') == 'empty'
    (u,) = tfrecord.iter_records(gzip.compress(b''))  # a compressed file with no records
    assert (u.reason, u.records, u.compressed) == ('empty-file', 0, True)


def test_sniff():
    plain = tfrecord.frame_all(_random_payloads(5))
    damaged = bytearray(plain)
    damaged[3] ^= 1
    assert [tfrecord.sniff(d) for d in [plain, bytes(damaged), gzip.compress(plain), zlib.compress(plain),
                                        b'', b'PAR1' + bytes(100)]] == [
        'tfrecord', 'tfrecord', 'gzip', 'zlib', 'empty', 'not-tfrecord']


def test_random_damage_keeps_the_contract():
    payloads = _random_payloads(60, lo=10, hi=900)
    plain = tfrecord.frame_all(payloads)
    rng = random.Random(7)
    for trial in range(150):
        data = bytearray(plain)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            op = rng.choice(['flip', 'delete', 'insert', 'zero'])
            width = rng.choice([1, 5, 13, 200, 3000])
            if op == 'flip':
                data[at] ^= 1 << rng.randrange(8)
            elif op == 'delete':
                del data[at:at + width]
            elif op == 'insert':
                data[at:at] = rng.randbytes(width)
            else:
                data[at:at + width] = bytes(len(data[at:at + width]))
        data = bytes(data)
        for stream in [data, gzip.compress(data)]:
            units = list(tfrecord.iter_records(stream))
            _check_contract(units, len(data))
            assert all(u.payload in payloads for u in units if u.payload is not None)
