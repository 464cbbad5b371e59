"""Writes a synthetic corpus with the shape of the full AudioSet release, at any scale, to measure the build.

    python -m benchmarks.make_release_corpus --scale 1.0 --out /data/release      # 2,084,320 records
    python -m benchmarks.make_release_corpus --scale 0.05 --out /tmp/release5 [--reshard] [--force]

Layout (what ``./run_local.sh --features_dir DIR/audioset_v1_embeddings --segments_dir DIR/csv`` reads):

    DIR/audioset_v1_embeddings/{bal_train,eval,unbal_train}/XX.tfrecord   shards named by id prefix
    DIR/csv/{eval,balanced_train,unbalanced_train}_segments.csv           the release's CSV format
    DIR/class_labels_indices.csv, DIR/ontology.json                       copies of sample_data's
    DIR/corpus.json                                                       make_corpus's summary, written last

Like the release: record counts (scale x 22,160 / 20,371 / 2,041,789), unique random 11-character ids, one
shard per 2-character id prefix (at full scale ~4,070 shards in bal_train and eval, 4,096 in unbal_train;
``--reshard`` names the same number of shards shard-NNNNN and deals the same records out at random, so a
join cannot lean on shard names), records encoded byte for byte as Google encoded theirs (checked against
every released record here), frames that are whole frame sequences of released records (so zstd sees real
data; at full scale each of the ~28,800 is used ~70 times), ~2% of records with 1-9 frames, start times
drawn from the real CSVs (plus 1% at arbitrary milliseconds), record end = start + frames, and CSVs in the
release's format with one row per record, in random order, whose MIDs are the record's labels (end = start
+ 10, or for a short record its frames and now and then a second more, as released). Labels: unbal_train
has Speech and Music each on half of the segments and a Zipf-like tail over the other 525 classes; bal_train
and eval give every class the same number of segments (42 or 43 at full scale) with Speech and Music on a
quarter each, as in the real balanced sets. ``--labels_per_segment`` sets the mean in every split.

The same arguments write the same shards and CSVs. Shards are written by ``--workers`` forked processes
(workers=1: in this process); the full scale takes well under a minute of CPU per core on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import pathlib
import shutil
import string
import time

import numpy as np

from transforms.core import tfrecord

REPO = pathlib.Path(__file__).resolve().parent.parent
SAMPLE = REPO / 'sample_data'
# Real released shards to take frames from: the fuller copy on the development machines, else the sample.
FRAME_SOURCES = (pathlib.Path('/work/shared/data/audioset/features'), SAMPLE / 'features')
START_SOURCES = (SAMPLE / 'segments' / 'eval_segments.csv', SAMPLE / 'segments' / 'balanced_train_segments.csv')

SPLITS = ('bal_train', 'eval', 'unbal_train')
FULL_RECORDS = {'bal_train': 22_160, 'eval': 20_371, 'unbal_train': 2_041_789}
CSV_NAMES = {'bal_train': 'balanced_train_segments.csv', 'eval': 'eval_segments.csv',
             'unbal_train': 'unbalanced_train_segments.csv'}
# First header line of each CSV. eval's and balanced's are the release's; unbalanced's is not known here.
CSV_CREATED = {'eval': 'Sun Mar  5 10:54:25 2017', 'bal_train': 'Sun Mar  5 10:54:31 2017',
               'unbal_train': 'Sun Mar  5 10:55:08 2017'}
FEATURES_DIR, CSV_DIR, SUMMARY = 'audioset_v1_embeddings', 'csv', 'corpus.json'
SPEECH, MUSIC = '/m/09x0r', '/m/04rlf'

ALPHABET = np.frombuffer((string.ascii_letters + string.digits + '-_').encode(), np.uint8)
ID_LEN = 11
SHORT_FRACTION = 0.02        # records with 1..9 frames
ODD_START_FRACTION = 0.01    # start times at arbitrary milliseconds
ZIPF_EXPONENT = 0.8          # tail labels: class of rank r drawn with weight r ** -0.8
MAX_EXTRA_LABELS = 12
UNBAL_SPEECH = UNBAL_MUSIC = 0.5
BALANCED_SPEECH = BALANCED_MUSIC = 0.25

# --- the release's record encoding -----------------------------------------------------------------------
# A SequenceExample is context (field 1: a map of Features) then feature_lists (field 2). Google's records
# hold the context entries in the cyclic order video_id, start_time_seconds, labels, end_time_seconds,
# starting at any of the four (a hash map's order); these are the shares of each start among the 29,445
# released records on the development machines.
ROTATIONS = (0.41, 0.29, 0.21, 0.09)
_VIDEO_ID = b'\n\x1b\n\x08video_id\x12\x0f\n\r\n\x0b'          # + 11 id bytes
_START = b'\n\x1e\n\x12start_time_seconds\x12\x08\x12\x06\n\x04'  # + float32 LE
_END = b'\n\x1c\n\x10end_time_seconds\x12\x08\x12\x06\n\x04'      # + float32 LE
_FRAME = b'\n\x86\x01\n\x83\x01\n\x80\x01'                        # + 128 bytes: one Feature in the FeatureList
_FRAME_SIZE = len(_FRAME) + 128


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[pos]
        n |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return n, pos
        shift += 7


def encode_record(video_id: bytes, start32: bytes, end32: bytes, packed_labels: bytes, tail: bytes,
                  rotation: int = 0) -> bytes:
    """One SequenceExample in the release's bytes. ``start32``/``end32``: float32 LE; ``packed_labels``:
    the label indices as concatenated varints; ``tail``: the serialized feature_lists field (tag included);
    ``rotation``: which context entry comes first (0: video_id, 1: start, 2: labels, 3: end)."""
    int64_list = b'\n' + _varint(len(packed_labels)) + packed_labels
    feature = b'\x1a' + _varint(len(int64_list)) + int64_list
    entry = b'\n\x06labels\x12' + _varint(len(feature)) + feature
    entries = (_VIDEO_ID + video_id, _START + start32, b'\n' + _varint(len(entry)) + entry, _END + end32)
    context = b''.join(entries[rotation:] + entries[:rotation])
    return b'\n' + _varint(len(context)) + context + tail


def split_record(payload: bytes) -> tuple[bytes, bytes, int] | None:
    """(context, feature_lists tail, frames) of a released record whose only feature list is 128-byte
    audio_embedding frames; None for anything else."""
    if payload[:1] != b'\n':
        return None
    length, pos = _read_varint(payload, 1)
    tail = payload[pos + length:]
    if tail[:1] != b'\x12':
        return None
    _, pos = _read_varint(tail, 1)            # FeatureLists
    if tail[pos:pos + 1] != b'\n':
        return None
    _, pos = _read_varint(tail, pos + 1)      # the map entry
    key = b'\n\x0faudio_embedding\x12'
    if tail[pos:pos + len(key)] != key:
        return None
    body, pos = _read_varint(tail, pos + len(key))
    if pos + body != len(tail) or body % _FRAME_SIZE or not body:
        return None
    frames = body // _FRAME_SIZE
    if any(tail[pos + i * _FRAME_SIZE:pos + i * _FRAME_SIZE + len(_FRAME)] != _FRAME for i in range(frames)):
        return None
    return payload[:len(payload) - len(tail)], tail, frames


def load_frame_pool(source: pathlib.Path) -> tuple[list[bytes], np.ndarray]:
    """The feature_lists of every usable record in ``source``'s bal_train/ and eval/ shards (or any
    *.tfrecord below it), and their frame counts."""
    paths = sorted(p for d in ('bal_train', 'eval') for p in (source / d).glob('*.tfrecord'))
    paths = paths or sorted(source.rglob('*.tfrecord'))
    tails, frames = [], []
    for path in paths:
        for rec in tfrecord.iter_records(path.read_bytes()):
            got = rec.payload is not None and split_record(rec.payload)
            if got:
                tails.append(got[1])
                frames.append(got[2])
    if not tails:
        raise ValueError(f'no released records to take frames from under {source}')
    return tails, np.asarray(frames, np.int64)


def _real_start_ms() -> np.ndarray:
    starts = []
    for path in START_SOURCES:
        for line in path.read_text().splitlines():
            if line and not line.startswith('#'):
                starts.append(round(float(line.split(',', 2)[1]) * 1000))
    return np.asarray(starts, np.int64)


def _class_index() -> list[str]:
    lines = (SAMPLE / 'class_labels_indices.csv').read_text().splitlines()[1:]
    return [line.split(',', 2)[1] for line in lines if line]


# --- labels ----------------------------------------------------------------------------------------------

def _mean_labels(lam: float, p_tail: np.ndarray, p_s: float, p_m: float, balanced: bool, n_classes: int) -> float:
    """Expected distinct labels per segment: Speech with p_s, Music with p_m, k ~ Poisson(lam) tail draws
    from ``p_tail``; balanced segments also have one target class (uniform over all classes), unbalanced
    ones with no Speech, no Music and k = 0 get one tail draw."""
    miss = np.exp(-lam * p_tail)                      # P(a tail class is not drawn)
    if balanced:
        keep_out = 1 - 1 / n_classes                  # P(a class is not the target)
        return float((1 - keep_out * miss).sum() + (1 - keep_out * (1 - p_s)) + (1 - keep_out * (1 - p_m)))
    p_force = (1 - p_s) * (1 - p_m) * math.exp(-lam)
    return float(p_s + p_m + (1 - (miss - p_force * p_tail)).sum())


def _draw_labels(rng: np.random.Generator, n: int, balanced: bool, mean: float, n_classes: int,
                 speech: int, music: int, tail_classes: np.ndarray, p_tail: np.ndarray):
    """Label indices for n segments: (offsets[n+1], values sorted by index within each segment)."""
    p_s, p_m = (BALANCED_SPEECH, BALANCED_MUSIC) if balanced else (UNBAL_SPEECH, UNBAL_MUSIC)
    lo, hi = 0.0, float(MAX_EXTRA_LABELS)
    least, most = (_mean_labels(x, p_tail, p_s, p_m, balanced, n_classes) for x in (lo, hi))
    if not least <= mean <= most:
        raise ValueError(f'labels_per_segment {mean} is outside what this label model can give '
                         f'({least:.2f}..{most:.2f}; the release has 2.3-3.2)')
    for _ in range(60):
        lam = (lo + hi) / 2
        if _mean_labels(lam, p_tail, p_s, p_m, balanced, n_classes) < mean:
            lo = lam
        else:
            hi = lam
    owners, classes = [], []
    k = np.minimum(rng.poisson(lam, n), MAX_EXTRA_LABELS)
    has_s, has_m = rng.random(n) < p_s, rng.random(n) < p_m
    if balanced:
        # Round robin over a shuffled class order: every class the same number of segments (+-1).
        target = np.tile(rng.permutation(n_classes), -(-n // n_classes))[:n]
        owners.append(np.arange(n))
        classes.append(rng.permutation(target))
    else:
        k[~has_s & ~has_m & (k == 0)] = 1
    owners += [np.flatnonzero(has_s), np.flatnonzero(has_m), np.repeat(np.arange(n), k)]
    classes += [np.full(has_s.sum(), speech), np.full(has_m.sum(), music),
                rng.choice(tail_classes, size=int(k.sum()), p=p_tail)]
    pairs = np.unique(np.concatenate(owners) * n_classes + np.concatenate(classes))
    owner, values = pairs // n_classes, pairs % n_classes
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(owner, minlength=n), out=offsets[1:])
    return offsets, values


# --- planning (parent) and writing (workers) -------------------------------------------------------------

_PLAN: dict = {}  # set in the parent before the pool forks; the workers read it


def _write_shard(job: tuple[str, str, int, int]) -> tuple[str, int, int]:
    split, name, lo, hi = job
    p, s = _PLAN, _PLAN['splits'][split]
    idx = s['order'][lo:hi]
    ids = s['ids'][idx].tolist()
    start32, end32 = s['start32'][idx].tobytes(), s['end32'][idx].tobytes()
    label_bytes, label_at = s['label_bytes'], s['label_byte_offsets']
    tails = p['tails']
    out = []
    for j, (vid, a, b, t, r) in enumerate(zip(ids, label_at[idx].tolist(), label_at[idx + 1].tolist(),
                                              s['pool_index'][idx].tolist(), s['rotation'][idx].tolist())):
        out.append(tfrecord.frame(encode_record(vid, start32[4 * j:4 * j + 4], end32[4 * j:4 * j + 4],
                                                label_bytes[a:b], tails[t], r)))
    data = b''.join(out)
    (pathlib.Path(p['features']) / split / name).write_bytes(data)
    return split, hi - lo, len(data)


def _packed_labels(offsets: np.ndarray, values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Every segment's label indices as protobuf varints (values < 16384), concatenated, and where each
    segment's run starts (bytes, int64[n+1])."""
    wide = values >= 0x80
    sizes = 1 + wide
    out = np.zeros(int(sizes.sum()), np.uint8)
    at = np.cumsum(sizes) - sizes
    out[at] = np.where(wide, (values & 0x7F) | 0x80, values)
    out[at[wide] + 1] = values[wide] >> 7
    return out.tobytes(), np.r_[0, np.cumsum(sizes)][offsets]


