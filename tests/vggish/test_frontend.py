"""The fast front end and postprocess against a plain-numpy oracle written from docs' spec, step by step."""
import functools
import math

import numpy as np
import pytest
import resampy

from tests.vggish import signals
from transforms.core.vggish import audio, frontend
from transforms.core.vggish.postprocess import quantize

# ---------------------------------------------------------------- the oracle: loops and the spec's formulas


@functools.lru_cache(maxsize=1)
def oracle_mel_matrix():
    def mel(f):
        return 1127.0 * math.log(1.0 + f / 700.0)
    centers = [mel(8000.0 * k / 256) for k in range(257)]
    lo, hi = mel(125.0), mel(7500.0)
    edges = [lo + (hi - lo) * i / 65 for i in range(66)]
    m = np.zeros((257, 64))
    for k in range(1, 257):          # the DC row stays zero
        for i in range(64):
            l, c, u = edges[i], edges[i + 1], edges[i + 2]
            m[k, i] = max(0.0, min((centers[k] - l) / (c - l), (u - centers[k]) / (u - c)))
    return m


def oracle_examples(samples, rate):
    """samples float64 [N] or [N, channels] -> float32 [n, 96, 64], exactly as the spec words it."""
    x = np.asarray(samples, np.float64)
    if x.ndim == 2:
        x = np.mean(x, axis=1)
    if rate != 16000:
        x = resampy.resample(x, rate, 16000)
    n_frames = 1 + (len(x) - 400) // 160 if len(x) >= 400 else 0
    window = np.array([0.5 - 0.5 * math.cos(2 * math.pi * k / 400) for k in range(400)])
    mel = oracle_mel_matrix()
    rows = []
    for f in range(n_frames):
        spectrum = np.abs(np.fft.rfft(x[160 * f:160 * f + 400] * window, 512))
        rows.append(np.log(spectrum @ mel + 0.01))
    examples = [np.array(rows[96 * e:96 * e + 96]) for e in range(len(rows) // 96)]
    if not examples:
        return np.zeros((0, 96, 64), np.float32)
    return np.array(examples, np.float32)


def oracle_quantize(embedding, eigen_vectors, means):
    pca = (np.asarray(embedding, np.float64) - np.reshape(means, -1)) @ np.asarray(eigen_vectors).T
    out = np.zeros(pca.shape, np.uint8)
    for idx, v in np.ndenumerate(pca):
        out[idx] = math.floor((min(2.0, max(-2.0, v)) + 2.0) * 255.0 / 4.0)
    return out


def assert_log_mel_close(ours, expected):
    assert ours.shape == expected.shape and ours.dtype == np.float32
    diff = np.abs(ours.astype(np.float64) - expected)
    assert diff.max() <= 1e-2 and diff.mean() <= 5e-4, (diff.max(), diff.mean())


def assert_bytes_close(ours, expected):
    d = np.abs(ours.astype(int) - expected.astype(int))
    assert d.max() <= 1 and np.mean(d == 0) >= 0.99, (d.max(), np.mean(d == 0))


# ---------------------------------------------------------------- tests


def test_mel_matrix_matches_oracle_and_tensorflow():
    import tensorflow as tf
    ours = frontend.mel_matrix()
    assert ours.shape == (257, 64) and not ours[0].any()
    np.testing.assert_allclose(ours, oracle_mel_matrix(), rtol=0, atol=1e-12)
    tf_matrix = tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125.0, 7500.0, dtype=tf.float64).numpy()
    np.testing.assert_allclose(ours, tf_matrix, rtol=0, atol=1e-10)


def test_window_is_periodic_hann():
    w = frontend.periodic_hann()
    assert w[0] == 0.0 and w[200] == 1.0 and w[399] > 0  # periodic: no second zero at the end
    assert not np.allclose(w, np.hanning(400))


@pytest.mark.parametrize('rate', signals.RATES)
@pytest.mark.parametrize('kind', ['sine', 'chirp', 'noise'])
def test_arrays_match_oracle(rate, kind, vggish_model, postprocessor):
    for channels in (1, 2):
        x = signals.signal(kind, rate, 2.0, channels, seed=rate)
        ours = frontend.waveform_to_examples(x, rate)
        expected = oracle_examples(x, rate)
        assert len(ours) == 2
        assert_log_mel_close(ours, expected)
        # And through the same network to bytes: our postprocess vs the oracle's.
        embedding = vggish_model(np.concatenate([ours, expected.astype(np.float32)]))
        assert_bytes_close(postprocessor.quantize(embedding[:2]),
                           oracle_quantize(embedding[2:], postprocessor.eigen_vectors, postprocessor.means))


@pytest.mark.parametrize('rate', signals.RATES)
def test_int16_wav_files_match_oracle(rate, tmp_path):
    for channels in (1, 2):
        for kind in ('sine', 'chirp', 'noise'):
            path = tmp_path / f'{kind}_{channels}.wav'
            signals.write_wav_int(path, signals.to_int16(signals.signal(kind, rate, 1.2, channels)), rate)
            ref_samples, ref_rate = signals.read_wav_int16(path)   # the oracle's own reader
            samples, got_rate = audio.decode_audio(str(path))
            assert got_rate == ref_rate == rate
            np.testing.assert_array_equal(samples, ref_samples.mean(axis=1))
            ours = frontend.audio_to_examples(str(path))
            assert_log_mel_close(ours, oracle_examples(ref_samples, rate))


@pytest.mark.parametrize('rate', [16000, 44100])
def test_float_wav_files_match_oracle(rate, tmp_path):
    for channels in (1, 2):
        x = signals.signal('chirp', rate, 1.2, channels).astype(np.float32)
        path = tmp_path / f'float_{channels}.wav'
        signals.write_wav_float(path, x, rate)
        samples, got_rate = audio.decode_audio(str(path))
        assert got_rate == rate
        np.testing.assert_array_equal(samples, x.astype(np.float64).reshape(len(x), -1).mean(axis=1))
        assert_log_mel_close(frontend.audio_to_examples(path.read_bytes(), name='x.wav'),
                             oracle_examples(x.astype(np.float64), rate))


def test_example_count_edges_at_16k():
    x = signals.signal('noise', 16000, 2.0)
    assert frontend.waveform_to_examples(x[:15599], 16000).shape == (0, 96, 64)
    assert frontend.waveform_to_examples(x[:15600], 16000).shape == (1, 96, 64)
    assert frontend.waveform_to_examples(x[:15600 + 96 * 160 - 1], 16000).shape == (1, 96, 64)
    assert frontend.waveform_to_examples(x[:15600 + 96 * 160], 16000).shape == (2, 96, 64)
    assert frontend.num_examples(160000) == 10 and frontend.num_frames(160000) == 998
    for n in (0, 1, 399, 400):
        assert frontend.waveform_to_examples(np.zeros(n), 16000).shape == (0, 96, 64)
    assert len(oracle_examples(x[:15599], 16000)) == 0 and len(oracle_examples(x[:15600], 16000)) == 1


def test_example_count_edges_at_44k():
    # 42,997.5 input samples make 15,600 at 16 kHz: resampy truncates the output length.
    x = signals.signal('noise', 44100, 1.0)
    assert len(resampy.resample(x[:42997], 44100, 16000)) == 15599
    assert len(resampy.resample(x[:42998], 44100, 16000)) == 15600
    assert frontend.waveform_to_examples(x[:42997], 44100).shape == (0, 96, 64)
    assert frontend.waveform_to_examples(x[:42998], 44100).shape == (1, 96, 64)
    assert frontend.waveform_to_examples(x[:2], 44100).shape == (0, 96, 64)   # resamples to nothing


def test_integer_arrays_are_scaled_like_the_reference():
    x = signals.to_int16(signals.signal('sine', 16000, 1.0, 2))
    np.testing.assert_array_equal(frontend.waveform_to_examples(x, 16000),
                                  frontend.waveform_to_examples(x / 32768.0, 16000))


def test_quantize_truncates_and_clips():
    v = np.array([[-5.0, -2.0, -1e-9, 0.0, 0.015, 1.0, 1.99, 2.0, 7.0]])
    assert quantize(v).tolist() == [[0, 0, 127, 127, 128, 191, 254, 255, 255]]
    rng = np.random.default_rng(0)
    emb = rng.normal(0, 1.0, (50, 128))
    vectors, means = np.linalg.qr(rng.normal(size=(128, 128)))[0], rng.normal(0, 0.1, 128)
    assert np.array_equal(quantize((emb - means) @ vectors.T), oracle_quantize(emb, vectors, means))
