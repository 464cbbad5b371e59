"""Trains a small Keras MLP on a built dataset and prints AudioSet's metrics beside the label-frequency
baseline: mean-pooled (masked), dequantized VGGish frames of balanced_train in, 527 sigmoids out, training
examples drawn with the dataset's sampling weights; evaluated on eval.

    python -m examples.train_classifier --dataset out            # a build's output dir or an --output_root

Weighting (``--weighting``): ``sampler`` (default) draws each epoch's examples with replacement, with
probability proportional to ``sampling_weight``, as AST/PSLA's WeightedRandomSampler does; ``loss`` instead
scales each example's loss by its weight (normalized to mean 1); ``none`` ignores the weights. Seeded and
deterministic: the same dataset and flags print the same figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from audioset_beam import evaluate, frequency_baseline, load_split, mean_pool


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dataset', required=True, help='output dir or --output_root of a build (local or gs://)')
    p.add_argument('--train_split', default='balanced_train')
    p.add_argument('--eval_split', default='eval')
    p.add_argument('--weighting', choices=('sampler', 'loss', 'none'), default='sampler')
    p.add_argument('--min_quality', type=float, default=None,
                   help='train and evaluate only classes with label quality >= this (needs --label_quality '
                        'at build time)')
    p.add_argument('--epochs', type=int, default=40)
    p.add_argument('--batch_size', type=int, default=128)
    p.add_argument('--hidden', type=int, default=512)
    p.add_argument('--dropout', type=float, default=0.3)
    p.add_argument('--learning_rate', type=float, default=1e-3)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--metrics_json', help='also write the figures here')
    return p.parse_args(argv)


def build_model(tf, num_classes: int, hidden: int, dropout: float, learning_rate: float):
    model = tf.keras.Sequential([
        tf.keras.Input((128,)),
        tf.keras.layers.Dense(hidden, activation='relu'),
        tf.keras.layers.Dropout(dropout),
        tf.keras.layers.Dense(hidden, activation='relu'),
        tf.keras.layers.Dropout(dropout),
        tf.keras.layers.Dense(num_classes, activation='sigmoid'),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate), loss='binary_crossentropy')
    return model


def train_and_evaluate(args) -> dict:
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    import tensorflow as tf
    tf.keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()

    train = load_split(args.dataset, args.train_split, min_quality=args.min_quality)
    test = load_split(args.dataset, args.eval_split, min_quality=args.min_quality)
    x_train, x_test = mean_pool(train.frames, train.mask), mean_pool(test.frames, test.mask)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6  # standardized with training statistics
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    y_train = train.targets
    labelled = np.isfinite(train.weights) & (y_train.sum(axis=1) > 0)
    x_train, y_train, weights = x_train[labelled], y_train[labelled], train.weights[labelled]

    model = build_model(tf, y_train.shape[1], args.hidden, args.dropout, args.learning_rate)
    # Every epoch's example order is drawn up front (seeded numpy), and one fit streams it: a weighted sampler
    # draws with replacement in proportion to the sampling weights, the others take a permutation per epoch.
    rng = np.random.default_rng(args.seed)
    n = len(x_train)
    if args.weighting == 'sampler':
        order = rng.choice(n, size=n * args.epochs, replace=True, p=weights / weights.sum())
    else:
        order = np.concatenate([rng.permutation(n) for _ in range(args.epochs)])
    sample_weight = weights / weights.mean() if args.weighting == 'loss' else np.ones(n)
    x, y, sw = (tf.constant(a) for a in (x_train, y_train, sample_weight.astype(np.float32)))
    batches = tf.data.Dataset.from_tensor_slices(order.astype(np.int32)).batch(args.batch_size).map(
        lambda i: (tf.gather(x, i), tf.gather(y, i), tf.gather(sw, i)))
    model.fit(batches, epochs=1, shuffle=False, verbose=0)
    scores = model.predict(x_test, batch_size=1024, verbose=0)
    return {
        'dataset': str(args.dataset), 'train_segments': int(len(x_train)), 'eval_segments': int(len(x_test)),
        'classes': len(train.class_mids), 'weighting': args.weighting, 'epochs': args.epochs, 'seed': args.seed,
        'model': evaluate(scores, test.targets),
        'baseline': evaluate(np.asarray(frequency_baseline(y_train, len(x_test))), test.targets),
    }


def report(m: dict) -> str:
    lines = [f"trained on {m['train_segments']:,} {('segments')}, evaluated on {m['eval_segments']:,} "
             f"({m['model']['classes']} classes with positives in eval); weighting: {m['weighting']}",
             f"{'':24}{'mAP':>8}{'AUC':>8}{'d-prime':>9}"]
    for name, key in (('MLP', 'model'), ('label-frequency baseline', 'baseline')):
        r = m[key]
        lines.append(f"{name:24}{r['mAP']:8.3f}{r['AUC']:8.3f}{r['d_prime']:9.3f}")
    return '\n'.join(lines)


def main(argv=None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    metrics = train_and_evaluate(args)
    print(report(metrics))
    if args.metrics_json:
        with open(args.metrics_json, 'w') as f:
            json.dump(metrics, f, indent=2)
    return metrics


if __name__ == '__main__':
    main()
