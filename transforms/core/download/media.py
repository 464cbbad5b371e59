"""ffmpeg and PyAV: cut [start, end] out of a stream, average to mono, store FLAC, verify what was stored.

Two ffmpeg runs per clip. The first decodes exactly the segment to 32-bit float WAV at the source's
rate and channel count; the second averages the channels (the ``pan`` filter with renormalised equal
gains, which needs the channel count the first run revealed) and encodes 16-bit FLAC. PyAV then
decodes the FLAC and counts its samples: a clip that is not (end - start) long, to within one codec
frame, is never kept.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess

import av

from transforms.core.download import outcome
from transforms.core.download.naming import format_seconds

# One audio frame of the codecs YouTube serves, at most (MP3 1152, AAC 1024, Opus 960 samples at 48 kHz).
FRAME_TOLERANCE_SAMPLES = 1152

# Containers in which ffmpeg's input-side seek lands within 1 ms of the target: the Matroska family
# (YouTube's Opus audio), whose block timestamps are whole milliseconds, so no seek can do better. In
# MP4 it lands up to a codec frame off (priming samples are not accounted for after a seek), in MP3 it
# is estimated from the bitrate; those, and every local file, are decoded from the start instead,
# which is exact to the sample.
SEEKABLE = frozenset({'webm', 'weba', 'mka', 'mkv'})

_HTTP_STATUS = re.compile(r'(?:Server returned|HTTP error) (\d{3})\b')


def find_ffmpeg() -> str:
    """ffmpeg on PATH, else the static build shipped in the ``imageio-ffmpeg`` wheel (no root needed)."""
    found = shutil.which('ffmpeg')
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        raise RuntimeError('ffmpeg is neither on PATH nor installed with `pip install imageio-ffmpeg`') from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def is_url(source: str) -> bool:
    return re.match(r'^[A-Za-z][A-Za-z0-9+.-]*://', source) is not None


def cut_command(ffmpeg: str, source: str, start_ms: int, end_ms: int, out_wav: str, *, seek_input: bool,
                headers: dict[str, str] | None = None, timeout_s: float = 30.0) -> list[str]:
    """The ffmpeg command that decodes ``source`` between ``start_ms`` and ``end_ms`` into ``out_wav``.

    ``seek_input``: seek in the input first, so only the segment's bytes are read (within 1 ms for
    SEEKABLE containers); otherwise decode from the start and drop the samples before ``start_ms``
    (exact to the sample in every container). Either way the output has exactly the segment's length
    when the source is long enough.
    """
    cmd = [ffmpeg, '-nostdin', '-hide_banner', '-loglevel', 'error', '-y']
    if is_url(source):
        cmd += ['-rw_timeout', str(int(timeout_s * 1e6))]  # a stalled connection fails instead of hanging
        if headers:
            cmd += ['-headers', ''.join(f'{k}: {v}\r\n' for k, v in headers.items())]
    else:
        # 'file:' keeps a path that starts with '-' or holds ':' from being read as an option or protocol.
        source = 'file:' + os.path.abspath(source)
    start, duration = format_seconds(start_ms), format_seconds(end_ms - start_ms)
    if seek_input and start_ms:
        cmd += ['-ss', start]
    cmd += ['-i', source]
    if not seek_input and start_ms:
        cmd += ['-ss', start]
    cmd += ['-t', duration, '-map', '0:a:0', '-c:a', 'pcm_f32le', '-f', 'wav', 'file:' + os.path.abspath(out_wav)]
    return cmd


def pan_filter(channels: int) -> str | None:
    """The ``pan`` filter that averages ``channels`` channels into one (``<`` renormalises the gains)."""
    if channels < 1:
        raise ValueError(f'no audio channels ({channels})')
    if channels == 1:
        return None
    return 'pan=mono|c0<' + '+'.join(f'c{i}' for i in range(channels))


def encode_command(ffmpeg: str, wav: str, channels: int, out_flac: str) -> list[str]:
    cmd = [ffmpeg, '-nostdin', '-hide_banner', '-loglevel', 'error', '-y', '-i', 'file:' + os.path.abspath(wav)]
    pan = pan_filter(channels)
    if pan:
        cmd += ['-af', pan]
    # 16 bits hold more than YouTube's lossy streams carry; the sample rate is the source's.
    return cmd + ['-c:a', 'flac', '-sample_fmt', 's16', '-f', 'flac', 'file:' + os.path.abspath(out_flac)]


def run_ffmpeg(cmd: list[str], timeout_s: float, env: dict | None = None) -> None:
    """Runs ffmpeg; a failure becomes a classified FetchError carrying the end of its stderr."""
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise outcome.FetchError(outcome.ERROR, f'ffmpeg timed out after {timeout_s:.0f} s') from None
    if proc.returncode != 0:
        err = proc.stderr.decode('utf-8', 'replace').strip()
        tail = ' | '.join(err.splitlines()[-4:])[-600:] or f'exit status {proc.returncode}'
        m = _HTTP_STATUS.search(err)
        status = outcome.classify(err, int(m.group(1)) if m else None)
        raise outcome.FetchError(status, f'ffmpeg: {tail}')


def audio_channels(path: str) -> int:
    try:
        with av.open(path) as container:
            if container.streams.audio:
                return container.streams.audio[0].codec_context.channels
    except av.FFmpegError as e:
        raise outcome.FetchError(outcome.ERROR, f'the cut does not open: {e}') from None
    raise outcome.FetchError(outcome.ERROR, 'the cut has no audio stream')


@dataclasses.dataclass(frozen=True)
class ClipInfo:
    sample_rate: int
    num_samples: int
    channels: int
    sha256: str


def inspect_clip(path: str) -> ClipInfo:
    """Decodes a FLAC clip completely: its rate, exact sample count, channels and file hash."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    try:
        with av.open(path) as container:
            stream = container.streams.audio[0]
            samples = sum(frame.samples for frame in container.decode(stream))
            return ClipInfo(stream.codec_context.sample_rate, samples, stream.codec_context.channels,
                            digest.hexdigest())
    except (av.FFmpegError, IndexError) as e:
        raise outcome.FetchError(outcome.ERROR, f'the clip does not decode: {e}') from None


def verify_clip(info: ClipInfo, start_ms: int, end_ms: int) -> None:
    """Raises FetchError unless the clip is mono and (end - start) long to within one audio frame."""
    expected = round((end_ms - start_ms) * info.sample_rate / 1000)
    if info.channels != 1 or info.num_samples == 0 or abs(info.num_samples - expected) > FRAME_TOLERANCE_SAMPLES:
        raise outcome.FetchError(
            outcome.ERROR,
            f'clip is {info.num_samples / max(info.sample_rate, 1):.3f} s ({info.num_samples} samples, '
            f'{info.channels} channel(s)) at {info.sample_rate} Hz, expected {(end_ms - start_ms) / 1000:.3f} s '
            f'({expected} samples, mono): a truncated transfer or a video shorter than the segment')
