"""python -m pipelines.fetch_release against a loopback HTTP server holding the release files (the real
metadata files, whose published sha256 the command checks, and generated ones in the release formats): a
full fetch and a rerun, a 404, a body cut short, a wrong checksum, resumed downloads, and what must never
be kept: a .part of unknown origin or of another version spliced to the new body, an error page or a cut
body of a file without checksum, a file changed in place, a download past its deadline, a write through a
symbolic link, a malformed manifest. Real urllib client and http.server."""
import json
import os
import subprocess
import sys
import time

import pytest

from pipelines import fetch_release
from pipelines.console import cli_status
from pipelines.errors import EXIT_INPUT, EXIT_USAGE, InputError
from tests.fixtures import ROOT, SAMPLE
from tests.release_server import make_release_tarball, release_server
from tests.strong_fixtures import write_strong_files
from transforms.core import release

UNBALANCED = '/v1/csv/unbalanced_train_segments.csv'
QA = '/v1/qa/qa_true_counts.csv'
RERATED = '/v1/qa/rerated_video_ids.txt'


def _rows(name: str) -> list[bytes]:
    return (SAMPLE / 'segments' / name).read_bytes().splitlines(keepends=True)[3:]


def segments_csv(rows: list[bytes]) -> bytes:
    """A segment CSV in the release format holding ``rows``."""
    n = len(rows)
    return (b'# Segments csv created Sun Mar  5 10:54:37 2017\n'
            + f'# num_ytids={n}, num_segs={n}, num_unique_labels=527, num_positive_labels={n}\n'.encode()
            + b'# YTID, start_seconds, end_seconds, positive_labels\n' + b''.join(rows))


NEW_UNBALANCED = segments_csv(_rows('eval_segments.csv')[:400])
OLD_UNBALANCED = segments_csv(_rows('balanced_train_segments.csv')[:400])    # same header, other rows


def _files(tmp_path) -> dict[str, bytes]:
    """URL path -> bytes for every release file, laid out as under --base_url."""
    real = {'eval_segments.csv': SAMPLE / 'segments' / 'eval_segments.csv',
            'balanced_train_segments.csv': SAMPLE / 'segments' / 'balanced_train_segments.csv',
            'class_labels_indices.csv': SAMPLE / 'class_labels_indices.csv', 'ontology.json': SAMPLE / 'ontology.json',
            'mid_to_display_name.tsv': SAMPLE / 'mid_to_display_name.tsv'}
    strong = write_strong_files(tmp_path / 'strong', [('s9d-2nhuJCQ_30000', 10.0), ('-_a_b_c_d_e_0', 7.5)],
                                [('x_Y-z012345_10000', 10.0)]).dir
    mids = [line.split(b',')[1] for line in (SAMPLE / 'class_labels_indices.csv').read_bytes().splitlines()[1:]]
    made = {'unbalanced_train_segments.csv': NEW_UNBALANCED,
            'qa_true_counts.csv': b'label_id,num_rated,num_true\n' + b''.join(b'%s,10,%d\n' % (m, i % 11)
                                                                              for i, m in enumerate(mids)),
            'rerated_video_ids.txt': b''.join(row[:11] + b'\n' for row in _rows('eval_segments.csv')[:50]),
            release.TARBALL: make_release_tarball(tmp_path / 'features.tar.gz', SAMPLE / 'features', 3).read_bytes()}
    for name in release.STRONG_FILES[:3]:
        made[name] = (strong / name).read_bytes()
    files = {}
    for f in release.FILES:
        data = real[f.name].read_bytes() if f.name in real else made[f.name]
        files['/' + (f.path or f.name)] = data
    return files


def _fetch(server, dest, *flags):
    return fetch_release.main(['--dest', str(dest), '--base_url', server.url, '--retry_wait', '0.01',
                               '--timeout', '5', *flags])


def _status(server, dest, *flags) -> int:
    """The exit status as the command line gives it (its message goes to stderr)."""
    return cli_status(fetch_release.main, ['--dest', str(dest), '--base_url', server.url, '--retry_wait',
                                           '0.01', '--timeout', '5', *flags])


