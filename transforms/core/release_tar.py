"""The release tarball (``features.tar.gz``) read as a stream: gzip inflated piece by piece, tar headers
walked one 512-byte block at a time, nothing written to disk.

Role: a readable byte stream of the tarball -> its members (name, bytes) in archive order, and every damaged
stretch as one unit (transforms/read.py turns members into shard groups and damage into dead letters).

The contract of ``iter_members``, for any input:

- Every regular member is yielded once, with the bytes the stream holds for it (fewer than its header
  declares when the stream ends inside it: ``truncated`` True). A member that ``keep(name, size)`` declines
  is streamed past without being held (``data`` None), so memory is bounded by the members kept, whatever
  the archive holds. Directories are yielded as such; links, devices and FIFOs as ``kind='other'`` (their
  names may still look like shards).
- A block that is not a valid tar header (checksum, fields) starts a damaged unit (``reason``
  'corrupt-tar-header') that runs to the next valid header; the walk goes on from there.
- A fault of the stream itself ends the walk with one last unit: 'truncated-gzip' (the compressed bytes end
  before the gzip end-of-stream marker: a cut download), 'corrupt-gzip' (inflation fails, or bytes after
  the last gzip member are not another member), 'truncated-tar' (a plain tar cut inside a header), or
  'unreadable' (the source raised: a network failure after retries, a permission error).
- A stream that ends cleanly but without the tar end-of-archive (zero) blocks after its last member was
  cut at a member boundary: one last unit 'truncated-tar'. An empty stream is one unit 'empty-tarball'.
- ``offset`` is the unit's byte offset in the decompressed tar stream.

A gzip-compressed tarball (one or several gzip members) and a plain tar are told apart by content.
"""
from __future__ import annotations

import re
import tarfile
import zlib
from typing import Callable, Iterator, NamedTuple

BLOCK = 512
_GZIP_MAGIC = b'\x1f\x8b'
_IN_CHUNK = 1 << 20
_OUT_CHUNK = 4 << 20
_ZERO_BLOCK = bytes(BLOCK)
_META_MAX = 1 << 20  # a long name or pax header larger than this is damage, not held

# Members of the release: audioset_v1_embeddings/<split folder>/<name>.tfrecord (a leading './' is allowed).
RELEASE_ROOT = 'audioset_v1_embeddings'
SHARD_MEMBER = re.compile(r'^(?:\./)?audioset_v1_embeddings/(bal_train|eval|unbal_train)/([^/]+\.tfrecord)$')
_SPLIT_FOLDER = re.compile(r'^(?:\./)?audioset_v1_embeddings/(bal_train|eval|unbal_train)/')
TAR_SUFFIXES = ('.tar.gz', '.tgz', '.tar')

# Tar types whose data follows the header (tarfile's rule: regular files, and types it does not know).
_DATA_TYPES = set(tarfile.REGULAR_TYPES)


class Unit(NamedTuple):
    """One member of the archive, or one damaged stretch (``kind`` 'damage': ``reason``/``error`` set)."""
    kind: str                  # 'file', 'dir', 'other' or 'damage'
    name: str | None
    data: bytes | None         # a file's bytes (``truncated``: fewer than ``size``)
    offset: int                # of the header (or the damage) in the decompressed tar stream
    size: int = 0              # declared size of a member; bytes spanned by damage
    truncated: bool = False
    reason: str | None = None
    error: str | None = None


def is_tar_name(path: str) -> bool:
    return path.rstrip('/').lower().endswith(TAR_SUFFIXES)


def shard_member(name: str) -> tuple[str, str] | None:
    """(split folder, shard file name) of a release shard member, else None.

    >>> shard_member('audioset_v1_embeddings/eval/ab.tfrecord')
    ('eval', 'ab.tfrecord')
    >>> shard_member('audioset_v1_embeddings/README') is None
    True
    """
    m = SHARD_MEMBER.match(name)
    return (m.group(1), m.group(2)) if m else None


def split_folder_of(name: str) -> str | None:
    """The split folder a member name lies under (whatever its file name), else None."""
    m = _SPLIT_FOLDER.match(name or '')
    return m.group(1) if m else None


