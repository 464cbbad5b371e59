"""Write random VGGish weights in the official file formats, for tests and offline demos.

    python -m pipelines.make_vggish_weights --out_dir /tmp/vggish_random [--seed 0]

Writes OUT_DIR/vggish_model.ckpt (TF1 checkpoint, V1 single file like the official one, ~290 MB) and
OUT_DIR/vggish_pca_params.npz (pca_eigen_vectors [128, 128] orthogonal, pca_means [128]), then prints
their fingerprint. The same seed writes the same bytes. Embeddings from these weights mean nothing: use
them to exercise the pipeline where the official files (docs/vggish.md) cannot be downloaded.
"""
from __future__ import annotations

import argparse
import sys

from transforms.core.vggish import weights


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m pipelines.make_vggish_weights',
                                     description=__doc__.split('\n\n')[0],
                                     epilog='Exit status: 0 when both files are written.')
    parser.add_argument('--out_dir', required=True, help='folder to write the two files into (created)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    parser.add_argument('--format', choices=(weights.V1, weights.V2), default=weights.V1,
                        help='checkpoint format: v1 = one file, as the official vggish_model.ckpt (default); '
                             'v2 = vggish_model.ckpt.index + .data-00000-of-00001')
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error('--seed must be >= 0')
    return args


def run(argv: list[str] | None = None) -> weights.WeightFiles:
    args = parse(argv)
    files = weights.write_random_weights(args.out_dir, seed=args.seed, fmt=args.format)
    print(f'checkpoint:  {files.checkpoint}')
    print(f'pca params:  {files.pca_params}')
    print(f'fingerprint: {weights.fingerprint(files.checkpoint, files.pca_params)}')
    print(f'use: --vggish_checkpoint {files.checkpoint} --vggish_pca_params {files.pca_params}')
    return files


def main() -> None:
    run(sys.argv[1:])


if __name__ == '__main__':
    main()
