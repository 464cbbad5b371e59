"""A release that arrives incomplete never builds a "complete" dataset: a tarball cut anywhere (inside a
member, at a member boundary, short of its gzip trailer), a server whose Content-Length stops short, a
tarball with no shard, a split its CSV lists that no record reached, and an unpacked tree beside its
tarball. Each one fails with one error naming the input, and the records lost are counted from an
independent walk of the archive (Python's tarfile and a hand count of the TFRecord framing)."""
import gzip
import http.server
import io
import pathlib
import re
import shutil
import struct
import tarfile
import threading
import zlib

import pyarrow.parquet as pq
import pytest

from pipelines import build_dataset
from pipelines.errors import EXIT_FAILED, EXIT_INPUT, EXIT_USAGE, UserError, expected_error
from tests.fixtures import build_args, copy_sample
from tests.release_server import make_release_tarball

SPLITS = ('eval', 'unbal_train')


def _video_ids(shard: pathlib.Path) -> set[str]:
    """The video ids of a shard's records, read by TensorFlow's own TFRecord reader and proto parser."""
    import tensorflow as tf
    return {tf.train.SequenceExample.FromString(r.numpy()).context.feature['video_id'].bytes_list.value[0].decode()
            for r in tf.data.TFRecordDataset(str(shard))}


@pytest.fixture(scope='module')
def release(tmp_path_factory):
    """The tarball of 10 eval and 10 unbal_train shards, and an eval CSV listing exactly the eval segments
    it holds (its header's num_segs to match), so that the CSV rows no record met are the records lost."""
    root = tmp_path_factory.mktemp('integrity')
    inputs = copy_sample(root / 'in', splits=SPLITS, shards_per_split=10)
    (inputs / 'segments' / 'balanced_train_segments.csv').unlink()
    ids = set().union(*(_video_ids(s) for s in (inputs / 'features' / 'eval').glob('*.tfrecord')))
    csv = inputs / 'segments' / 'eval_segments.csv'
    lines = csv.read_text().splitlines(keepends=True)
    rows = [ln for ln in lines[3:] if ln.split(',', 1)[0] in ids]
    assert len(rows) == len(ids) > 30
    header = re.sub(r'num_ytids=\d+, num_segs=\d+', f'num_ytids={len(rows)}, num_segs={len(rows)}', lines[1])
    csv.write_text(lines[0] + header + lines[2] + ''.join(rows))
    tarball = make_release_tarball(root / 'features.tar.gz', inputs / 'features', splits=SPLITS)
    return inputs, tarball


def _args(inputs, out, features, *extra):
    args = build_args(inputs, out, *extra)
    args[args.index('--features_dir') + 1] = str(features)
    return args


def _fails(argv) -> str:
    with pytest.raises(Exception) as e:
        build_dataset.run(argv)
    found = expected_error(e.value)
    assert found is not None, e.value
    code, message = found
    assert code == EXIT_FAILED, message
    return message


def _record_ends(data: bytes) -> list[int]:
    """Where each record of a TFRecord file ends, by its framing (length, length CRC, data, data CRC),
    walked by hand."""
    ends, pos = [], 0
    while pos + 12 <= len(data):
        pos += 12 + struct.unpack_from('<Q', data, pos)[0] + 4
        if pos <= len(data):
            ends.append(pos)
    return ends


def _records_per_member(tarball: pathlib.Path) -> list[tuple[str, int, int, list[int]]]:
    """(name, start and end offset of its data in the tar stream, each record's end offset there) of each
    shard, by Python's tarfile."""
    out = []
    with tarfile.open(tarball, 'r:gz') as tar:
        for m in tar.getmembers():
            if m.isfile():
                ends = [m.offset_data + e for e in _record_ends(tar.extractfile(m).read())]
                out.append((m.name, m.offset_data, m.offset_data + m.size, ends))
    return out