def _format_ms(ms: int) -> str:
    return f'{ms // 1000}.{ms % 1000:03d}'


def _write_csv(split: str) -> int:
    """Writes the split's CSV in the release format; returns its size in bytes."""
    p, s = _PLAN, _PLAN['splits'][split]
    mids, offsets, values, rank = p['mids'], s['label_offsets'], s['label_values'], p['mid_rank']
    # The release lists a row's MIDs in MID order (the records hold them in index order).
    by_mid = values[np.lexsort((rank[values], np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))))]
    by_mid, offsets = by_mid.tolist(), offsets.tolist()
    n = len(offsets) - 1
    lines = [f'# Segments csv created {CSV_CREATED[split]}',
             f'# num_ytids={n}, num_segs={n}, num_unique_labels={len(np.unique(values))}, '
             f'num_positive_labels={len(values)}',
             '# YTID, start_seconds, end_seconds, positive_labels']
    ids = s['ids']
    for i, (start, end) in enumerate(zip(s['start_ms'].tolist(), s['csv_end_ms'].tolist())):
        labels = ','.join([mids[v] for v in by_mid[offsets[i]:offsets[i + 1]]])
        lines.append(f'{ids[i].decode()}, {_format_ms(start)}, {_format_ms(end)}, "{labels}"')
    data = ('\n'.join(lines) + '\n').encode()
    (pathlib.Path(p['csv']) / CSV_NAMES[split]).write_bytes(data)
    return len(data)