def _one_error(err: str) -> str:
    """The error paragraph of the command's stderr, checked to be exactly one and no traceback."""
    assert 'Traceback' not in err, err
    errors = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, err
    return err[err.index('error:'):]


@pytest.fixture
def server(tmp_path):
    with release_server(_files(tmp_path)) as s:
        yield s


def test_fetch_verifies_records_and_skips_on_rerun(server, tmp_path, capsys):
    dest = tmp_path / 'release'
    assert _fetch(server, dest, '--qa', '--strong') == 0
    manifest = json.loads((dest / fetch_release.MANIFEST).read_text())
    want = [f.name for f in release.select(['qa', 'strong'])]
    assert sorted(manifest['files']) == sorted(want)
    for f in release.select(['qa', 'strong']):
        entry = manifest['files'][f.name]
        data = (dest / f.name).read_bytes()
        assert entry['size'] == len(data) and entry['url'] == f'{server.url}/{f.path or f.name}'
        assert entry['verified'] == ('sha256' if f.sha256 else 'format')
        assert entry['validator'] == server.validator_headers('/' + (f.path or f.name), data)['ETag']
        if f.sha256:
            assert entry['sha256'] == f.sha256
    assert not list(dest.glob('*.part')) and not list(dest.glob('*.part.json'))
    before = len(server.requests)
    capsys.readouterr()
    assert _fetch(server, dest, '--qa', '--strong') == 0
    assert len(server.requests) == before     # all verified already: nothing fetched again
    assert capsys.readouterr().err.count('already fetched and verified') == len(want)


def test_404_names_the_url(server, tmp_path):
    del server.files[RERATED]
    with pytest.raises(InputError, match=r'/v1/qa/rerated_video_ids.txt: not found \(HTTP 404\)'):
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
    assert server.if_ranges(path) == [None, server.validator_headers(path, server.files[path])['ETag']]
    assert (tmp_path / 'r' / 'eval_segments.csv').read_bytes() == server.files[path]
    assert json.loads((tmp_path / 'r' / fetch_release.MANIFEST).read_text())['files']['eval_segments.csv']['resumed']


def test_a_body_that_never_completes_fails_and_resumes_on_the_next_run(server, tmp_path):
    path = '/v1/csv/class_labels_indices.csv'
    server.cut_always.add(path)
    with pytest.raises(InputError, match='rerun the same command to resume'):
        _fetch(server, tmp_path / 'r', '--retries', '2')
    part = tmp_path / 'r' / 'class_labels_indices.csv.part'
    assert 0 < part.stat().st_size < len(server.files[path])
    assert json.loads((tmp_path / 'r' / 'class_labels_indices.csv.part.json').read_text())['url'].endswith(path)
    server.cut_always.clear()
    assert _fetch(server, tmp_path / 'r') == 0
    assert server.ranges(path)[-1] == f'bytes={len(server.files[path]) // 2}-'
    assert server.if_ranges(path)[-1] == server.validator_headers(path, server.files[path])['ETag']
    assert (tmp_path / 'r' / 'class_labels_indices.csv').read_bytes() == server.files[path]


def test_wrong_checksum_is_refused_and_quarantined(server, tmp_path):
    path = '/v1/csv/balanced_train_segments.csv'
    server.files[path] = server.files[path].replace(b'/m/09x0r', b'/m/09x0s', 1)   # same size, other bytes
    with pytest.raises(InputError, match='balanced_train_segments.csv from .*: refused: sha256') as e:
        _fetch(server, tmp_path / 'r')
    assert not (tmp_path / 'r' / 'balanced_train_segments.csv').exists()
    rejected = tmp_path / 'r' / 'rejected' / 'balanced_train_segments.csv'
    assert rejected.read_bytes() == server.files[path]
    # the message says what to do: rerun; the refused copy is for inspection, never to build from
    assert f'kept in {rejected} to inspect, not to build from; rerun the same command' in str(e.value)
    # a tarball that is not Google's is refused by its sha256 too
    with pytest.raises(InputError, match='features.tar.gz from .*: refused: sha256 .* expected cd95d500') as e:
        _fetch(server, tmp_path / 'r', '--features')
    assert 'not to build from; rerun the same command to download it again' in str(e.value)


