"""Byte-level file access through Beam's FileSystems, so local paths and gs:// behave the same."""
from __future__ import annotations

import contextlib
import io
import json
import mmap
import os
import secrets
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

_RAW = CompressionTypes.UNCOMPRESSED


def is_local(path: str) -> bool:
    return '://' not in path


def read_bytes(path: str) -> bytes:
    if path.startswith(('http://', 'https://')):
        with HttpReader(path) as f:
            return b''.join(iter(lambda: f.read(1 << 20), b''))
    with FileSystems.open(path, compression_type=_RAW) as f:
        return f.read()


def write_bytes(path: str, data: bytes) -> None:
    """Writes ``path`` whole. Locally a symbolic link there is replaced by the file, never written through."""
    if is_local(path) and os.path.islink(path):
        os.unlink(path)
    with FileSystems.create(path, compression_type=_RAW) as f:
        f.write(data)


def write_json_atomic(path: str, obj) -> None:
    """Writes JSON to a temporary name, then renames it over ``path``: readers see old or new, never half."""
    tmp = path + '.tmp'
    write_bytes(tmp, (json.dumps(obj, indent=2, sort_keys=True, default=str) + '\n').encode())
    if FileSystems.exists(path):
        if is_local(path):
            os.replace(tmp, path)
            return
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def exists(path: str) -> bool:
    """Whether a local path, gs:// object or http(s):// URL exists (a URL: a HEAD request answers)."""
    if path.startswith(('http://', 'https://')):
        try:
            http_size(path)
        except FileNotFoundError:
            return False
        return True
    return FileSystems.exists(path)


def list_files(directory: str) -> list[tuple[str, int]]:
    """(path, size) of every file below ``directory``, sorted; empty if it does not exist.

    Locally a symbolic link is never followed, so nothing outside ``directory`` is listed (and so never
    deleted as a stale file): a link to a file is listed as itself (deleting it removes the link), a link to
    a folder is not entered, and a ``directory`` that is itself a link lists nothing. Beam's match would
    follow ``directory`` itself."""
    if is_local(directory):
        if os.path.islink(directory) or not os.path.isdir(directory):
            return []
        found = []
        for folder, _, names in os.walk(directory.rstrip('/') or '/'):   # followlinks=False
            for name in names:
                path = os.path.join(folder, name)
                try:
                    found.append((path, os.path.getsize(path)))
                except OSError:   # a dangling link
                    found.append((path, os.lstat(path).st_size))
        return sorted(found)
    pattern = directory.rstrip('/') + '/**'
    result = FileSystems.match([pattern])[0]
    return sorted((m.path, m.size_in_bytes) for m in result.metadata_list)


def delete(paths: list[str]) -> None:
    """Deletes files; a local symbolic link is removed itself, never its target."""
    links = {p for p in paths if is_local(p) and os.path.islink(p)}
    for link in sorted(links):
        os.unlink(link)
    rest = [p for p in paths if p not in links]
    if rest:
        FileSystems.delete(rest)


def delete_tree(directory: str) -> None:
    """Deletes ``directory`` and everything below it; locally a symbolic link (``directory`` itself, or any
    below it) is removed, never followed."""
    if is_local(directory):
        if os.path.islink(directory):
            os.unlink(directory)
        else:
            shutil.rmtree(directory, ignore_errors=True)   # removes links below, never enters them
    else:
        delete([p for p, _ in list_files(directory)])


def write_parquet(path: str, table: pa.Table, **kwargs) -> int:
    """Writes a whole table as one zstd Parquet file; returns its row count."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression='zstd', **kwargs)
    write_bytes(path, buf.getvalue())
    return table.num_rows


def parquet_rows(path: str) -> int:
    """Row count from the Parquet footer (reads the footer only)."""
    if is_local(path):
        return pq.ParquetFile(path).metadata.num_rows
    with FileSystems.open(path, compression_type=_RAW) as f:
        return pq.ParquetFile(f).metadata.num_rows


def open_random_access(path: str):
    """A seekable Arrow input for ``path``. Local files are read, not memory-mapped: mapped pages of the
    spill files would count against the workers' resident memory."""
    if is_local(path):
        return pa.OSFile(path, 'r')
    return pa.PythonFile(FileSystems.open(path, compression_type=_RAW), mode='r')


