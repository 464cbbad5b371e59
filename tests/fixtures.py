"""Generators of small inputs in the release formats, for tests (fixtures are made, never hand-edited)."""
from __future__ import annotations

import pathlib
import shutil

import numpy as np

from transforms.core import sequence_example, tfrecord

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = ROOT / 'sample_data'
SHARED = ROOT.parent / 'shared' / 'data' / 'audioset'


def record(video_id: str, start: float, labels, frames: int = 10, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    emb = rng.integers(0, 256, size=(frames, 128), dtype=np.uint8)
    return sequence_example.encode(video_id, start, start + frames, labels, emb)


def write_shard(path: pathlib.Path, payloads) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tfrecord.frame_all(payloads))
    return path


def copy_sample(dest: pathlib.Path, splits=('eval', 'bal_train', 'unbal_train'), shards_per_split: int = 1000,
                csvs=True) -> pathlib.Path:
    """A copy of (part of) the bundled sample in the release layout, to damage in tests."""
    for split in splits:
        for shard in sorted((SAMPLE / 'features' / split).glob('*.tfrecord'))[:shards_per_split]:
            target = dest / 'features' / split / shard.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shard, target)
    (dest / 'segments').mkdir(parents=True, exist_ok=True)
    if csvs:
        for csv in (SAMPLE / 'segments').glob('*.csv'):
            shutil.copyfile(csv, dest / 'segments' / csv.name)
    for name in ('ontology.json', 'class_labels_indices.csv'):
        shutil.copyfile(SAMPLE / name, dest / name)
    return dest


def build_args(inputs: pathlib.Path, output: pathlib.Path, *extra: str) -> list[str]:
    return ['--features_dir', str(inputs / 'features'), '--segments_dir', str(inputs / 'segments'),
            '--class_index', str(inputs / 'class_labels_indices.csv'), '--ontology', str(inputs / 'ontology.json'),
            '--output_dir', str(output), *extra]
