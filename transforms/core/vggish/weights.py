"""VGGish weight files: random stand-ins in the official formats, fingerprints, and official checksums.

The official ``vggish_model.ckpt`` is a TF1 checkpoint in the V1 single-file format (written by a
``tf.train.Saver`` with ``write_version=1``), read by variable name; ``vggish_pca_params.npz`` holds
``pca_eigen_vectors`` [128, 128] and ``pca_means``. ``write_random_weights`` writes both formats with
random values, so tests and offline demos exercise the same loading code as production. Fetching files
(gs://, https://) lives in ``transforms.vggish_weights``; this module only touches local files.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import os

import numpy as np

from transforms.core.vggish import params

CHUNK = 1 << 22
V1, V2 = 'v1', 'v2'
# Scale of fc2's random weights: keeps raw embeddings of real audio around unit spread, so the
# quantized bytes of the random model use the whole 0-255 range rather than saturating.
_FC2_GAIN = 0.2
_BIAS_STD = 0.05
_PCA_MEANS_STD = 0.1


class WeightsError(ValueError):
    """Weight files that are missing, unreadable, or not what they claim to be (exit status 2: the flags
    name weights that cannot be had; the command line reads ``exit_code``)."""
    exit_code = 2


@dataclasses.dataclass(frozen=True)
class WeightFiles:
    checkpoint: str     # V1: the file; V2: the prefix (files prefix.index, prefix.data-*)
    pca_params: str


def random_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """{checkpoint variable name: float32 array} with He-normal convolutions and hidden layers, small
    random biases, and a damped fc2, so activations stay O(1) on log-mel input."""
    rng = np.random.default_rng(seed)
    out = {}
    for scope, kind, n_in, _ in params.LAYERS:
        shape_w = params.variable_shapes()[f'{scope}/weights']
        fan_in = n_in * (params.CONV_KERNEL ** 2 if kind == 'conv' else 1)
        std = np.sqrt(2.0 / fan_in) * (_FC2_GAIN if scope == params.LAYERS[-1][0] else 1.0)
        out[f'{scope}/weights'] = (rng.standard_normal(shape_w, dtype=np.float32) * np.float32(std))
        out[f'{scope}/biases'] = rng.normal(0.0, _BIAS_STD, shape_w[-1]).astype(np.float32)
    return out


def random_pca(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(eigen_vectors float64 [128, 128] orthogonal, means float64 [128] small)."""
    rng = np.random.default_rng(seed + 1)
    q, r = np.linalg.qr(rng.standard_normal((params.EMBEDDING_SIZE, params.EMBEDDING_SIZE)))
    q *= np.sign(np.diag(r))       # a uniformly random orthogonal matrix, not QR's sign convention
    return q, rng.normal(0.0, _PCA_MEANS_STD, params.EMBEDDING_SIZE)


def write_checkpoint(weights: dict[str, np.ndarray], path: str, fmt: str = V1) -> str:
    """Writes a TF1 checkpoint readable by ``tf.train.load_checkpoint`` and by the reference's Saver.

    ``fmt='v1'`` writes one file at ``path``, as the official ``vggish_model.ckpt``; ``'v2'`` writes
    ``path.index`` and ``path.data-00000-of-00001``. Returns ``path``.
    """
    import tensorflow as tf  # deferred: importing TensorFlow costs seconds
    names = sorted(weights)
    tensors = [tf.constant(np.asarray(weights[n], np.float32)) for n in names]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if fmt == V1:
        tf.raw_ops.Save(filename=path, tensor_names=names, data=tensors)
    elif fmt == V2:
        tf.raw_ops.SaveV2(prefix=path, tensor_names=names, shape_and_slices=[''] * len(names), tensors=tensors)
    else:
        raise ValueError(f'fmt must be {V1!r} or {V2!r}, got {fmt!r}')
    return path


def write_pca_params(path: str, eigen_vectors: np.ndarray, means: np.ndarray) -> str:
    """Writes the .npz with the official keys. Returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'wb') as f:   # a file object, so numpy does not append '.npz' to the name
        np.savez(f, **{params.PCA_EIGEN_VECTORS_NAME: np.asarray(eigen_vectors, np.float64),
                       params.PCA_MEANS_NAME: np.asarray(means, np.float64)})
    return path


def write_random_weights(out_dir: str, seed: int = 0, fmt: str = V1) -> WeightFiles:
    """``out_dir/vggish_model.ckpt`` and ``out_dir/vggish_pca_params.npz`` with random values (~290 MB).

    Same seed, same bytes. For tests and offline demos only: the embeddings mean nothing.
    """
    ckpt = write_checkpoint(random_weights(seed), os.path.join(out_dir, params.CHECKPOINT_NAME), fmt)
    pca = write_pca_params(os.path.join(out_dir, params.PCA_PARAMS_NAME), *random_pca(seed))
    return WeightFiles(ckpt, pca)


def checkpoint_files(checkpoint: str) -> list[str]:
    """The files that make up a checkpoint: the V1 file itself, or a V2 prefix's index and data shards."""
    if os.path.isfile(checkpoint):
        return [checkpoint]
    parts = sorted(glob.glob(glob.escape(checkpoint) + '.index') + glob.glob(glob.escape(checkpoint) + '.data-*'))
    if not parts:
        raise WeightsError(f'no checkpoint at {checkpoint} (neither a file nor a V2 prefix with .index)')
    return parts


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(CHUNK), b''):
            h.update(block)
    return h.hexdigest()


def fingerprint(checkpoint: str, pca_params: str) -> str:
    """sha256 (hex) over the checkpoint's bytes then the PCA file's bytes: names the model that made
    computed embeddings (the ``model_fingerprint`` column). File names and locations do not matter."""
    h = hashlib.sha256()
    for path in checkpoint_files(checkpoint) + [pca_params]:
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(CHUNK), b''):
                h.update(block)
    return h.hexdigest()


def official_name(uri: str | None = None, size: int | None = None) -> str | None:
    """Which official file this is meant to be (``vggish_model.ckpt`` / ``vggish_pca_params.npz``), judged
    by its URL, or failing that by its exact byte size; None when it is neither."""
    if uri in (params.OFFICIAL_CHECKPOINT_URL, params.OFFICIAL_PCA_URL):
        return uri.rsplit('/', 1)[1]
    for name, (official_size, _) in params.OFFICIAL_FILES.items():
        if size == official_size:
            return name
    return None


def verify_official(path: str, uri: str | None = None) -> bool:
    """Checks the sha256 of a file that claims (by URL or size) to be an official one.

    Returns True when it is official and intact, False when it does not claim to be official; raises
    ``WeightsError`` when it claims to be but its bytes differ (a truncated download, say).
    """
    name = official_name(uri, os.path.getsize(path))
    if name is None:
        return False
    size, digest = params.OFFICIAL_FILES[name]
    actual_size = os.path.getsize(path)
    if actual_size != size:
        raise WeightsError(f'{path}: {actual_size:,} bytes, but the official {name} has {size:,}; '
                           f'delete it and download again')
    actual = sha256_file(path)
    if actual != digest:
        raise WeightsError(f'{path}: sha256 {actual}, but the official {name} has {digest}; '
                           f'delete it and download again')
    return True