@pytest.mark.parametrize('where', ['eval', 'unbal_train'])
def test_a_cut_download_fails_and_counts_what_it_lost(release, tmp_path, where):
    inputs, tarball = release
    data = tarball.read_bytes()
    # cut the compressed bytes where the split's shards are, a third into them
    spans = [(start, end) for name, start, end, _ in _records_per_member(tarball) if f'/{where}/' in name]
    target = spans[0][0] + (spans[-1][1] - spans[0][0]) // 3
    keep = len(gzip.compress(gzip.decompress(data)[:target])) / len(data)
    cut = tmp_path / 'features.tar.gz'
    cut.write_bytes(data[:int(len(data) * keep)])
    message = _fails(_args(inputs, tmp_path / 'out', cut, '--max_bad_fraction', '1'))
    assert f'{cut}: truncated-gzip' in message and 'not read whole' in message
    assert not (tmp_path / 'out' / 'manifest.json').exists()
    # the oracle: the archive walked whole by Python's tarfile, each shard's records counted by hand; a
    # shard is lost from its first byte past the cut (an eval record lost is an eval CSV row no record met)
    got = len(zlib.decompressobj(31).decompress(data[:int(len(data) * keep)]))   # all that can be inflated
    members = _records_per_member(tarball)
    lost_eval = sum(e > got for name, _, _, ends in members if '/eval/' in name for e in ends)
    # the records of the cut member past the cut, in proportion to its bytes
    missing = next((sum(e > got for e in ends) for name, start, end, ends in members if start < got < end), 0)
    if where == 'eval':
        assert lost_eval > 10
        assert re.search(rf"CSV rows that no record met: eval {lost_eval:,}\b", message), (lost_eval, message.splitlines())
    else:   # the sample has no unbalanced CSV: only the reader's estimate speaks for that split
        assert lost_eval == 0 and 'CSV rows that no record met: none' in message
    # the reader's own estimate is never 1 by default: at least the part of the cut member never read
    found = re.search(r'records lost: about ([\d,]+)', message)
    estimate = int(found.group(1).replace(',', '')) if found else 0
    assert missing / 2 <= estimate <= missing * 2 + 2, (estimate, missing)
    dead = pq.read_table(tmp_path / 'out' / 'dead_letters').to_pylist()
    assert sum(r['records'] for r in dead if r['reason'] == 'truncated-gzip') == estimate


