"""The end-of-run summary printed for a person: what was built, what was rejected, how to query it."""
from __future__ import annotations

import json
import re
import shlex
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from audioset_beam import layout
from transforms import fileio


def format_summary(manifest: dict, output_dir: str, top: int = 10) -> str:
    lines = ['', f'AudioSet build complete: {output_dir}', '', 'Segments per split:']
    for split, s in sorted(manifest['splits'].items()):
        lines.append(f'  {split:<17} {s["segments_out"]:>9,} segments  {s["clip_rows"]:>9,} rows  '
                     f'{s["partitions"]:>4} classes  {s["dead_letters"]:>6,} dead letters  '
                     f'(labels from {label_sources(s)})')
        agree, disagree = s.get('labels_agree', 0), s.get('labels_disagree', 0)
        if disagree:
            lines.append(f'    warning: {disagree:,} of {agree + disagree:,} segments '
                         f'({disagree / (agree + disagree):.1%}) have CSV labels that differ from their shard\'s '
                         '(examples: manifest label_disagreement_examples)')
        if s.get('shard_prefix_mismatches'):
            lines.append(f'    note: {s["shard_prefix_mismatches"]:,} records sit in a release-named shard of '
                         'another id prefix (re-sharded input?)')
        if s.get('dead_letters_estimated'):
            lines.append(f'    {s["dead_letters_estimated"]:,} of the dead-lettered records are estimated '
                         '(damaged stretches: bytes skipped / mean record size)')
    for line in manifest.get('splits_not_built') or []:
        lines.append(f'  note: {line} (--features_dir holds no such split: its CSV rows are all in '
                     'missing_features/)')
    leakage = manifest.get('leakage') or {}
    if leakage.get('segments'):
        pairs = ', '.join(f'{k}: {v:,}' for k, v in sorted(leakage.get('by_splits', {}).items()))
        lines.append(f'  warning: {leakage["segments"]:,} segments are in more than one split ({pairs}): '
                     'train/eval leakage (manifest leakage.examples)')
    for split, c in sorted(manifest.get('csv', {}).items()):
        lines.append(f'  {split} CSV: {c.get("rows_matched", 0):,} of {c.get("rows_in", 0):,} rows have embeddings; '
                     f'{c.get("rows_missing_features", 0):,} listed in missing_features/')
        if c.get('rows_short_of_header'):
            lines.append(f'    warning: {c["rows_short_of_header"]:,} rows fewer than its header declares '
                         f'({c.get("rows_declared_in_header", 0):,}): a truncated file?')
    for split, s in sorted((manifest.get('strong') or {}).items()):
        if split in ('train', 'eval') and isinstance(s, dict) and 'segments' in s:
            after_end = s.get('events_after_segment_end', 0)
            lines.append(f'  strong {split}: {s["segments_joined"]:,} of {s["segments"]:,} segments on clips, '
                         f'{s.get("events_attached", 0):,} of {s["events"]:,} events attached '
                         f'({s.get("events_clipped", 0):,} clipped to the segment'
                         + (f', {after_end:,} starting after it: dead letters' if after_end > 0 else '')
                         + f'); {s["segments_missing"]:,} segments listed in missing_strong/')
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
              f'Manifest: {layout.join(output_dir, layout.MANIFEST_FILE)}', *report_line(manifest), '']
    return '\n'.join(lines)


def report_line(manifest: dict) -> list[str]:
    """Where report.html is (manifest ``report``), or why it was not written."""
    report = manifest.get('report') or {}
    if report.get('path'):
        return [f'Report: {report["path"]}']
    if report.get('error'):
        return [f'warning: report.html was not written ({report["error"]}); the dataset is complete: '
                'python -m pipelines.report OUTPUT_DIR retries it']
    return []


def label_sources(split_stats: dict) -> str:
    """Where a split's labels actually came from, by segment count (not which files were given)."""
    sources = split_stats.get('label_source', {})
    names = {'csv': 'csv', 'shard': "the shards' label indices", 'none': 'none'}
    if len(sources) == 1:
        return names.get(next(iter(sources)), next(iter(sources)))
    total = sum(sources.values()) or 1
    return ', '.join(f'{names.get(k, k)} {v / total:.0%}' for k, v in sorted(sources.items(), key=lambda kv: -kv[1]))


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
