"""The small tables (dead letters, missing features, classes) and the manifest that seals a run."""
from __future__ import annotations

import datetime
import logging
import time

import apache_beam as beam
import pyarrow as pa

from transforms import fileio
from transforms.core import layout, stats
from transforms.core.label_quality import LabelQuality
from transforms.core.ontology import Vocabulary
from transforms.core.schema import CLASSES, CLIPS, DEAD_LETTERS, SPLITS
from transforms.core.strong import file_problems as strong_file_problems
from transforms.publish import Publish
from transforms.write import WrittenFile

log = logging.getLogger(__name__)

RECORD_STAGES = ('read-shard', 'parse-record', 'label-record', 'check-segments')
AUDIO_STAGES = ('discover-audio', 'embed-audio', 'label-audio')
_DL_ORDER = ['stage', 'source', 'line_number', 'record_index', 'byte_offset', 'reason']


def once_per_strong_event(rows: list[dict]) -> list[dict]:
    """Drops repeats of a ``join-strong`` dead letter: a segment read twice (a duplicate record, or a computed
    twin of a released one) rejects the same strong event (file and line) twice."""
    seen: set = set()
    out = []
    for r in rows:
        if r['stage'] == 'join-strong':
            key = (r['source'], r['line_number'])
            if key in seen:
                continue
            seen.add(key)
        out.append(r)
    return out


class _WriteDeadLettersFn(beam.DoFn):
    def __init__(self, output_dir: str):
        self.output_dir = output_dir

    def process(self, rows: list[dict]):
        rows = once_per_strong_event(rows)
        table = DEAD_LETTERS.from_pylist(rows)
        if table.num_rows:
            table = table.sort_by([(c, 'ascending') for c in _DL_ORDER])
        path = layout.part_file(layout.join(self.output_dir, layout.DEAD_LETTERS_DIR), 0)
        fileio.write_parquet(path, table)
        yield WrittenFile(DEAD_LETTERS.name, path, table.num_rows)
        st: dict = {'dead_letter_total': len(rows)}
        for r in rows:
            stats.bump(st, 'dead_letters', f'{r["stage"]}/{r["reason"]}', 1)
            if r['stage'] in RECORD_STAGES:
                # Counted in records: a damaged stretch counts as the records it hid (estimated).
                stats.bump(st, 'splits', r['split'] or 'unknown', 'dead_letters', r['records'])
                if r['records_estimated']:
                    stats.bump(st, 'splits', r['split'] or 'unknown', 'dead_letters_estimated', r['records'])
            elif r['stage'] in AUDIO_STAGES:
                stats.bump(st, 'audio', 'dead_letters', 1)
        yield beam.pvalue.TaggedOutput('stats', st)


class WriteDeadLetters(beam.PTransform):
    """PCollection[dict] -> {'files': WrittenFile, 'stats'}: one sorted Parquet file, written even when empty."""

    def __init__(self, output_dir: str):
        super().__init__()
        self.output_dir = output_dir

    def expand(self, rows):
        out = (rows
               | 'CollectDeadLetters' >> beam.combiners.ToList()
               | 'WriteDeadLetterFile' >> beam.ParDo(_WriteDeadLettersFn(self.output_dir)).with_outputs(
                   'stats', main='files'))
        return {'files': out.files, 'stats': out.stats}


