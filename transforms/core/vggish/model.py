"""The VGGish network in TensorFlow 2 (no tf-slim, no sessions), reading the official TF1 checkpoint by name.

Input float32 [n, 96, 64] log-mel examples; output float32 [n, 128] raw embeddings (fc2 before any
activation, as the reference's 'vggish/embedding'). Layers: six 3x3 SAME convolutions + ReLU with 2x2
max-pools after conv1, conv2, conv3_2 and conv4_2; flatten in NHWC row-major order (6*4*512 = 12288);
fc1_1, fc1_2 (4096, ReLU); fc2 (128, linear). Weights: see ``params.variable_shapes()``.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from transforms.core.vggish import params

DEFAULT_BATCH_SIZE = 64


class CheckpointError(ValueError):
    """A checkpoint that is missing VGGish variables or holds them with the wrong shape or type."""


def _tf():
    import tensorflow as tf  # deferred: importing TensorFlow costs seconds
    return tf


def read_checkpoint(checkpoint_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A TF1 checkpoint (V1 single file such as the official ``vggish_model.ckpt``, or a V2 prefix) ->
    {variable name: float32 array} for the 18 VGGish variables, checked against ``params.variable_shapes()``.

    Other variables in the checkpoint (e.g. a classifier head or a global step) are ignored.
    """
    tf = _tf()
    path = os.fspath(checkpoint_path)
    try:
        reader = tf.train.load_checkpoint(path)
    except (tf.errors.OpError, ValueError) as e:
        raise CheckpointError(f'cannot read a TensorFlow checkpoint at {path}: {e}') from e
    shapes = reader.get_variable_to_shape_map()
    wanted = params.variable_shapes()
    missing = sorted(set(wanted) - set(shapes))
    if missing:
        raise CheckpointError(f'{path} lacks VGGish variables {missing}; it holds {sorted(shapes)[:20]}')
    weights = {}
    for name, shape in wanted.items():
        if tuple(shapes[name]) != shape:
            raise CheckpointError(f'{path}: {name} has shape {tuple(shapes[name])}, expected {shape}')
        value = reader.get_tensor(name)
        if value.dtype != np.float32:
            raise CheckpointError(f'{path}: {name} is {value.dtype}, expected float32')
        weights[name] = value
    return weights


class VGGish:
    """The network with fixed weights; call it on numpy examples.

    >>> model = load_vggish('vggish_model.ckpt')                               # doctest: +SKIP
    >>> model(examples)              # float32 [n, 96, 64] -> float32 [n, 128]  # doctest: +SKIP

    Batches of ``batch_size`` run through one traced ``tf.function`` (oneDNN kernels on x86); an empty
    input returns [0, 128] without touching TensorFlow, whose oneDNN convolutions crash on empty batches.
    """

    def __init__(self, weights: Mapping[str, np.ndarray], batch_size: int = DEFAULT_BATCH_SIZE):
        if batch_size < 1:
            raise ValueError(f'batch_size must be positive, got {batch_size}')
        tf = _tf()
        self.batch_size = batch_size
        shapes = params.variable_shapes()
        for name, shape in shapes.items():
            if name not in weights or tuple(np.shape(weights[name])) != shape:
                raise CheckpointError(f'weights lack {name} {shape}')
        self._variables = {name: tf.Variable(np.asarray(weights[name], np.float32), trainable=False,
                                             name=name.replace('/', '_'))
                           for name in shapes}
        self._forward = tf.function(
            self._graph, input_signature=[tf.TensorSpec([None, params.EXAMPLE_FRAMES, params.NUM_MEL_BANDS],
                                                        tf.float32)])

    def _graph(self, examples):
        tf = _tf()
        v = self._variables
        net = tf.expand_dims(examples, -1)                     # NHWC, one channel
        for scope, kind, _, _ in params.LAYERS:
            w, b = v[f'{scope}/weights'], v[f'{scope}/biases']
            if kind == 'conv':
                net = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(net, w, strides=1, padding='SAME'), b))
                if scope in params.POOL_AFTER:
                    net = tf.nn.max_pool2d(net, ksize=2, strides=2, padding='SAME')
            else:
                if net.shape.rank == 4:
                    net = tf.reshape(net, [-1, w.shape[0]])    # NHWC row-major, as slim.flatten
                net = tf.nn.bias_add(tf.matmul(net, w), b)
                if scope != params.LAYERS[-1][0]:
                    net = tf.nn.relu(net)
        return net

    def __call__(self, examples: np.ndarray) -> np.ndarray:
        """float32 [n, 96, 64] -> float32 [n, 128] raw embeddings (n may be 0)."""
        x = np.asarray(examples, np.float32)
        if x.ndim != 3 or x.shape[1:] != (params.EXAMPLE_FRAMES, params.NUM_MEL_BANDS):
            raise ValueError(f'expected examples of shape [n, {params.EXAMPLE_FRAMES}, '
                             f'{params.NUM_MEL_BANDS}], got {x.shape}')
        out = np.empty((len(x), params.EMBEDDING_SIZE), np.float32)
        for start in range(0, len(x), self.batch_size):   # never an empty batch
            out[start:start + self.batch_size] = self._forward(x[start:start + self.batch_size]).numpy()
        return out


def load_vggish(checkpoint_path: str | os.PathLike, batch_size: int = DEFAULT_BATCH_SIZE) -> VGGish:
    """Reads the checkpoint (see ``read_checkpoint``) and returns the callable model."""
    return VGGish(read_checkpoint(checkpoint_path), batch_size=batch_size)
