"""The end-of-run summary printed for a person: what was built, what was rejected, how to query it."""
from __future__ import annotations

import sys

import pyarrow as pa
import pyarrow.parquet as pq

from transforms import fileio
from transforms.core import layout


def format_summary(manifest: dict, output_dir: str, top: int = 10) -> str:
    lines = ['', f'AudioSet build complete: {output_dir}', '', 'Segments per split:']
    for split, s in sorted(manifest['splits'].items()):
        lines.append(f'  {split:<17} {s["segments_out"]:>9,} segments  {s["clip_rows"]:>9,} rows  '
                     f'{s["partitions"]:>4} classes  {s["dead_letters"]:>6,} dead letters  '
                     f'(labels from {manifest["inputs"]["labels_from"].get(split, "?")})')
    for split, c in sorted(manifest.get('csv', {}).items()):
        lines.append(f'  {split} CSV: {c.get("rows_matched", 0):,} of {c.get("rows_in", 0):,} rows have embeddings; '
                     f'{c.get("rows_missing_features", 0):,} listed in missing_features/')
    audio = manifest.get('audio')
    if audio:
        per_split = ', '.join(f'{k}: {v.get("segments_out", 0):,}'
                              for k, v in sorted(audio.get('computed_by_split', {}).items()))
        lines.append(f'  audio: {audio.get("files_in", 0):,} files, {audio.get("embedded", 0):,} embedded with '
                     f'VGGish, {audio.get("reused", 0):,} reused from an earlier run; clips added: {per_split or 0}')
    classes_path = layout.join(output_dir, layout.CLASSES_FILE)
    classes = pq.read_table(pa.BufferReader(fileio.read_bytes(classes_path))).to_pylist()
    total = {c['mid']: sum(v for k, v in c.items() if k.startswith('segments_') and 'descendants' not in k)
             for c in classes}
    names = {c['mid']: c['name'] for c in classes}
    lines += ['', f'Top {top} classes (segments, all splits):']
    for mid, n in sorted(total.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f'  {n:>9,}  {names[mid]} ({mid})')
    dl = manifest['dead_letters']
    lines += ['', f'Dead letters: {dl["total"]:,}' + (f' -> {dl["path"]}' if dl['total'] else '')]
    for reason, n in sorted(dl['by_stage_and_reason'].items()):
        lines.append(f'  {n:>7,}  {reason}')
    glob = layout.join(output_dir, layout.CLIPS_DIR, '**', '*.parquet')
    lines += ['', 'Query it:',
              f'  {sys.executable} -c "import duckdb; print(duckdb.sql(\\"SELECT split, count(*) FROM '
              f'read_parquet(\'{glob}\', hive_partitioning=true) WHERE label = \'/m/09x0r\' GROUP BY split\\"))"',
              f'  {sys.executable} -c "import pyarrow.dataset as ds; print(ds.dataset(\'{layout.join(output_dir, layout.CLIPS_DIR)}\', '
              f'partitioning=\'hive\').to_table(filter=ds.field(\'is_primary\')).num_rows)"',
              f'Manifest: {layout.join(output_dir, layout.MANIFEST_FILE)}', '']
    return '\n'.join(lines)
