"""The seal's accounting: whether a run's counts add up and its inputs were whole, over the run stats and
the list of files it wrote. Pure Python (no Beam, no I/O): ``transforms.sinks`` reads the files' footers and
hands the row counts found here, so every rule below is unit-tested on plain dicts.

What a run must prove before it may call itself complete: every input stream was read whole; every file
it wrote holds the rows it says (the footer, read back); per split, records in = segments out + records
dead-lettered, and clip rows = segment-label pairs; audio files in = clips out + dead letters; and no
split, CSV or AudioSet Strong file rejected more than ``--max_bad_fraction``.
"""
from __future__ import annotations

from typing import Iterable, Protocol

from audioset_beam import layout
from audioset_beam.schema import CLIPS
from transforms.core.strong import file_problems as strong_file_problems


class Written(Protocol):
    """A file the run wrote (``transforms.write.WrittenFile``): its table, path, rows and partition."""
    table: str
    path: str
    rows: int
    partition: tuple


class BuildFailed(RuntimeError):
    """The run's output is not trustworthy; nothing was published (exit status 1)."""
    exit_code = 1


def incomplete_input_problems(run_stats: dict) -> list[str]:
    """Why the inputs were not read whole (a stream cut short, a tarball with no shards), with the records
    lost as far as they can be known: the reader's estimate (the bytes never read, when the source's size is
    known, and the declared sizes of members cut short) and the CSV rows that no record met (the records
    lost, when the CSVs and the source were complete otherwise). Empty when every input proved whole."""
    incomplete = run_stats.get('incomplete_inputs') or []
    if not incomplete:
        return []
    estimated = sum(i.get('records_estimated', 0) for i in incomplete)
    unmet = {split: c.get('rows_missing_features', 0) for split, c in sorted(run_stats.get('csv', {}).items())}
    out = [f'{i["source"]}: {i["reason"]}: {i["error"]}' for i in incomplete]
    from_bytes = (f'about {estimated:,} records, estimated from the bytes never read' if estimated else
                  'the bytes never read are unknown (the source did not say its size)')
    from_csv = ', '.join(f'{split} {n:,}' for split, n in unmet.items() if n)
    out.append(f'records lost: {from_bytes}; CSV rows that no record met: {from_csv or "none (or no CSVs)"}. '
               'No manifest.json was written: fetch the input again (python -m pipelines.fetch_release resumes and '
               'verifies it) and rebuild')
    return out


def splits_without_records(run_stats: dict, features: dict | None) -> tuple[list[str], list[str]]:
    """Splits whose CSV lists segments but which received no record, released or computed: (those the
    features source was meant to hold, which fail the threshold; the others, only noted). A tarball is
    meant to hold every split; a shard tree or split folder the splits it has shards for."""
    fail, note = [], []
    splits, computed = run_stats.get('splits', {}), run_stats.get('computed', {})
    if features and features.get('tarball'):
        meant = set(layout.FEATURE_FOLDERS.values())
    else:
        meant = {layout.FEATURE_FOLDERS[f] for f in (features or {}).get('folders') or ()
                 if f in layout.FEATURE_FOLDERS}
    for split, c in sorted(run_stats.get('csv', {}).items()):
        listed = max(c.get('rows_in', 0), c.get('rows_declared_in_header') or 0)
        received = splits.get(split, {}).get('records_in', 0) + computed.get(split, {}).get('segments_out', 0)
        if not listed or received:
            continue
        line = f'{split}: {c.get("file", "its CSV")} lists {listed:,} segments, but no record of this split was read'
        (fail if split in meant else note).append(line)
    return fail, note


def file_problems(files: Iterable[Written], found: dict[str, int | str]) -> list[str]:
    """Files whose footer (``found``: path -> rows read back, or why none could be read) disagrees with
    the rows the writer counted."""
    problems = []
    for f in files:
        got = found.get(f.path, 'missing')
        if isinstance(got, str):
            problems.append(f'{f.path}: {got}')
        elif got != f.rows:
            problems.append(f'{f.path}: {got} rows, expected {f.rows}')
    return problems


