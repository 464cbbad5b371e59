"""ffmpeg cutting and mono FLAC encoding on local files, checked sample by sample."""
import subprocess
import wave

import numpy as np
import pytest

from tests.download import media_files
from transforms.core.download import media, outcome


def test_find_ffmpeg_runs():
    out = subprocess.run([media.find_ffmpeg(), '-hide_banner', '-version'], capture_output=True, check=True)
    assert out.stdout.startswith(b'ffmpeg version')


def test_pan_filter_averages_any_channel_count():
    assert media.pan_filter(1) is None
    assert media.pan_filter(2) == 'pan=mono|c0<c0+c1'
    assert media.pan_filter(6) == 'pan=mono|c0<c0+c1+c2+c3+c4+c5'
    with pytest.raises(ValueError):
        media.pan_filter(0)


def test_encode_is_the_channel_mean_at_the_native_rate(tmp_path):
    rate, n = 32000, 32000
    rng = np.random.default_rng(0)
    pcm = (rng.uniform(-0.3, 0.3, size=(n, 3)) * 32767).astype(np.int16)
    src = tmp_path / '-three_channels.wav'  # a leading '-' must not be read as an option
    with wave.open(str(src), 'wb') as w:
        w.setnchannels(3)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    out = tmp_path / 'mono.flac'
    media.run_ffmpeg(media.encode_command(media.find_ffmpeg(), str(src), media.audio_channels(str(src)), str(out)),
                     60)
    got, got_rate, channels = media_files.decode(out)
    info = media.inspect_clip(str(out))
    assert (got_rate, channels, info.num_samples, info.sample_rate, info.channels) == (rate, 1, n, rate, 1)
    expected = pcm.astype(np.float64).mean(axis=1) / 32767
    assert np.abs(got - expected).max() < 2 / 32767


@pytest.mark.parametrize('fmt', ['webm', 'm4a', 'mp3'])
def test_decoding_from_the_start_cuts_exactly(tmp_path, sources, fmt):
    src = tmp_path / f'source.{fmt}'
    src.write_bytes(sources[fmt])
    wav = tmp_path / 'cut.wav'
    media.run_ffmpeg(media.cut_command(media.find_ffmpeg(), str(src), 12000, 17000, str(wav), seek_input=False), 60)
    x, rate, _ = media_files.decode(wav)
    assert len(x) == 5 * rate
    assert abs(media_files.start_offset(x, rate, 12)) <= 1  # one sample of phase-estimation noise
    assert media_files.pitch_near_start(x, rate) == pytest.approx(media_files.pitch_at(12), abs=40)
    assert media_files.pitch_near_end(x, rate) == pytest.approx(media_files.pitch_at(16), abs=40)


def test_seeking_in_matroska_lands_within_a_millisecond(tmp_path):
    # Noise, not a tone: its cross-correlation has one peak, so the lag is unambiguous.
    src = tmp_path / 'noise.webm'
    subprocess.run([media.find_ffmpeg(), '-nostdin', '-loglevel', 'error', '-f', 'lavfi', '-i',
                    'anoisesrc=seed=7:r=48000:d=20:a=0.3,lowpass=f=3000', '-c:a', 'libopus', str(src)], check=True)
    cuts = {}
    for seek in (True, False):
        wav = tmp_path / f'cut-{seek}.wav'
        media.run_ffmpeg(media.cut_command(media.find_ffmpeg(), str(src), 12000, 15000, str(wav), seek_input=seek), 60)
        cuts[seek], rate, _ = media_files.decode(wav)
        assert len(cuts[seek]) == 3 * rate
    probe = cuts[True][rate:rate + rate // 5]
    lag = int(np.argmax(np.correlate(cuts[False][rate - 500:rate + rate // 5 + 500], probe, 'valid'))) - 500
    assert abs(lag) <= rate // 1000


def test_verify_rejects_a_clip_off_by_more_than_a_frame():
    ok = media.ClipInfo(48000, 480000 - 1152, 1, 'x')
    media.verify_clip(ok, 0, 10000)
    with pytest.raises(outcome.FetchError, match='expected 10.000 s') as e:
        media.verify_clip(media.ClipInfo(48000, 480000 - 1153, 1, 'x'), 0, 10000)
    assert e.value.status == 'error'
    with pytest.raises(outcome.FetchError):
        media.verify_clip(media.ClipInfo(48000, 480000, 2, 'x'), 0, 10000)
