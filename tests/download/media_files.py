"""Test media made with the bundled ffmpeg: a tone whose pitch encodes the time.

During second k of the file the tone is at ``440 + 100 * k`` Hz, so the pitch at the start and end of a
clip says where in the source it was cut. Generated at test time, never committed.
"""
from __future__ import annotations

import pathlib
import subprocess

import av
import numpy as np

from transforms.core.download.media import find_ffmpeg

BASE_HZ, STEP_HZ = 440.0, 100.0
# container -> (encoder arguments, sample rate, HTTP content type). Every file is stereo, its right
# channel at half the left's amplitude, so that averaging to mono is visible.
FORMATS = {
    'webm': (['-c:a', 'libopus', '-b:a', '96k'], 48000, 'audio/webm'),
    'm4a': (['-c:a', 'aac', '-b:a', '128k'], 44100, 'audio/mp4'),
    'mp3': (['-c:a', 'libmp3lame', '-b:a', '96k'], 22050, 'audio/mpeg'),
}


def pitch_at(second: int) -> float:
    return BASE_HZ + STEP_HZ * second


def make(path: pathlib.Path, fmt: str, seconds: int = 30) -> bytes:
    """Writes a stereo ``fmt`` file of the stepped tone (right channel at half amplitude); returns its bytes."""
    codec, rate, _ = FORMATS[fmt]
    tone = f'sin(2*PI*({BASE_HZ}+{STEP_HZ}*floor(t))*t)'
    subprocess.run([find_ffmpeg(), '-nostdin', '-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi',
                    '-i', f'aevalsrc=0.8*{tone}|0.4*{tone}:s={rate}:d={seconds}', *codec, str(path)], check=True)
    return path.read_bytes()


def decode(path) -> tuple[np.ndarray, int, int]:
    """(samples as float32 of the first channel, sample rate, channel count) of an audio file."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        frames = [f.to_ndarray() for f in c.decode(stream)]
        rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
    x = np.concatenate([f.reshape(channels, -1) if f.shape[0] == channels else f.reshape(-1, channels).T
                        for f in frames], axis=1)
    if x.dtype.kind == 'i':
        x = x / float(np.iinfo(x.dtype).max)
    return x[0].astype(np.float32), rate, channels


def dominant_hz(x: np.ndarray, rate: int) -> float:
    n = 16 * len(x)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=n))
    return float(np.fft.rfftfreq(n, 1 / rate)[spectrum.argmax()])


def pitch_near_start(x: np.ndarray, rate: int) -> float:
    """Dominant frequency of the first 5..35 ms (a cut 15 ms early or late would show the wrong step)."""
    return dominant_hz(x[int(0.005 * rate):int(0.035 * rate)], rate)


def pitch_near_end(x: np.ndarray, rate: int) -> float:
    return dominant_hz(x[len(x) - int(0.035 * rate):len(x) - int(0.005 * rate)], rate)


def start_offset(x: np.ndarray, rate: int, start_second: int) -> int:
    """Samples by which a clip meant to start at ``start_second`` of the source starts late (negative:
    early), measured on the tone's phase in its first 35 ms; exact modulo one period of the tone."""
    hz = pitch_at(start_second)
    lo, n = int(0.005 * rate), int(0.03 * rate)
    half = int(rate / hz / 2)
    seg = x[lo:lo + n]

    def score(lag):
        t = start_second + (np.arange(n) + lo + lag) / rate
        return float(np.dot(seg, np.sin(2 * np.pi * hz * t)))

    return max(range(-half, half + 1), key=score)
