"""Raw VGGish embeddings -> the released 8-bit form: PCA (with whitening), clip to [-2, 2], truncate to uint8.

    pca   = (embedding - pca_means) @ pca_eigen_vectors.T          (float64)
    bytes = uint8(floor((clip(pca, -2, 2) + 2) * 255 / 4))           0.0 -> 127; truncation, not rounding

Rounding instead of truncating would change about half the bytes, so the cast is kept exactly.
"""
from __future__ import annotations

import io
import os
from typing import BinaryIO, Union

import numpy as np

from transforms.core.vggish import params

PcaSource = Union[str, os.PathLike, bytes, BinaryIO]


class PcaParamsError(ValueError):
    """A PCA parameter file without the official keys or shapes."""


def load_pca_params(source: PcaSource) -> tuple[np.ndarray, np.ndarray]:
    """An .npz (path, bytes or file object) -> (eigen_vectors float64 [128, 128], means float64 [128]).

    Accepts means stored as [128] or [128, 1] (the official file's shape).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    try:
        with np.load(source, allow_pickle=False) as npz:
            keys = set(npz.files)
            missing = {params.PCA_EIGEN_VECTORS_NAME, params.PCA_MEANS_NAME} - keys
            if missing:
                raise PcaParamsError(f'PCA file lacks {sorted(missing)} (has {sorted(keys)})')
            vectors = np.asarray(npz[params.PCA_EIGEN_VECTORS_NAME], np.float64)
            means = np.asarray(npz[params.PCA_MEANS_NAME], np.float64)
    except PcaParamsError:
        raise
    except (OSError, ValueError) as e:  # not an .npz at all
        raise PcaParamsError(f'cannot read PCA parameters: {e}') from e
    size = params.EMBEDDING_SIZE
    if vectors.shape != (size, size):
        raise PcaParamsError(f'{params.PCA_EIGEN_VECTORS_NAME} has shape {vectors.shape}, expected {(size, size)}')
    if means.shape not in ((size,), (size, 1)):
        raise PcaParamsError(f'{params.PCA_MEANS_NAME} has shape {means.shape}, expected ({size},) or ({size}, 1)')
    if not (np.isfinite(vectors).all() and np.isfinite(means).all()):
        raise PcaParamsError('PCA parameters hold NaN or infinity')
    return vectors, means.reshape(size)


def quantize(values: np.ndarray) -> np.ndarray:
    """float [..., 128] PCA output -> uint8: clip to [-2, 2], scale to [0, 255], truncate."""
    clipped = np.clip(values, params.QUANTIZE_MIN, params.QUANTIZE_MAX)
    scaled = (clipped - params.QUANTIZE_MIN) * (255.0 / (params.QUANTIZE_MAX - params.QUANTIZE_MIN))
    return scaled.astype(np.uint8)   # values are in [0, 255], so the cast truncates (floors)


class Postprocessor:
    """PCA + quantization with one parameter file, loaded once.

    >>> post = Postprocessor('vggish_pca_params.npz')                       # doctest: +SKIP
    >>> post.quantize(embeddings)          # float32 [n, 128] -> uint8 [n, 128]   # doctest: +SKIP
    """

    def __init__(self, pca_params: PcaSource):
        self.eigen_vectors, self.means = load_pca_params(pca_params)

    def pca(self, embeddings: np.ndarray) -> np.ndarray:
        """float [n, 128] raw embeddings -> float64 [n, 128] PCA-whitened values (before clipping)."""
        e = np.asarray(embeddings)
        if e.ndim != 2 or e.shape[1] != params.EMBEDDING_SIZE:
            raise ValueError(f'expected embeddings of shape [n, {params.EMBEDDING_SIZE}], got {e.shape}')
        return (e.astype(np.float64) - self.means) @ self.eigen_vectors.T

    def quantize(self, embeddings: np.ndarray) -> np.ndarray:
        """float [n, 128] raw embeddings -> uint8 [n, 128], the released AudioSet embedding bytes."""
        return quantize(self.pca(embeddings))

    postprocess = quantize  # the reference's name
