"""TFRecord framing with CRC32C checks that reports damage instead of stopping at it.

Role: the bytes of one shard file -> its records, each good one with exact provenance, and every damaged
stretch as one unit that says how many records it hid (transforms/read.py makes it a dead letter).

Framing: uint64 length (LE), masked crc32c of those 8 bytes, data, masked crc32c of the data. A file may be
compressed as a whole, as ``tf.io.TFRecordOptions(compression_type='GZIP' | 'ZLIB')`` writes it; the
compression is detected from the content, never the name (``sniff``), and the records are framed from the
decompressed stream, which is decompressed piece by piece.

The contract of ``iter_records``, for any input:

- Every byte of the stream (the file, or what it decompresses to) lies in exactly one unit: a good record
  (``payload`` set) or a damaged unit (``payload`` None, ``reason`` and ``error`` set). Units come in stream
  order and tile it: ``offset`` of each is the ``offset + nbytes`` of the one before. Compressed bytes past
  a compression fault never reach the stream; the unit that ends it counts the records they held.
- good records + sum of ``records`` over damaged units = the records in the file. A damaged unit counts
  exactly (``estimated`` False: one record whose data CRC failed, a record cut short by the end of the
  file) or estimates (``estimated`` True: the bytes it spans over the file's mean framed record size, the
  mean over its framed records, or ``DEFAULT_RECORD_BYTES`` where there are none; at least 1). Only
  'empty-file' counts 0, and a gzip/zlib fault in a member's trailer (its checksum) that hid no record. A
  truncated file cannot say how much was cut off: its last unit counts what is left of it, at least 1.
- ``offset`` is always exact: the byte offset of the record header (or of the damage) in the stream; for a
  compressed file (``compressed`` True) that is an offset in the decompressed stream, not in the file.
  ``index`` (the record's position in the file, from 0) is exact up to the first estimated unit, and None
  from there on, because the records that unit hid cannot be counted.

Damaged units have these reasons: 'empty-file' (records=0), 'not-a-tfrecord' (no valid record header
anywhere), 'length-crc-mismatch', 'implausible-length' (a header whose length exceeds ``MAX_RECORD_BYTES`` or
runs past the end while more records follow), 'data-crc-mismatch', 'truncated-record', 'truncated-header',
and for compressed files 'truncated-gzip', 'corrupt-gzip', 'truncated-zlib', 'corrupt-zlib'. After a
damaged header the reader resynchronises to the next valid header and goes on.
"""
from __future__ import annotations

import functools
import re
import struct
import zlib
from typing import Callable, Iterable, Iterator, NamedTuple

import google_crc32c
import numpy as np

_HEADER = 12
_MASK_DELTA = 0xA282EAD8
# A header claiming more than this is damage, whatever its CRC says (released records are ~1.5 KB).
MAX_RECORD_BYTES = 64 << 20
# Mean framed size of a released AudioSet record, for estimates in a file with no intact record.
DEFAULT_RECORD_BYTES = 1500
# Decompressed bytes handed to the framer at a time, and compressed bytes fed to zlib at a time: memory
# stays bounded by a record plus a chunk, whatever the compression ratio.
_OUT_CHUNK = 1 << 20
_IN_CHUNK = 256 << 10
_REPLAY_STEP = 64
_GZIP_MAGIC = b'\x1f\x8b'
_NONZERO = re.compile(b'[^\x00]')

_HEADER_STRUCT = struct.Struct('<QI')
_FOOTER_STRUCT = struct.Struct('<I')
_crc32c = google_crc32c.value


def masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


class Framed(NamedTuple):
    """One framed record, or one damaged unit of a file (``payload`` None; ``reason`` and ``error`` set).

    A tuple rather than a dataclass because one is made per record on the hot path.
    """
    offset: int  # of the record header or the damage, in the (decompressed) stream; always exact
    index: int | None  # position of the (first) record in the file; None once damage hides the count
    payload: bytes | None = None
    reason: str | None = None  # kebab-case when damaged
    error: str | None = None
    records: int = 1  # records in this unit: 1 for a good record; at least 1 for damage, but see the module
    estimated: bool = False  # True where ``records`` is inferred from the bytes the damage spans
    nbytes: int = 0  # bytes of the (decompressed) stream this unit spans, framing included
    compressed: bool = False  # True when ``offset`` is in the decompressed stream of a compressed file