def _part(dest, name: str, data: bytes, state: dict | None):
    dest.mkdir(exist_ok=True)
    (dest / f'{name}.part').write_bytes(data)
    if state is not None:
        (dest / f'{name}.part.json').write_text(json.dumps(state))


def test_partial_file_is_resumed(server, tmp_path):
    path = '/v1/csv/eval_segments.csv'
    dest = tmp_path / 'r'
    third = len(server.files[path]) // 3
    etag = server.validator_headers(path, server.files[path])['ETag']
    _part(dest, 'eval_segments.csv', server.files[path][:third], {'url': server.url + path, 'validator': etag})
    assert _fetch(server, dest) == 0
    assert server.ranges(path) == [f'bytes={third}-'] and server.if_ranges(path) == [etag]
    assert (dest / 'eval_segments.csv').read_bytes() == server.files[path]


@pytest.mark.parametrize('junk', ['random bytes', 'an older version'])
def test_a_part_of_unknown_origin_is_never_resumed(server, tmp_path, junk, capsys):
    dest = tmp_path / 'r'
    data = os.urandom(1000) if junk == 'random bytes' else OLD_UNBALANCED[:1024]
    _part(dest, 'unbalanced_train_segments.csv', data, None)
    assert _fetch(server, dest) == 0
    assert server.ranges(UNBALANCED) == [None]                   # fetched from byte 0
    assert (dest / 'unbalanced_train_segments.csv').read_bytes() == NEW_UNBALANCED
    assert 'starting over, not resuming' in capsys.readouterr().err


@pytest.mark.parametrize('validators', ['both', 'last-modified'])
def test_a_part_of_another_version_starts_over(server, tmp_path, validators, capsys):
    """The .part was begun on the old version, recorded with the old validator; the server now has a new
    one with the same header. Resuming would splice the old first KB to the new body, and the result would
    pass every format check: If-Range makes the server send the new version whole."""
    server.validators = validators
    old = server.validator_headers(UNBALANCED, OLD_UNBALANCED)
    server.validator_headers(UNBALANCED, NEW_UNBALANCED)         # published later
    validator = old.get('ETag') or old['Last-Modified']
    dest = tmp_path / 'r'
    _part(dest, 'unbalanced_train_segments.csv', OLD_UNBALANCED[:1024],
          {'url': server.url + UNBALANCED, 'validator': validator})
    assert _fetch(server, dest) == 0
    assert server.ranges(UNBALANCED) == ['bytes=1024-'] and server.if_ranges(UNBALANCED) == [validator]
    assert (dest / 'unbalanced_train_segments.csv').read_bytes() == NEW_UNBALANCED
    assert 'changed since' in capsys.readouterr().err
    entry = json.loads((dest / fetch_release.MANIFEST).read_text())['files']['unbalanced_train_segments.csv']
    assert not entry['resumed'] and entry['verified'] == 'format'


def test_a_file_changed_on_the_server_mid_download_is_not_spliced(server, tmp_path):
    server.cut_once.add(UNBALANCED)
    server.files[UNBALANCED] = OLD_UNBALANCED
    server.change_after[UNBALANCED] = NEW_UNBALANCED           # published while the first GET was cut
    with pytest.raises(InputError, match='unbalanced_train_segments.csv: .*changed on the server during the '
                                             'download.*; rerun the same command to download the new version'):
        _fetch(server, tmp_path / 'r')
    assert not (tmp_path / 'r' / 'unbalanced_train_segments.csv').exists()
    assert _fetch(server, tmp_path / 'r') == 0
    assert (tmp_path / 'r' / 'unbalanced_train_segments.csv').read_bytes() == NEW_UNBALANCED


