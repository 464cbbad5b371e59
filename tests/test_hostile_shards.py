"""Hostile shard files in a real build: every record is in clips/ or named by a dead letter, counted in
records (estimated where damage hides them), and a loss above the threshold fails the run."""
import gzip
import os
import pathlib
import struct

import pyarrow.dataset as ds
import pytest

from pipelines import build_dataset
from tests.accounting import from_output, records_by_split
from tests.fixtures import build_args, copy_sample
from transforms.core import tfrecord


def _dead(out: pathlib.Path) -> list[tuple]:
    rows = ds.dataset(out / 'dead_letters', format='parquet').to_table().to_pylist()
    return sorted((r['source'].rsplit('/', 1)[1], r['reason'], r['records'], r['records_estimated']) for r in rows)


@pytest.fixture()
def inputs(tmp_path):
    return copy_sample(tmp_path / 'in', splits=('unbal_train',), csvs=False)


def test_bad_files_are_named_and_never_hang(inputs, tmp_path):
    folder = inputs / 'features' / 'unbal_train'
    shards = sorted(folder.glob('*.tfrecord'))
    records = sum(1 for _ in tfrecord.iter_records(shards[0].read_bytes()))
    # The first shard gzip-compressed (a legitimate TFRecord compression): every record is read.
    shards[0].write_bytes(gzip.compress(shards[0].read_bytes()))
    (folder / 'empty.tfrecord').write_bytes(b'')
    (folder / 'dir.tfrecord').mkdir()
    os.symlink(folder / 'missing', folder / 'dangling.tfrecord')
    os.mkfifo(folder / 'fifo.tfrecord')
    (folder / 'text.tfrecord').write_text('this is not a TFRecord file\n' * 100)
    manifest = build_dataset.run(build_args(inputs, tmp_path / 'out', '--max_bad_fraction', '1'))
    s = manifest['splits']['unbalanced_train']
    got = from_output(tmp_path / 'out')['unbalanced_train']     # recounted from clips/ and dead_letters/
    assert got['segments_out'] == s['segments_out'] == 650 and got['clip_rows'] == got['label_pairs']
    dead = _dead(tmp_path / 'out')
    assert [d[:2] for d in dead] == [('dangling.tfrecord', 'unreadable-file'), ('dir.tfrecord', 'unreadable-file'),
                                     ('empty.tfrecord', 'empty-file'), ('fifo.tfrecord', 'unreadable-file'),
                                     ('text.tfrecord', 'not-a-tfrecord')]
    assert s['records_in'] == 650 + sum(d[2] for d in dead) == got['segments_out'] + got['dead_letters']
    assert dead[-1][3]   # the text file: estimated records
    assert records > 0


def test_a_damaged_stretch_counts_as_the_records_it_hid(inputs, tmp_path):
    """A length of 2^40 with a valid length CRC in the middle of a shard: the reader resynchronizes, the
    records after it are kept with exact offsets, and the record it hid counts as a dead letter record."""
    shard = sorted((inputs / 'features' / 'unbal_train').glob('*.tfrecord'))[0]
    data = bytearray(shard.read_bytes())
    original = records_by_split(inputs / 'features')['unbalanced_train']   # by hand, before the damage
    units = list(tfrecord.iter_records(bytes(data)))
    victim = units[len(units) // 2]
    header = struct.pack('<Q', 1 << 40)
    data[victim.offset:victim.offset + 12] = header + struct.pack('<I', tfrecord.masked_crc(header))
    shard.write_bytes(bytes(data))
    manifest = build_dataset.run(build_args(inputs, tmp_path / 'out'))
    s = manifest['splits']['unbalanced_train']
    got = from_output(tmp_path / 'out')['unbalanced_train']
    assert got['segments_out'] == s['segments_out'] == 649 and got['dead_letters'] == s['dead_letters'] == 1
    assert original == 650 and s['records_in'] == 650     # the hidden record counted once
    assert _dead(tmp_path / 'out') == [(shard.name, 'implausible-length', 1, True)]
    clips = ds.dataset(tmp_path / 'out' / 'clips', format='parquet', partitioning='hive').to_table(
        filter=ds.field('is_primary') & (ds.field('source_file') == str(shard)))
    after = [r for r in clips.to_pylist() if r['source_offset'] > victim.offset]
    assert after and all(r['source_record'] is None for r in after)   # index unknowable, offset exact
    assert sorted(r['source_offset'] for r in after) == [u.offset for u in units if u.offset > victim.offset]


def test_a_large_loss_fails_the_threshold(inputs, tmp_path):
    """Cutting a shard's records in half must count as half its records, and fail a 5% threshold."""
    shards = sorted((inputs / 'features' / 'unbal_train').glob('*.tfrecord'))
    for shard in shards:
        data = bytearray(shard.read_bytes())
        data[20:len(data) // 2] = b'\0' * (len(data) // 2 - 20)
        shard.write_bytes(bytes(data))
    with pytest.raises(Exception, match='too much bad input'):
        build_dataset.run(build_args(inputs, tmp_path / 'out'))
    assert not (tmp_path / 'out' / 'manifest.json').exists()
    assert not (tmp_path / 'out' / '_spill').exists()


def test_audio_names_and_manifest_rows_must_hold_youtube_ids(tmp_path):
    from transforms.embed import plan_audio
    manifest = tmp_path / 'm.csv'
    manifest.write_text('path,YTID,start,end\n'
                        'a.flac,../../etc/passwd,0,10\n'
                        'b.flac,"bad\nid",0,10\n'
                        'c.flac,-0BIyqJj9ZU,30,40\n'
                        'd.flac,abcdefghijk,nan,10\n')
    items, dead = plan_audio([], str(manifest))
    assert [i.video_id for i in items] == ['-0BIyqJj9ZU']
    assert len(dead) == 3 and all(d['stage'] == 'discover-audio' for d in dead)
