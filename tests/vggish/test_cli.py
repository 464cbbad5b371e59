"""The two command lines: make_vggish_weights (through the session fixture) and embed_audio."""
import shutil

import numpy as np
import pytest

from pipelines import embed_audio, make_vggish_weights
from tests.fixtures import SAMPLE
from tests.vggish import signals
from transforms.core.vggish import frontend

CLIP = SAMPLE / 'audio' / 'bal_train' / '5FsrNEeqd6Q.mp3'


def _weights_flags(files):
    return ['--vggish_checkpoint', files.checkpoint, '--vggish_pca_params', files.pca_params]


def test_embed_audio_writes_npz_and_skips_bad_files(tmp_path, vggish_files, vggish_model, postprocessor, capsys):
    src = tmp_path / 'in'
    (src / 'sub').mkdir(parents=True)
    shutil.copyfile(CLIP, src / 'clip.mp3')
    signals.write_wav_int(src / 'sub' / 'tone.wav', signals.to_int16(signals.signal('sine', 22050, 2.5, 2)), 22050)
    (src / 'broken.flac').write_bytes(b'fLaC not really')
    (src / 'notes.txt').write_text('not audio, not picked up from a folder')
    out = tmp_path / 'out'
    status = embed_audio.run(['--audio', str(src), '--npz_dir', str(out), '--batch_size', '4']
                             + _weights_flags(vggish_files))
    assert status == 0
    err = capsys.readouterr().err
    assert 'broken.flac' in err and 'unreadable-audio' in err and 'embedded 2 of 3 files' in err
    assert sorted(p.name for p in out.iterdir()) == ['clip.npz', 'tone.npz']
    with np.load(out / 'clip.npz') as npz:
        log_mel, embedding, quantized = npz['log_mel'], npz['embedding'], npz['quantized']
    assert log_mel.shape == (9, 96, 64) and log_mel.dtype == np.float32
    assert embedding.shape == (9, 128) and embedding.dtype == np.float32
    assert quantized.shape == (9, 128) and quantized.dtype == np.uint8
    np.testing.assert_array_equal(log_mel, frontend.audio_to_examples(str(CLIP)))
    np.testing.assert_allclose(embedding, vggish_model(log_mel), rtol=1e-4, atol=1e-4)
    assert np.abs(postprocessor.quantize(embedding).astype(int) - quantized).max() == 0
    with np.load(out / 'tone.npz') as npz:
        assert npz['quantized'].shape == (2, 128)


def test_embed_audio_fails_only_when_nothing_was_embedded(tmp_path, vggish_files, capsys):
    short = tmp_path / 'short.wav'
    signals.write_wav_int(short, np.zeros(8000, np.int16), 16000)
    status = embed_audio.run(['--audio', str(tmp_path / '*.wav'), '--npz_dir', str(tmp_path / 'o')]
                             + _weights_flags(vggish_files))
    assert status == 1 and 'too-short' in capsys.readouterr().err


def test_embed_audio_usage_errors(tmp_path, vggish_files, capsys):
    with pytest.raises(SystemExit) as info:
        embed_audio.run(['--audio', str(tmp_path / 'none*.wav'), '--npz_dir', str(tmp_path)])
    assert info.value.code == 2
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    for d in 'ab':
        signals.write_wav_int(tmp_path / d / 'x.wav', np.zeros(16000, np.int16), 16000)
    with pytest.raises(SystemExit):   # both would be written to x.npz
        embed_audio.run(['--audio', str(tmp_path / 'a'), str(tmp_path / 'b'), '--npz_dir', str(tmp_path / 'o')])
    assert 'both be written' in capsys.readouterr().err
    status = embed_audio.run(['--audio', str(tmp_path / 'a'), '--npz_dir', str(tmp_path / 'o'),
                              '--vggish_checkpoint', str(tmp_path / 'missing.ckpt'),
                              '--vggish_pca_params', vggish_files.pca_params])
    assert status == 2 and 'make_vggish_weights' in capsys.readouterr().err


def test_help_texts_state_exit_status(capsys):
    for module in (embed_audio, make_vggish_weights):
        with pytest.raises(SystemExit):
            module.parse(['--help'])
        assert 'Exit status' in capsys.readouterr().out


def test_make_vggish_weights_prints_flags_and_fingerprint(vggish_files, monkeypatch, capsys):
    from transforms.core.vggish import weights
    calls = []

    def fake_write(out_dir, seed, fmt):   # the real writer ran once for the session fixture
        calls.append((out_dir, seed, fmt))
        return vggish_files
    monkeypatch.setattr(weights, 'write_random_weights', fake_write)
    assert make_vggish_weights.run(['--out_dir', 'd', '--seed', '3', '--format', 'v2']) == vggish_files
    assert calls == [('d', 3, 'v2')]
    out = capsys.readouterr().out
    assert f'--vggish_checkpoint {vggish_files.checkpoint} --vggish_pca_params {vggish_files.pca_params}' in out
    assert weights.fingerprint(vggish_files.checkpoint, vggish_files.pca_params) in out
    with pytest.raises(SystemExit):
        make_vggish_weights.parse(['--out_dir', 'd', '--seed', '-1'])
