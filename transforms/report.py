"""report.html of an output folder (local or gs://): gathers the small tables, renders (transforms.core.report_page).

Reads manifest.json, classes.parquet, the first rows of dead_letters/ and the footers of missing_features/;
never the embeddings of released rows. Two cases read more, both bounded:
- a manifest without ``distributions`` (a dataset built before it had them): the ``labels`` and
  ``num_frames`` columns of the clips' primary rows, never the embedding column;
- computed embeddings (manifest ``audio``): Parquet statistics of ``embedding_source`` say which row groups
  hold computed rows; only the partitions holding those are read (small columns), and the embedding column
  only of the row groups holding a computed row or the released twin of one (at most MAX_PAIRS twins).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import time
import urllib.parse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from audioset_beam import layout
from audioset_beam.schema import EMBEDDING_DIM, SOURCE_COMPUTED, SOURCE_RELEASED, SPLITS
from transforms import fileio
from transforms.core import report_page, report_stats as stats

log = logging.getLogger(__name__)

REPORT_FILE = 'report.html'
MAX_PAIRS = 2000            # released twins compared with their computed embedding
MAX_REFERENCE_ROWS = 20000  # released segments in the per-dimension reference, when there are no twins
DEAD_LETTER_EXAMPLES = 10
_THREADS = 16               # footer reads in parallel (gs:// latency)


def write_report(output_dir: str, manifest: dict | None = None, data: stats.ReportInput | None = None) -> str:
    """Writes ``<output_dir>/report.html`` from the dataset there (``manifest``: the manifest's content,
    when the caller has it and manifest.json is not written yet; ``data``: what ``gather`` read, when the
    caller has it); returns its path."""
    data = data if data is not None else gather(output_dir, manifest)
    path = layout.join(output_dir, REPORT_FILE)
    fileio.write_bytes(path, report_page.render(data).encode('utf-8'))
    return path


def write_report_or_error(output_dir: str, manifest: dict) -> dict:
    """For the seal: writes report.html and returns ``{'path', 'seconds'}``; when that fails, logs a
    warning, removes any report.html of an earlier run (it would describe other data) and returns
    ``{'error': ...}``. A report is a view of data already verified: it never fails the build."""
    started = time.perf_counter()
    try:
        path = write_report(output_dir, manifest)
    except Exception as e:  # noqa: BLE001 -- recorded in the manifest and printed by the summary
        error = f'{type(e).__name__}: {e}'
        log.warning('report.html not written (the dataset is complete): %s', error, exc_info=True)
        with contextlib.suppress(Exception):
            stale = layout.join(output_dir, REPORT_FILE)
            if fileio.exists(stale):
                fileio.delete([stale])
        return {'error': error}
    seconds = round(time.perf_counter() - started, 2)
    log.info('wrote %s in %.2f s', path, seconds)
    return {'path': path, 'seconds': seconds}


def gather(output_dir: str, manifest: dict | None = None) -> stats.ReportInput:
    """Everything the report shows, from ``output_dir``."""
    import json
    if manifest is None:
        manifest = json.loads(fileio.read_bytes(layout.join(output_dir, layout.MANIFEST_FILE)))
    classes = _read_table(layout.join(output_dir, layout.CLASSES_FILE))
    clip_files = None
    distributions = manifest.get('distributions')
    source = 'manifest'
    if not distributions:
        clip_files = list_clip_files(output_dir)
        distributions = count_distributions(clip_files, classes)
        source = f'the labels and num_frames of the primary rows in {len(clip_files):,} clips files'
    computed = None
    audio = manifest.get('audio') or {}
    if any(v.get('segments_out') for v in (audio.get('computed_by_split') or {}).values()):
        clip_files = clip_files if clip_files is not None else list_clip_files(output_dir)
        computed = read_computed(clip_files, manifest)
    return stats.ReportInput(
        output_dir=output_dir, manifest=manifest, classes=classes, distributions=distributions,
        distributions_source=source, missing_files=missing_feature_rows(output_dir),
        dead_letter_examples=dead_letter_examples(output_dir), computed=computed, generated=report_page.now())


# -- small tables ------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _parquet(path: str):
    source = fileio.open_random_access(path)
    try:
        yield pq.ParquetFile(source)
    finally:
        source.close()


def _read_table(path: str, columns: list[str] | None = None) -> pa.Table:
    with _parquet(path) as f:
        return f.read(columns=columns)


def _map(fn, items: list) -> list:
    if len(items) < 2:
        return [fn(i) for i in items]
    with concurrent.futures.ThreadPoolExecutor(min(_THREADS, len(items))) as pool:
        return list(pool.map(fn, items))


def _partition(path: str, column: str) -> str | None:
    for part in path.split('/'):
        if part.startswith(column + '='):
            return urllib.parse.unquote(part[len(column) + 1:])
    return None


def missing_feature_rows(output_dir: str) -> dict[str, int]:
    """split -> rows in missing_features/split=<split>/ (from the Parquet footers)."""
    files = [p for p, _ in fileio.list_files(layout.join(output_dir, layout.MISSING_FEATURES_DIR))
             if layout.is_part_file(p)]
    out: dict[str, int] = {}
    for path, rows in zip(files, _map(fileio.parquet_rows, files)):
        split = _partition(path, 'split') or '?'
        out[split] = out.get(split, 0) + rows
    return out


def dead_letter_examples(output_dir: str, n: int = DEAD_LETTER_EXAMPLES) -> list[dict]:
    """The first ``n`` rows of dead_letters/ (sorted by stage, source, position): one row group is read."""
    path = layout.part_file(layout.join(output_dir, layout.DEAD_LETTERS_DIR), 0)
    if not fileio.exists(path):
        return []
    with _parquet(path) as f:
        if not f.metadata.num_row_groups:
            return []
        return f.read_row_group(0, columns=['stage', 'reason', 'source', 'error']).slice(0, n).to_pylist()


# -- clips: distributions (older manifests) ----------------------------------------------------------------

def list_clip_files(output_dir: str) -> list[tuple[str, str, str]]:
    """(path, split, label) of every clips part file."""
    return [(p, _partition(p, 'split'), _partition(p, 'label'))
            for p, _ in fileio.list_files(layout.join(output_dir, layout.CLIPS_DIR)) if layout.is_part_file(p)]


def _primary_rows(item, columns: list[str]) -> pa.Table:
    path, _, _ = item
    with _parquet(path) as f:
        t = f.read(columns=columns + ['is_primary'])
    return t.filter(t['is_primary']).drop_columns(['is_primary'])


def count_distributions(clip_files: list, classes: pa.Table) -> dict:
    """The manifest's ``distributions`` counted from the clips: each segment of a split once (its released
    primary row, or its computed one when it has no released embedding), from the ``labels`` and
    ``num_frames`` columns only."""
    cols = ['segment_id', 'labels', 'num_frames', 'embedding_source']
    tables = _map(lambda item: _primary_rows(item, cols), clip_files)
    by_split: dict[str, list] = {}
    for (_, split, _), t in zip(clip_files, tables):
        by_split.setdefault(split, []).append(t)
    order = {m: i for m, i in zip(classes['mid'].to_pylist(), classes['index'].to_pylist()) if i is not None}
    out = {}
    for split in sorted(by_split, key=lambda s: (SPLITS.index(s) if s in SPLITS else 9, s)):
        t = pa.concat_tables(by_split[split])
        released = t.filter(pc.equal(t['embedding_source'], SOURCE_RELEASED))
        computed = t.filter(pc.and_(
            pc.equal(t['embedding_source'], SOURCE_COMPUTED),
            pc.invert(pc.is_in(t['segment_id'], value_set=released['segment_id'].combine_chunks()))))
        t = pa.concat_tables([released, computed])
        out[split] = stats.distributions_from_rows(t['labels'].to_pylist(), t['num_frames'].to_pylist(), order)
    return out


# -- clips: computed embeddings ----------------------------------------------------------------------------

def _computed_row_groups(item) -> list[int]:
    """Row groups of a clips file that may hold computed rows, judged by the statistics of
    ``embedding_source`` ('computed' < 'released': a group holds one iff its minimum is 'computed')."""
    path = item[0]
    with _parquet(path) as f:
        md = f.metadata
        col = md.schema.to_arrow_schema().get_field_index('embedding_source')
        groups = []
        for i in range(md.num_row_groups):
            st = md.row_group(i).column(col).statistics
            if st is None or not st.has_min_max or st.min == SOURCE_COMPUTED:
                groups.append(i)
        return groups


def _frames(value: bytes) -> np.ndarray:
    return np.frombuffer(value, np.uint8).reshape(-1, EMBEDDING_DIM)


def _read_partition(files: list[str], budget: list[int]) -> dict:
    """One partition's computed primary rows and their released twins: embeddings of the row groups that
    hold them only. ``budget`` is the number of twins still to compare (shared across partitions)."""
    out = {'computed': {}, 'released': {}, 'fingerprints': {}, 'twins_total': 0, 'reference': []}
    small = ['segment_id', 'embedding_source', 'is_primary', 'model_fingerprint']
    for path in files:
        with _parquet(path) as f:
            t = f.read(columns=small)
            primary = t['is_primary'].to_numpy(zero_copy_only=False)
            source = np.asarray(t['embedding_source'].to_pylist(), dtype=object)
            ids = np.asarray(t['segment_id'].to_pylist(), dtype=object)
            comp = np.flatnonzero(primary & (source == SOURCE_COMPUTED))
            if not len(comp):
                continue
            for fp in t['model_fingerprint'].take(pa.array(comp)).to_pylist():
                out['fingerprints'][fp] = out['fingerprints'].get(fp, 0) + 1
            comp_ids = set(ids[comp])
            rel = np.flatnonzero(primary & (source == SOURCE_RELEASED))
            twins = [i for i in rel if ids[i] in comp_ids]
            out['twins_total'] += len(twins)
            twins = twins[:max(0, budget[0])]
            budget[0] -= len(twins)
            others = [i for i in rel if ids[i] not in comp_ids]
            wanted = {int(i): 'computed' for i in comp} | {int(i): 'released' for i in twins}
            starts = np.cumsum([0] + [f.metadata.row_group(g).num_rows for g in range(f.metadata.num_row_groups)])
            for g in range(f.metadata.num_row_groups):
                lo, hi = starts[g], starts[g + 1]
                rows = [i for i in wanted if lo <= i < hi]
                if not rows:
                    continue
                emb = f.read_row_group(g, columns=['embedding'])['embedding']
                for i in rows:
                    out[wanted[i]][ids[i]] = _frames(emb[int(i - lo)].as_py())
                # Released rows of the same row groups, already in memory: the reference when no twins.
                out['reference'] += [_frames(emb[int(i - lo)].as_py()) for i in others if lo <= i < hi][:1000]
    return out


def model_official(manifest: dict, fingerprints: dict) -> tuple[bool, str]:
    """Whether the computed rows were made by Google's published VGGish weights, and why the report thinks
    so. The fingerprint hashes the two files' bytes together, so it cannot be checked against the published
    sha256 of each: the build's record of where the weights came from decides (the build checks any file
    that is official by URL or by size against its published sha256, and fails on a mismatch)."""
    audio = (manifest.get('inputs') or {}).get('audio') or {}
    fp = audio.get('model_fingerprint')
    other = sorted(f for f in fingerprints if f != fp)
    if other:
        return False, (f'computed rows carry model fingerprints ({", ".join(f[:12] for f in other)}...) other '
                       f'than the one this build loaded ({(fp or "none")[:12]}...).')
    if 'weights_official' in audio:
        if audio['weights_official']:
            return True, 'The build checked its VGGish checkpoint and PCA parameters against the published sha256.'
        return False, f'the build\'s VGGish weights (fingerprint {(fp or "?")[:12]}...) are not the published ones.'
    ckpt, pca = audio.get('vggish_checkpoint'), audio.get('vggish_pca_params')
    if ckpt == 'official' and pca == 'official':
        return True, ('The build downloaded the published VGGish checkpoint and PCA parameters and checked '
                      'their sha256.')
    from transforms.core.vggish import params
    sizes = {params.CHECKPOINT_NAME: ckpt, params.PCA_PARAMS_NAME: pca}
    if all(isinstance(p, str) and fileio.is_local(p) and os.path.isfile(p)
           and os.path.getsize(p) == params.OFFICIAL_FILES[name][0] for name, p in sizes.items()):
        return True, ('The build\'s VGGish files have the published sizes, which makes the build check them '
                      'against the published sha256.')
    return False, (f'the build used --vggish_checkpoint {ckpt} and --vggish_pca_params {pca} (fingerprint '
                   f'{(fp or "?")[:12]}...), not files known to be the published VGGish weights.')


def read_computed(clip_files: list, manifest: dict) -> stats.Computed:
    """Computed embeddings against released ones (see the module docstring for what is read)."""
    splits = {s for s, v in ((manifest.get('audio') or {}).get('computed_by_split') or {}).items()
              if v.get('segments_out')}
    candidates = [item for item in clip_files if item[1] in splits]
    groups = _map(_computed_row_groups, candidates)
    partitions: dict[tuple, list[str]] = {}
    for item, g in zip(candidates, groups):
        if g:
            partitions.setdefault((item[1], item[2]), [])
    for path, split, label in clip_files:
        if (split, label) in partitions:
            partitions[(split, label)].append(path)
    budget = [MAX_PAIRS]
    computed_hist = np.zeros((EMBEDDING_DIM, 256), np.int64)
    twin_hist = np.zeros_like(computed_hist)
    reference: list = []
    pairs, fingerprints, rows, twins_total = [], {}, 0, 0
    for (split, _), files in sorted(partitions.items()):
        part = _read_partition(files, budget)
        twins_total += part['twins_total']
        for fp, n in part['fingerprints'].items():
            fingerprints[fp] = fingerprints.get(fp, 0) + n
        for seg, frames in sorted(part['computed'].items()):
            rows += 1
            computed_hist += stats.byte_histogram(frames)
            if seg in part['released']:
                twin_hist += stats.byte_histogram(part['released'][seg])
                pairs.append(stats.agreement(seg, split, frames, part['released'][seg]))
        if len(reference) < MAX_REFERENCE_ROWS:
            reference += part['reference'][:MAX_REFERENCE_ROWS - len(reference)]
    if twin_hist.sum():
        released_hist, what = twin_hist, f'the released bytes of the same {len(pairs):,} segments'
    elif reference:
        released_hist = stats.byte_histogram(np.concatenate(reference))
        what = f'the released bytes of {len(reference):,} segments stored next to them'
    else:
        released_hist, what = twin_hist, 'no released bytes (none stored next to them)'
    official, reason = model_official(manifest, fingerprints)
    return stats.Computed(rows=rows, fingerprints=fingerprints, official=official, official_reason=reason,
                         computed_hist=computed_hist, released_hist=released_hist, released_reference=what,
                         pairs=pairs, pairs_total=twins_total)