def create_output(path: str):
    """A writable Arrow output stream for ``path``: a native file locally (Arrow writes it without going
    through Python, parent folders made), else Beam's FileSystems stream (gs://)."""
    if is_local(path):
        os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
        return pa.OSFile(path, 'wb')
    return pa.PythonFile(FileSystems.create(path, compression_type=_RAW), mode='w')


def map_local(path: str) -> pa.Buffer:
    """A local file memory-mapped read-only, as an Arrow buffer (zero-copy). A reader touches, and holds
    resident, only the pages it reads, and only while the buffer (or a slice of it) lives. Python's mmap, not
    ``pa.memory_map``: Arrow's madvise(WILLNEED) on each read made a map-take-unmap cost 4-8x more."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return pa.py_buffer(mmap.mmap(fd, 0, prot=mmap.PROT_READ))
    finally:
        os.close(fd)


# Conditional writes, for what several runs may race on (a run's liveness marker, the latest.json pointer).
# Beam's FileSystems has no preconditions: gs:// goes through google.cloud.storage's generation numbers,
# local paths through hard links (exclusive create) and fsync'd renames.

_gcs_clients = {}  # STORAGE_EMULATOR_HOST (None: GCS itself) -> client


os.register_at_fork(after_in_child=_gcs_clients.clear)  # a client's connections must not cross a fork


def _gcs_client():
    """One google.cloud.storage client per process and endpoint, made on first use. It honours
    STORAGE_EMULATOR_HOST and Application Default Credentials as usual; with no credentials configured it
    is anonymous (public objects such as the AudioSet release read fine), found in one attempt rather than
    after Beam's minutes of credential retries."""
    endpoint = os.environ.get('STORAGE_EMULATOR_HOST')
    if endpoint not in _gcs_clients:
        from google.cloud import storage
        if endpoint:
            _gcs_clients[endpoint] = storage.Client()
        else:
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError
            try:
                credentials, project = google.auth.default()
                _gcs_clients[endpoint] = storage.Client(credentials=credentials, project=project)
            except DefaultCredentialsError:
                _gcs_clients[endpoint] = storage.Client.create_anonymous_client()
    return _gcs_clients[endpoint]


def _split_gcs(path: str) -> tuple[str, str]:
    if not path.startswith('gs://') or '/' not in path[5:]:
        raise ValueError(f'{path}: expected gs://bucket/name')
    bucket, name = path[5:].split('/', 1)
    return bucket, name


def _gcs_blob(path: str):
    """The google.cloud.storage Blob for a gs:// path (see ``_gcs_client``)."""
    bucket, name = _split_gcs(path)
    return _gcs_client().bucket(bucket).blob(name)


# -- streams: one reader for a local file, a gs:// object or an https:// URL --------------------------------

_HTTP_TIMEOUT_S = 60


