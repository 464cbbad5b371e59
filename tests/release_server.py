"""A loopback HTTP server for tests: serves files from memory with Range, ETag, Last-Modified and If-Range
as Google's bucket does, and injects the faults a real download meets (a 404, a body cut short, a stalled or
trickling connection, an error page served with 200, a wrong or missing Content-Length, a file that changes
between requests). The real urllib client and http.server on 127.0.0.1: no mocks."""
from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.server
import re
import threading
import time

HTML_PAGE = (b'<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n'
             b'<body>The service is unavailable. Try again later.</body></html>\n')


class ReleaseServer:
    """``files``: URL path -> bytes (change them at will: the validators follow the content). Faults, by
    URL path:

    ``cut_once``: the next GET sends half of its body (announcing the full length) and drops the connection;
    ``cut_always``: bytes past the middle of the file never arrive; ``change_after``: path -> new bytes that
    replace the file once a GET of it has been answered (a new version published mid-download);
    ``stall``: headers, then nothing until the server stops; ``trickle``: path -> seconds between single
    bytes; ``html_200``: an HTML error page with status 200 instead of the file; ``short_length``: a
    Content-Length of half the body, then the whole body; ``no_length``: no Content-Length, the end of the
    body is the end of the connection; ``ignore_range``: Range is ignored (always 200, whole body);
    ``ignore_if_range``: If-Range is ignored (the range is served from the version there now, as a careless
    server or proxy does).

    ``validators``: which the server sends: 'both' (ETag and Last-Modified, as GCS does), 'etag',
    'last-modified', 'weak-etag' (a weak ETag and Last-Modified) or 'none'. If-Range is honoured: a Range
    whose If-Range does not match the current version is answered with the whole body (200).

    ``requests``: (path, Range header) of every request; ``log``: every request's path, Range and If-Range.
    """

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.cut_once: set[str] = set()
        self.cut_always: set[str] = set()
        self.change_after: dict[str, bytes] = {}
        self.stall: set[str] = set()
        self.trickle: dict[str, float] = {}
        self.html_200: set[str] = set()
        self.short_length: set[str] = set()
        self.no_length: set[str] = set()
        self.ignore_range: set[str] = set()
        self.ignore_if_range: set[str] = set()
        self.validators = 'both'
        self.requests: list[tuple[str, str | None]] = []
        self.log: list[dict] = []
        self.stopped = threading.Event()
        self._versions: dict[str, tuple[str, int]] = {}    # path -> (sha256, Last-Modified as a timestamp)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()

            def _write(self, data: bytes) -> bool:
                try:
                    self.wfile.write(data)
                    self.wfile.flush()
                    return True
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return False

            def _serve(self, body: bool):
                path = self.path.split('?', 1)[0]
                rng, if_range = self.headers.get('Range'), self.headers.get('If-Range')
                server.requests.append((path, rng))
                server.log.append({'path': path, 'range': rng, 'if_range': if_range})
                data = server.files.get(path)
                if data is None:
                    return self._send(404, {'Content-Length': '0'})
                if path in server.html_200:
                    data = HTML_PAGE
                validators = server.validator_headers(path, data)
                m = re.fullmatch(r'bytes=(\d+)-', rng or '')
                if path in server.ignore_range or (if_range is not None and if_range not in validators.values()
                                                   and path not in server.ignore_if_range):
                    m = None        # no ranges here, or another version than the client's: the whole body
                headers = dict(validators)
                start = 0
                if m:
                    start = int(m.group(1))
                    if start >= len(data):
                        return self._send(416, {'Content-Range': f'bytes */{len(data)}', 'Content-Length': '0',
                                                **validators})
                    status = 206
                    headers['Content-Range'] = f'bytes {start}-{len(data) - 1}/{len(data)}'
                else:
                    status = 200
                payload = data[start:]
                if path not in server.ignore_range:
                    headers['Accept-Ranges'] = 'bytes'
                cut = body and (path in server.cut_always or path in server.cut_once)
                if path in server.no_length:
                    headers['Connection'] = 'close'
                else:
                    headers['Content-Length'] = str(len(payload) // 2 if path in server.short_length else len(payload))
                if cut:
                    server.cut_once.discard(path)
                    headers['Connection'] = 'close'
                self._send(status, headers)
                if not body:
                    return
                if path in server.change_after:
                    server.files[path] = server.change_after.pop(path)
                if path in server.stall:
                    self.close_connection = True
                    server.stopped.wait(60)
                    return
                if cut:
                    # cut_once: half of this response; cut_always: never past the middle of the file
                    end = max(1, len(payload) // 2) if path not in server.cut_always else max(0, len(data) // 2 - start)
                    payload = payload[:end]
                if path in server.trickle:
                    for i in range(len(payload)):
                        if server.stopped.is_set() or not self._write(payload[i:i + 1]):
                            break
                        time.sleep(server.trickle[path])
                else:
                    self._write(payload)
                if cut or path in server.no_length:
                    self.close_connection = True

            def do_GET(self):
                self._serve(True)

            def do_HEAD(self):
                self._serve(False)

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'

    def validator_headers(self, path: str, data: bytes) -> dict[str, str]:
        """The ETag and Last-Modified the server sends for ``data`` at ``path`` (per ``validators``): the
        ETag from the content, Last-Modified a day later for each new content."""
        digest = hashlib.sha256(data).hexdigest()
        known = self._versions.get(path)
        if known is None or known[0] != digest:
            self._versions[path] = (digest, (known[1] if known else 1_490_000_000) + 86400)
        etag = f'"{digest[:16]}"'
        modified = email.utils.formatdate(self._versions[path][1], usegmt=True)
        return {'both': {'ETag': etag, 'Last-Modified': modified}, 'etag': {'ETag': etag},
                'last-modified': {'Last-Modified': modified}, 'none': {},
                'weak-etag': {'ETag': 'W/' + etag, 'Last-Modified': modified}}[self.validators]

    def ranges(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]

    def if_ranges(self, path: str) -> list[str | None]:
        return [e['if_range'] for e in self.log if e['path'] == path]


@contextlib.contextmanager
def release_server(files: dict[str, bytes]):
    server = ReleaseServer(files)
    thread = threading.Thread(target=server.httpd.serve_forever, args=(0.05,), name='release-server', daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopped.set()
        server.httpd.shutdown()
        server.httpd.server_close()


def make_release_tarball(path, features_dir, shards_per_split: int = 1000, extra: dict[str, bytes] | None = None,
                         splits=('bal_train', 'eval', 'unbal_train')):
    """``features.tar.gz`` in the exact release layout, from a folder of split folders (the bundled shards):
    ``audioset_v1_embeddings/`` and its split folders as directory members, then the shards, in name order
    (as ``tar --sort=name -czf features.tar.gz audioset_v1_embeddings`` writes it). ``extra``: more members
    (name -> bytes) appended at the end, to damage the archive in tests."""
    import io
    import pathlib
    import tarfile
    features_dir = pathlib.Path(features_dir)

    def add_dir(tar, name):
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_490_000_000
        tar.addfile(info)

    def add_file(tar, name, data):
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 1_490_000_000
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(path, 'w:gz', format=tarfile.GNU_FORMAT) as tar:
        add_dir(tar, 'audioset_v1_embeddings')
        for split in sorted(splits):
            add_dir(tar, f'audioset_v1_embeddings/{split}')
            for shard in sorted((features_dir / split).glob('*.tfrecord'))[:shards_per_split]:
                add_file(tar, f'audioset_v1_embeddings/{split}/{shard.name}', shard.read_bytes())
        for name, data in (extra or {}).items():
            add_file(tar, name, data)
    return path
