"""One attempt at one segment: resolve, read the segment (or the whole stream), cut, encode, verify, rename.

Guarantee: the clip's final name appears only through an atomic rename of a FLAC that decoded to the
right length and was fsynced; a partial file lives only in the attempt's temporary folder.
"""
from __future__ import annotations

import dataclasses
import os

from transforms.core.download import fetch, media, outcome
from transforms.core.download.selection import Segment


@dataclasses.dataclass(frozen=True)
class Made:
    info: media.ClipInfo
    fetch: str      # 'section' or 'whole'
    message: str


def _env(proxy: str | None) -> dict | None:
    # ffmpeg reads its HTTP(S) proxy from the environment, as yt-dlp's own ffmpeg downloader arranges it.
    if not proxy:
        return None
    proxy = proxy if '://' in proxy else f'http://{proxy}'
    return {**os.environ, 'http_proxy': proxy, 'HTTP_PROXY': proxy}


def make_clip(segment: Segment, options: fetch.FetchOptions, ffmpeg: str, workdir: str, final_path: str,
              whole: bool = False) -> Made:
    """Writes ``final_path`` (FLAC, mono, native rate) for ``segment``; raises FetchError on failure.

    ``whole``: always download the whole stream with yt-dlp, never let ffmpeg read the segment remotely.
    """
    # No audio extension on anything temporary: a reader globbing the folder for audio (the embedding
    # stage does) must never pick up a partial file. ffmpeg is told every format explicitly.
    wav = os.path.join(workdir, 'cut.wav.part')
    flac = os.path.join(workdir, 'clip.flac.part')
    ffmpeg_timeout = max(120.0, 10 * options.timeout_s)
    with fetch.YtDlp(options, workdir, ffmpeg) as ytdlp:
        info = ytdlp.resolve(fetch.video_url(options.url_template, segment.ytid))
        ext = (fetch.selected_format(info).get('ext') or '').lower()
        mode, note = None, ''
        if not whole and fetch.section_readable(info, options.proxy):
            url = fetch.selected_format(info)['url']
            cmd = media.cut_command(ffmpeg, url, segment.start_ms, segment.end_ms, wav,
                                    seek_input=ext in media.SEEKABLE,
                                    headers=fetch.stream_headers(ytdlp, info), timeout_s=options.timeout_s)
            try:
                media.run_ffmpeg(cmd, ffmpeg_timeout, _env(options.proxy))
                mode = 'section'
            except outcome.FetchError as e:
                if e.status != outcome.ERROR:
                    raise
                # Some servers refuse ffmpeg's range requests; yt-dlp's own downloader may still get through.
                note = f'section read failed ({e.message[:200]}); '
        if mode is None:
            source = ytdlp.download(info)
            # Local: decoding from the start costs only CPU and is exact to the sample.
            cmd = media.cut_command(ffmpeg, source, segment.start_ms, segment.end_ms, wav, seek_input=False,
                                    timeout_s=options.timeout_s)
            media.run_ffmpeg(cmd, ffmpeg_timeout)
            mode = 'whole'
    media.run_ffmpeg(media.encode_command(ffmpeg, wav, media.audio_channels(wav), flac), ffmpeg_timeout)
    clip = media.inspect_clip(flac)
    media.verify_clip(clip, segment.start_ms, segment.end_ms)
    publish_file(flac, final_path)
    return Made(clip, mode, f'{note}{mode} of {ext or "?"} stream {fetch.selected_format(info).get("format_id")}')


def publish_file(tmp_path: str, final_path: str) -> None:
    """fsync, then atomically rename over ``final_path``, then fsync the folder so the rename persists."""
    with open(tmp_path, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(tmp_path, final_path)
    fd = os.open(os.path.dirname(os.path.abspath(final_path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