class HttpReader(io.RawIOBase):
    """A streaming GET of ``url`` from byte ``start``: ``read(n)`` as from a file.

    A connection that drops, stalls for ``timeout`` seconds (one receive never waits longer) or ends short
    of the length the server announced is resumed where it stopped with a Range request carrying
    ``If-Range: <validator>``, up to ``retries`` times in a row (backing off 1, 2, 4 ... s times
    ``backoff``); then ``read`` raises OSError. A server that answers a resume with the whole resource
    (HTTP 200: its ETag or Last-Modified changed) or with another length raises ``HttpReader.Changed``:
    bytes of two versions are never joined. ``deadline_s`` bounds the whole transfer, resumes and waits
    included (a server trickling a byte at a time never trips ``timeout``): past it ``read`` raises
    ``HttpReader.DeadlineExceeded`` (a TimeoutError) naming the URL, the bytes received and the deadline
    (checked between receives, so it fires at most ``timeout`` late).

    ``start`` > 0 continues a partial copy: with ``validator`` (the ETag or Last-Modified recorded when
    that copy began) the first request carries ``If-Range``, and a server whose resource changed sends it
    whole; any 200 answer to that first ranged request, or a range past its end, starts over at byte 0
    with ``restarted`` True and ``pos`` 0 (the caller discards its copy). ``etag``, ``last_modified``:
    the first response's headers; ``validator``: its strong ETag, else its Last-Modified, else the one
    given. ``size``: the whole resource's length when the server says it (None: read to the end of the
    connection, which a cut connection also is). The body is what Content-Length announces: bytes a server
    sends beyond it are not part of the response (HTTP framing) and are never read.

    Opening raises FileNotFoundError for a 404/410 and OSError for anything else.
    """

    class Changed(OSError):
        """The resource changed on the server between two requests of one transfer."""

    class DeadlineExceeded(TimeoutError):
        """The transfer took longer than ``deadline_s``."""

    def __init__(self, url: str, start: int = 0, timeout: float = _HTTP_TIMEOUT_S, retries: int = 5,
                 backoff: float = 1.0, *, deadline_s: float | None = None, validator: str | None = None):
        super().__init__()
        import time
        self.url, self.pos, self.timeout, self.retries, self.backoff = url, start, timeout, retries, backoff
        self.deadline_s = deadline_s
        self._deadline = time.monotonic() + deadline_s if deadline_s else None
        self.size: int | None = None
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.validator = validator
        self.restarted = False
        self.resumes = 0
        self._resp = None
        self._done = False      # a range request found nothing left to read (HTTP 416 at the end)
        self._failed: OSError | None = None     # raised by the next read: the bytes before it were returned
        self._open(first=True)

    # -- requests --

    def _headers_validator(self, headers) -> str | None:
        etag = headers.get('ETag')
        if etag and not etag.startswith('W/'):   # If-Range takes only a strong validator
            return etag
        return headers.get('Last-Modified')

    def _differs(self, headers) -> bool:
        """Whether a response's validator (of the kind of ``validator``) proves another version."""
        if not self.validator or headers is None:
            return False
        theirs = headers.get('ETag') if self.validator.startswith(('"', 'W/')) else headers.get('Last-Modified')
        return theirs is not None and theirs != self.validator

    def _changed(self, what: str) -> OSError:
        return self.Changed(f'{self.url}: changed on the server during the download ({what}) at byte '
                            f'{self.pos:,} of {self.size if self.size is not None else "?"}; the bytes so far '
                            f'are of another version: start again from byte 0')

    def _open(self, first: bool) -> None:
        import re
        import urllib.error
        import urllib.request
        headers = {'User-Agent': 'audioset-beam', 'Accept-Encoding': 'identity'}
        if self.pos:
            headers['Range'] = f'bytes={self.pos}-'
            if self.validator:
                headers['If-Range'] = self.validator
        self._check_deadline()
        timeout = self.timeout if self._deadline is None else max(0.001, min(self.timeout, self._left()))
        try:
            resp = urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as e:
            total = (e.headers.get('Content-Range') or '').rpartition('/')[2] if e.headers else ''
            if e.code == 416 and self.pos:
                if total.isdigit() and self.pos == int(total) and not self._differs(e.headers):
                    self.size, self._resp, self._done = int(total), None, True   # nothing left to read
                    if first and e.headers is not None:
                        self._note(e.headers)
                    return
                if first:   # our copy is longer than the resource, or of another version: start over
                    return self._restart()
                raise self._changed(f'HTTP 416, length {total or "?"}') from None
            if e.code in (404, 410):
                raise FileNotFoundError(2, f'HTTP {e.code} {e.reason}', self.url) from None
            raise OSError(f'{self.url}: HTTP {e.code} {e.reason}') from None
        if self.pos and resp.status == 200 and first:
            # If-Range did not match (or the server ignores Range): this is the whole resource, from byte 0
            self.pos, self.restarted, self.validator = 0, True, None
        if self.pos:
            if resp.status != 206:
                resp.close()
                raise self._changed(f'HTTP {resp.status} to a resume with If-Range: {self.validator}'
                                    if self.validator else f'HTTP {resp.status} to a Range request, and no '
                                    'ETag or Last-Modified to tell whether it is the same version')
            got = re.fullmatch(r'bytes (\d+)-(\d+)/(\d+|\*)', resp.headers.get('Content-Range', '').strip())
            if got is None or int(got.group(1)) != self.pos:
                resp.close()
                raise OSError(f'{self.url}: asked for bytes {self.pos:,}- and got '
                              f'{resp.headers.get("Content-Range") or "no Content-Range"}')
            total = int(got.group(3)) if got.group(3).isdigit() else None
            if self._differs(resp.headers) or (self.size is not None and total not in (None, self.size)):
                resp.close()
                if first:
                    return self._restart()
                raise self._changed(f'now {self._headers_validator(resp.headers)}, {total} bytes')
            self.size = total if total is not None else self.size
        elif resp.headers.get('Content-Length', '').isdigit() and resp.status == 200:
            self.size = int(resp.headers['Content-Length'])
        if first:
            self._note(resp.headers)
        self._resp = resp

    def _note(self, headers) -> None:
        self.etag, self.last_modified = headers.get('ETag'), headers.get('Last-Modified')
        self.validator = self._headers_validator(headers) or self.validator

    def _restart(self) -> None:
        self.pos, self.restarted, self.size = 0, True, None
        self.validator = None   # the one given is of the copy being discarded
        self._open(first=True)

    # -- the deadline --

    def _left(self) -> float:
        import time
        return self._deadline - time.monotonic()

    def _check_deadline(self) -> None:
        if self._deadline is not None and self._left() <= 0:
            self.close_response()
            raise self.DeadlineExceeded(
                f'{self.url}: not downloaded within its deadline of {self.deadline_s:g} s ({self.pos:,} of '
                f'{self.size if self.size is not None else "?"} bytes received)')

    def _wait(self, seconds: float) -> None:
        import time
        if self._deadline is not None:
            seconds = min(seconds, max(self._left(), 0))
        time.sleep(seconds)
        self._check_deadline()

    # -- reading --

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        """``n`` bytes, fewer only at the end (b'': the end); ``n`` < 0: everything left. Received one
        receive at a time, with the deadline checked between receives. When the transfer fails (retries
        spent, the deadline, a changed resource) what arrived before is returned and the next call raises."""
        if n is None or n < 0:
            return b''.join(iter(lambda: self.read(1 << 20), b''))
        parts, got = [], 0
        while got < n:
            try:
                data = self.read1(n - got)
            except OSError as e:
                if not parts:
                    raise
                self._failed = e
                break
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b''.join(parts)

    def read1(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes from one receive (resuming first when the connection failed); b'' at the end."""
        import http.client
        if self._failed is not None:
            raise self._failed
        if n is None or n < 0:
            n = 1 << 20
        failures, error = 0, None
        while True:
            self._check_deadline()
            if self._resp is not None:
                try:
                    data = self._resp.read1(n) if n else b''
                except (OSError, http.client.HTTPException) as e:
                    data, error = b'', e
                if data:
                    self.pos += len(data)
                    return data
                if not n or (error is None and (self.size is None or self.pos >= self.size)):
                    return b''
            elif self._done or not n:
                return b''
            failures += 1
            why = f'{type(error).__name__}: {error}' if error else 'the connection closed early'
            if failures > self.retries:
                self.close_response()
                raise OSError(f'{self.url}: stopped at byte {self.pos:,} of '
                              f'{self.size if self.size is not None else "?"} and {self.retries} resumes '
                              f'failed ({why})')
            self.close_response()
            self._wait(self.backoff * (1 << (failures - 1)))
            self.resumes += 1
            try:
                self._open(first=False)
                error = None
            except (FileNotFoundError, self.Changed, self.DeadlineExceeded):
                raise
            except (OSError, http.client.HTTPException) as e:
                error = e           # the next attempt reports it if it persists

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close_response(self) -> None:
        if self._resp is not None:
            with contextlib.suppress(Exception):
                self._resp.close()
            self._resp = None

    def close(self) -> None:
        self.close_response()
        super().close()


def http_size(url: str, timeout: float = 10) -> int | None:
    """The length of ``url`` from a HEAD request (None when the server does not say). Raises
    FileNotFoundError for a 404/410, OSError for any other failure, within ``timeout`` seconds."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method='HEAD', headers={'User-Agent': 'audioset-beam'}),
                                    timeout=timeout) as resp:
            length = resp.headers.get('Content-Length', '')
            return int(length) if length.isdigit() else None
    except urllib.error.HTTPError as e:
        if e.code in (404, 410):
            raise FileNotFoundError(2, f'HTTP {e.code} {e.reason}', url) from None
        raise OSError(f'{url}: HTTP {e.code} {e.reason}') from None
    except (urllib.error.URLError, TimeoutError) as e:
        raise OSError(f'{url}: {getattr(e, "reason", e)}') from None