class Stream:
    """The decompressed bytes of a tarball from ``read(n)`` (gzip, several gzip members, or plain tar),
    chunk by chunk; ``fault`` says how it ended when it did not end cleanly."""

    def __init__(self, read: Callable[[int], bytes], chunk: int = _IN_CHUNK):
        self.read, self.chunk = read, chunk
        self.fault: tuple[str, str] | None = None
        self.consumed = 0    # compressed bytes read from the source
        self.produced = 0    # decompressed bytes handed out
        self.compressed = False

    def _next_input(self) -> bytes | None:
        try:
            data = self.read(self.chunk)
        except Exception as e:  # noqa: BLE001 -- any failure of the source ends the stream as its fault
            self.fault = ('unreadable', f'reading the tarball failed after {self.consumed} bytes: '
                                        f'{type(e).__name__}: {e}')
            return None
        self.consumed += len(data)
        return data

    def chunks(self) -> Iterator[bytes]:
        first = self._next_input()
        if not first:
            return
        if not first.startswith(_GZIP_MAGIC):
            self.produced += len(first)
            yield first
            while data := self._next_input():
                self.produced += len(data)
                yield data
            return
        self.compressed = True
        pending = first
        while True:  # one gzip member per turn
            d = zlib.decompressobj(31)
            ended = False   # the source has nothing more: only what zlib still holds may come out
            while not d.eof:
                if not pending and not ended:
                    pending = self._next_input()
                    if pending is None:
                        return
                    ended = not pending
                try:
                    # At most one output chunk per call: a megabyte of zeros inflates to a gigabyte.
                    out = d.decompress(pending, _OUT_CHUNK)
                except zlib.error as e:
                    self.fault = ('corrupt-gzip', f'gzip data corrupt within compressed bytes '
                                                  f'{self.consumed - len(pending)}..{self.consumed}: {e}')
                    return
                pending = d.unconsumed_tail
                if out:
                    self.produced += len(out)
                    yield out
                elif ended and not pending and not d.eof:
                    self.fault = ('truncated-gzip', f'the gzip stream ends after {self.consumed} compressed bytes '
                                                    'without its end-of-stream marker (a cut download?)')
                    return
            pending = d.unused_data
            while not pending:
                pending = self._next_input()
                if pending is None:
                    return
                if not pending:
                    return  # clean end after a complete gzip member
            if not pending.startswith(_GZIP_MAGIC[:len(pending)]) and pending.strip(b'\x00'):
                self.fault = ('corrupt-gzip', f'{len(pending)}+ bytes after the gzip stream at compressed byte '
                                              f'{self.consumed - len(pending)} are not another gzip member')
                return
            if not pending.strip(b'\x00'):
                pending = b''  # zero padding after the last member (some writers add it): drain it
                while (more := self._next_input()):
                    if more.strip(b'\x00'):
                        self.fault = ('corrupt-gzip', 'data after the gzip stream\'s zero padding')
                        return
                return


class _Buffer:
    """Bytes taken in order from a chunk iterator."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks, self.buf, self.pos = chunks, bytearray(), 0

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes (fewer at the end of the stream)."""
        while len(self.buf) - self.pos < n:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            if self.pos:
                del self.buf[:self.pos]
                self.pos = 0
            self.buf += chunk
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += len(out)
        return out

    def skip(self, n: int) -> int:
        """Consumes the next ``n`` bytes without holding them; returns how many there were."""
        skipped = 0
        while skipped < n:
            have = len(self.buf) - self.pos
            if not have:
                del self.buf[:]
                self.pos = 0
                chunk = next(self.chunks, None)
                if chunk is None:
                    break
                self.buf += chunk
                continue
            step = min(have, n - skipped)
            self.pos += step
            skipped += step
        return skipped


def _header(block: bytes) -> tarfile.TarInfo | None:
    try:
        return tarfile.TarInfo.frombuf(block, 'utf-8', 'surrogateescape')
    except tarfile.HeaderError:
        return None


def _pax_path(data: bytes) -> str | None:
    """The ``path`` record of a pax extended header (records are "<len> <key>=<value>\\n")."""
    pos = 0
    while pos < len(data):
        m = re.match(rb'(\d+) ', data[pos:pos + 24])
        if not m or int(m.group(1)) <= 0:
            return None
        record = data[pos + len(m.group(0)):pos + int(m.group(1)) - 1]
        key, _, value = record.partition(b'=')
        if key == b'path':
            return value.decode('utf-8', 'surrogateescape')
        pos += int(m.group(1))
    return None


