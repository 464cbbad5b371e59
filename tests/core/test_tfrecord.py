import struct

import pytest

from tests.fixtures import SAMPLE
from transforms.core import tfrecord


def _payloads(data):
    return [r.payload for r in tfrecord.iter_records(data) if r.payload is not None]


def test_round_trip_and_offsets():
    data = tfrecord.frame_all([b'a', b'bb', b''])
    framed = list(tfrecord.iter_records(data))
    assert [f.payload for f in framed] == [b'a', b'bb', b'']
    assert [f.index for f in framed] == [0, 1, 2]
    assert [f.offset for f in framed] == [0, 17, 35]


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
    assert _payloads(bytes(data)) == [b'first', b'third']


def test_truncated_tail_is_one_damaged_unit():
    data = tfrecord.frame_all([b'first', b'second'])
    framed = list(tfrecord.iter_records(data[:-3]))
    assert [f.reason for f in framed] == [None, 'truncated-record']
    framed = list(tfrecord.iter_records(data + b'\x01\x02'))
    assert [f.reason for f in framed] == [None, None, 'truncated-header']


def test_corrupt_length_resyncs_to_next_header():
    data = bytearray(tfrecord.frame_all([b'first', b'second', b'third']))
    struct.pack_into('<Q', data, 0, 999)  # length no longer matches its CRC
    framed = list(tfrecord.iter_records(bytes(data)))
    assert framed[0].reason == 'length-crc-mismatch' and framed[0].index is None
    assert [f.payload for f in framed[1:]] == [b'second', b'third']


@pytest.mark.parametrize('garbage', [b'', b'\x00' * 3])
def test_empty_or_tiny(garbage):
    assert len(list(tfrecord.iter_records(garbage))) == (0 if not garbage else 1)
