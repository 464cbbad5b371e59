"""Seconds per 10-s 44.1 kHz stereo clip, decoded audio -> quantized VGGish bytes: reference-style vs ours.

    python -m benchmarks.bench_vggish [--clips 40] [--repeats 3] [--vggish_checkpoint P --vggish_pca_params Q]

(a) reference style: ``resampy.resample`` + a straightforward numpy front end (mel_features' steps) + the
    network as a TF1 graph run in a ``tf.compat.v1.Session`` (as vggish_slim), batches of 64 examples;
(b) ours: ``waveform_to_examples`` (polyphase resampler, vectorized STFT/mel) + ``VGGish`` (TF2
    tf.function) + ``Postprocessor``.
Both read the same checkpoint (default: random weights written to a temporary folder). Input: the bundled
bal_train MP3s (real 44.1 kHz stereo audio), decoded once and cycled. Each stage is timed ``--repeats``
times over all clips and the fastest run kept (the machine may be shared). Also prints how well (a) and (b)
agree on these clips.
"""
from __future__ import annotations

import argparse
import glob
import os
import tempfile
import time

import numpy as np

from transforms.core.vggish import audio, frontend, params
from transforms.core.vggish.model import load_vggish
from transforms.core.vggish.postprocess import Postprocessor
from transforms.core.vggish.weights import write_random_weights

SAMPLE_AUDIO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            'sample_data', 'audio', 'bal_train')
BATCH = 64


def reference_examples(samples: np.ndarray, rate: int) -> np.ndarray:
    """The reference front end step by step (resampy, per-band mel loop), for timing and agreement."""
    import resampy
    data = samples if samples.ndim == 1 else samples.mean(axis=1)
    if rate != params.SAMPLE_RATE:
        data = resampy.resample(data, rate, params.SAMPLE_RATE)
    window_length, hop = params.STFT_WINDOW_SAMPLES, params.STFT_HOP_SAMPLES
    n = 1 + int(np.floor((len(data) - window_length) / hop))
    frames = np.lib.stride_tricks.as_strided(data, shape=(n, window_length),
                                             strides=(data.strides[0] * hop, data.strides[0]))
    window = 0.5 - (0.5 * np.cos(2 * np.pi / window_length * np.arange(window_length)))
    spectrogram = np.abs(np.fft.rfft(frames * window, params.FFT_LENGTH))
    to_mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)
    bins_mel = to_mel(np.linspace(0.0, params.SAMPLE_RATE / 2.0, params.NUM_SPECTROGRAM_BINS))
    edges = np.linspace(to_mel(params.MEL_MIN_HZ), to_mel(params.MEL_MAX_HZ), params.NUM_MEL_BANDS + 2)
    mel = np.empty((params.NUM_SPECTROGRAM_BINS, params.NUM_MEL_BANDS))
    for i in range(params.NUM_MEL_BANDS):
        lo, c, hi = edges[i:i + 3]
        mel[:, i] = np.maximum(0.0, np.minimum((bins_mel - lo) / (c - lo), (hi - bins_mel) / (hi - c)))
    mel[0, :] = 0.0
    log_mel = np.log(np.dot(spectrogram, mel) + params.LOG_OFFSET)
    k = 1 + int(np.floor((len(log_mel) - params.EXAMPLE_FRAMES) / params.EXAMPLE_HOP_FRAMES))
    return np.stack([log_mel[j * params.EXAMPLE_HOP_FRAMES:j * params.EXAMPLE_HOP_FRAMES + params.EXAMPLE_FRAMES]
                     for j in range(k)]).astype(np.float32)


class ReferenceSession:
    """The network built the TF1 way (graph, placeholder, Saver restore by name, Session.run)."""

    def __init__(self, checkpoint: str):
        import tensorflow as tf
        v1 = tf.compat.v1
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.features = v1.placeholder(tf.float32, [None, params.EXAMPLE_FRAMES, params.NUM_MEL_BANDS])
            net = tf.reshape(self.features, [-1, params.EXAMPLE_FRAMES, params.NUM_MEL_BANDS, 1])
            variables = []
            for scope, kind, _, _ in params.LAYERS:
                shape = params.variable_shapes()[f'{scope}/weights']
                with v1.variable_scope(scope):
                    w = v1.get_variable('weights', shape, tf.float32)
                    b = v1.get_variable('biases', shape[-1:], tf.float32)
                variables += [w, b]
                if kind == 'conv':
                    net = tf.nn.relu(tf.nn.conv2d(net, w, 1, 'SAME') + b)
                    if scope in params.POOL_AFTER:
                        net = tf.nn.max_pool2d(net, 2, 2, 'SAME')
                else:
                    if net.shape.rank == 4:
                        net = tf.reshape(net, [-1, shape[0]])
                    net = tf.matmul(net, w) + b
                    if scope != params.LAYERS[-1][0]:
                        net = tf.nn.relu(net)
            self.embedding = net
            self.session = v1.Session(graph=self.graph)
            v1.train.Saver(variables).restore(self.session, checkpoint)

    def __call__(self, examples: np.ndarray) -> np.ndarray:
        return np.concatenate([self.session.run(self.embedding, {self.features: examples[i:i + BATCH]})
                               for i in range(0, len(examples), BATCH)])


