"""Audio files (wav, flac, mp3, m4a/aac, ogg/opus, webm, ... anything FFmpeg reads) -> float64 mono samples.

Decoding goes through PyAV (FFmpeg). Sample formats are scaled to [-1, 1) by their own width: int16 by
1/32768 (as the VGGish reference scales int16), 24- and 32-bit integer by 1/2^31 (FFmpeg hands 24-bit
PCM over left-aligned in 32 bits), 8-bit unsigned around 128; float stays float. Channels are averaged.
Every failure is an ``AudioDecodeError`` naming the input and a kebab-case reason.
"""
from __future__ import annotations

import io
import os
from typing import Union

import numpy as np

Source = Union[str, os.PathLike, bytes, bytearray, memoryview]

# FFmpeg sample format (packed or planar, without the 'p') -> (numpy dtype, offset, scale to [-1, 1)).
_FORMATS = {
    'u8': (np.uint8, 128.0, 1.0 / 128),
    's16': (np.int16, 0.0, 1.0 / 32768),
    's32': (np.int32, 0.0, 1.0 / 2 ** 31),
    's64': (np.int64, 0.0, 1.0 / 2 ** 63),
    'flt': (np.float32, 0.0, 1.0),
    'dbl': (np.float64, 0.0, 1.0),
}

# Reasons, for dead letters and messages.
UNREADABLE = 'unreadable-audio'          # not a container/codec FFmpeg can read, truncated, corrupt
NO_AUDIO = 'no-audio-stream'
EMPTY = 'empty-audio'                    # zero bytes, or decodes to zero samples
UNSUPPORTED = 'unsupported-sample-format'
INCONSISTENT = 'inconsistent-stream'     # sample rate or channel count changes mid-stream
NON_FINITE = 'non-finite-samples'        # NaN or infinity in float audio
TOO_SHORT = 'too-short'                  # decodes, but gives no 0.96 s example (raised by the front end)
TOO_LONG = 'too-long'                    # decodes past max_seconds (decoding stops there: bounded memory)


class AudioDecodeError(ValueError):
    """An input that cannot become VGGish examples. ``path`` names it, ``reason`` is one of the above."""

    def __init__(self, path: str, reason: str, detail: str = ''):
        self.path = path
        self.reason = reason
        self.detail = detail
        super().__init__(f'{path}: {reason}' + (f' ({detail})' if detail else ''))

    def __reduce__(self):  # picklable with all three fields (Beam ships exceptions between processes)
        return type(self), (self.path, self.reason, self.detail)


def _describe(source: Source, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f'<{len(source)} bytes>'
    return os.fspath(source)


def _frame_samples(frame) -> np.ndarray:
    """One decoded frame -> float64 [samples, channels]."""
    fmt = frame.format.name
    base = fmt[:-1] if fmt.endswith('p') else fmt
    if base not in _FORMATS:
        raise KeyError(fmt)
    dtype, offset, scale = _FORMATS[base]
    raw = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if raw.dtype != dtype:
        raise KeyError(f'{fmt} as {raw.dtype}')
    if frame.format.is_planar:
        data = raw.T                                   # [channels, samples] -> [samples, channels]
    else:
        data = raw.reshape(-1, channels)               # [1, samples * channels], interleaved
    data = data.astype(np.float64)
    if offset:
        data -= offset
    if scale != 1.0:
        data *= scale
    return data


def decode_audio(source: Source, name: str | None = None, max_seconds: float | None = None
                 ) -> tuple[np.ndarray, int]:
    """A file path or the file's bytes -> (float64 [N] mono samples, sample rate in Hz).

    ``name`` labels errors when ``source`` is bytes. Guarantees N > 0 and all samples finite; raises
    ``AudioDecodeError`` otherwise (never a PyAV exception), and with reason ``too-long`` as soon as more
    than ``max_seconds`` are decoded, so a long file never fills memory.
    """
    import av  # deferred: FFmpeg bindings, needed only where audio is decoded

    label = _describe(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioDecodeError(label, EMPTY, 'zero bytes')
        handle = io.BytesIO(bytes(source))
    else:
        path = os.fspath(source)
        try:
            if os.path.getsize(path) == 0:
                raise AudioDecodeError(label, EMPTY, 'zero bytes')
        except OSError as e:
            raise AudioDecodeError(label, UNREADABLE, str(e)) from e
        handle = path
    chunks: list[np.ndarray] = []
    try:
        with av.open(handle, mode='r') as container:
            if not container.streams.audio:
                raise AudioDecodeError(label, NO_AUDIO)
            stream = container.streams.audio[0]
            rate = channels = None
            decoded = 0
            for frame in container.decode(stream):
                if frame.samples == 0:
                    continue
                if rate is None:
                    rate, channels = frame.sample_rate, frame.layout.nb_channels
                elif (frame.sample_rate, frame.layout.nb_channels) != (rate, channels):
                    raise AudioDecodeError(label, INCONSISTENT,
                                           f'{rate} Hz x {channels} then {frame.sample_rate} Hz x '
                                           f'{frame.layout.nb_channels}')
                try:
                    chunks.append(_frame_samples(frame))
                except KeyError as e:
                    raise AudioDecodeError(label, UNSUPPORTED, str(e)) from None
                decoded += frame.samples
                if max_seconds is not None and decoded > max_seconds * rate:
                    raise AudioDecodeError(label, TOO_LONG, f'more than {max_seconds:g} s of audio')
    except AudioDecodeError:
        raise
    except (av.FFmpegError, OSError, ValueError, EOFError) as e:
        raise AudioDecodeError(label, UNREADABLE, f'{type(e).__name__}: {e}') from e
    if not chunks:
        raise AudioDecodeError(label, EMPTY, 'no samples decoded')
    samples = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if len(mono) == 0:
        raise AudioDecodeError(label, EMPTY, 'no samples decoded')
    if not np.isfinite(mono).all():
        bad = int(np.count_nonzero(~np.isfinite(mono)))
        raise AudioDecodeError(label, NON_FINITE, f'{bad} of {len(mono)} samples are NaN or infinite')
    return np.ascontiguousarray(mono), int(rate)
