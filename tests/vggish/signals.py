"""Test signals and audio files, generated (never hand-made): WAV via the stdlib or by hand, others via PyAV."""
from __future__ import annotations

import struct
import wave

import numpy as np

RATES = (8000, 16000, 22050, 44100, 48000)


def signal(kind: str, rate: int, seconds: float, channels: int = 1, seed: int = 0) -> np.ndarray:
    """float64 [N] or [N, channels] in [-1, 1): 'sine' (1 kHz / 440 Hz), 'chirp' (50 Hz -> 0.45 rate),
    'noise' (white, with quiet stretches so the log offset matters)."""
    n = int(round(rate * seconds))
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    cols = []
    for c in range(channels):
        if kind == 'sine':
            x = 0.5 * np.sin(2 * np.pi * (1000.0 if c == 0 else 440.0) * t + c)
        elif kind == 'chirp':
            f0, f1 = 50.0, 0.45 * rate
            x = 0.4 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * seconds)) + c)
        elif kind == 'noise':
            x = 0.3 * rng.standard_normal(n) * (0.5 + 0.5 * np.sign(np.sin(2 * np.pi * 1.3 * t + c)))
            x = np.clip(x, -0.99, 0.99)
        else:
            raise ValueError(kind)
        cols.append(x)
    return cols[0] if channels == 1 else np.stack(cols, axis=1)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def write_wav_int(path, samples: np.ndarray, rate: int, width: int = 2) -> None:
    """Integer PCM WAV through the stdlib ``wave`` module; ``samples`` int16 (width 2) or int32 holding
    24-bit values (width 3) or 32-bit values (width 4), shape [N] or [N, channels]."""
    s = samples if samples.ndim == 2 else samples[:, None]
    if width == 2:
        raw = s.astype('<i2').tobytes()
    elif width == 3:
        b = s.astype('<i4').reshape(-1, 1).view(np.uint8).reshape(-1, 4)
        raw = b[:, :3].tobytes()
    else:
        raw = s.astype('<i4').tobytes()
    with wave.open(str(path), 'wb') as w:
        w.setnchannels(s.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)


def write_wav_float(path, samples: np.ndarray, rate: int) -> None:
    """32-bit IEEE float WAV (format tag 3), written by hand: the stdlib ``wave`` writes only PCM."""
    s = np.asarray(samples, '<f4')
    s = s if s.ndim == 2 else s[:, None]
    data = s.tobytes()
    channels = s.shape[1]
    fmt = struct.pack('<HHIIHH', 3, channels, rate, rate * channels * 4, channels * 4, 32)
    with open(path, 'wb') as f:
        f.write(b'RIFF' + struct.pack('<I', 4 + 8 + len(fmt) + 8 + len(data)) + b'WAVE')
        f.write(b'fmt ' + struct.pack('<I', len(fmt)) + fmt)
        f.write(b'data' + struct.pack('<I', len(data)) + data)


def read_wav_int16(path) -> tuple[np.ndarray, int]:
    """The oracle's own WAV reader (stdlib only): int16 PCM -> float64 [N, channels] / 32768."""
    with wave.open(str(path), 'rb') as w:
        assert w.getsampwidth() == 2
        raw = np.frombuffer(w.readframes(w.getnframes()), '<i2').reshape(-1, w.getnchannels())
        return raw / 32768.0, w.getframerate()


def encode(path, samples: np.ndarray, rate: int, container: str, codec: str, sample_format: str) -> None:
    """Encode float samples [N, channels] with PyAV (e.g. 'ogg'/'libopus', 'mp4'/'aac', 'flac'/'flac')."""
    import av
    s = samples if samples.ndim == 2 else samples[:, None]
    layout = 'mono' if s.shape[1] == 1 else 'stereo'
    with av.open(str(path), 'w', format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        stream.format = sample_format
        planar = sample_format.endswith('p')
        step = 1024
        for start in range(0, len(s), step):
            chunk = s[start:start + step]
            if sample_format.startswith('s16'):
                arr = to_int16(chunk)
            else:
                arr = chunk.astype(np.float32)
            arr = arr.T.copy() if planar else arr.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(arr, format=sample_format, layout=layout)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
