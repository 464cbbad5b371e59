"""Waveform -> VGGish input examples (log-mel patches), the reference front end in vectorized numpy.

Steps, all in float64 until the final cast: downmix (mean over channels) -> resample to 16 kHz with
resampy 0.4.3 ``kaiser_best`` (``resample.resample``, same numbers, ~50x faster) -> 400-sample frames,
hop 160, no padding -> periodic Hann -> |rfft| with 512 points -> HTK mel matrix (64 bands, 125-7500 Hz,
DC row zeroed) -> ln(mel + 0.01) -> non-overlapping 96-frame examples, remainder dropped.
"""
from __future__ import annotations

import functools

import numpy as np

from transforms.core.vggish import params, resample


def hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 1127 ln(1 + f / 700)."""
    return params.MEL_HIGH_Q * np.log(1.0 + np.asarray(hertz, np.float64) / params.MEL_BREAK_HZ)


@functools.lru_cache(maxsize=1)
def mel_matrix() -> np.ndarray:
    """float64 [257, 64]: spectrogram bin -> mel band weights (triangles on the mel axis), DC row zero."""
    bins_mel = hertz_to_mel(np.linspace(0.0, params.SAMPLE_RATE / 2, params.NUM_SPECTROGRAM_BINS))
    edges = np.linspace(hertz_to_mel(params.MEL_MIN_HZ), hertz_to_mel(params.MEL_MAX_HZ),
                        params.NUM_MEL_BANDS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # The reference zeroes the DC bin's row, whatever the lower edge.
    weights[0, :] = 0.0
    weights.setflags(write=False)
    return weights


@functools.lru_cache(maxsize=1)
def periodic_hann() -> np.ndarray:
    """float64 [400]: 0.5 - 0.5 cos(2 pi k / 400), the 'periodic' Hann (np.hanning is the symmetric one)."""
    k = np.arange(params.STFT_WINDOW_SAMPLES)
    window = 0.5 - 0.5 * np.cos(2 * np.pi / params.STFT_WINDOW_SAMPLES * k)
    window.setflags(write=False)
    return window


def num_frames(num_samples: int) -> int:
    """STFT frames of a 16 kHz signal: 1 + floor((N - 400) / 160), or 0 when shorter than a window."""
    if num_samples < params.STFT_WINDOW_SAMPLES:
        return 0
    return 1 + (num_samples - params.STFT_WINDOW_SAMPLES) // params.STFT_HOP_SAMPLES


def num_examples(num_samples_16k: int) -> int:
    """Examples a 16 kHz signal of this length gives: whole 96-frame windows; 0 below 15,600 samples."""
    frames = num_frames(num_samples_16k)
    if frames < params.EXAMPLE_FRAMES:
        return 0
    return 1 + (frames - params.EXAMPLE_FRAMES) // params.EXAMPLE_HOP_FRAMES


def to_mono_float(samples: np.ndarray) -> np.ndarray:
    """[N] or [N, channels] samples -> float64 [N], channels averaged.

    Float input is taken as is (nominally in [-1, 1]); signed integer PCM is scaled by 1/2^(bits-1)
    (int16: 1/32768), as the reference scales int16.
    """
    x = np.asarray(samples)
    if np.issubdtype(x.dtype, np.signedinteger):
        x = x.astype(np.float64) / float(2 ** (8 * x.dtype.itemsize - 1))
    elif not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f'expected float or signed integer samples, got {x.dtype}')
    x = x.astype(np.float64, copy=False)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise ValueError(f'expected samples of shape [N] or [N, channels], got {x.shape}')
    return x


def log_mel(waveform_16k: np.ndarray, max_frames: int | None = None) -> np.ndarray:
    """float64 [N] at 16 kHz -> float64 [frames, 64] log-mel (first ``max_frames`` frames if given)."""
    x = np.ascontiguousarray(waveform_16k, np.float64)
    n = num_frames(len(x))
    if max_frames is not None:
        n = min(n, max_frames)
    if n == 0:
        return np.zeros((0, params.NUM_MEL_BANDS))
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(n, params.STFT_WINDOW_SAMPLES), strides=(params.STFT_HOP_SAMPLES * x.strides[0], x.strides[0]),
        writeable=False)
    magnitude = np.abs(np.fft.rfft(frames * periodic_hann(), params.FFT_LENGTH))
    return np.log(magnitude @ mel_matrix() + params.LOG_OFFSET)


def waveform_to_examples(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Decoded audio -> float32 [n, 96, 64] VGGish examples (n = 0 for input shorter than 0.975 s).

    ``samples``: [N] or [N, channels], float (nominally [-1, 1]) or signed integer PCM; ``sample_rate``
    in Hz. Equal to the reference ``vggish_input.waveform_to_examples`` (fed float64) to float32
    precision. Raises ValueError for NaN or infinite samples.
    """
    x = to_mono_float(samples)
    if not np.isfinite(x).all():
        raise ValueError('samples hold NaN or infinity')
    sample_rate = int(sample_rate)
    if sample_rate != params.SAMPLE_RATE:
        if resample.output_length(len(x), sample_rate, params.SAMPLE_RATE) < 1:
            return np.zeros((0, params.EXAMPLE_FRAMES, params.NUM_MEL_BANDS), np.float32)
        x = resample.resample(x, sample_rate, params.SAMPLE_RATE)
    n = num_examples(len(x))
    if n == 0:
        return np.zeros((0, params.EXAMPLE_FRAMES, params.NUM_MEL_BANDS), np.float32)
    # Frames past the last whole example are dropped by the reference; skip computing them.
    used = (n - 1) * params.EXAMPLE_HOP_FRAMES + params.EXAMPLE_FRAMES
    mel = log_mel(x, max_frames=used)
    starts = np.arange(n) * params.EXAMPLE_HOP_FRAMES
    return mel[starts[:, None] + np.arange(params.EXAMPLE_FRAMES)].astype(np.float32)


# How far a clip's decoded length may differ from the segment its name gives (codec padding is ~50 ms).
LENGTH_TOLERANCE_SECONDS = 0.5


def audio_to_examples(source, name: str | None = None, expected_seconds: float | None = None) -> np.ndarray:
    """An audio file (path or bytes) -> float32 [n, 96, 64] examples with n >= 1.

    Raises ``audio.AudioDecodeError`` for input that cannot be decoded (see ``audio.decode_audio``),
    with reason ``too-short`` for audio under 0.975 s, which gives no example, and, given
    ``expected_seconds`` (the segment's end - start), with ``too-long`` as soon as the audio runs more than
    LENGTH_TOLERANCE_SECONDS past it (decoding stops there, so memory stays bounded). Shorter audio is
    legitimate (a segment at the end of a video: ~2% of released segments have fewer than 10 frames);
    callers compare ``len(examples)`` with the segment and say so.
    """
    from transforms.core.vggish import audio
    cap = None if expected_seconds is None else expected_seconds + LENGTH_TOLERANCE_SECONDS
    samples, rate = audio.decode_audio(source, name=name, max_seconds=cap)
    examples = waveform_to_examples(samples, rate)
    if len(examples) == 0:
        raise audio.AudioDecodeError(audio._describe(source, name), audio.TOO_SHORT,
                                     f'{len(samples)} samples at {rate} Hz = {len(samples) / rate:.3f} s; '
                                     f'one example needs {params.MIN_SAMPLES / params.SAMPLE_RATE} s')
    return examples