def summarize(run_stats: dict, files: list[Written], found: dict[str, int | str], dead_path: str,
              max_bad_fraction: float, features: dict | None = None) -> dict:
    """The manifest body of a run whose accounting holds; raises BuildFailed when it does not (see the
    module docstring). ``found``: each file's rows as read back from its footer, or why it could not be
    read; ``dead_path``: where the dead letters are, for the messages; ``features``: the manifest's
    ``inputs.features`` (which splits the features source was meant to hold)."""
    if (incomplete := incomplete_input_problems(run_stats)):
        raise BuildFailed('an input was not read whole, so the dataset would be incomplete:\n  '
                          + '\n  '.join(incomplete))
    problems = file_problems(files, found)
    if problems:
        raise BuildFailed('output verification failed:\n  ' + '\n  '.join(problems[:20]))
    splits = run_stats.get('splits', {})
    clip_rows: dict = {}
    partitions: dict = {}
    for f in files:
        if f.table == CLIPS.name:
            p = dict(f.partition)
            clip_rows[p['split']] = clip_rows.get(p['split'], 0) + f.rows
            part = partitions.setdefault(p['split'], {})
            part[p['label']] = part.get(p['label'], 0) + f.rows
    accounting = {}
    bad = []
    for split, s in sorted(splits.items()):
        records_in, out, dead = s.get('records_in', 0), s.get('segments_out', 0), s.get('dead_letters', 0)
        expected_rows = sum(run_stats.get('positive', {}).get(split, {}).values())
        ok = records_in == out + dead and clip_rows.get(split, 0) == expected_rows
        accounting[split] = {'records_in': records_in, 'segments_out': out, 'dead_letters': dead,
                             'clip_rows': clip_rows.get(split, 0), 'adds_up': ok}
        if not ok:
            problems.append(f'{split}: records in {records_in} != segments out {out} + dead letters {dead}, '
                            f'or clip rows {clip_rows.get(split, 0)} != segment-label pairs {expected_rows}')
        if records_in and dead / records_in > max_bad_fraction:
            bad.append(f'{split}: {dead} of {records_in} records rejected ({dead / records_in:.1%})')
    positive = run_stats.get('positive', {})
    for split in sorted(set(positive) | set(clip_rows)):
        expected_rows = sum(positive.get(split, {}).values())
        if clip_rows.get(split, 0) != expected_rows:
            problems.append(f'{split}: clip rows {clip_rows.get(split, 0)} != segment-label pairs {expected_rows}')
    audio = run_stats.get('audio')
    if audio is not None:
        files_in, dead = audio.get('files_in', 0), audio.get('dead_letters', 0)
        out = sum(c.get('segments_out', 0) for c in run_stats.get('computed', {}).values())
        audio['segments_out'] = out
        audio['adds_up'] = files_in == out + dead
        if not audio['adds_up']:
            problems.append(f'audio: files in {files_in} != clips out {out} + dead letters {dead}')
        if files_in and dead / files_in > max_bad_fraction:
            bad.append(f'audio: {dead} of {files_in} files rejected ({dead / files_in:.1%})')
    for split, c in sorted(run_stats.get('csv', {}).items()):
        # The header's num_segs says how many rows the file should have: rows it lacks (a truncated
        # download) count as rejected, and a file with fewer rows than declared never passes silently.
        declared = c.get('rows_declared_in_header')
        c['rows_short_of_header'] = max(0, declared - c.get('rows_in', 0)) if declared is not None else 0
        expected = max(c.get('rows_in', 0), declared or 0)
        lost = c.get('rows_rejected', 0) + c['rows_short_of_header']
        if expected and lost / expected > max_bad_fraction:
            short = (f', and {c["rows_short_of_header"]} rows fewer than its header declares ({declared}): '
                     'a truncated file?') if c['rows_short_of_header'] else ''
            bad.append(f'{c["file"]}: {c.get("rows_rejected", 0)} of {c.get("rows_in", 0)} lines rejected{short}')
    # AudioSet Strong files: lines under the same threshold; a file given but not usable at all always fails.
    strong_dropped, strong_over = strong_file_problems(run_stats.get('strong'), max_bad_fraction)
    bad += strong_over
    empty_splits, skipped_splits = splits_without_records(run_stats, features)
    if max_bad_fraction < 1:
        bad += [f'{line} (100% missing)' for line in empty_splits]
    if strong_dropped:
        raise BuildFailed('an AudioSet Strong file given could not be used at all:\n  ' + '\n  '.join(strong_dropped)
                          + f'\nIts lines are dead letters in {dead_path}')
    if problems:
        raise BuildFailed('counts do not add up:\n  ' + '\n  '.join(problems))
    if bad:
        raise BuildFailed(f'too much bad input (more than --max_bad_fraction={max_bad_fraction}):\n  '
                          + '\n  '.join(bad) + f'\nEach rejected input is listed, with its reason, in {dead_path}')
    by_table: dict = {}
    for f in files:
        t = by_table.setdefault(f.table, {'files': 0, 'rows': 0})
        t['files'] += 1
        t['rows'] += f.rows
    return {
        'status': 'complete',
        'splits': {k: {**v, **accounting.get(k, {}), 'partitions': len(partitions.get(k, {}))}
                   for k, v in splits.items()},
        'csv': run_stats.get('csv', {}),
        'audio': {**(audio or {}), 'computed_by_split': run_stats.get('computed', {})} if audio is not None else None,
        'dead_letters': {'total': run_stats.get('dead_letter_total', 0),
                         'by_stage_and_reason': run_stats.get('dead_letters', {}), 'path': dead_path},
        'label_disagreement_examples': run_stats.get('label_disagreements', []),
        'distributions': run_stats.get('distributions', {}),
        'leakage': run_stats.get('leakage', {'segments': 0}),
        'splits_not_built': skipped_splits,
        'strong': run_stats.get('strong'),
        'shard_prefix_mismatch_examples': run_stats.get('shard_prefix_mismatch_examples', []),
        'timings': {k: round(v, 2) for k, v in sorted(run_stats.get('timings', {}).items())},
        'tables': by_table,
        'partition_rows': partitions,
        'files': [{'table': f.table, 'path': f.path, 'rows': f.rows} for f in sorted(files, key=lambda f: f.path)],
    }