def class_table(vocab: Vocabulary, run_stats: dict, quality: LabelQuality | None = None,
                strong: dict | None = None) -> pa.Table:
    """Every ontology class (then any class-index MID outside it, then any strong-label MID outside both),
    with its place in the vocabulary, per-split segment counts, label quality and strong-label counts.

    ``strong``: {'names': MID -> display name, 'counts': {strong split: {MID: {'segments', 'events'}}}}, as
    ReadStrongLabels puts under ``run_stats['strong_classes']`` (read from there when not given). Without
    strong labels the strong_* columns are null."""
    if strong is None:
        strong = run_stats.get('strong_classes')
    onto, idx = vocab.ontology, vocab.class_index
    mids = [n.mid for n in onto.nodes] + [m for m in idx.mids if m not in onto.order]
    strong_names = (strong or {}).get('names', {})
    strong_counts = (strong or {}).get('counts', {})
    seen = set(mids)
    mids += sorted({m for c in strong_counts.values() for m in c} - seen)
    label_ancestors = {a for m in idx.mids for a in onto.ancestors.get(m, ())}
    positive = run_stats.get('positive', {})
    with_anc = run_stats.get('with_ancestors', {})
    rows = []
    for mid in mids:
        node = onto.by_mid.get(mid)
        ancestors = list(onto.ancestors.get(mid, ()))
        restrictions = list(node.restrictions) if node else []
        row = {
            'index': idx.position.get(mid), 'mid': mid, 'name': vocab.names.get(mid) or strong_names.get(mid, ''),
            'description': node.description if node else '', 'parents': list(onto.parents.get(mid, ())),
            'ancestors': ancestors, 'ancestor_names': vocab.names_of(ancestors),
            'depth': onto.depth.get(mid, 0), 'restrictions': restrictions,
            'is_label': mid in idx.position,
            'is_ancestor_only': mid not in idx.position and mid in label_ancestors,
            'in_ontology': node is not None,
            'abstract': 'abstract' in restrictions, 'blacklisted': 'blacklist' in restrictions,
        }
        if quality is not None:
            rated, true = quality.counts.get(mid, (None, None))
            row.update(num_rated=rated, num_true=true, quality=quality.quality(mid) if rated is not None else None)
        for s in SPLITS:
            row[f'segments_{s}'] = positive.get(s, {}).get(mid, 0)
            row[f'segments_with_descendants_{s}'] = with_anc.get(s, {}).get(mid, 0)
        if strong is not None:
            for s in ('train', 'eval'):
                c = strong_counts.get(s, {}).get(mid, {})
                row[f'strong_segments_{s}'], row[f'strong_events_{s}'] = c.get('segments', 0), c.get('events', 0)
        rows.append(row)
    return CLASSES.from_pylist(rows)


class _WriteClassesFn(beam.DoFn):
    def __init__(self, output_dir: str, vocab: Vocabulary, quality: LabelQuality | None):
        self.output_dir, self.vocab, self.quality = output_dir, vocab, quality

    def process(self, run_stats: dict):
        path = layout.join(self.output_dir, layout.CLASSES_FILE)
        table = class_table(self.vocab, run_stats, self.quality)
        yield WrittenFile(CLASSES.name, path, fileio.write_parquet(path, table))


class WriteClassTable(beam.PTransform):
    """PCollection[run stats] (one element) -> PCollection[WrittenFile]: ``classes.parquet``.

    ``quality``: the parsed --label_quality file. Strong-label counts come with the run stats."""

    def __init__(self, output_dir: str, vocab: Vocabulary, quality: LabelQuality | None = None):
        super().__init__()
        self.output_dir, self.vocab, self.quality = output_dir, vocab, quality

    def expand(self, run_stats):
        return run_stats | 'WriteClasses' >> beam.ParDo(_WriteClassesFn(self.output_dir, self.vocab, self.quality))


class BuildFailed(RuntimeError):
    """The run's output is not trustworthy; nothing was published."""


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


def verify_and_summarize(run_stats: dict, files: list[WrittenFile], output_dir: str,
                         max_bad_fraction: float, features: dict | None = None) -> dict:
    """Checks what the run wrote and that the counts add up; returns the manifest body.

    Raises BuildFailed when an input stream was not read whole, when a file is missing or holds the wrong
    number of rows, when records do not add up (records in != segments out + dead letters), when a split
    whose CSV lists segments received none, or when a split or CSV is worse than the threshold.
    ``features``: the manifest's ``inputs.features`` (which splits the features source was meant to hold).
    """
    if (incomplete := incomplete_input_problems(run_stats)):
        raise BuildFailed('an input was not read whole, so the dataset would be incomplete:\n  '
                          + '\n  '.join(incomplete))
    problems = []
    for f in files:
        if not fileio.exists(f.path):
            problems.append(f'{f.path}: missing')
        else:
            try:
                rows = fileio.parquet_rows(f.path)
            except Exception as e:  # noqa: BLE001 -- a damaged file is what this check exists to catch
                problems.append(f'{f.path}: unreadable ({type(e).__name__}: {e})')
                continue
            if rows != f.rows:
                problems.append(f'{f.path}: {rows} rows, expected {f.rows}')
    if problems:
        raise BuildFailed('output verification failed:\n  ' + '\n  '.join(problems[:20]))
    dead_path = layout.join(output_dir, layout.DEAD_LETTERS_DIR)
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


