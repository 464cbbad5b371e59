"""yt-dlp, through its Python API: resolve a video to its best audio stream, or download that stream whole.

One ``YoutubeDL`` per attempt (about 50 ms to make), so that threads share nothing and every attempt
starts clean. yt-dlp's own retries are off: retries, backoff and the global rate limit are the
runner's, so one failure is one classified ledger line. The user's cookies file is copied into the
attempt's folder, because yt-dlp writes rotated cookies back to the file it was given.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import urllib.parse

from transforms.core.download import outcome

log = logging.getLogger(__name__)

DEFAULT_URL_TEMPLATE = 'https://www.youtube.com/watch?v={ytid}'
FORMAT = 'bestaudio/best'


@dataclasses.dataclass(frozen=True)
class FetchOptions:
    url_template: str = DEFAULT_URL_TEMPLATE
    cookies: str | None = None  # Netscape cookies.txt; read, never written
    proxy: str | None = None    # e.g. http://host:3128 or socks5://host:1080
    timeout_s: float = 30.0


def video_url(template: str, ytid: str) -> str:
    """The page yt-dlp is given for a YouTube id; the id is URL-quoted (ids may start with '-')."""
    return template.format(ytid=urllib.parse.quote(ytid, safe=''))


class _Logger:
    """yt-dlp's chatter goes to DEBUG; failures surface as exceptions and ledger lines instead."""

    def debug(self, msg):
        log.debug('%s', msg)

    info = debug

    def warning(self, msg):
        log.debug('yt-dlp warning: %s', msg)

    def error(self, msg):
        log.debug('yt-dlp error: %s', msg)


def _causes(exc: BaseException):
    """``exc`` and everything behind it: yt-dlp wraps errors in ``exc_info``, ``cause`` and ``__cause__``."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen or not isinstance(e, BaseException):
            continue
        seen.add(id(e))
        yield e
        info = getattr(e, 'exc_info', None)
        # Not __context__: an error handled earlier inside yt-dlp says nothing about this one.
        todo += [getattr(e, 'cause', None), e.__cause__, info[1] if isinstance(info, tuple) else None]


def to_fetch_error(exc: BaseException) -> outcome.FetchError:
    """A yt-dlp exception, classified by the HTTP status behind it if any, else by its message."""
    http_status, retry_after = None, None
    for e in _causes(exc):
        status = getattr(e, 'status', None)
        if isinstance(status, int) and 100 <= status < 600:
            http_status = status
            headers = getattr(getattr(e, 'response', None), 'headers', None) or {}
            try:
                retry_after = float(headers.get('Retry-After'))
            except (TypeError, ValueError):
                retry_after = None
            break
    message = re.sub(r'\s+', ' ', str(exc)).strip()[:600] or type(exc).__name__
    return outcome.FetchError(outcome.classify(message, http_status), message, retry_after)


class YtDlp:
    """One attempt's yt-dlp session, working in ``workdir`` (a private temporary folder)."""

    def __init__(self, options: FetchOptions, workdir: str, ffmpeg: str | None = None):
        import yt_dlp  # heavy; loaded by the worker that needs it, never at import
        self._yt_dlp = yt_dlp
        cookies = None
        if options.cookies:
            cookies = os.path.join(workdir, 'cookies.txt')
            shutil.copyfile(options.cookies, cookies)
        self.workdir = workdir
        self.options = options
        self.ydl = yt_dlp.YoutubeDL({
            'format': FORMAT,
            'noplaylist': True,
            'quiet': True,
            'no_warnings': True,
            'noprogress': True,
            'logger': _Logger(),
            'socket_timeout': options.timeout_s,
            'retries': 0,
            'fragment_retries': 0,
            'extractor_retries': 0,
            'file_access_retries': 0,
            'cookiefile': cookies,
            'proxy': options.proxy,
            'paths': {'home': workdir, 'temp': workdir},
            'outtmpl': {'default': 'source.%(ext)s.part'},  # not an audio extension, see clip.py
            'overwrites': True,
            'continuedl': False,
            # For yt-dlp's own fix-ups (e.g. of HLS downloads), the same ffmpeg as ours, PATH or not.
            'ffmpeg_location': ffmpeg,
        })

    def __enter__(self) -> YtDlp:
        return self

    def __exit__(self, *exc) -> None:
        self.ydl.close()

    def resolve(self, url: str) -> dict:
        """yt-dlp's info dict for ``url`` with the best audio format selected; FetchError on failure."""
        try:
            info = self.ydl.extract_info(url, download=False)
        except Exception as e:  # yt-dlp's extractors raise more than YoutubeDLError
            raise to_fetch_error(e) from None
        if not info or info.get('_type', 'video') != 'video':
            raise outcome.FetchError(outcome.UNAVAILABLE, f'{url} is not a single video')
        return info

    def download(self, info: dict) -> str:
        """Downloads the selected stream whole into the work folder; returns its path."""
        try:
            done = self.ydl.process_ie_result(dict(info), download=True)
        except Exception as e:
            raise to_fetch_error(e) from None
        paths = [d.get('filepath') for d in (done or {}).get('requested_downloads') or ()]
        paths = [p for p in paths if p and os.path.exists(p) and os.path.getsize(p) > 0]
        if not paths:
            raise outcome.FetchError(outcome.ERROR, 'yt-dlp reported success but wrote no file')
        return paths[0]

    def cookie_header(self, url: str) -> str | None:
        return self.ydl.cookiejar.get_cookie_header(url) or None


def selected_format(info: dict) -> dict:
    formats = info.get('requested_formats')
    return formats[0] if formats and len(formats) == 1 else info


def section_readable(info: dict, proxy: str | None) -> bool:
    """Whether ffmpeg can read the selected stream itself and seek in it: one plain HTTP(S) file (not
    HLS/DASH fragments, not a live stream, not a video+audio pair), and no proxy ffmpeg would bypass
    (it speaks only to http:// proxies)."""
    fmt = selected_format(info)
    if info.get('requested_formats') and len(info['requested_formats']) > 1:
        return False
    if fmt.get('protocol') not in ('http', 'https') or fmt.get('fragments') or info.get('is_live'):
        return False
    return not proxy or '://' not in proxy or proxy.lower().startswith('http://')


def stream_headers(ytdlp: YtDlp, info: dict) -> dict[str, str]:
    """The HTTP headers yt-dlp would send for the stream (user agent, referer, cookies)."""
    fmt = selected_format(info)
    headers = dict(fmt.get('http_headers') or info.get('http_headers') or {})
    cookie = ytdlp.cookie_header(fmt['url'])
    if cookie:
        headers['Cookie'] = cookie
    return headers