def open_stream(path: str, timeout: float | None = None, deadline_s: float | None = None):
    """A readable binary stream of a local file, a gs:// object (anonymous when no credentials are
    configured) or an http(s):// URL (resumed with Range requests when a connection drops; ``timeout``:
    seconds without data before a resume, ``deadline_s``: for the whole transfer). The caller closes it."""
    if path.startswith(('http://', 'https://')):
        kwargs = {'timeout': timeout} if timeout else {}
        if deadline_s:
            kwargs['deadline_s'] = deadline_s
        return HttpReader(path, **kwargs)
    if path.startswith('gs://'):
        return _gcs_blob(path).open('rb', chunk_size=8 << 20)
    return open(path, 'rb')


def size_of(path: str, timeout: float = 10) -> int | None:
    """Byte size of a local file, gs:// object or http(s):// URL; raises FileNotFoundError when there is
    none. Remote checks make one request, with no retries, bounded by ``timeout``: no bucket listing."""
    if path.startswith(('http://', 'https://')):
        return http_size(path, timeout)
    if path.startswith('gs://'):
        from google.api_core import exceptions
        blob = _gcs_blob(path)
        try:
            blob.reload(timeout=timeout, retry=None)
        except exceptions.NotFound:
            raise FileNotFoundError(2, 'no such object', path) from None
        return blob.size
    return os.path.getsize(path)