def test_without_validators_a_part_is_never_resumed_by_a_rerun(server, tmp_path):
    server.validators = 'none'
    server.cut_always.add(UNBALANCED)
    with pytest.raises(InputError, match='rerun the same command to resume'):
        _fetch(server, tmp_path / 'r', '--retries', '1')
    assert (tmp_path / 'r' / 'unbalanced_train_segments.csv.part').stat().st_size > 0
    server.cut_always.clear()
    server.files[UNBALANCED] = OLD_UNBALANCED                   # may have changed: nothing tells
    assert _fetch(server, tmp_path / 'r') == 0
    assert server.ranges(UNBALANCED)[-1] is None
    assert (tmp_path / 'r' / 'unbalanced_train_segments.csv').read_bytes() == OLD_UNBALANCED


def _cut_rows(data: bytes) -> bytes:
    return data[:data.index(b'\n', len(data) // 2) + 1]     # whole lines, fewer than num_segs


@pytest.mark.parametrize('fault, path, reason', [
    ('html_200', QA, 'an HTML/XML page'),
    ('short_length', UNBALANCED, 'is cut: the file does not end with a newline'),
    ('no_length+cut', UNBALANCED, 'is cut: the file does not end with a newline'),
    ('cut_rows', UNBALANCED, 'rows, but its header says num_segs=400'),
    ('binary', RERATED, 'not UTF-8 text (invalid start byte at byte 0)'),
    ('nul', '/strong/audioset_eval_strong.tsv', 'a NUL byte'),
    ('headerless', '/strong/audioset_eval_strong_framed_posneg.tsv', 'starts with the header'),
])
def test_a_file_without_checksum_is_verified_by_its_format(server, tmp_path, capsys, fault, path, reason):
    if fault == 'html_200':
        server.html_200.add(path)
    elif fault == 'short_length':
        server.short_length.add(path)            # Content-Length half of the body: the rest is never read
    elif fault == 'no_length+cut':
        server.no_length.add(path)               # the end of the connection is the end of the body
        server.cut_once.add(path)
    elif fault == 'cut_rows':
        server.files[path] = _cut_rows(server.files[path])
    elif fault == 'binary':
        server.files[path] = bytes(range(128, 256)) * 30
    elif fault == 'nul':
        server.files[path] = server.files[path].replace(b'\t', b'\0', 1)
    else:
        server.files[path] = server.files[path].split(b'\n', 1)[1]
    dest = tmp_path / 'r'
    name = path.rsplit('/', 1)[1]
    assert _status(server, dest, '--qa', '--strong') == EXIT_INPUT
    message = _one_error(capsys.readouterr().err)
    assert message.startswith('error: 1 of the release files could not be fetched')
    assert f'{name} from {server.url}{path}: refused: not {name} as released: ' in message and reason in message
    assert 'rerun the same command to download it again' in message
    assert not (dest / name).exists() and (dest / 'rejected' / name).exists()
    assert name not in json.loads((dest / fetch_release.MANIFEST).read_text())['files']


def test_a_file_without_content_length_is_kept_when_its_format_proves_it_whole(server, tmp_path):
    server.no_length.update([UNBALANCED, QA])
    assert _fetch(server, tmp_path / 'r', '--qa') == 0
    entry = json.loads((tmp_path / 'r' / fetch_release.MANIFEST).read_text())['files']['unbalanced_train_segments.csv']
    assert entry['content_length'] is None and entry['verified'] == 'format'
    assert (tmp_path / 'r' / 'unbalanced_train_segments.csv').read_bytes() == NEW_UNBALANCED


def test_a_recorded_file_changed_in_place_is_fetched_again(server, tmp_path, capsys):
    dest = tmp_path / 'r'
    assert _fetch(server, dest) == 0
    target = dest / 'unbalanced_train_segments.csv'
    st = target.stat()
    tampered = NEW_UNBALANCED.replace(b'/m/', b'/x/', 1)        # same size
    target.write_bytes(tampered)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))          # and the same time
    before = len(server.ranges(UNBALANCED))
    capsys.readouterr()
    assert _fetch(server, dest) == 0
    err = capsys.readouterr().err
    assert 'unbalanced_train_segments.csv: changed since it was fetched' in err
    assert len(server.ranges(UNBALANCED)) == before + 1
    assert target.read_bytes() == NEW_UNBALANCED
    assert (dest / 'rejected' / 'unbalanced_train_segments.csv').read_bytes() == tampered
    assert err.count('already fetched and verified') == len(release.select([])) - 1


