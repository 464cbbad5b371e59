"""Compares two build outputs table by table: a change that must keep the output identical (a refactor, a
new write path) is checked with it at any size, as its users see the output.

    python scripts/compare_builds.py OUT_BEFORE OUT_AFTER [--ignore_source_prefix]

Compared: every Parquet table under clips/, missing_features/, missing_strong/, computed_embeddings/ (file
by file: the same relative paths, then the same schema and rows in order), dead_letters/ and
classes.parquet (whole tables), and the manifest's counts (everything but what differs between any two
runs: times, paths, the run id, versions). ``--ignore_source_prefix`` compares ``source_file`` (and dead
letters' ``source``, missing features' ``csv_file``) after the build's input folder, for two builds of copies of one input. report.html
is compared by its text with the build date and paths taken out. Exit 0 when identical, 1 with one line
per difference (the first rows that differ) otherwise.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

import pyarrow as pa
import pyarrow.parquet as pq

PARTITIONED = ('clips', 'missing_features', 'missing_strong', 'computed_embeddings', 'dead_letters')
# Manifest keys that differ between any two runs of the same build (or name its folders).
VOLATILE = {'finished', 'timings', 'versions', 'run_id', 'files', 'report', 'stale_files_removed', 'path',
            'output_dir', 'started'}


def _strip(obj, prefixes: tuple[str, ...]):
    """The manifest without volatile keys, with the build's folders cut from every string."""
    if isinstance(obj, dict):
        return {k: _strip(v, prefixes) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v, prefixes) for v in obj]
    if isinstance(obj, str):
        for p in prefixes:
            obj = obj.replace(p, '<dir>')
    return obj


def _diff(a, b, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f'manifest {where}{k}: only in {"after" if k in b else "before"}')
            else:
                _diff(a[k], b[k], f'{where}{k}.', out)
    elif a != b:
        out.append(f'manifest {where.rstrip(".")}: {json.dumps(a)[:200]} != {json.dumps(b)[:200]}')


def _inputs_dir(manifest: dict) -> list[str]:
    """The folders the build read, to cut from source names."""
    inputs = manifest.get('inputs', {})
    found = [inputs.get('features_dir') or '', (inputs.get('features') or {}).get('root') or '',
             (inputs.get('features') or {}).get('tarball') or '']
    found += list((inputs.get('segment_csvs') or {}).values())
    return sorted({str(pathlib.Path(p).parent) for p in found if p} | {p for p in found if p}, key=len, reverse=True)


def _normalize(table: pa.Table, prefixes: list[str]) -> pa.Table:
    for column in ('source_file', 'source', 'csv_file'):
        if column in table.column_names and prefixes:
            values = table[column].to_pylist()
            for p in prefixes:
                values = [v.replace(p, '<dir>') if isinstance(v, str) else v for v in values]
            table = table.set_column(table.column_names.index(column), column, pa.array(values, table[column].type))
    return table


def _first_difference(a: pa.Table, b: pa.Table) -> str:
    if a.schema != b.schema:
        return f'schemas differ: {a.schema.names} vs {b.schema.names}'
    if a.num_rows != b.num_rows:
        return f'{a.num_rows} rows vs {b.num_rows}'
    for name in a.column_names:
        x, y = a[name].combine_chunks(), b[name].combine_chunks()
        if not x.equals(y):
            for i in range(len(x)):
                if x[i] != y[i]:
                    return f'column {name}, row {i}: {str(x[i])[:120]} != {str(y[i])[:120]}'
            return f'column {name} differs (nulls or types)'
    return 'tables differ'


def compare(before: pathlib.Path, after: pathlib.Path, ignore_source_prefix: bool = False) -> list[str]:
    """Every difference between two build outputs, one line each (empty: identical)."""
    out: list[str] = []
    ma = json.loads((before / 'manifest.json').read_text())
    mb = json.loads((after / 'manifest.json').read_text())
    pa_, pb_ = ([], [])
    if ignore_source_prefix:
        pa_, pb_ = _inputs_dir(ma), _inputs_dir(mb)
    _diff(_strip(ma, (str(before), *pa_)), _strip(mb, (str(after), *pb_)), '', out)
    for sub in PARTITIONED:
        fa = sorted(p.relative_to(before) for p in (before / sub).rglob('*.parquet')) if (before / sub).exists() else []
        fb = sorted(p.relative_to(after) for p in (after / sub).rglob('*.parquet')) if (after / sub).exists() else []
        if fa != fb:
            only = sorted(set(fa) ^ set(fb))
            out.append(f'{sub}/: {len(fa)} files vs {len(fb)}; first not in both: {only[:3]}')
        for rel in sorted(set(fa) & set(fb)):
            ta = _normalize(pq.read_table(before / rel, partitioning=None), pa_)
            tb = _normalize(pq.read_table(after / rel, partitioning=None), pb_)
            if not ta.equals(tb):
                out.append(f'{rel}: {_first_difference(ta, tb)}')
    if (before / 'classes.parquet').exists() or (after / 'classes.parquet').exists():
        ta, tb = pq.read_table(before / 'classes.parquet'), pq.read_table(after / 'classes.parquet')
        if not ta.equals(tb):
            out.append(f'classes.parquet: {_first_difference(ta, tb)}')
    ra, rb = before / 'report.html', after / 'report.html'
    if ra.exists() != rb.exists():
        out.append(f'report.html: only in {"after" if rb.exists() else "before"}')
    elif ra.exists():
        def text(path: pathlib.Path, root: pathlib.Path, prefixes) -> str:
            t = path.read_text()
            for p in (str(root), *prefixes):
                t = t.replace(p, '<dir>')
            t = re.sub(r'Built [^,<]*,', 'Built <date>,', t)
            t = re.sub(r'report written [^.<]*\.', 'report written <date>.', t)
            t = re.sub(r'\d+(\.\d+)? s\b', '<s>', t)   # stage timings
            return re.sub(r'id="[^"]*"', '', t)         # matplotlib's random SVG ids
        if text(ra, before, pa_) != text(rb, after, pb_):
            out.append('report.html: text differs (dates, timings, paths and SVG ids aside)')
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('before', type=pathlib.Path)
    p.add_argument('after', type=pathlib.Path)
    p.add_argument('--ignore_source_prefix', action='store_true',
                   help='compare source_file/source after the input folder (two copies of one input)')
    args = p.parse_args(argv)
    diffs = compare(args.before, args.after, args.ignore_source_prefix)
    for line in diffs[:50]:
        print(line)
    tables = sum(1 for sub in PARTITIONED for _ in (args.before / sub).rglob('*.parquet')) + 1
    print(f'{"identical" if not diffs else f"{len(diffs)} differences"}: {tables} tables, the manifest and the '
          f'report compared ({args.before} vs {args.after})')
    return 0 if not diffs else 1


if __name__ == '__main__':
    sys.exit(main())
