"""Decoding every supported container to float64 mono, and the clear errors for bad input."""
import pathlib

import numpy as np
import pytest

from tests.fixtures import SAMPLE
from tests.vggish import signals
from transforms.core.vggish import audio, frontend

BUNDLED = sorted((SAMPLE / 'audio' / 'bal_train').glob('*.mp3'))


def _best_correlation(a, b):
    """Peak normalized cross-correlation over all lags (codecs delay the signal)."""
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    c = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)
    return float(c.max() / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_integer_widths_are_scaled_properly(tmp_path):
    x = signals.signal('sine', 16000, 0.5, 2)
    v24 = np.clip(np.round(x * 2 ** 23), -2 ** 23, 2 ** 23 - 1).astype(np.int32)
    signals.write_wav_int(tmp_path / 's24.wav', v24, 16000, width=3)
    samples, rate = audio.decode_audio(str(tmp_path / 's24.wav'))
    assert rate == 16000
    np.testing.assert_array_equal(samples, (v24 / 2.0 ** 23).mean(axis=1))
    v32 = np.clip(np.round(x * 2 ** 31), -2 ** 31, 2 ** 31 - 1).astype(np.int32)
    signals.write_wav_int(tmp_path / 's32.wav', v32, 16000, width=4)
    samples, _ = audio.decode_audio(tmp_path / 's32.wav')
    np.testing.assert_array_equal(samples, (v32 / 2.0 ** 31).mean(axis=1))


@pytest.mark.parametrize('name,container,codec,fmt,rate,lossless', [
    ('a.flac', 'flac', 'flac', 's16', 22050, True),
    ('a.mp3', 'mp3', 'libmp3lame', 'fltp', 44100, False),
    ('a.m4a', 'ipod', 'aac', 'fltp', 48000, False),
    ('a.aac', 'adts', 'aac', 'fltp', 44100, False),
    ('a.ogg', 'ogg', 'libopus', 'flt', 48000, False),
    ('a.opus', 'opus', 'libopus', 'flt', 48000, False),
    ('a.webm', 'webm', 'libopus', 'flt', 48000, False),
])
def test_containers_decode(tmp_path, name, container, codec, fmt, rate, lossless):
    x = signals.signal('sine', rate, 1.5, 2)
    path = tmp_path / name
    signals.encode(path, x, rate, container, codec, fmt)
    for source in (str(path), path.read_bytes()):
        samples, got_rate = audio.decode_audio(source, name=name)
        assert got_rate == rate and samples.dtype == np.float64 and samples.ndim == 1
        mono = x.mean(axis=1)
        if lossless:
            np.testing.assert_array_equal(samples, signals.to_int16(x).astype(np.float64).mean(axis=1) / 32768)
        else:   # codecs add delay and noise; the tone must survive
            assert abs(len(samples) - len(mono)) < 0.1 * rate
            assert _best_correlation(samples, mono) > 0.98
    assert frontend.audio_to_examples(str(path)).shape == (1, 96, 64)


def test_bundled_clips_decode_to_ten_examples():
    import av
    assert len(BUNDLED) == 10
    for path in BUNDLED:
        with av.open(str(path)) as c:
            assert c.streams.audio[0].codec_context.layout.nb_channels == 2
        samples, rate = audio.decode_audio(str(path))
        assert rate == 44100 and 9.3 < len(samples) / rate < 10.5
        examples = frontend.audio_to_examples(str(path))
        expected = 9 if path.name == '5FsrNEeqd6Q.mp3' else 10
        assert examples.shape == (expected, 96, 64) and np.isfinite(examples).all()


def _raises(reason, source, **kw):
    with pytest.raises(audio.AudioDecodeError) as info:
        frontend.audio_to_examples(source, **kw)
    assert info.value.reason == reason
    return info.value


def test_bad_input_raises_clear_errors(tmp_path):
    corrupt = tmp_path / 'corrupt.mp3'
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    e = _raises(audio.UNREADABLE, str(corrupt))
    assert e.path == str(corrupt) and 'corrupt.mp3' in str(e)

    truncated = tmp_path / 'truncated.mp3'
    truncated.write_bytes(BUNDLED[0].read_bytes()[:300])
    with pytest.raises(audio.AudioDecodeError) as info:
        frontend.audio_to_examples(str(truncated))
    assert info.value.reason in (audio.UNREADABLE, audio.EMPTY, audio.TOO_SHORT)

    empty = tmp_path / 'empty.wav'
    empty.write_bytes(b'')
    _raises(audio.EMPTY, str(empty))
    _raises(audio.EMPTY, b'', name='empty bytes')

    no_samples = tmp_path / 'no_samples.wav'
    signals.write_wav_int(no_samples, np.zeros((0, 1), np.int16), 16000)
    _raises(audio.EMPTY, str(no_samples))

    x = signals.signal('sine', 16000, 2.0).astype(np.float32)
    x[1000] = np.nan
    nan = tmp_path / 'nan.wav'
    signals.write_wav_float(nan, x, 16000)
    e = _raises(audio.NON_FINITE, str(nan))
    assert '1 of 32000' in str(e)

    short = tmp_path / 'short.wav'
    signals.write_wav_int(short, signals.to_int16(signals.signal('sine', 16000, 1.0)[:15599]), 16000)
    e = _raises(audio.TOO_SHORT, str(short))
    assert '0.975' in str(e)

    _raises(audio.UNREADABLE, str(tmp_path / 'missing.wav'))


def test_error_pickles_with_its_fields():
    import pickle
    e = pickle.loads(pickle.dumps(audio.AudioDecodeError('gs://b/x.mp3', audio.TOO_SHORT, '0.5 s')))
    assert (e.path, e.reason, e.detail) == ('gs://b/x.mp3', audio.TOO_SHORT, '0.5 s')


def test_no_audio_stream(tmp_path):
    import av
    path = tmp_path / 'video.webm'
    with av.open(str(path), 'w', format='webm') as out:
        stream = out.add_stream('libvpx', rate=10) if 'libvpx' in av.codecs_available else None
        if stream is None:
            pytest.skip('no VP8 encoder in this PyAV build')
        stream.width, stream.height, stream.pix_fmt = 32, 32, 'yuv420p'
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format='rgb24')
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    _raises(audio.NO_AUDIO, str(path))
    assert pathlib.Path(path).stat().st_size > 0


def test_decoded_length_must_match_the_segment(tmp_path):
    """A 10-minute file named as a 10 s segment is rejected without being decoded past the cap; a shorter
    one is legitimate (a segment at the end of a video) and gives fewer examples."""
    short, long_, right = tmp_path / 'short.wav', tmp_path / 'long.wav', tmp_path / 'right.wav'
    signals.write_wav_int(short, signals.to_int16(signals.signal('sine', 16000, 2.5)), 16000)
    signals.write_wav_int(long_, signals.to_int16(signals.signal('sine', 16000, 600.0)), 16000)
    signals.write_wav_int(right, signals.to_int16(signals.signal('sine', 16000, 10.02)), 16000)
    with pytest.raises(audio.AudioDecodeError) as e:
        frontend.audio_to_examples(str(long_), expected_seconds=10.0)
    assert e.value.reason == 'too-long' and str(long_) in str(e.value)
    assert len(frontend.audio_to_examples(str(short), expected_seconds=10.0)) == 2
    assert len(frontend.audio_to_examples(str(right), expected_seconds=10.0)) == 10