class _ShortLengthHandler(http.server.BaseHTTPRequestHandler):
    """Announces a Content-Length shorter than the tarball and sends that many bytes (a proxy that cut it)."""
    body = b''

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self._head()

    def do_GET(self):
        self._head()
        self.wfile.write(self.body[:len(self.body) * 6 // 10])

    def _head(self):
        self.send_response(200)
        self.send_header('Content-Length', str(len(self.body) * 6 // 10))
        self.end_headers()


def test_a_content_length_short_of_the_body_fails(release, tmp_path):
    inputs, tarball = release
    handler = type('H', (_ShortLengthHandler,), {'body': tarball.read_bytes()})
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f'http://127.0.0.1:{server.server_port}/features.tar.gz'
        message = _fails(_args(inputs, tmp_path / 'out', url, '--max_bad_fraction', '1'))
    finally:
        server.shutdown()
    assert f'{url}: truncated-gzip' in message


def test_an_archive_cut_at_a_member_boundary_fails(release, tmp_path):
    inputs, tarball = release
    plain = gzip.decompress(tarball.read_bytes())
    members = _records_per_member(tarball)
    end = members[len(members) // 2][2]
    end += -end % 512
    cut = tmp_path / 'features.tar.gz'
    cut.write_bytes(gzip.compress(plain[:end]))       # gzip is whole: only tar's end blocks are missing
    message = _fails(_args(inputs, tmp_path / 'out', cut, '--max_bad_fraction', '1'))
    assert f'{cut}: truncated-tar' in message and 'end-of-archive' in message


def test_a_tarball_without_shards_fails(release, tmp_path):
    inputs, _ = release
    empty = tmp_path / 'features.tar.gz'
    with tarfile.open(empty, 'w:gz') as tar:
        info = tarfile.TarInfo('audioset_v1_embeddings/README')
        info.size = 5
        tar.addfile(info, io.BytesIO(b'hello'))
    message = _fails(_args(inputs, tmp_path / 'out', empty, '--max_bad_fraction', '1'))
    assert f'{empty}: no-shards' in message


def test_a_split_its_csv_lists_but_no_record_reached_fails(release, tmp_path):
    inputs, tarball = release
    segments = tmp_path / 'segments'
    shutil.copytree(inputs / 'segments', segments)
    shutil.copyfile(pathlib.Path(build_dataset.__file__).parents[1] / 'sample_data' / 'segments' /
                    'balanced_train_segments.csv', segments / 'balanced_train_segments.csv')
    args = _args(inputs, tmp_path / 'out', tarball)
    args[args.index('--segments_dir') + 1] = str(segments)
    message = _fails(args)
    assert 'balanced_train: ' in message and 'lists 22,160 segments, but no record of this split was read' in message
    # a shard tree without that split's folder builds, and the summary says the split was not built
    tree = copy_sample(tmp_path / 'tree', splits=('eval',), shards_per_split=3)
    manifest = build_dataset.run(build_args(tree, tmp_path / 'tree_out'))
    assert [line.split(':')[0] for line in manifest['splits_not_built']] == ['balanced_train']
    from pipelines.summary import format_summary
    assert 'note: balanced_train: ' in format_summary(manifest, str(tmp_path / 'tree_out'))


def test_an_unpacked_tree_beside_its_tarball_is_a_choice(release, tmp_path):
    inputs, tarball = release
    folder = tmp_path / 'release'
    (folder / 'audioset_v1_embeddings' / 'eval').mkdir(parents=True)
    shutil.copyfile(tarball, folder / 'features.tar.gz')
    for shard in sorted((inputs / 'features' / 'eval').glob('*.tfrecord'))[:2]:   # an interrupted tar xzf
        shutil.copyfile(shard, folder / 'audioset_v1_embeddings' / 'eval' / shard.name)
    for f in ('class_labels_indices.csv', 'ontology.json'):
        shutil.copyfile(inputs / f, folder / f)
    shutil.copyfile(inputs / 'segments' / 'eval_segments.csv', folder / 'eval_segments.csv')
    for argv in (_args(inputs, tmp_path / 'o', folder), ['--release', str(folder), '--output_dir', str(tmp_path / 'o')]):
        with pytest.raises(UserError) as e:
            build_dataset.parse(argv)
        assert e.value.exit_code == EXIT_INPUT
        assert 'an interrupted unpack?' in str(e.value), str(e.value)
        assert f'--features_dir {folder / "features.tar.gz"}' in str(e.value)
        assert f'--features_dir {folder / "audioset_v1_embeddings"}' in str(e.value)
    # naming one of them is the choice
    opts = build_dataset.parse(['--release', str(folder), '--features_dir', str(folder / 'features.tar.gz'),
                                '--output_dir', str(tmp_path / 'o')]).view_as(build_dataset.BuildOptions)
    assert opts.features_dir == str(folder / 'features.tar.gz')


class _Zeros(io.RawIOBase):
    def __init__(self, n):
        self.left = n

    def readable(self):
        return True

    def readinto(self, b):
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def test_members_that_are_no_shard_stream_past_unheld(release, tmp_path):
    """A small tarball can declare members of hundreds of MB (zeros compress 1000:1): the reader holds
    shards only, and no member larger than a shard can be."""
    import tracemalloc

    from transforms.read import MAX_MEMBER_BYTES, _StreamTarballFn
    inputs, _ = release
    shard = sorted((inputs / 'features' / 'eval').glob('*.tfrecord'))[0]
    path = tmp_path / 'features.tar.gz'
    size = MAX_MEMBER_BYTES + (1 << 20)
    with tarfile.open(path, 'w:gz', compresslevel=1) as tar:
        for name, n in (('audioset_v1_embeddings/README', size), ('audioset_v1_embeddings/eval/zz.tfrecord', size)):
            info = tarfile.TarInfo(name)
            info.size = n
            tar.addfile(info, _Zeros(n))
        info = tarfile.TarInfo(f'audioset_v1_embeddings/eval/{shard.name}')
        info.size = shard.stat().st_size
        tar.addfile(info, io.BytesIO(shard.read_bytes()))
    assert path.stat().st_size < 4 << 20
    tracemalloc.start()
    try:
        out = list(_StreamTarballFn(64 << 20, str(tmp_path / 'spill')).process(str(path)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak
    dead = [o.value for o in out if getattr(o, 'tag', None) == 'dead_letters']
    assert [(d['reason'], d['source'].rsplit(':', 1)[1], d['records']) for d in dead] == [
        ('unexpected-member', 'audioset_v1_embeddings/README', 0),
        ('member-too-large', 'audioset_v1_embeddings/eval/zz.tfrecord', -(-size // 1500))]
    groups = [o for o in out if not hasattr(o, 'tag')]
    assert [g.paths for g in groups] == [(f'{path}:audioset_v1_embeddings/eval/{shard.name}',)]


@pytest.mark.parametrize('cut', ['lines', 'mid-line'])
def test_a_segment_csv_cut_short_fails_whatever_the_threshold(release, tmp_path, cut):
    inputs, tarball = release
    segments = tmp_path / 'segments'
    shutil.copytree(inputs / 'segments', segments)
    csv = segments / 'eval_segments.csv'
    data = csv.read_bytes()
    # one line fewer than num_segs says (well within --max_bad_fraction), or cut inside its last line
    csv.write_bytes(data[:data.rindex(b'\n', 0, len(data) - 1) + 1] if cut == 'lines' else data[:-5])
    args = _args(inputs, tmp_path / 'out', tarball, '--max_bad_fraction', '1')
    args[args.index('--segments_dir') + 1] = str(segments)
    message = _fails(args)
    assert f'{csv}: truncated-csv: ' in message
    assert ('fewer than its header\'s num_segs' if cut == 'lines' else 'no newline') in message


class _StallHandler(http.server.BaseHTTPRequestHandler):
    """Sends the headers and the first bytes of the tarball, then nothing (the connection stays open)."""
    body = b''

    def log_message(self, *args):
        pass

    def do_HEAD(self, start: int = 0):
        if start:
            self.send_response(206)
            self.send_header('Content-Range', f'bytes {start}-{len(self.body) - 1}/{len(self.body)}')
        else:
            self.send_response(200)
        self.send_header('Content-Length', str(len(self.body) - start))
        self.send_header('ETag', '"v1"')
        self.end_headers()

    def do_GET(self):   # every resume gets 1000 bytes more, then the same stall
        m = re.fullmatch(r'bytes=(\d+)-', self.headers.get('Range') or '')
        start = int(m.group(1)) if m else 0
        self.do_HEAD(start)
        self.wfile.write(self.body[start:start + 1000])
        self.wfile.flush()
        threading.Event().wait(30)


def test_a_stalled_server_fails_by_the_deadline(release, tmp_path):
    import time
    inputs, tarball = release
    handler = type('H', (_StallHandler,), {'body': tarball.read_bytes()})
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f'http://127.0.0.1:{server.server_port}/features.tar.gz'
        started = time.monotonic()
        message = _fails(_args(inputs, tmp_path / 'out', url, '--http_timeout', '1', '--http_deadline', '3'))
        took = time.monotonic() - started
    finally:
        server.shutdown()
    assert f'{url}: unreadable: ' in message and 'deadline' in message, message
    assert took < 25, took      # start-up and seal included; the stall itself ends at the 3 s deadline


def test_http_flags_without_an_https_tarball_are_an_error(release, tmp_path):
    inputs, tarball = release
    for flag in ('--http_timeout', '--http_deadline'):
        with pytest.raises(UserError) as e:
            build_dataset.parse(_args(inputs, tmp_path / 'o', tarball, flag, '5'))
        assert e.value.exit_code == EXIT_USAGE and str(e.value).startswith(f'{flag}: has no effect without')
    for bad in ('0', '-1', 'nan', 'soon'):
        with pytest.raises(UserError) as e:
            build_dataset.parse(_args(inputs, tmp_path / 'o', 'https://127.0.0.1:9/features.tar.gz',
                                      '--http_deadline', bad))
        assert e.value.exit_code == EXIT_USAGE and '--http_deadline' in str(e.value)
