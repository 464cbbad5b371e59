"""Fetch VGGish weights to local files: a local path as is, ``gs://`` (Beam FileSystems) or ``https://``
downloaded once into a cache folder, official files checked against their published sha256.

    files = resolve_vggish_weights('gs://my-bucket/vggish_model.ckpt', 'gs://my-bucket/vggish_pca_params.npz')
    model = load_vggish(files.checkpoint); post = Postprocessor(files.pca_params)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import urllib.error
import urllib.request
import uuid

from transforms.core.vggish import params
from transforms.core.vggish.weights import WeightFiles, WeightsError, official_name, verify_official

DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser('~'), '.cache', 'audioset-beam', 'vggish')
_TIMEOUT_S = 60
_CHUNK = 1 << 22

HOW_TO_GET_WEIGHTS = f"""\
VGGish needs two files, passed as --vggish_checkpoint and --vggish_pca_params (local paths, gs:// or https://):
  {params.OFFICIAL_CHECKPOINT_URL}
      {params.OFFICIAL_FILES[params.CHECKPOINT_NAME][0]:,} bytes, sha256 {params.OFFICIAL_FILES[params.CHECKPOINT_NAME][1]}
  {params.OFFICIAL_PCA_URL}
      {params.OFFICIAL_FILES[params.PCA_PARAMS_NAME][0]:,} bytes, sha256 {params.OFFICIAL_FILES[params.PCA_PARAMS_NAME][1]}
Without internet, copy them from a machine that has it (or to a gs:// bucket your workers can read).
For tests and offline demos only, random weights in the same formats (embeddings mean nothing):
  python -m pipelines.make_vggish_weights --out_dir /tmp/vggish_random
  then --vggish_checkpoint /tmp/vggish_random/vggish_model.ckpt --vggish_pca_params /tmp/vggish_random/vggish_pca_params.npz"""


class WeightsUnavailableError(WeightsError):
    """Weights that cannot be fetched (offline, missing, access denied); the message says what to pass."""


def _is_remote(uri: str) -> bool:
    return '://' in uri


def _stamp_path(path: str) -> str:
    return path + '.verified.json'


def _verified_recently(path: str) -> bool:
    """True when a stamp records this exact file (size, mtime) as verified, so 290 MB is not rehashed."""
    try:
        with open(_stamp_path(path)) as f:
            stamp = json.load(f)
        st = os.stat(path)
        return (stamp.get('size'), stamp.get('mtime_ns')) == (st.st_size, st.st_mtime_ns) and stamp.get('sha256') in {
            digest for _, digest in params.OFFICIAL_FILES.values()}
    except (OSError, ValueError, AttributeError):
        return False


def _verify_and_stamp(path: str, uri: str | None) -> None:
    if _verified_recently(path) or not verify_official(path, uri):
        return
    st = os.stat(path)
    name = official_name(uri, st.st_size)
    try:
        with open(_stamp_path(path), 'w') as f:
            json.dump({'size': st.st_size, 'mtime_ns': st.st_mtime_ns,
                       'sha256': params.OFFICIAL_FILES[name][1]}, f)
    except OSError:
        pass   # a read-only folder: verify again next time


def _open_remote(uri: str):
    if uri.startswith(('http://', 'https://')):
        return urllib.request.urlopen(uri, timeout=_TIMEOUT_S)
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems
    return FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED)


def _remote_exists(uri: str) -> bool:
    if uri.startswith(('http://', 'https://')):
        return True   # try it; a 404 is reported by the download
    from apache_beam.io.filesystems import FileSystems
    return FileSystems.exists(uri)


def _download(uri: str, dest: str) -> None:
    """``uri`` -> ``dest`` through a unique temporary name, so concurrent workers never see half a file."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = f'{dest}.{uuid.uuid4().hex}.part'
    try:
        with _open_remote(uri) as src, open(tmp, 'wb') as out:
            shutil.copyfileobj(src, out, _CHUNK)
        os.replace(tmp, dest)
    except (urllib.error.URLError, socket.timeout, ConnectionError) as e:
        raise WeightsUnavailableError(f'cannot download {uri}: {e}\n{HOW_TO_GET_WEIGHTS}') from e
    except Exception as e:  # Beam's GCS client raises its own types (auth, not found, ...)
        raise WeightsUnavailableError(f'cannot read {uri}: {type(e).__name__}: {e}\n{HOW_TO_GET_WEIGHTS}') from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _cache_path(uri: str, cache_dir: str) -> str:
    # One folder per URI (short hash), so two buckets' vggish_model.ckpt never overwrite each other.
    key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return os.path.join(cache_dir, key, uri.rstrip('/').rsplit('/', 1)[-1])


def resolve_weights(uri: str, cache_dir: str = DEFAULT_CACHE_DIR) -> str:
    """A weight file's location -> a local path to read it from.

    Local paths are returned as they are (a V2 checkpoint may be given by its prefix); ``gs://`` and
    ``https://`` files are downloaded once into ``cache_dir`` and reused. A file that is official by URL
    or by size is checked against the published sha256 (raises ``WeightsError`` on mismatch). Raises
    ``WeightsUnavailableError``, whose message says which flags to pass, when the file cannot be had.
    """
    if not uri:
        raise WeightsUnavailableError(f'no VGGish weights given.\n{HOW_TO_GET_WEIGHTS}')
    if not _is_remote(uri) or uri.startswith('file://'):
        path = uri[len('file://'):] if uri.startswith('file://') else uri
        if os.path.isfile(path):
            _verify_and_stamp(path, None)
            return path
        if os.path.isfile(path + '.index'):
            return path
        raise WeightsUnavailableError(f'no such file: {path}\n{HOW_TO_GET_WEIGHTS}')
    dest = _cache_path(uri, cache_dir)
    if os.path.isfile(dest) or os.path.isfile(dest + '.index'):
        if os.path.isfile(dest):
            _verify_and_stamp(dest, uri)
        return dest
    if not uri.startswith(('http://', 'https://')) and not _remote_exists(uri):
        if _remote_exists(uri + '.index'):   # a V2 checkpoint prefix: fetch its index and data shards
            from apache_beam.io.filesystems import FileSystems
            parts = [m.path for m in FileSystems.match([uri + '.*'])[0].metadata_list]
            parts.sort(key=lambda p: p.endswith('.index'))   # index last: its presence marks a complete copy
            for part in parts:
                _download(part, os.path.join(os.path.dirname(dest), part.rsplit('/', 1)[-1]))
            return dest
        raise WeightsUnavailableError(f'no such file: {uri}\n{HOW_TO_GET_WEIGHTS}')
    _download(uri, dest)
    if official_name(uri, os.path.getsize(dest)) is not None:
        try:
            _verify_and_stamp(dest, uri)
        except WeightsError:
            os.remove(dest)    # do not keep a bad download in the cache
            raise
    return dest


def resolve_vggish_weights(checkpoint_uri: str | None = None, pca_params_uri: str | None = None,
                           cache_dir: str = DEFAULT_CACHE_DIR) -> WeightFiles:
    """Both files, local. ``None`` means the official URL (which needs internet)."""
    return WeightFiles(resolve_weights(checkpoint_uri or params.OFFICIAL_CHECKPOINT_URL, cache_dir),
                       resolve_weights(pca_params_uri or params.OFFICIAL_PCA_URL, cache_dir))