def frame(payload: bytes) -> bytes:
    """One record in TFRecord framing."""
    header = struct.pack('<Q', len(payload))
    return header + struct.pack('<I', masked_crc(header)) + payload + struct.pack('<I', masked_crc(payload))


def frame_all(payloads: Iterable[bytes]) -> bytes:
    return b''.join(frame(p) for p in payloads)


def sniff(data: bytes) -> str:
    """What a file's bytes are: 'tfrecord', 'gzip', 'zlib', 'empty' or 'not-tfrecord'.

    'tfrecord' means a valid record header at the start or, after damage, anywhere; 'gzip' and 'zlib' say
    the file is compressed as a whole (what the stream holds is for ``iter_records`` to find out).
    """
    kind = _kind(data)
    if kind != 'unknown':
        return kind
    return 'tfrecord' if _has_header(data) else 'not-tfrecord'


def iter_records(data: bytes) -> Iterator[Framed]:
    """bytes of one TFRecord file (plain, gzip or zlib) -> its units: records and damaged stretches.

    See the module docstring for the guarantee. Good records are yielded as they are framed; once the
    first estimated unit is found, the rest of the file is held until its end, where the mean record size
    for the estimates is known, and then yielded in order.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    kind = _kind(data)
    if kind in ('gzip', 'zlib'):
        inflater = _Inflater(data, kind)
        return _frame(b'', inflater.chunks(), inflater)
    return _frame(data, None, None)


def _kind(data: bytes) -> str:
    """sniff's answer, or 'unknown' where only a scan for a header can tell a damaged TFRecord from junk."""
    if not data:
        return 'empty'
    if len(data) >= _HEADER and _header_valid(data, 0):
        return 'tfrecord'
    if data[:2] == _GZIP_MAGIC:
        if _inflates(data, 31) or not _has_header(data):
            return 'gzip'
        return 'unknown'
    b0 = data[0]
    # RFC 1950 header: deflate with a window of at most 32 KB, and a header checksum
    if len(data) >= 2 and b0 & 0x0F == 8 and b0 >> 4 <= 7 and ((b0 << 8) | data[1]) % 31 == 0 \
            and _inflates(data, 15):
        return 'zlib'
    return 'unknown'


def _has_header(data: bytes) -> bool:
    return len(data) >= _HEADER and _Headers().next(data, 0, 0, True, None)[2] >= 0


def _inflates(data: bytes, wbits: int) -> bool:
    """Whether the start of ``data`` decompresses without error."""
    try:
        zlib.decompressobj(wbits).decompress(data[:4096], 1 << 16)
    except zlib.error:
        return False
    return True


def _header_valid(buf: bytes, offset: int) -> bool:
    length, crc = _HEADER_STRUCT.unpack_from(buf, offset)
    return _LENGTH_CRCS.get(length) == crc or _length_crc_ok(length, crc)


# Masked CRC of the 8 length bytes, by length: the header check is then one dict lookup per record. Only
# lengths below 64 KiB are kept, so the cache stays small whatever the input.
_LENGTH_CRCS: dict[int, int] = {}


def _length_crc_ok(length: int, crc: int) -> bool:
    expected = masked_crc(struct.pack('<Q', length))
    if length < 1 << 16:
        _LENGTH_CRCS[length] = expected
    return expected == crc


@functools.cache
def _crc_tables() -> tuple[np.uint32, np.ndarray]:
    """crc32c of 8 bytes whose last 4 are zero, as c0 ^ t[0][b0] ^ t[1][b1] ^ t[2][b2] ^ t[3][b3].

    A CRC is affine in its message over GF(2), so the CRCs of all 8-byte windows of a buffer can be had
    with numpy table lookups instead of one Python call per offset.
    """
    c0 = _crc32c(bytes(8))
    tables = np.empty((4, 256), np.uint32)
    for i in range(4):
        for b in range(256):
            msg = bytearray(8)
            msg[i] = b
            tables[i, b] = _crc32c(bytes(msg)) ^ c0
    return np.uint32(c0), tables