def gcs_any_object(prefix: str, timeout: float = 10) -> bool:
    """Whether any gs:// object name starts with ``prefix`` (one listing call for one name, no retries)."""
    bucket, name = _split_gcs(prefix if prefix.count('/') > 2 else prefix.rstrip('/') + '/')
    blobs = _gcs_client().list_blobs(bucket, prefix=name, max_results=1, timeout=timeout, retry=None)
    return any(True for _ in blobs)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: str, data: bytes) -> None:
    with open(path, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _tmp_name(path: str) -> str:
    return f'{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp'


def create_exclusive(path: str, data: bytes) -> bool:
    """Creates ``path`` holding ``data`` unless it exists; of several concurrent creators exactly one gets
    True. The file appears whole (locally it is written aside and hard-linked into place; on gs:// the
    upload carries the precondition "no live generation")."""
    if not is_local(path):
        from google.api_core import exceptions
        blob = _gcs_blob(path)
        try:
            blob.upload_from_string(data, content_type='application/json', if_generation_match=0)
            return True
        except exceptions.PreconditionFailed:
            # Lost the race, or a retried upload of ours found its own first attempt: tell by content.
            try:
                return blob.download_as_bytes() == data
            except exceptions.NotFound:
                return False
    directory = os.path.dirname(os.path.abspath(path))
    for _ in range(2):  # a concurrent prune may remove a fresh, still empty folder: make it again once
        os.makedirs(directory, exist_ok=True)
        tmp = _tmp_name(path)
        try:
            _write_synced(tmp, data)
            os.link(tmp, path)
        except FileExistsError:
            return False
        except FileNotFoundError:
            continue
        except OSError:  # no hard links on this filesystem: O_EXCL (a reader may see it half-written)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, 'wb') as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_dir(directory)
        return True
    raise FileNotFoundError(f'{directory} vanished twice while creating {path}')


def read_generation(path: str) -> tuple[bytes, int] | None:
    """(bytes, generation) of a gs:// object, read consistently; None when it does not exist."""
    from google.api_core import exceptions
    while True:
        blob = _gcs_blob(path)
        try:
            blob.reload()
            generation = blob.generation  # a download resets it from the response headers
            return blob.download_as_bytes(if_generation_match=generation), generation
        except exceptions.NotFound:
            return None
        except exceptions.PreconditionFailed:
            continue  # replaced between the two calls: read the new one


def write_if_generation(path: str, data: bytes, generation: int) -> bool:
    """Writes a gs:// object only if its generation is still ``generation`` (0: only if it does not exist);
    False when another writer came first."""
    from google.api_core import exceptions
    try:
        _gcs_blob(path).upload_from_string(data, content_type='application/json', if_generation_match=generation)
        return True
    except exceptions.PreconditionFailed:
        return False


def delete_if_generation(path: str, generation: int) -> bool:
    """Deletes a gs:// object only if its generation is still ``generation``."""
    from google.api_core import exceptions
    try:
        _gcs_blob(path).delete(if_generation_match=generation)
        return True
    except (exceptions.PreconditionFailed, exceptions.NotFound):
        return False


def replace_durably(path: str, data: bytes) -> None:
    """Local only: writes ``data`` aside, fsyncs it, renames it over ``path`` and fsyncs the folder, so that
    after a crash ``path`` holds the old or the new bytes, never neither."""
    tmp = _tmp_name(path)
    try:
        _write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


@contextlib.contextmanager
def local_lock(path: str):
    """An exclusive advisory lock (flock) on a local lock file, held for the ``with`` block."""
    import fcntl
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'a') as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
