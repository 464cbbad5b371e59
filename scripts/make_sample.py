"""Copies the bundled sample (``sample_data/``) from the shared AudioSet material, by a fixed rule.

The sample is real data, byte for byte: every 14th ``bal_train`` and ``eval`` shard in sorted order,
plus the ``bal_train`` shards that hold the ten bundled clips, both ``unbal_train`` shards, the eval and
balanced segment CSVs, the class index, the ontology and the ten clips. Run from the repository root:

    python scripts/make_sample.py [--source ../shared/data/audioset]
"""
import argparse
import hashlib
import pathlib
import re
import shutil

EVERY = 14
ROOT = pathlib.Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--source', default=str(ROOT.parent / 'shared' / 'data' / 'audioset'))
    parser.add_argument('--dest', default=str(ROOT / 'sample_data'))
    args = parser.parse_args()
    src, dest = pathlib.Path(args.source), pathlib.Path(args.dest)
    if dest.exists():
        shutil.rmtree(dest)
    clips = sorted((src / 'audio' / 'bal_train').glob('*.mp3'))
    clip_shards = {c.name[:2] + '.tfrecord' for c in clips}
    lines = ['| file | bytes | sha256 |', '|---|---|---|']
    copied = []
    for split in ('bal_train', 'eval', 'unbal_train'):
        shards = sorted((src / 'features' / split).glob('*.tfrecord'))
        for i, shard in enumerate(shards):
            keep = split == 'unbal_train' or i % EVERY == 0 or (split == 'bal_train' and shard.name in clip_shards)
            if keep:
                copied.append((shard, dest / 'features' / split / shard.name))
    for name in ('ontology.json', 'class_labels_indices.csv', 'mid_to_display_name.tsv'):
        copied.append((src / name, dest / name))
    for name in ('eval_segments.csv', 'balanced_train_segments.csv'):
        copied.append((src / name, dest / 'segments' / name))
    for clip in clips:
        copied.append((clip, dest / 'audio' / 'bal_train' / clip.name))
    for s, d in copied:
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(s, d)
        if d.suffix != '.tfrecord':
            digest = hashlib.sha256(d.read_bytes()).hexdigest()
            lines.append(f'| {d.relative_to(dest)} | {d.stat().st_size} | {digest} |')
    # The clips are named <YTID>.mp3; their segments are listed in the source's SOURCES.md table.
    segments = re.findall(r'^\| audio/bal_train/(\S+)\.mp3 \| \d+ \| [\d.]+ s \| (\d+)-(\d+) \|',
                          (src / 'SOURCES.md').read_text(), re.M)
    manifest = dest / 'audio' / 'bal_train' / 'manifest.csv'
    manifest.write_text('path,YTID,start,end\n' + ''.join(f'{y}.mp3,{y},{a},{b}\n' for y, a, b in sorted(segments)))
    lines.append(f'| {manifest.relative_to(dest)} | {manifest.stat().st_size} | '
                 f'{hashlib.sha256(manifest.read_bytes()).hexdigest()} |')
    n_shards = sum(1 for _, d in copied if d.suffix == '.tfrecord')
    (dest / 'SOURCES.md').write_text(
        '# Bundled sample: where it comes from\n\n'
        'Real AudioSet files (Google, CC BY 4.0: https://research.google.com/audioset/), unmodified byte\n'
        'copies made by `scripts/make_sample.py` from the project\'s shared AudioSet material, whose own\n'
        'SOURCES.md names the public repository, commit and checksum of every file.\n\n'
        f'- `features/`: {n_shards} released VGGish embedding shards (every {EVERY}th bal_train and eval\n'
        '  shard in sorted order, the bal_train shards holding the bundled clips, both unbal_train shards).\n'
        '- `segments/`: the released eval and balanced_train segment CSVs, complete.\n'
        '  `unbalanced_train_segments.csv` is not bundled (100 MB): the unbal_train shards are labelled from\n'
        '  their own label indices, and the manifest says so.\n'
        '- `ontology.json`, `class_labels_indices.csv`: the released ontology and class index.\n'
        '- `mid_to_display_name.tsv`: AudioSet Strong\'s vocabulary (456 MIDs and names; the strong-label\n'
        '  TSVs themselves are not in the shared material: tests generate them in their format).\n'
        '- `audio/bal_train/`: ten real bal_train clips (MP3, 44.1 kHz stereo, re-encoded by a downloader)\n'
        '  whose released embeddings are in `features/bal_train/`; `manifest.csv` (made by the script from the\n'
        '  source\'s SOURCES.md) gives each clip\'s segment, for `--audio_manifest`.\n\n' + '\n'.join(lines) + '\n')
    print(f'copied {len(copied)} files ({n_shards} shards) to {dest}')


if __name__ == '__main__':
    main()
