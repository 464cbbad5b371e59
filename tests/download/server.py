"""A loopback HTTP server for the downloader tests: real media files, and the failures YouTube produces.

Listens on 127.0.0.1 at an ephemeral port, serves ``/v/<ytid>`` with byte ranges, and can answer 404
("removed"), a run of 429s before a 200 ("rate limited"), or a body shorter than its Content-Length
("truncated transfer"). It also answers requests sent to it as an HTTP proxy (absolute URLs), for
itself. Every request is logged so tests can prove what was (not) fetched, and how. Used as a
context manager; on exit it stops serving and joins every handler thread.
"""
from __future__ import annotations

import dataclasses
import http.server
import re
import threading
import time
import urllib.parse

_RANGE = re.compile(r'^bytes=(\d*)-(\d*)$')


@dataclasses.dataclass
class Route:
    data: bytes = b''
    content_type: str = 'audio/webm'
    statuses: list[int] = dataclasses.field(default_factory=list)  # answered, in order, before serving data
    truncate: int = 0          # how many of the following data responses stop halfway through (-1: all)
    always: int | None = None  # a status answered forever (e.g. 404)
    delay_s: float = 0.0       # before each data response
    refuse_ranges: bool = False  # answer 403 to range requests, as some CDNs do


@dataclasses.dataclass(frozen=True)
class Hit:
    ytid: str
    method: str
    range: str | None
    status: int
    user_agent: str
    time: float
    cookie: str | None = None
    via_proxy: bool = False  # the request line held an absolute URL, as clients send to a proxy


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # clients hang up mid-body all the time (yt-dlp reads 512 bytes to sniff a direct link)


class MediaServer:
    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        self._httpd = None
        self._thread = None

    def add(self, ytid: str, **route) -> None:
        self.routes[ytid] = Route(**route)

    @property
    def url_template(self) -> str:
        return f'http://127.0.0.1:{self._httpd.server_address[1]}/v/{{ytid}}'

    def set(self, ytid: str, **changes) -> None:
        with self._lock:
            for k, v in changes.items():
                setattr(self.routes[ytid], k, v)

    def hits_for(self, ytid: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.ytid == ytid]

    def __enter__(self) -> MediaServer:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'
            timeout = 5  # a stuck client cannot hold a handler thread for long

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body: bool):
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                ytid = path[len('/v/'):] if path.startswith('/v/') else ''
                rng = self.headers.get('Range')
                with server._lock:
                    route = server.routes.get(ytid)
                    status, truncate = 200, False
                    if route is None:
                        status = 404
                    elif route.always is not None:
                        status = route.always
                    elif route.statuses:
                        status = route.statuses.pop(0)
                    elif route.refuse_ranges and rng:
                        status = 403
                    elif route.truncate and body:
                        route.truncate -= route.truncate > 0
                        truncate = True
                    lo, hi = 0, len(route.data) - 1 if route else 0
                    m = _RANGE.match(rng or '')
                    if status == 200 and m and (m.group(1) or m.group(2)):
                        if m.group(1):
                            lo = int(m.group(1))
                            hi = min(int(m.group(2)), hi) if m.group(2) else hi
                        else:
                            lo = max(0, len(route.data) - int(m.group(2)))
                        status = 206 if lo < len(route.data) else 416
                    server.hits.append(Hit(ytid, self.command, rng, status, self.headers.get('User-Agent', ''),
                                           time.monotonic(), self.headers.get('Cookie'),
                                           self.path.startswith('http://')))
                if status not in (200, 206):
                    payload = f'status {status}\n'.encode()
                    self.send_response(status)
                    self.send_header('Content-Type', 'text/plain')
                    self.send_header('Content-Length', str(len(payload)))
                    if status == 429:
                        self.send_header('Retry-After', '0')
                    self.end_headers()
                    if body:
                        self.wfile.write(payload)
                    return
                if route.delay_s:
                    time.sleep(route.delay_s)
                chunk = route.data[lo:hi + 1]
                self.send_response(status)
                self.send_header('Content-Type', route.content_type)
                self.send_header('Accept-Ranges', 'bytes')
                self.send_header('Content-Length', str(len(chunk)))
                if status == 206:
                    self.send_header('Content-Range', f'bytes {lo}-{hi}/{len(route.data)}')
                self.end_headers()
                if not body:
                    return
                if truncate:
                    # Promise the whole range, deliver half, hang up: a broken transfer.
                    chunk = chunk[:len(chunk) // 2]
                    self.close_connection = True
                try:
                    for i in range(0, len(chunk), 1 << 16):
                        self.wfile.write(chunk[i:i + (1 << 16)])
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        self._httpd = _Server(('127.0.0.1', 0), Handler)
        self._httpd.daemon_threads = False
        self._httpd.block_on_close = True  # server_close() joins every handler thread
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={'poll_interval': 0.05},
                                        name='media-server', daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), 'media server thread outlived its test'