def _find_headers(buf: bytes, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Valid headers with a length up to MAX_RECORD_BYTES at offsets in [start, stop): (offsets, lengths,
    scanned to).

    Scans windows of growing width, so a nearby header is found cheaply, and stops after the first window
    with a hit, returning every hit in it. Needs stop <= len(buf) - 11. Vectorised: 10 MB of damage (zeros,
    random bytes, text) takes well under a second.
    """
    c0, t = _crc_tables()
    width = 1 << 14
    while start < stop:
        m = min(width, stop - start)
        a = np.frombuffer(buf, np.uint8, count=m + _HEADER - 1, offset=start)
        # a plausible length has its top 5 bytes zero (MAX_RECORD_BYTES <= 2**26 < 2**32) ...
        ok = (a[4:4 + m] | a[5:5 + m] | a[6:6 + m] | a[7:7 + m]) == 0
        ok &= a[3:3 + m] <= (MAX_RECORD_BYTES >> 24)
        # ... and a nonzero CRC: no length up to MAX_RECORD_BYTES has a masked CRC of 0 (checked
        # exhaustively), which makes runs of zeros, the commonest damage, cost next to nothing
        ok &= (a[8:8 + m] | a[9:9 + m] | a[10:10 + m] | a[11:11 + m]) != 0
        at = np.flatnonzero(ok)
        if at.size:
            b = [a[at + k].astype(np.uint32) for k in range(12)]
            length = b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)
            crc = c0 ^ t[0][b[0]] ^ t[1][b[1]] ^ t[2][b[2]] ^ t[3][b[3]]
            masked = ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(_MASK_DELTA)
            stored = b[8] | (b[9] << 8) | (b[10] << 16) | (b[11] << 24)
            hit = (masked == stored) & (length <= MAX_RECORD_BYTES)
            if hit.any():
                return at[hit] + start, length[hit].astype(np.int64), start + m
        start += m
        width = min(width * 4, 1 << 22)
    return np.empty(0, np.int64), np.empty(0, np.int64), stop


class _Headers:
    """Finds the next valid header in a stream, reading on as needed.

    Once the end of the stream is known, a header whose record would run past it is no candidate. It keeps
    the headers it has seen ahead, so that a run of headers that each turn out to be damage (say, thousands
    of valid-CRC headers with impossible lengths) costs one scan, not one per header.
    """

    def __init__(self):
        self.seen: list[int] = []  # stream offsets of the headers found in [.., upto), ascending
        self.ends: list[int] = []  # and where their records would end
        self.k = 0  # seen[:k] lie behind the reader (calls come with ascending offsets)
        self.upto = 0
        self.fitted = False  # whether headers whose record runs past the end have been dropped

    def next(self, buf: bytes, base: int, pos: int, eof: bool, more: Iterator[bytes] | None):
        """(buf, base, offset in buf of the next header at or after ``pos`` or -1 at the end, eof)."""
        while True:
            if eof and not self.fitted:
                fits = [i for i in range(self.k, len(self.seen)) if self.ends[i] <= base + len(buf)]
                self.seen, self.ends = [self.seen[i] for i in fits], [self.ends[i] for i in fits]
                self.k, self.fitted = 0, True
            if base + pos < self.upto:
                seen, k = self.seen, self.k
                while k < len(seen) and seen[k] < base + pos:
                    k += 1
                self.k = k
                if k < len(seen):
                    return buf, base, seen[k] - base, eof
                pos = self.upto - base
            stop = len(buf) - _HEADER + 1
            if pos < stop:
                found, lengths, upto = _find_headers(buf, pos, stop)
                self.seen, self.ends = (found + base).tolist(), (found + base + lengths + _HEADER + 4).tolist()
                self.k, self.upto, self.fitted = 0, base + upto, False
                continue
            if eof:
                return buf, base, -1, eof
            buf, base, _, _, eof = _refill(buf, base, pos, more, len(buf) - pos + 1)
            pos = 0


class _Inflater:
    """Decompresses a gzip (possibly several members) or zlib file chunk by chunk, noting where it fails."""

    def __init__(self, data: bytes, kind: str):
        self.data, self.kind = data, kind
        self.damage: tuple[str, str] | None = None  # (reason, error) when the stream ended in a fault
        self.consumed = 0  # compressed bytes decompressed without fault
        self.produced = 0  # decompressed bytes handed out
        self.lost = 0  # compressed bytes after the fault, never decompressed

    def lost_bytes(self) -> int:
        """Estimated decompressed size of the compressed bytes that could not be read."""
        ratio = self.produced / self.consumed if self.consumed and self.produced else 1.0
        return int(self.lost * ratio)

    def chunks(self) -> Iterator[bytes]:
        data, kind, n = self.data, self.kind, len(self.data)
        view = memoryview(data)
        wbits = 31 if kind == 'gzip' else 15
        pos = 0
        while True:  # one gzip member (or the zlib stream) per turn
            d = zlib.decompressobj(wbits)
            fed = pos  # compressed bytes fed to ``d`` end here
            while not d.eof:
                if fed >= n:
                    self.damage = (f'truncated-{kind}', f'{kind} stream truncated: its {n} compressed bytes end '
                                                        f'without the end-of-stream marker')
                    return
                piece, start = view[fed:fed + _IN_CHUNK], fed
                saved, sent = d.copy(), 0
                try:
                    for out in _inflate(d, piece):
                        sent += len(out)
                        self.produced += len(out)
                        yield out
                    fed += len(piece)
                except zlib.error:
                    # A fault loses the output of the call that met it: replay the piece from the state
                    # before it, byte by byte near the fault, to hand out all that precedes it.
                    replay = _Replay(saved)
                    try:
                        for out in replay.feed(view, start, start + len(piece)):
                            out, sent = out[sent:], max(0, sent - len(out))
                            if out:
                                self.produced += len(out)
                                yield out
                    except zlib.error as e:
                        self.consumed, self.lost = replay.fed, n - replay.fed
                        self.damage = (f'corrupt-{kind}', f'corrupt {kind} stream at compressed byte '
                                                          f'{replay.fed} of {n}: {e}')
                        return
                    d, fed = replay.d, replay.fed
                self.consumed = fed
            pos = fed - len(d.unused_data)
            self.consumed = pos
            # after a member: nothing, zero padding, another gzip member, or junk
            nonzero = _NONZERO.search(data, pos)
            if nonzero is None:
                return
            pos = nonzero.start()
            if kind == 'gzip' and data[pos:pos + 2] == _GZIP_MAGIC:
                continue
            self.lost = n - pos
            self.damage = (f'corrupt-{kind}', f'{n - pos} bytes at compressed offset {pos} follow the end of the '
                                              f'{kind} stream and are not a {kind} member')
            return


def _inflate(d, data) -> Iterator[bytes]:
    """Feeds ``data`` to decompressor ``d``, handing out at most _OUT_CHUNK bytes at a time."""
    out = d.decompress(data, _OUT_CHUNK)
    while True:
        if out:
            yield out
        if d.eof or (not d.unconsumed_tail and len(out) < _OUT_CHUNK):
            return
        out = d.decompress(d.unconsumed_tail, _OUT_CHUNK)


class _Replay:
    """Re-feeds compressed bytes to a decompressor in small steps, and a failing step byte by byte, so that
    a fault costs no output before it. ``fed`` ends as the offset of the byte that failed, or of the end of
    what was fed (zlib keeps any surplus past the end of the member in ``unused_data``)."""

    def __init__(self, d):
        self.d, self.fed = d, 0

    def feed(self, view: memoryview, start: int, stop: int) -> Iterator[bytes]:
        self.fed = start
        while self.fed < stop and not self.d.eof:
            step = view[self.fed:min(self.fed + _REPLAY_STEP, stop)]
            saved = self.d.copy()
            try:
                outs = list(_inflate(self.d, step))
            except zlib.error:
                self.d = saved
                for self.fed in range(self.fed, self.fed + len(step)):
                    yield from _inflate(self.d, view[self.fed:self.fed + 1])
                    if self.d.eof:
                        self.fed += 1
                        return
                raise AssertionError('zlib failed on bytes it took one at a time')  # pragma: no cover
            yield from outs
            self.fed += len(step)


class _Stretch:
    """A damaged unit whose record count waits for the file's mean record size.

    ``describe(stretch, records, mean)`` makes its error message once the count is known.
    """
    __slots__ = ('offset', 'index', 'reason', 'nbytes', 'lost', 'detail', 'describe', 'compressed', 'least',
                 'at_end')

    def __init__(self, offset: int, index: int | None, reason: str, nbytes: int, detail: str,
                 describe: Callable[[_Stretch, int, float], str], compressed: bool, lost: int = 0, least: int = 1):
        self.offset, self.index, self.reason, self.nbytes, self.detail = offset, index, reason, nbytes, detail
        self.describe, self.compressed, self.lost, self.least = describe, compressed, lost, least
        self.at_end = False  # True where it runs to the end of the stream rather than to a valid header

    def resolve(self, mean: float) -> Framed:
        records = max(self.least, round((self.nbytes + self.lost) / mean))
        return Framed(self.offset, self.index, None, self.reason, self.describe(self, records, mean), records,
                      True, self.nbytes, self.compressed)


def _refill(buf: bytes, base: int, keep: int, more: Iterator[bytes], need: int):
    """Drops buf[:keep] and appends chunks until ``need`` bytes are held or the stream ends.

    Returns (buf, base, pos=0, len(buf), eof), base being the stream offset of buf[0].
    """
    parts = [buf[keep:]] if keep < len(buf) else []
    have, eof = len(buf) - keep, False
    while have < need:
        chunk = next(more, None)
        if chunk is None:
            eof = True
            break
        parts.append(chunk)
        have += len(chunk)
    buf = parts[0] if len(parts) == 1 else b''.join(parts)
    return buf, base + keep, 0, len(buf), eof


def _frame(buf: bytes, more: Iterator[bytes] | None, inflater: _Inflater | None) -> Iterator[Framed]:
    """Frames a stream held as ``buf`` and read on from ``more`` (None: ``buf`` is all of it)."""
    compressed = inflater is not None
    where = 'decompressed stream' if compressed else 'file'
    eof = more is None
    base = pos = 0
    if not eof:
        buf, base, pos, n, eof = _refill(buf, 0, 0, more, 16)
    n = len(buf)
    head = bytes(buf[:16])
    if n == 0 and eof and not (inflater and inflater.damage):
        what = f'{inflater.kind} stream that decompresses to 0 bytes' if compressed else '0 bytes'
        yield Framed(0, None, None, 'empty-file', f'empty file: {what}', 0, False, 0, compressed)
        return
    index = 0  # records framed so far (good or with a bad data CRC); exact while ``exact``
    exact = True
    pending: list | None = None  # once an estimated unit is found, everything after waits here for the mean
    unframed = 0  # stream bytes not in framed records, for the mean record size
    headers = _Headers()
    tail_from: int | None = None  # where the unit reporting a compression fault starts, when not at ``pos``
    unpack_header, unpack_footer = _HEADER_STRUCT.unpack_from, _FOOTER_STRUCT.unpack_from
    crc, new, delta, known_length_crc = _crc32c, tuple.__new__, _MASK_DELTA, _LENGTH_CRCS.get
    while True:
        if n - pos < _HEADER:
            if eof:
                break
            buf, base, pos, n, eof = _refill(buf, base, pos, more, _HEADER)
            continue
        length, length_crc = unpack_header(buf, pos)
        if known_length_crc(length) == length_crc or _length_crc_ok(length, length_crc):
            end = pos + length + 16
            if end <= n:
                payload = buf[pos + 12:end - 4]
                c = crc(payload)
                if (((c >> 15) | (c << 17)) + delta) & 0xFFFFFFFF == unpack_footer(buf, end - 4)[0]:
                    f = new(Framed, (base + pos, index if exact else None, payload, None, None, 1, False,
                                     end - pos, compressed))
                # A bad data CRC costs one record if a valid header (or the end) follows; if not, the length
                # itself is suspect and the record is resynchronised past like a damaged header.
                elif n - end < _HEADER and not eof:
                    buf, base, pos, n, eof = _refill(buf, base, pos, more, end - pos + _HEADER)
                    continue
                elif n - end < _HEADER or _header_valid(buf, end):
                    f = Framed(base + pos, index if exact else None, None, 'data-crc-mismatch',
                               'record data CRC mismatch', 1, False, end - pos, compressed)
                else:
                    f = None
                if f is not None:
                    if pending is None:
                        yield f
                    else:
                        pending.append(f)
                    index += 1
                    pos = end
                    continue
                reason = 'data-crc-mismatch'
                detail = f'record data CRC mismatch, and no valid record header follows its {length} bytes'
            elif length <= MAX_RECORD_BYTES and not eof:
                buf, base, pos, n, eof = _refill(buf, base, pos, more, end - pos)
                continue
            elif length <= MAX_RECORD_BYTES and inflater and inflater.damage:
                break  # cut short by the compression fault: the unit that reports it covers this record
            else:
                reason = 'implausible-length'
                detail = (f'record header (its CRC valid) claims {length} bytes, '
                          + (f'over the cap of {MAX_RECORD_BYTES}' if length > MAX_RECORD_BYTES else
                             f'past the end of the {where} ({n - pos - _HEADER} bytes follow the header)'))
        else:
            reason, detail = 'length-crc-mismatch', 'record header CRC mismatch'
        # A damaged stretch from ``pos``: resynchronise to the next valid header.
        start, start_index = base + pos, (index if exact else None)
        buf, base, hit, eof = headers.next(buf, base, pos + 1, eof, more)
        n = len(buf)
        if hit < 0 and inflater and inflater.damage:
            pos, tail_from = n, start
            break
        if hit < 0 and reason == 'implausible-length' and length <= MAX_RECORD_BYTES:
            f = Framed(start, start_index, None, 'truncated-record',
                       f'record of {length} bytes runs past the end of the {where} ({base + n - start} bytes '
                       f'from its header)', 1, False, base + n - start, compressed)
            unframed += base + n - start
            if pending is None:
                yield f
            else:
                pending.append(f)
            pos = n
            break
        stop = base + hit if hit >= 0 else base + n
        unframed += stop - start
        if pending is None:
            pending = []
        last = pending[-1] if pending else None
        if isinstance(last, _Stretch) and last.offset + last.nbytes == start:
            # resynchronised onto a header that proved damaged too: still the same stretch of damage
            last.nbytes += stop - start
            last.at_end = hit < 0
        elif hit < 0 and start == 0 and reason == 'length-crc-mismatch':  # no valid header anywhere
            pending.append(_Stretch(0, None, 'not-a-tfrecord', stop, '',
                                    functools.partial(_describe_junk, head, inflater), compressed))
        else:
            pending.append(_Stretch(start, start_index, reason, stop - start, detail, _describe_stretch, compressed))
            pending[-1].at_end = hit < 0
        exact = False
        if hit < 0:
            pos = n
            break
        pos = hit
    # the end of the stream: a compression fault, a few bytes too short for a header, or nothing
    if tail_from is None:
        tail_from = base + pos
    if inflater and inflater.damage:
        nbytes = base + n - tail_from
        unframed += nbytes
        if pending is None:
            pending = []
        # A fault in a member's trailer (its CRC32 or size check), with every record before it complete,
        # hides no record: the one case of a damaged unit that may count 0.
        in_trailer = inflater.damage[0].startswith('corrupt-') and nbytes == 0 and inflater.lost <= 8
        pending.append(_Stretch(tail_from, index if exact else None, inflater.damage[0], nbytes, inflater.damage[1],
                                functools.partial(_describe_fault, inflater), compressed, inflater.lost_bytes(),
                                0 if in_trailer else 1))
    elif n - pos > 0:
        nbytes = n - pos
        unframed += nbytes
        if tail_from == 0:
            if pending is None:
                pending = []
            pending.append(_Stretch(0, None, 'not-a-tfrecord', nbytes, '',
                                    functools.partial(_describe_junk, head, inflater), compressed))
        else:
            f = Framed(tail_from, index if exact else None, None, 'truncated-header',
                       f'{nbytes} trailing bytes, too few for a record header', 1, True, nbytes, compressed)
            if pending is None:
                yield f
            else:
                pending.append(f)
    if pending:
        total = base + n
        mean = (total - unframed) / index if index else DEFAULT_RECORD_BYTES
        for item in pending:
            yield item.resolve(mean) if isinstance(item, _Stretch) else item


def _describe_stretch(stretch: _Stretch, records: int, mean: float) -> str:
    to = 'the end of the stream' if stretch.at_end else \
        f'the next valid record header, at offset {stretch.offset + stretch.nbytes}'
    return f'{stretch.detail}; skipped {stretch.nbytes} bytes to {to}: ~{records} records at a mean of {mean:.0f} bytes'


def _describe_junk(head: bytes, inflater: _Inflater | None, stretch: _Stretch, records: int, mean: float) -> str:
    where = f'{stretch.nbytes} bytes decompressed from {inflater.kind}' if inflater else f'{stretch.nbytes} bytes'
    return (f'not a TFRecord file: no valid record header found in {where}; it starts with {head!r} '
            f'(~{records} records if it were one)')


def _describe_fault(inflater: _Inflater, stretch: _Stretch, records: int, mean: float) -> str:
    return (f'{stretch.detail}; the records before offset {stretch.offset} of the decompressed stream were read; '
            f'the {stretch.nbytes} decompressed bytes from there and {inflater.lost} unread compressed bytes '
            f'hold ~{records} records')