def _padded(size: int) -> int:
    return -size % BLOCK


def iter_members(stream: Stream, keep: Callable[[str, int], bool] | None = None) -> Iterator[Unit]:
    """The members and damaged stretches of the tar stream in ``stream`` (see the module docstring).
    ``keep(name, declared size)``: whether to hold a regular member's bytes (default: every member)."""
    buf = _Buffer(stream.chunks())
    offset = 0
    long_name: str | None = None
    ended = False     # an end-of-archive block came after the last member
    cut = False       # a damage unit already says the stream ends early
    block = buf.take(BLOCK)
    while block:
        if len(block) < BLOCK:
            if block.strip(b'\x00') and stream.fault is None:
                yield Unit('damage', None, None, offset, len(block), reason='truncated-tar',
                           error=f'the tar stream ends inside a header ({len(block)} of {BLOCK} bytes)')
                cut = True
            elif not block.strip(b'\x00'):
                ended = ended or offset > 0
            break
        if block == _ZERO_BLOCK:  # end-of-archive blocks (or padding); a concatenated archive may follow
            ended = True
            offset += BLOCK
            block = buf.take(BLOCK)
            continue
        info = _header(block)
        if info is None:
            start = offset
            while True:  # resynchronise on the next valid header
                offset += len(block)
                block = buf.take(BLOCK)
                if len(block) < BLOCK or block == _ZERO_BLOCK or _header(block) is not None:
                    break
            yield Unit('damage', None, None, start, offset - start, reason='corrupt-tar-header',
                       error=f'{offset - start} bytes at tar offset {start} are not a valid tar header '
                             '(checksum or fields); resynchronised on the next header')
            long_name = None
            continue
        ended = False
        header_at = offset
        offset += BLOCK
        meta = info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE, tarfile.GNUTYPE_LONGLINK, tarfile.XGLTYPE)
        has_data = info.type in _DATA_TYPES or info.type not in tarfile.SUPPORTED_TYPES or meta
        size = info.size if has_data else 0
        name = long_name or info.name
        if size and (meta and size > _META_MAX or not meta and keep is not None and not keep(name, size)):
            got = buf.skip(size)   # streamed past, never held: a declared size cannot make memory grow
            data = None
        else:
            data = buf.take(size) if size else b''
            got = len(data)
        pad = buf.skip(_padded(size)) if got == size else 0
        offset += got + pad
        if meta and data is None:
            yield Unit('damage', None, None, header_at, size, reason='corrupt-tar-header',
                       error=f'an extended header declaring {size:,} bytes (at most {_META_MAX:,} are plausible); '
                             'skipped, and the name it would give the next member ignored')
            long_name = None
        elif meta:
            if info.type == tarfile.GNUTYPE_LONGNAME:
                long_name = data.split(b'\x00', 1)[0].decode('utf-8', 'surrogateescape')
            elif info.type == tarfile.XHDTYPE:
                long_name = _pax_path(data) or long_name
        if not meta:
            long_name = None
            if info.isdir():
                yield Unit('dir', name, None, header_at)
            elif info.type in _DATA_TYPES:
                yield Unit('file', name, data, header_at, info.size, truncated=got < info.size)
            else:
                yield Unit('other', name, None, header_at, info.size,
                           error=f'a tar member of type {info.type!r} (link, device or FIFO), not a regular file')
        if got < size:
            if stream.fault is None:
                inside = 'an extended header' if meta else f'member {name}'
                yield Unit('damage', None, None, offset, size - got, reason='truncated-tar',
                           error=f'the tar stream ends inside {inside} ({got:,} of its {size:,} bytes)')
            cut = True
            break
        block = buf.take(BLOCK)
    if stream.fault is not None:
        reason, error = stream.fault
        yield Unit('damage', None, None, offset, 0, reason=reason, error=error)
    elif not cut and not offset:
        yield Unit('damage', None, None, 0, 0, reason='empty-tarball', error='the tarball is empty (0 bytes)')
    elif not cut and not ended:
        yield Unit('damage', None, None, offset, 0, reason='truncated-tar',
                   error=f'the tar stream ends after {offset:,} bytes without its end-of-archive blocks '
                         '(an archive cut at a member boundary: a partial copy or an interrupted write?)')