def remove_stale(output_dir: str, files: list[WrittenFile]) -> list[str]:
    """Deletes part files under clips/, missing_features/ and computed_embeddings/ that this run did not
    write (a rerun replaces, never duplicates)."""
    keep = {f.path for f in files}
    stale = []
    for sub in (layout.CLIPS_DIR, layout.MISSING_FEATURES_DIR, layout.MISSING_STRONG_DIR, layout.COMPUTED_DIR):
        stale += [p for p, _ in fileio.list_files(layout.join(output_dir, sub))
                  if layout.is_part_file(p) and p not in keep]
    fileio.delete(stale)
    return stale


class _FinalizeFn(beam.DoFn):
    def __init__(self, output_dir: str, max_bad_fraction: float, run_info: dict, publish: Publish | None):
        self.output_dir, self.max_bad_fraction, self.run_info = output_dir, max_bad_fraction, run_info
        self.publish = publish

    def process(self, _, run_stats: dict, files: list):
        started = time.perf_counter()
        try:
            body = verify_and_summarize(run_stats, files, self.output_dir, self.max_bad_fraction,
                                        (self.run_info.get('inputs') or {}).get('features'))
        finally:
            # The spill is a full copy of the data: never leave it behind, failed or not.
            fileio.delete_tree(layout.join(self.output_dir, layout.SPILL_DIR))
        stale = remove_stale(self.output_dir, files)
        body['timings']['seal'] = round(time.perf_counter() - started, 2)
        manifest = {**self.run_info, **body, 'stale_files_removed': len(stale),
                    'finished': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}
        # report.html views the verified data: written before manifest.json (still the last file) so the
        # manifest records it, or why it is missing; a report failure never fails the build.
        from transforms.report import write_report_or_error
        manifest['report'] = write_report_or_error(self.output_dir, manifest)
        fileio.write_json_atomic(layout.join(self.output_dir, layout.MANIFEST_FILE), manifest)
        log.info('wrote %s', layout.join(self.output_dir, layout.MANIFEST_FILE))
        if self.publish is not None:
            self.publish(manifest)
        yield manifest


class WriteManifest(beam.PTransform):
    """Runs once, after everything else: verifies every written file and the accounting, enforces the
    bad-input threshold, removes stale files, then writes ``manifest.json`` last (atomically), and with
    ``publish`` points ``latest.json`` at the run and prunes old runs."""

    def __init__(self, output_dir: str, max_bad_fraction: float, run_info: dict, run_stats, files,
                 publish: Publish | None = None):
        super().__init__()
        self.output_dir, self.max_bad_fraction, self.run_info = output_dir, max_bad_fraction, run_info
        self.run_stats, self.files, self.publish = run_stats, files, publish

    def expand(self, pbegin):
        return (pbegin
                | 'Once' >> beam.Create([None])
                | 'VerifyAndSeal' >> beam.ParDo(
                    _FinalizeFn(self.output_dir, self.max_bad_fraction, self.run_info, self.publish),
                    beam.pvalue.AsSingleton(self.run_stats), beam.pvalue.AsList(self.files)))


class MergeStats(beam.PTransform):
    """Flattened stats dicts -> one merged dict (an empty dict when there were none)."""

    def expand(self, pcolls):
        return (pcolls
                | 'FlattenStats' >> beam.Flatten()
                | 'MergeStats' >> beam.CombineGlobally(stats.merge_all))
