"""python -m pipelines.fetch_release against a loopback HTTP server holding the release files (the real
metadata files, whose published sha256 the command checks, and generated ones): a full fetch and a rerun,
a 404, a body cut short, a wrong checksum, a resumed download. Real urllib client and http.server."""
import json
import subprocess
import sys

import pytest

from pipelines import cli, fetch_release
from tests.fixtures import ROOT, SAMPLE
from tests.release_server import make_release_tarball, release_server
from transforms.core import release


def _files(tmp_path) -> dict[str, bytes]:
    """URL path -> bytes for every release file, laid out as under --base_url."""
    real = {'eval_segments.csv': SAMPLE / 'segments' / 'eval_segments.csv',
            'balanced_train_segments.csv': SAMPLE / 'segments' / 'balanced_train_segments.csv',
            'class_labels_indices.csv': SAMPLE / 'class_labels_indices.csv', 'ontology.json': SAMPLE / 'ontology.json',
            'mid_to_display_name.tsv': SAMPLE / 'mid_to_display_name.tsv'}
    made = {'unbalanced_train_segments.csv': b'# YTID, start_seconds, end_seconds, positive_labels\n',
            'qa_true_counts.csv': b'label_id,num_rated,num_true\n0,10,9\n', 'rerated_video_ids.txt': b'abc\n',
            'audioset_train_strong.tsv': b'segment_id\tstart_time_seconds\tend_time_seconds\tlabel\n',
            'audioset_eval_strong.tsv': b'segment_id\tstart_time_seconds\tend_time_seconds\tlabel\n',
            'audioset_eval_strong_framed_posneg.tsv': b'segment_id\tstart_time_seconds\tend_time_seconds\tlabel\tpresent\n',
            release.TARBALL: make_release_tarball(tmp_path / 'features.tar.gz', SAMPLE / 'features', 3).read_bytes()}
    files = {}
    for f in release.FILES:
        data = real[f.name].read_bytes() if f.name in real else made[f.name]
        files['/' + (f.path or f.name)] = data
    return files


def _fetch(server, dest, *flags):
    return fetch_release.main(['--dest', str(dest), '--base_url', server.url, '--retry_wait', '0.01',
                               '--timeout', '5', *flags])


@pytest.fixture
def server(tmp_path):
    with release_server(_files(tmp_path)) as s:
        yield s


def test_fetch_verifies_records_and_skips_on_rerun(server, tmp_path):
    dest = tmp_path / 'release'
    assert _fetch(server, dest, '--qa', '--strong') == 0
    manifest = json.loads((dest / fetch_release.MANIFEST).read_text())
    want = [f.name for f in release.select(['qa', 'strong'])]
    assert sorted(manifest['files']) == sorted(want)
    for f in release.select(['qa', 'strong']):
        entry = manifest['files'][f.name]
        data = (dest / f.name).read_bytes()
        assert entry['size'] == len(data) and entry['url'] == f'{server.url}/{f.path or f.name}'
        assert entry['verified'] == ('sha256' if f.sha256 else 'size')
        if f.sha256:
            assert entry['sha256'] == f.sha256
    assert not list(dest.glob('*.part'))
    before = len(server.requests)
    assert _fetch(server, dest, '--qa', '--strong') == 0
    assert len(server.requests) == before     # all verified already: nothing fetched again


def test_404_names_the_url(server, tmp_path):
    del server.files['/v1/qa/rerated_video_ids.txt']
    with pytest.raises(cli.InputError, match=r'/v1/qa/rerated_video_ids.txt: not found \(HTTP 404\)'):
        _fetch(server, tmp_path / 'r', '--qa')
    # everything else arrived and is recorded
    manifest = json.loads((tmp_path / 'r' / fetch_release.MANIFEST).read_text())
    assert 'qa_true_counts.csv' in manifest['files'] and 'rerated_video_ids.txt' not in manifest['files']


def test_cut_body_is_resumed_with_a_range_request(server, tmp_path):
    path = '/v1/csv/eval_segments.csv'
    server.cut_once.add(path)
    assert _fetch(server, tmp_path / 'r') == 0
    ranges = server.ranges(path)
    assert ranges[0] is None and ranges[1] == f'bytes={len(server.files[path]) // 2}-'
    assert (tmp_path / 'r' / 'eval_segments.csv').read_bytes() == server.files[path]
    assert json.loads((tmp_path / 'r' / fetch_release.MANIFEST).read_text())['files']['eval_segments.csv']['resumed']


def test_a_body_that_never_completes_fails_and_resumes_on_the_next_run(server, tmp_path):
    path = '/v1/csv/class_labels_indices.csv'
    server.cut_always.add(path)
    with pytest.raises(cli.InputError, match='rerun the same command to resume'):
        _fetch(server, tmp_path / 'r', '--retries', '2')
    part = tmp_path / 'r' / 'class_labels_indices.csv.part'
    assert 0 < part.stat().st_size < len(server.files[path])
    server.cut_always.clear()
    assert _fetch(server, tmp_path / 'r') == 0
    assert server.ranges(path)[-1] == f'bytes={len(server.files[path]) // 2}-'
    assert (tmp_path / 'r' / 'class_labels_indices.csv').read_bytes() == server.files[path]


def test_wrong_checksum_is_refused_and_quarantined(server, tmp_path):
    path = '/v1/csv/balanced_train_segments.csv'
    server.files[path] = server.files[path].replace(b'/m/09x0r', b'/m/09x0s', 1)   # same size, other bytes
    with pytest.raises(cli.InputError, match='balanced_train_segments.csv: refused: sha256'):
        _fetch(server, tmp_path / 'r')
    assert not (tmp_path / 'r' / 'balanced_train_segments.csv').exists()
    assert (tmp_path / 'r' / 'rejected' / 'balanced_train_segments.csv').read_bytes() == server.files[path]
    # a tarball that is not Google's is refused by its sha256 too
    with pytest.raises(cli.InputError, match='features.tar.gz: refused: sha256 .* expected cd95d500'):
        _fetch(server, tmp_path / 'r', '--features')


def test_partial_file_is_resumed(server, tmp_path):
    path = '/v1/csv/eval_segments.csv'
    dest = tmp_path / 'r'
    dest.mkdir()
    half = len(server.files[path]) // 3
    (dest / 'eval_segments.csv.part').write_bytes(server.files[path][:half])
    assert _fetch(server, dest) == 0
    assert server.ranges(path) == [f'bytes={half}-']
    assert (dest / 'eval_segments.csv').read_bytes() == server.files[path]


def test_command_line_errors(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, '-m', 'pipelines.fetch_release', *args], capture_output=True,
                              text=True, cwd=ROOT, timeout=120)
    out = run('--dest', str(tmp_path / 'r'), '--mirror', 'mars')
    assert out.returncode == 2 and out.stderr.startswith('error: argument --mirror') and 'Traceback' not in out.stderr
    (tmp_path / 'file').write_text('x')
    out = run('--dest', str(tmp_path / 'file'))
    assert out.returncode == 2 and out.stderr.startswith(f'error: --dest {tmp_path / "file"}: exists and is a file')
    out = run('--dest', str(tmp_path / 'r'), '--base_url', 'http://127.0.0.1:9/', '--retries', '0', '--timeout', '2')
    assert out.returncode == 4 and out.stderr.startswith('error: 5 of the release files could not be fetched')
    assert 'Traceback' not in out.stderr
