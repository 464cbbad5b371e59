"""A loopback HTTP server for tests: serves files from memory with Range support, and injects the faults
a real download meets (a 404, a body cut short once, a stalled connection). The real urllib client and
http.server on 127.0.0.1: no mocks."""
from __future__ import annotations

import contextlib
import http.server
import re
import threading


class ReleaseServer:
    """``files``: URL path -> bytes. ``cut_once``: paths whose next GET sends only the first half of the
    body (announcing the full length) and drops the connection; ``cut_always``: paths whose bytes past the
    middle of the file never arrive. ``requests``: (path, Range header) seen."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.cut_once: set[str] = set()
        self.cut_always: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):  # quiet
                pass

            def _serve(self, body: bool):
                path = self.path.split('?', 1)[0]
                rng = self.headers.get('Range')
                server.requests.append((path, rng))
                data = server.files.get(path)
                if data is None:
                    self.send_response(404)
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                    return
                start = 0
                m = re.fullmatch(r'bytes=(\d+)-', rng or '')
                if m:
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header('Content-Range', f'bytes */{len(data)}')
                        self.send_header('Content-Length', '0')
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
                else:
                    self.send_response(200)
                payload = data[start:]
                self.send_header('Content-Length', str(len(payload)))
                self.send_header('Accept-Ranges', 'bytes')
                cut = body and (path in server.cut_always or path in server.cut_once)
                if cut:
                    server.cut_once.discard(path)
                    self.send_header('Connection', 'close')
                self.end_headers()
                if not body:
                    return
                if cut:
                    # cut_once: half of this response; cut_always: never past the middle of the file
                    end = max(1, len(payload) // 2) if path not in server.cut_always else max(0, len(data) // 2 - start)
                    self.wfile.write(payload[:end])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

            def do_GET(self):
                self._serve(True)

            def do_HEAD(self):
                self._serve(False)

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'

    def ranges(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]


@contextlib.contextmanager
def release_server(files: dict[str, bytes]):
    server = ReleaseServer(files)
    thread = threading.Thread(target=server.httpd.serve_forever, name='release-server', daemon=True)
    thread.start()
    try:
        yield server
    finally:
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