def reference_postprocess(embedding: np.ndarray, pca_path: str) -> np.ndarray:
    p = np.load(pca_path)
    pca = np.dot(p[params.PCA_EIGEN_VECTORS_NAME], (embedding.T - p[params.PCA_MEANS_NAME].reshape(-1, 1))).T
    return ((np.clip(pca, -2.0, 2.0) + 2.0) * (255.0 / 4.0)).astype(np.uint8)


def best_of(repeats: int, fn):
    best, result = float('inf'), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--clips', type=int, default=40, help='clips per timed run (bundled MP3s, cycled)')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--vggish_checkpoint')
    parser.add_argument('--vggish_pca_params')
    args = parser.parse_args()
    if bool(args.vggish_checkpoint) != bool(args.vggish_pca_params):
        parser.error('give both --vggish_checkpoint and --vggish_pca_params, or neither')
    if args.vggish_checkpoint:
        bench(args, args.vggish_checkpoint, args.vggish_pca_params)
    else:
        with tempfile.TemporaryDirectory(prefix='bench_vggish_') as tmp:   # ~290 MB, removed after
            files = write_random_weights(tmp)
            bench(args, files.checkpoint, files.pca_params)


def bench(args: argparse.Namespace, checkpoint: str, pca: str) -> None:
    paths = sorted(glob.glob(os.path.join(SAMPLE_AUDIO, '*.mp3')))
    decode_s, decoded = best_of(1, lambda: [audio.decode_audio(p) for p in paths])
    # Stereo as decoded (the front ends downmix); decode_audio returns mono, so decode channels for timing.
    import av
    stereo = []
    for p in paths:
        with av.open(p) as c:
            rate = c.streams.audio[0].rate
            planes = [f.to_ndarray() for f in c.decode(audio=0)]   # fltp: [channels, samples]
        stereo.append((np.concatenate(planes, axis=1).T.astype(np.float64), rate))
    clips = [stereo[i % len(stereo)] for i in range(args.clips)]
    seconds_audio = sum(len(s) / r for s, r in clips)

    ours_model, post = load_vggish(checkpoint, batch_size=BATCH), Postprocessor(pca)
    ref_model = ReferenceSession(checkpoint)
    # Warm up both (tracing, oneDNN primitive creation, resampy's numba compile, filter caches).
    warm = frontend.waveform_to_examples(*clips[0])
    ours_model(np.concatenate([warm] * 7)), ref_model(np.concatenate([warm] * 7))
    reference_examples(*clips[0])

    rows = {}
    t_fe, ref_ex = best_of(args.repeats, lambda: [reference_examples(s, r) for s, r in clips])
    batch = np.concatenate(ref_ex)
    t_model, ref_emb = best_of(args.repeats, lambda: ref_model(batch))
    t_post, ref_q = best_of(args.repeats, lambda: reference_postprocess(ref_emb, pca))
    rows['(a) reference style'] = (t_fe, t_model, t_post)
    o_fe, our_ex = best_of(args.repeats, lambda: [frontend.waveform_to_examples(s, r) for s, r in clips])
    batch_ours = np.concatenate(our_ex)
    o_model, our_emb = best_of(args.repeats, lambda: ours_model(batch_ours))
    o_post, our_q = best_of(args.repeats, lambda: post.quantize(our_emb))
    rows['(b) ours'] = (o_fe, o_model, o_post)

    n = len(clips)
    print(f'{n} clips, {seconds_audio / n:.2f} s of 44.1 kHz stereo each, {len(batch)} examples; '
          f'best of {args.repeats}; {os.cpu_count()} CPUs')
    print(f'decode (PyAV, not in the totals): {decode_s / len(paths):.4f} s per clip')
    print(f'{"":22}{"front end":>11}{"model":>9}{"post":>9}{"total":>9}{"clips/s":>9}   (seconds per clip)')
    for name, (fe, model, pp) in rows.items():
        total = fe + model + pp
        print(f'{name:22}{fe / n:11.4f}{model / n:9.4f}{pp / n:9.5f}{total / n:9.4f}{n / total:9.2f}')
    speed = sum(rows['(a) reference style']) / sum(rows['(b) ours'])
    print(f'speedup end to end: {speed:.2f}x   front end: {t_fe / o_fe:.1f}x   model: {t_model / o_model:.2f}x')
    diff = np.abs(batch - batch_ours)
    rel = np.abs(ref_emb - our_emb).max() / (ref_emb.max() - ref_emb.min())
    qd = np.abs(ref_q.astype(int) - our_q.astype(int))
    print(f'agreement: log-mel max |diff| {diff.max():.2e} (mean {diff.mean():.1e}); raw embedding max |diff| / '
          f'spread {rel:.1e}; quantized bytes equal {np.mean(qd == 0):.2%}, max diff {qd.max()}')


if __name__ == '__main__':
    main()
