"""The small tables (dead letters, missing features, classes) and the manifest that seals a run."""
from __future__ import annotations

import datetime
import logging
import time

import apache_beam as beam
import pyarrow as pa
from apache_beam import PCollection

from audioset_beam import layout
from audioset_beam.schema import CLASSES, DEAD_LETTERS, SPLITS, STRONG_SPLITS
from transforms import fileio
from transforms.core import seal, stats
from transforms.core.deadletter import AUDIO_STAGES, RECORD_STAGES, Stage
from transforms.core.label_quality import LabelQuality
from transforms.core.ontology import Vocabulary
from transforms.deadletters import STATS
from transforms.publish import Publish
from transforms.write import WriteOutputs, WrittenFile

log = logging.getLogger(__name__)

_DL_ORDER = ['stage', 'source', 'line_number', 'record_index', 'byte_offset', 'reason']


def once_per_strong_event(rows: list[dict]) -> list[dict]:
    """Drops repeats of a ``join-strong`` dead letter: a segment read twice (a duplicate record, or a computed
    twin of a released one) rejects the same strong event (file and line) twice."""
    seen: set = set()
    out = []
    for r in rows:
        if r['stage'] == Stage.JOIN_STRONG:
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
        yield beam.pvalue.TaggedOutput(STATS, st)


class WriteDeadLetters(beam.PTransform):
    """PCollection[dict] -> WriteOutputs: one sorted Parquet file (written even when empty), stats."""

    def __init__(self, output_dir: str):
        super().__init__()
        self.output_dir = output_dir

    def expand(self, rows: PCollection[dict]) -> WriteOutputs:
        out = (rows
               | 'CollectDeadLetters' >> beam.combiners.ToList()
               | 'WriteDeadLetterFile' >> beam.ParDo(_WriteDeadLettersFn(self.output_dir)).with_outputs(
                   STATS, main='files'))
        return WriteOutputs(out.files, out[STATS])


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
            for s in STRONG_SPLITS:
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


def verify_and_summarize(run_stats: dict, files: list[WrittenFile], output_dir: str,
                         max_bad_fraction: float, features: dict | None = None) -> dict:
    """Reads back the row count of every file the run wrote (its Parquet footer) and hands them, with the
    run stats, to the seal's accounting (``transforms.core.seal.summarize``); returns the manifest body or
    raises BuildFailed."""
    found: dict[str, int | str] = {}
    for f in files:
        if not fileio.exists(f.path):
            found[f.path] = 'missing'
            continue
        try:
            found[f.path] = fileio.parquet_rows(f.path)
        except Exception as e:  # noqa: BLE001 -- a damaged file is what this check exists to catch
            found[f.path] = f'unreadable ({type(e).__name__}: {e})'
    return seal.summarize(run_stats, files, found, layout.join(output_dir, layout.DEAD_LETTERS_DIR),
                          max_bad_fraction, features)


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
