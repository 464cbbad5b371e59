"""The end-of-run summary printed for a person: what was built, what was rejected, how to query it."""
from __future__ import annotations

import json
import re
import shlex
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
    lines += ['', 'Query it:', *query_commands(output_dir),
              f'Manifest: {layout.join(output_dir, layout.MANIFEST_FILE)}', '']
    return '\n'.join(lines)


def sql_string(value: str) -> str:
    """A SQL string literal (DuckDB): single quotes, embedded ones doubled."""
    return "'" + value.replace("'", "''") + "'"


def py_string(value: str) -> str:
    """A Python string literal in double quotes (JSON's escapes are Python's too)."""
    return json.dumps(value)


def shell_word(text: str) -> str:
    """``text`` as one shell word: in double quotes with \\ " $ ` escaped, which keeps the usual program
    readable; single quotes (shlex) when it holds a '!', which interactive bash expands even in double quotes."""
    if '!' in text:
        return shlex.quote(text)
    return '"' + re.sub(r'([\\"$`])', r'\\\1', text) + '"'


def duckdb_glob(path: str) -> str:
    """``path`` with DuckDB's glob characters matched literally (``[*]``, ``[?]``, ``[[]``)."""
    return re.sub(r'([*?\[])', r'[\1]', path)


def query_commands(output_dir: str) -> list[str]:
    """Shell one-liners that query the output, correct for any path: the path is a SQL string literal
    (quotes doubled, glob characters escaped) inside a Python string literal, and each program is one
    quoted shell word. DuckDB's globs cannot match a backslash, so such a path lists its files in Python."""
    clips = layout.join(output_dir, layout.CLIPS_DIR)
    where, group = "label = '/m/09x0r'", 'split'
    if '\\' in clips:
        duck = (f'import duckdb, glob; files = glob.glob(glob.escape({py_string(clips)}) + "/**/*.parquet", '
                f'recursive=True); print(duckdb.read_parquet(files, hive_partitioning=True).filter({py_string(where)})'
                f'.aggregate("split, count(*)", {py_string(group)}))')
    else:
        sql = (f'SELECT split, count(*) FROM read_parquet({sql_string(duckdb_glob(clips) + "/**/*.parquet")}, '
               f'hive_partitioning = true) WHERE {where} GROUP BY {group}')
        duck = f'import duckdb; print(duckdb.sql({py_string(sql)}))'
    arrow = (f'import pyarrow.dataset as ds; print(ds.dataset({py_string(clips)}, partitioning="hive")'
             '.to_table(filter=ds.field("is_primary")).num_rows)')
    return [f'  {shlex.quote(sys.executable)} -c {shell_word(code)}' for code in (duck, arrow)]
