"""Compute VGGish embeddings for audio files, one .npz per file (no Beam; for a handful to thousands of files).

    python -m pipelines.embed_audio --audio clips/ 'more/*.mp3' one.wav \\
        --vggish_checkpoint vggish_model.ckpt --vggish_pca_params vggish_pca_params.npz --npz_dir out/

Writes NPZ_DIR/<file stem>.npz holding
    log_mel    float32 [n, 96, 64]  the model input, one 0.96 s example per row
    embedding  float32 [n, 128]     raw VGGish output (before PCA)
    quantized  uint8   [n, 128]     PCA + 8-bit quantization: the form of the released AudioSet embeddings
A file that cannot be decoded or is shorter than 0.975 s is reported on stderr (file and reason) and skipped.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import logging
import os
import sys
import time

import numpy as np

from pipelines.args import ArgumentParser, is_remote, output_dir_problem
from pipelines.console import format_error, run_cli
from pipelines.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from transforms.core.vggish import audio, frontend
from transforms.core.vggish.model import DEFAULT_BATCH_SIZE

log = logging.getLogger('pipelines.embed_audio')

AUDIO_EXTENSIONS = frozenset({'.wav', '.wave', '.flac', '.mp3', '.m4a', '.aac', '.mp4', '.ogg', '.oga', '.opus',
                              '.webm', '.mka', '.mkv', '.aif', '.aiff', '.wma', '.au'})
EXIT_NOTHING_EMBEDDED = EXIT_FAILED


def expand_inputs(patterns: list[str]) -> list[str]:
    """Files, folders (searched recursively for AUDIO_EXTENSIONS) and globs -> sorted unique file paths."""
    found = set()
    for pattern in patterns:
        if os.path.isdir(pattern):
            for root, _, names in os.walk(pattern):
                found.update(os.path.join(root, n) for n in names
                             if os.path.splitext(n)[1].lower() in AUDIO_EXTENSIONS)
        elif os.path.isfile(pattern):
            found.add(pattern)
        else:
            found.update(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    return sorted(found)


def output_path(npz_dir: str, audio_path: str) -> str:
    return os.path.join(npz_dir, os.path.splitext(os.path.basename(audio_path))[0] + '.npz')


@dataclasses.dataclass
class Report:
    embedded: list[str] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)   # (file, reason and detail)
    examples: int = 0
    seconds: float = 0.0


def _write_npz(path: str, log_mel: np.ndarray, embedding: np.ndarray, quantized: np.ndarray) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:   # written whole, then renamed: a crash never leaves half a file
        np.savez(f, log_mel=log_mel, embedding=embedding, quantized=quantized)
    os.replace(tmp, path)


def embed_files(files: list[str], model, postprocessor, npz_dir: str,
                batch_size: int = DEFAULT_BATCH_SIZE) -> Report:
    """Decodes each file, runs the model over examples pooled across files in batches of about
    ``batch_size``, and writes one .npz per file. Bad files are recorded in the report, not raised."""
    os.makedirs(npz_dir, exist_ok=True)
    report, pending, pending_examples = Report(), [], 0
    start = time.perf_counter()

    def flush():
        nonlocal pending, pending_examples
        if not pending:
            return
        batch = np.concatenate([ex for _, ex in pending])
        embedding = model(batch)
        quantized = postprocessor.quantize(embedding)
        at = 0
        for path, ex in pending:
            n = len(ex)
            _write_npz(output_path(npz_dir, path), ex, embedding[at:at + n], quantized[at:at + n])
            report.embedded.append(path)
            report.examples += n
            at += n
        pending, pending_examples = [], 0

    for path in files:
        try:
            examples = frontend.audio_to_examples(path)
        except audio.AudioDecodeError as e:
            reason = e.reason + (f' ({e.detail})' if e.detail else '')
            report.skipped.append((path, reason))
            print(f'skipped {path}: {reason}', file=sys.stderr)
            continue
        pending.append((path, examples))
        pending_examples += len(examples)
        if pending_examples >= batch_size:
            flush()
    flush()
    report.seconds = time.perf_counter() - start
    return report


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog='python -m pipelines.embed_audio', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1] + '\nExit status: 0 when at least one file was embedded (even if '
               'others were skipped); 1 when none could be; 2 for bad flags, no matching input or weights that '
               'cannot be had; 70 for a bug (with a traceback).')
    parser.add_argument('--audio', nargs='+', action='extend', required=True, metavar='FILE_GLOB_OR_FOLDER',
                        help='audio files, glob patterns (quote them) or folders (searched recursively), several '
                             'after one --audio, repeated, or comma-separated; names may start with "-" '
                             '(YouTube ids do). Any format FFmpeg decodes: wav, flac, mp3, m4a/aac, ogg/opus, '
                             'webm, ...')
    parser.add_argument('--vggish_checkpoint', default=None,
                        help='vggish_model.ckpt: local path, gs:// or https:// (default: the official URL, '
                             'which needs internet). See docs/vggish.md.')
    parser.add_argument('--vggish_pca_params', default=None,
                        help='vggish_pca_params.npz: local path, gs:// or https:// (default: the official URL)')
    parser.add_argument('--npz_dir', required=True, help='output folder (created); one <file stem>.npz per input')
    parser.add_argument('--batch_size', type=int, default=DEFAULT_BATCH_SIZE,
                        help=f'examples per model call, pooled across files (default {DEFAULT_BATCH_SIZE})')
    parser.add_argument('--cache_dir', default=None,
                        help='where downloaded weights are kept (default ~/.cache/audioset-beam/vggish)')
    parser.add_argument('--verbose', action='store_true', help='print tracebacks of expected errors too')
    args = parser.parse_strict(argv)
    args.audio = [p.strip() for a in args.audio for p in a.split(',') if p.strip()]
    if args.batch_size < 1:
        parser.error('--batch_size must be >= 1')
    problem = output_dir_problem(args.npz_dir)
    if problem or is_remote(args.npz_dir):
        parser.error(f'--npz_dir {args.npz_dir}: {problem or "must be a local folder"}')
    args.files = expand_inputs(args.audio)
    if not args.files:
        parser.error(f'no audio files match {args.audio}')
    by_output: dict[str, str] = {}
    for path in args.files:
        out = output_path(args.npz_dir, path)
        if out in by_output:
            parser.error(f'{by_output[out]} and {path} would both be written to {out}; embed them separately')
        by_output[out] = path
    return args


def run(argv: list[str] | None = None) -> int:
    """Parses flags, loads the model once, embeds every file; returns the exit status."""
    args = parse(argv)
    from transforms import vggish_weights
    from transforms.core.vggish.model import load_vggish
    from transforms.core.vggish.postprocess import Postprocessor
    cache = args.cache_dir or vggish_weights.DEFAULT_CACHE_DIR
    try:
        files = vggish_weights.resolve_vggish_weights(args.vggish_checkpoint, args.vggish_pca_params, cache)
    except vggish_weights.WeightsError as e:
        print(format_error(str(e)), file=sys.stderr)
        return EXIT_USAGE
    model = load_vggish(files.checkpoint, batch_size=args.batch_size)
    post = Postprocessor(files.pca_params)
    report = embed_files(args.files, model, post, args.npz_dir, batch_size=args.batch_size)
    rate = report.examples * 0.96 / report.seconds if report.seconds else 0.0
    print(f'embedded {len(report.embedded)} of {len(args.files)} files ({report.examples} examples, '
          f'{report.seconds:.1f} s, {rate:.0f}x real time) into {args.npz_dir}; skipped {len(report.skipped)}',
          file=sys.stderr)
    return EXIT_OK if report.embedded else EXIT_NOTHING_EMBEDDED


def main() -> None:
    run_cli(run)


if __name__ == '__main__':
    main()
