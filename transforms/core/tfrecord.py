"""TFRecord framing with CRC32C checks that reports damage instead of stopping at it.

Framing: uint64 length (LE), masked crc32c of those 8 bytes, data, masked crc32c of the data.
"""
from __future__ import annotations

import dataclasses
import struct
from typing import Iterable, Iterator

import google_crc32c

_HEADER = 12
_FOOTER = 4
_MASK_DELTA = 0xA282EAD8
# A length beyond this is taken as damage when resynchronising (released records are ~1.5 KB).
_MAX_PLAUSIBLE_LENGTH = 64 << 20


_HEADER_STRUCT = struct.Struct('<QI')
_FOOTER_STRUCT = struct.Struct('<I')
_crc32c = google_crc32c.value


def masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@dataclasses.dataclass(frozen=True, slots=True)
class Framed:
    """One framed record, or one damaged stretch of a file (``error`` set, ``payload`` None)."""
    offset: int
    index: int | None  # record index within the file; None where damage hides the count
    payload: bytes | None = None
    reason: str | None = None  # kebab-case when damaged
    error: str | None = None


def _header_ok(data: bytes, offset: int) -> int | None:
    """The record length if a valid header starts at ``offset``, else None."""
    if len(data) - offset < _HEADER:
        return None
    (length,) = struct.unpack_from('<Q', data, offset)
    (crc,) = struct.unpack_from('<I', data, offset + 8)
    if masked_crc(data[offset:offset + 8]) != crc:
        return None
    return length


def _resync(data: bytes, start: int) -> int:
    """Offset of the next plausible record header at or after ``start`` (len(data) if none)."""
    for offset in range(start, len(data) - _HEADER + 1):
        length = _header_ok(data, offset)
        if length is not None and length <= _MAX_PLAUSIBLE_LENGTH and \
                offset + _HEADER + length + _FOOTER <= len(data):
            return offset
    return len(data)


def iter_records(data: bytes) -> Iterator[Framed]:
    """Splits a TFRecord file's bytes into records, checking both CRCs.

    A record whose data CRC fails is reported and skipped; reading goes on with the next record. A header
    whose length CRC fails makes the length untrustworthy: the stretch up to the next valid header is
    reported as one damaged unit. A truncated tail is reported as one damaged unit.
    """
    offset, index, size = 0, 0, len(data)
    unpack_header, unpack_footer = _HEADER_STRUCT.unpack_from, _FOOTER_STRUCT.unpack_from
    while offset < size:
        if size - offset < _HEADER:
            yield Framed(offset, None, reason='truncated-header',
                         error=f'{size - offset} trailing bytes, too few for a record header')
            return
        length, length_crc = unpack_header(data, offset)
        if masked_crc(data[offset:offset + 8]) != length_crc:
            nxt = _resync(data, offset + 1)
            yield Framed(offset, None, reason='length-crc-mismatch',
                         error=f'record header CRC mismatch; skipped {nxt - offset} bytes to the next valid header')
            offset = nxt
            continue
        end = offset + _HEADER + length + _FOOTER
        if end > size:
            yield Framed(offset, index, reason='truncated-record',
                         error=f'record of {length} bytes runs past the end of the file ({size} bytes)')
            return
        payload = data[offset + _HEADER:end - _FOOTER]
        if masked_crc(payload) != unpack_footer(data, end - _FOOTER)[0]:
            yield Framed(offset, index, reason='data-crc-mismatch', error='record data CRC mismatch')
        else:
            yield Framed(offset, index, payload)
        offset = end
        index += 1


def frame(payload: bytes) -> bytes:
    """One record in TFRecord framing."""
    header = struct.pack('<Q', len(payload))
    return header + struct.pack('<I', masked_crc(header)) + payload + struct.pack('<I', masked_crc(payload))


def frame_all(payloads: Iterable[bytes]) -> bytes:
    return b''.join(frame(p) for p in payloads)
