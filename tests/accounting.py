"""The build's accounting recounted from its OUTPUT and its inputs, without the build's code: records in by a
hand parse of the TFRecord framing, segments out and clip rows from clips/, dead letters (in the records they
stand for) from dead_letters/. Tests compare these with the manifest instead of trusting its ``adds_up`` flag,
which the seal only ever writes as true."""
from __future__ import annotations

import pathlib
import struct

import pyarrow.dataset as ds
import pyarrow.parquet as pq

# Written out, not imported: the stages whose dead letters stand for input records (not CSV lines, audio
# files or strong-label events).
RECORD_STAGES = {'read-shard', 'parse-record', 'label-record', 'check-segments'}
AUDIO_STAGES = {'discover-audio', 'embed-audio', 'label-audio'}
FOLDERS = {'eval': 'eval', 'bal_train': 'balanced_train', 'unbal_train': 'unbalanced_train'}


def framed_records(data: bytes) -> int:
    """Records in TFRecord framing (u64 length, u32 CRC, data, u32 CRC), CRCs not checked: the records a
    shard holds or began. A tail cut short inside a record counts as that record."""
    n, at = 0, 0
    while at < len(data):
        if len(data) - at < 8:
            return n + 1
        (length,) = struct.unpack_from('<Q', data, at)
        at += 12 + length + 4
        n += 1
    return n


def records_by_split(features: pathlib.Path) -> dict[str, int]:
    """split -> records in its shards (``features/<release folder>/*.tfrecord``), by ``framed_records``."""
    out: dict[str, int] = {}
    for folder, split in FOLDERS.items():
        shards = sorted((features / folder).glob('*.tfrecord'))
        if shards:
            out[split] = sum(framed_records(s.read_bytes()) for s in shards)
    return out


def from_output(out: pathlib.Path) -> dict:
    """split -> {'segments_out' (released primary rows), 'clip_rows', 'label_pairs' (over primary rows of
    every source: its labels, or 1 for an unlabelled clip), 'dead_letters' (records of record-stage dead
    letters)}, plus 'audio' -> {'computed' (computed primary rows), 'dead_letters' (audio-stage rows)}."""
    clips = ds.dataset(out / 'clips', format='parquet', partitioning='hive').to_table(
        columns=['split', 'is_primary', 'embedding_source', 'labels']).to_pylist()
    dead = pq.read_table(out / 'dead_letters' / 'part-00000.parquet').to_pylist()
    acc: dict = {}

    def split_of(name):
        return acc.setdefault(name, {'segments_out': 0, 'clip_rows': 0, 'label_pairs': 0, 'dead_letters': 0})
    audio = {'computed': 0, 'dead_letters': 0}
    for r in clips:
        s = split_of(r['split'])
        s['clip_rows'] += 1
        if r['is_primary']:
            s['label_pairs'] += max(1, len(r['labels']))
            if r['embedding_source'] == 'released':
                s['segments_out'] += 1
            else:
                audio['computed'] += 1
    for d in dead:
        if d['stage'] in RECORD_STAGES:
            split_of(d['split'] or 'unknown')['dead_letters'] += d['records']
        elif d['stage'] in AUDIO_STAGES:
            audio['dead_letters'] += 1
    acc['audio'] = audio
    return acc


def assert_records_add_up(out: pathlib.Path, manifest: dict, records_in: dict[str, int]) -> dict:
    """Per split of ``records_in`` (counted from the inputs): records in == released segments in clips/ +
    records dead-lettered in dead_letters/, clip rows == segment-label pairs, and the manifest says the same
    numbers. Returns the recount."""
    got = from_output(out)
    for split, n in records_in.items():
        g, m = got.get(split, {}), manifest['splits'][split]
        assert n == g['segments_out'] + g['dead_letters'], (split, n, g)
        assert g['clip_rows'] == g['label_pairs'], (split, g)
        assert (m['records_in'], m['segments_out'], m['dead_letters'], m['clip_rows']) == \
            (n, g['segments_out'], g['dead_letters'], g['clip_rows']), (split, m, g)
    return got


def subtree(children: dict[str, list[str]], mid: str) -> set[str]:
    """``mid`` and every class below it, walking child_ids down."""
    seen, stack = {mid}, [mid]
    while stack:
        for c in children[stack.pop()]:
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return seen
