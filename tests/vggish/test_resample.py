"""The polyphase resampler gives resampy 0.4.3 kaiser_best's numbers."""
import numpy as np
import pytest
import resampy

from transforms.core.vggish import resample


def _rel_error(ours, expected):
    return np.max(np.abs(ours - expected)) / max(np.max(np.abs(expected)), 1e-300)


@pytest.mark.parametrize('rate', [8000, 11025, 22050, 24000, 32000, 44100, 48000, 96000])
def test_matches_resampy(rate):
    rng = np.random.default_rng(rate)
    for n in (rate * 3 + 17, 15599, 1000, 7):
        x = rng.standard_normal(n)
        expected = resampy.resample(x, rate, 16000)
        ours = resample.resample(x, rate, 16000)
        assert ours.shape == expected.shape and ours.dtype == np.float64
        assert _rel_error(ours, expected) < 1e-9


def test_same_rate_is_a_copy_and_odd_rates_fall_back():
    x = np.random.default_rng(0).standard_normal(5000)
    y = resample.resample(x, 16000, 16000)
    assert np.array_equal(x, y) and y is not x
    assert resample._plan(44056, 16000) is None            # gcd 8: a 2000-phase table, not worth it
    np.testing.assert_array_equal(resample.resample(x, 44056, 16000), resampy.resample(x, 44056, 16000))


def test_too_short_and_bad_rates_raise_like_resampy():
    with pytest.raises(ValueError):
        resample.resample(np.zeros(2), 44100, 16000)
    with pytest.raises(ValueError):
        resample.resample(np.zeros(100), 0, 16000)


def test_one_by_one_path_equals_resampy():
    # Outputs whose float position lands across a sample boundary from their phase are recomputed one by
    # one; none occur for common rates and lengths, so check that path directly at arbitrary outputs.
    rng = np.random.default_rng(1)
    for rate in (44100, 22050, 11025):
        x = rng.standard_normal(rate * 2)
        expected = resampy.resample(x, rate, 16000)
        t = np.concatenate([[0, 1, len(expected) - 1], rng.integers(0, len(expected), 50)])
        rate_info = resample._plan(rate, 16000).rate
        np.testing.assert_allclose(resample._direct(x, rate_info, t), expected[t], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize('rate', [11025, 22050, 44100, 88200])
def test_irregular_outputs_found_by_the_cheap_check_equal_the_full_scan(rate):
    n_out = resample.output_length(rate * 60 + 3, rate, 16000)
    np.testing.assert_array_equal(resample._irregular(rate, 16000, n_out),
                                  resample._irregular_everywhere(rate, 16000, n_out))