def _unique_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct 11-character YouTube-alphabet ids (S11), in random order."""
    ids = np.zeros(0, f'S{ID_LEN}')
    while len(ids) < n:
        more = ALPHABET[rng.integers(0, len(ALPHABET), (n - len(ids), ID_LEN))].view(f'S{ID_LEN}').ravel()
        ids = np.concatenate([ids, more])
        _, first = np.unique(ids, return_index=True)
        ids = ids[np.sort(first)]
    return ids


def _plan_split(seed, split, n, ids, starts_real, pool_frames, mids, labels_per_segment, reshard):
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    short_pool, long_pool = np.flatnonzero(pool_frames < 10), np.flatnonzero(pool_frames == 10)
    short = rng.random(n) < SHORT_FRACTION
    pool_index = np.where(short, rng.choice(short_pool, n) if len(short_pool) else rng.choice(long_pool, n),
                          rng.choice(long_pool, n))
    frames = pool_frames[pool_index]
    start_ms = rng.choice(starts_real, n)
    odd = rng.random(n) < ODD_START_FRACTION
    start_ms[odd] = rng.integers(0, 300_000, int(odd.sum()))
    # Records end where their frames end; the CSV says 10 s, or for a short segment its frames, and now
    # and then a second more (both as in the release).
    csv_end_ms = start_ms + 1000 * np.where(frames == 10, 10, np.minimum(10, frames + (rng.random(n) < 0.1)))
    index = {m: i for i, m in enumerate(mids)}
    speech, music = index[SPEECH], index[MUSIC]
    tail_classes = np.array([i for i in range(len(mids)) if i not in (speech, music)])
    weights = 1.0 / (1 + rng.permutation(len(tail_classes))) ** ZIPF_EXPONENT
    label_offsets, label_values = _draw_labels(rng, n, split != 'unbal_train', labels_per_segment, len(mids),
                                               speech, music, tail_classes, weights / weights.sum())
    # Shards: one per 2-character prefix, as released; --reshard keeps their sizes and deals ids at random.
    prefix = ids.view(np.uint8).reshape(n, ID_LEN)[:, :2]
    key = prefix[:, 0].astype(np.int64) * 256 + prefix[:, 1]
    order = np.argsort(key, kind='stable')
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    starts_, stops = np.r_[0, bounds], np.r_[bounds, n]
    if reshard:
        order = np.random.default_rng([seed, SPLITS.index(split), 1]).permutation(n)  # same records either way
        names = [f'shard-{j:05d}.tfrecord' for j in range(len(starts_))]
    else:
        names = [f'{bytes(prefix[order[lo]]).decode()}.tfrecord' for lo in starts_]
    return {
        'ids': ids, 'start_ms': start_ms, 'csv_end_ms': csv_end_ms,
        'start32': (start_ms / 1000).astype('<f4'), 'end32': (start_ms / 1000 + frames).astype('<f4'),
        'pool_index': pool_index, 'frames': frames, 'order': order,
        'rotation': rng.choice(len(ROTATIONS), n, p=np.array(ROTATIONS) / sum(ROTATIONS)),
        'label_offsets': label_offsets, 'label_values': label_values,
        **dict(zip(('label_bytes', 'label_byte_offsets'), _packed_labels(label_offsets, label_values))),
        'shards': [(split, name, int(lo), int(hi)) for name, lo, hi in zip(names, starts_, stops)],
    }


def _prepare_out(out: pathlib.Path, force: bool) -> None:
    ours = [FEATURES_DIR, CSV_DIR, SUMMARY, 'class_labels_indices.csv', 'ontology.json']
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ValueError(f'{out} is not empty; pass --force (force=True) to replace a corpus there')
        for name in ours:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def make_corpus(out, scale: float, labels_per_segment: float = 2.5, seed: int = 0, reshard: bool = False,
                workers: int | None = None, force: bool = False, frames_from=None) -> dict:
    """Writes a corpus (module docstring) to ``out`` and returns its summary, also saved as out/corpus.json.

    The summary holds per split: records, shards, bytes, the CSV path, labels, short records and the
    number of segments with Speech and with Music. The same arguments give the same shards and CSVs.
    """
    t0 = time.perf_counter()
    if not 0 < scale <= 1:
        raise ValueError(f'scale must be in (0, 1], got {scale}')
    out = pathlib.Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise ValueError(f'{out} is not empty; pass --force (force=True) to replace a corpus there')
    frames_from = pathlib.Path(frames_from) if frames_from else next(p for p in FRAME_SOURCES if p.is_dir())
    tails, pool_frames = load_frame_pool(frames_from)
    mids = _class_index()
    rng = np.random.default_rng(seed)
    counts = {s: max(1, round(FULL_RECORDS[s] * scale)) for s in SPLITS}
    all_ids = _unique_ids(rng, sum(counts.values()))
    starts_real = _real_start_ms()
    features, csv_dir = out / FEATURES_DIR, out / CSV_DIR
    plan = {'features': str(features), 'csv': str(csv_dir), 'tails': tails, 'mids': mids,
            'mid_rank': np.argsort(np.argsort(np.array(mids))),
            'splits': {}}
    lo = 0
    for split in SPLITS:
        plan['splits'][split] = _plan_split(seed, split, counts[split], all_ids[lo:lo + counts[split]],
                                            starts_real, pool_frames, mids, labels_per_segment, reshard)
        lo += counts[split]
    t_plan = time.perf_counter() - t0
    _prepare_out(out, force)
    for split in SPLITS:
        (features / split).mkdir(parents=True)
    csv_dir.mkdir()
    for name in ('class_labels_indices.csv', 'ontology.json'):
        shutil.copyfile(SAMPLE / name, out / name)

    _PLAN.clear()
    _PLAN.update(plan)
    jobs = [job for split in reversed(SPLITS) for job in plan['splits'][split]['shards']]
    shard_bytes = dict.fromkeys(SPLITS, 0)
    workers = workers or os.cpu_count() or 1
    try:
        if workers == 1:
            csv_bytes = {s: _write_csv(s) for s in SPLITS}
            for split, _, size in map(_write_shard, jobs):
                shard_bytes[split] += size
        else:
            # Fork: the workers inherit the plan instead of receiving it pickled.
            with multiprocessing.get_context('fork').Pool(workers) as pool:
                csv_async = {s: pool.apply_async(_write_csv, (s,)) for s in SPLITS}
                for split, _, size in pool.imap_unordered(_write_shard, jobs, chunksize=16):
                    shard_bytes[split] += size
                csv_bytes = {s: r.get() for s, r in csv_async.items()}
    finally:
        _PLAN.clear()

    summary = {
        'out': str(out), 'features_dir': str(features), 'segments_dir': str(csv_dir),
        'scale': scale, 'seed': seed, 'labels_per_segment': labels_per_segment, 'reshard': reshard,
        'frames_from': str(frames_from), 'frame_pool': len(tails),
        'records': sum(counts.values()), 'bytes': sum(shard_bytes.values()),
        'splits': {}, 'seconds': {'plan': round(t_plan, 2)},
    }
    speech, music = mids.index(SPEECH), mids.index(MUSIC)
    for split in SPLITS:
        s = plan['splits'][split]
        values = s['label_values']
        summary['splits'][split] = {
            'records': counts[split], 'shards': len(s['shards']), 'bytes': shard_bytes[split],
            'csv': str(csv_dir / CSV_NAMES[split]), 'csv_bytes': csv_bytes[split],
            'labels': len(values), 'labels_per_segment': round(len(values) / counts[split], 3),
            'unique_labels': int(len(np.unique(values))),
            'speech': int((values == speech).sum()), 'music': int((values == music).sum()),
            'short_records': int((s['frames'] < 10).sum()),
        }
    summary['seconds']['total'] = round(time.perf_counter() - t0, 2)
    (out / SUMMARY).write_text(json.dumps(summary, indent=1) + '\n')
    return summary


def format_summary(summary: dict) -> str:
    lines = [f'{"split":<12}{"records":>11}{"shards":>8}{"MB":>9}{"labels/seg":>11}{"speech":>8}{"music":>8}'
             f'{"short":>7}']
    for split, s in summary['splits'].items():
        lines.append(f'{split:<12}{s["records"]:>11,}{s["shards"]:>8,}{s["bytes"] / 1e6:>9.1f}'
                     f'{s["labels_per_segment"]:>11.2f}{s["speech"] / s["records"]:>8.1%}'
                     f'{s["music"] / s["records"]:>8.1%}{s["short_records"] / s["records"]:>7.1%}')
    lines.append(f'{summary["records"]:,} records, {summary["bytes"] / 1e9:.2f} GB in '
                 f'{summary["seconds"]["total"]:.1f} s (planning {summary["seconds"]["plan"]:.1f} s), '
                 f'frames from {summary["frame_pool"]:,} real records -> {summary["out"]}')
    return '\n'.join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True)
    parser.add_argument('--scale', type=float, default=1.0, help='1.0 = the full release (2,084,320 records)')
    parser.add_argument('--labels_per_segment', type=float, default=2.5, help='mean; the release has 2.3-3.2')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--reshard', action='store_true', help='shard-NNNNN names, ids dealt out at random')
    parser.add_argument('--workers', type=int, default=os.cpu_count())
    parser.add_argument('--force', action='store_true', help='replace a corpus already in --out')
    parser.add_argument('--frames_from', default=None,
                        help='released shards to take frames from (default: the first of '
                             + ', '.join(map(str, FRAME_SOURCES)) + ' that exists)')
    args = parser.parse_args(argv)
    try:
        summary = make_corpus(args.out, args.scale, args.labels_per_segment, args.seed, args.reshard,
                              args.workers, args.force, args.frames_from)
    except ValueError as e:
        raise SystemExit(f'error: {e}')
    print(format_summary(summary))


if __name__ == '__main__':
    main()