def test_a_trickling_server_stops_at_the_deadline(server, tmp_path):
    server.trickle[QA] = 0.2        # a byte every 0.2 s: no read ever waits --timeout
    t0 = time.monotonic()
    with pytest.raises(InputError, match=r'qa_true_counts.csv: download stopped: .*/v1/qa/qa_true_counts.csv: '
                                             r'not downloaded within its deadline of 1 s \(\d+ of [\d,]+ bytes '
                                             r'received\).*raise --deadline'):
        _fetch(server, tmp_path / 'r', '--qa', '--deadline', '1', '--timeout', '1')
    assert time.monotonic() - t0 < 8
    assert (tmp_path / 'r' / 'rerated_video_ids.txt').exists()  # the others arrived


@pytest.mark.parametrize('link', ['eval_segments.csv.part', 'eval_segments.csv', 'eval_segments.csv.part.json',
                                  'rejected', 'rejected/eval_segments.csv', 'fetch_manifest.json'])
def test_a_symbolic_link_under_dest_is_never_written_through(server, tmp_path, capsys, link):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'victim').write_bytes(b'precious\n')
    dest = tmp_path / 'r'
    (dest / 'rejected').mkdir(parents=True)
    if link == 'rejected':
        (dest / 'rejected').rmdir()
    target = outside if link == 'rejected' else outside / 'victim'
    (dest / link).symlink_to(target)
    assert _status(server, dest) == EXIT_INPUT
    message = _one_error(capsys.readouterr().err)
    assert f'--dest {dest}: {link} is a symbolic link' in message and 'remove the link' in message
    assert (outside / 'victim').read_bytes() == b'precious\n' and sorted(os.listdir(outside)) == ['victim']
    assert server.requests == []


def test_the_part_is_opened_without_following_links(server, tmp_path):
    """Behind the up-front check: a link that appears later is not followed either (O_NOFOLLOW)."""
    outside = tmp_path / 'victim'
    outside.write_bytes(b'precious\n')
    dest = tmp_path / 'r'
    dest.mkdir()
    (dest / 'eval_segments.csv.part').symlink_to(outside)
    f = next(f for f in release.FILES if f.name == 'eval_segments.csv')
    with pytest.raises(InputError, match=r'eval_segments.csv.part: cannot be written'):
        fetch_release.fetch_one(f, f.url(base_url=server.url), str(dest), 0, 0.01, 5)
    assert outside.read_bytes() == b'precious\n'


@pytest.mark.parametrize('content', ['{}', '{"files": []}', '{"files": {"x": 5}}', '[]', '{"files": {"x": {}}}',
                                     'not json', '\udcff'])
def test_a_malformed_manifest_is_one_error(server, tmp_path, capsys, content):
    dest = tmp_path / 'r'
    dest.mkdir()
    (dest / fetch_release.MANIFEST).write_bytes(content.encode('utf-8', 'surrogateescape'))
    assert _status(server, dest) == EXIT_INPUT
    message = _one_error(capsys.readouterr().err)
    assert message.startswith(f'error: {dest / fetch_release.MANIFEST}: not a fetch manifest (')
    assert 'move it away and rerun' in message and len(message.strip().splitlines()) == 1


def test_flag_values_are_checked(tmp_path, capsys):
    for flag in ('--deadline', '--timeout'):
        assert cli_status(fetch_release.main, ['--dest', str(tmp_path / 'r'), flag, '0']) == EXIT_USAGE
        assert _one_error(capsys.readouterr().err).startswith(
            'error: --retries and --retry_wait must be >= 0, --timeout and --deadline > 0')
    assert not (tmp_path / 'r').exists()


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
