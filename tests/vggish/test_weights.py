"""PCA files, fingerprints, official checksums, and fetching weights (local, cached http, offline)."""
import functools
import http.server
import os
import threading

import numpy as np
import pytest

from transforms import vggish_weights
from transforms.core.vggish import params, postprocess, weights


def test_pca_file_keys_shapes_and_orthogonality(vggish_files, postprocessor):
    with np.load(vggish_files.pca_params) as npz:
        assert sorted(npz.files) == ['pca_eigen_vectors', 'pca_means']
        vectors, means = npz['pca_eigen_vectors'], npz['pca_means']
    assert vectors.shape == (128, 128) and means.shape == (128,)
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(128), atol=1e-12)
    assert np.abs(means).max() < 1.0
    np.testing.assert_array_equal(postprocessor.eigen_vectors, vectors)


def test_means_as_column_vector_are_accepted(tmp_path):
    rng = np.random.default_rng(0)
    vectors, means = np.linalg.qr(rng.normal(size=(128, 128)))[0], rng.normal(size=128)
    flat = weights.write_pca_params(str(tmp_path / 'flat.npz'), vectors, means)
    column = weights.write_pca_params(str(tmp_path / 'column.npz'), vectors, means.reshape(128, 1))
    emb = rng.normal(size=(5, 128)).astype(np.float32)
    a, b = postprocess.Postprocessor(flat), postprocess.Postprocessor(open(column, 'rb').read())
    assert np.array_equal(a.quantize(emb), b.quantize(emb))
    assert a.quantize(emb).dtype == np.uint8


def test_bad_pca_files_raise(tmp_path):
    bad = tmp_path / 'bad.npz'
    np.savez(bad, pca_eigen_vectors=np.eye(128))
    with pytest.raises(postprocess.PcaParamsError, match='pca_means'):
        postprocess.Postprocessor(str(bad))
    np.savez(bad, pca_eigen_vectors=np.eye(64), pca_means=np.zeros(128))
    with pytest.raises(postprocess.PcaParamsError, match='shape'):
        postprocess.Postprocessor(str(bad))
    (tmp_path / 'junk.npz').write_bytes(b'junk')
    with pytest.raises(postprocess.PcaParamsError):
        postprocess.Postprocessor(str(tmp_path / 'junk.npz'))


def test_fingerprint_is_sha256_of_both_files(tmp_path, vggish_files):
    import hashlib
    fp = weights.fingerprint(vggish_files.checkpoint, vggish_files.pca_params)
    with open(vggish_files.checkpoint, 'rb') as c, open(vggish_files.pca_params, 'rb') as p:
        assert fp == hashlib.sha256(c.read() + p.read()).hexdigest()
    other = weights.write_pca_params(str(tmp_path / 'pca.npz'), np.eye(128), np.zeros(128))
    assert weights.fingerprint(vggish_files.checkpoint, other) != fp


def test_official_files_are_recognized_and_checked(tmp_path):
    assert weights.official_name(params.OFFICIAL_PCA_URL) == 'vggish_pca_params.npz'
    assert weights.official_name(None, 291_108_469) == 'vggish_model.ckpt'
    assert weights.official_name('gs://b/mine.npz', 1234) is None
    impostor = tmp_path / 'vggish_pca_params.npz'
    impostor.write_bytes(b'\0' * 73_020)          # the official size, other bytes
    with pytest.raises(weights.WeightsError, match='sha256'):
        weights.verify_official(str(impostor))
    with pytest.raises(weights.WeightsError, match='sha256'):
        vggish_weights.resolve_weights(str(impostor))
    small = tmp_path / 'short.npz'
    small.write_bytes(b'\0' * 100)
    with pytest.raises(weights.WeightsError, match='73,020'):   # official by URL, wrong size
        weights.verify_official(str(small), params.OFFICIAL_PCA_URL)
    assert weights.verify_official(str(small)) is False


def test_local_paths_resolve_as_they_are(vggish_files):
    assert vggish_weights.resolve_weights(vggish_files.checkpoint) == vggish_files.checkpoint
    assert vggish_weights.resolve_weights('file://' + vggish_files.pca_params) == vggish_files.pca_params


def test_missing_weights_say_which_flags_to_pass(tmp_path):
    with pytest.raises(vggish_weights.WeightsUnavailableError) as info:
        vggish_weights.resolve_weights(str(tmp_path / 'nope.ckpt'), str(tmp_path))
    message = str(info.value)
    assert '--vggish_checkpoint' in message and '--vggish_pca_params' in message
    assert 'python -m pipelines.make_vggish_weights' in message and params.OFFICIAL_CHECKPOINT_URL in message


def test_unreachable_url_is_a_clear_error(tmp_path):
    with pytest.raises(vggish_weights.WeightsUnavailableError, match='--vggish_checkpoint'):
        vggish_weights.resolve_weights('http://127.0.0.1:9/vggish_model.ckpt', str(tmp_path / 'cache'))
    assert not any(p.is_file() for p in (tmp_path / 'cache').rglob('*'))     # nothing half-written kept


def test_http_download_is_cached(tmp_path):
    served = tmp_path / 'served'
    served.mkdir()
    pca = weights.write_pca_params(str(served / 'my_pca.npz'), np.eye(128), np.zeros(128))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f'http://127.0.0.1:{server.server_address[1]}/my_pca.npz'
    try:
        local = vggish_weights.resolve_weights(url, str(tmp_path / 'cache'))
    finally:
        server.shutdown()
        server.server_close()
    assert open(local, 'rb').read() == open(pca, 'rb').read()
    assert vggish_weights.resolve_weights(url, str(tmp_path / 'cache')) == local   # server gone: cache
    os.remove(pca)
    assert postprocess.Postprocessor(local).means.shape == (128,)


def test_gcs_files_and_v2_prefixes_download_once(tmp_path):
    from tests.gcs import gcs_emulator
    served = tmp_path / 'served'
    pca = weights.write_pca_params(str(served / 'pca.npz'), np.eye(128), np.zeros(128))
    small = {'vggish/conv1/biases': np.arange(64, dtype=np.float32)}
    weights.write_checkpoint(small, str(served / 'v2' / 'model.ckpt'), fmt=weights.V2)
    cache = str(tmp_path / 'cache')
    with gcs_emulator(tmp_path) as client:
        bucket = client.create_bucket('weights')
        bucket.blob('vggish/pca.npz').upload_from_filename(pca)
        for part in (served / 'v2').iterdir():
            bucket.blob(f'vggish/v2/{part.name}').upload_from_filename(str(part))
        local_pca = vggish_weights.resolve_weights('gs://weights/vggish/pca.npz', cache)
        prefix = vggish_weights.resolve_weights('gs://weights/vggish/v2/model.ckpt', cache)
        with pytest.raises(vggish_weights.WeightsUnavailableError, match='--vggish_pca_params'):
            vggish_weights.resolve_weights('gs://weights/vggish/missing.npz', cache)
    assert open(local_pca, 'rb').read() == open(pca, 'rb').read()
    import tensorflow as tf
    np.testing.assert_array_equal(tf.train.load_checkpoint(prefix).get_tensor('vggish/conv1/biases'),
                                  small['vggish/conv1/biases'])
    # The emulator is gone: both now come from the cache.
    assert vggish_weights.resolve_weights('gs://weights/vggish/pca.npz', cache) == local_pca
    assert vggish_weights.resolve_weights('gs://weights/vggish/v2/model.ckpt', cache) == prefix
