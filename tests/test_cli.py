"""The command lines as a person meets them: the real entry points in subprocesses, each expected failure
one ``error:`` paragraph naming the flag or file, no traceback, and the documented exit status
(pipelines/errors.py EXIT_CODES_HELP). Most cases fail before any pipeline runs, so each takes seconds."""
import errno
import json
import logging
import os
import pathlib
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import build_dataset, dataflow, download_audio, embed_audio, summary
from pipelines.args import bucket_problem, normalize_argv
from pipelines.console import QuietExpectedErrors, _TracebackFilter, format_error
from pipelines.errors import (EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_NO_SPACE, EXIT_USAGE, InputError,
                              UsageError, UserError, expected_error)
from tests.fixtures import ROOT, SAMPLE, copy_sample, record, write_shard

ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'AUDIOSET_BEAM_VENV': sys.prefix}
DASH_CLIP = '-0BIyqJj9ZU_30.000_40.000.flac'


def _run(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def _error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The one ``error:`` paragraph of a failed run, after checking the status and that there is no traceback."""
    err = proc.stderr
    assert proc.returncode == code, f'exit {proc.returncode}, expected {code}:\n{err[-3000:]}'
    assert 'Traceback' not in err, err[-3000:]
    starts = [i for i, line in enumerate(err.splitlines()) if line.startswith('error:')]
    assert len(starts) == 1, err[-3000:]
    lines = err.splitlines()[starts[0]:]
    paragraph = lines[0]
    for line in lines[1:]:
        if not line.startswith('  '):
            break
        paragraph += '\n' + line
    for needle in needles:
        assert needle in paragraph, f'{needle!r} not in:\n{paragraph}'
    return paragraph


def _build(*args: str, **kw) -> subprocess.CompletedProcess:
    return _run('pipelines.build_dataset', *args, **kw)


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    return copy_sample(tmp_path_factory.mktemp('cli') / 'in', splits=('eval',), shards_per_split=2)


def _flags(inputs: pathlib.Path, out: pathlib.Path, **override) -> list[str]:
    flags = {'features_dir': inputs / 'features', 'segments_dir': inputs / 'segments',
             'class_index': inputs / 'class_labels_indices.csv', 'ontology': inputs / 'ontology.json',
             'output_dir': out, **override}
    return [a for k, v in flags.items() if v is not None for a in (f'--{k}', str(v))]


# -- 1. unknown flags ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('typo', [['--featurs_dir', 'X'], ['--featurs_dir=X']])
def test_an_unknown_flag_is_an_error_with_a_suggestion(typo, tmp_path):
    proc = _build('--output_dir', str(tmp_path / 'o'), *typo)
    _error(proc, EXIT_USAGE, '--featurs_dir', 'did you mean --features_dir?')
    assert not (tmp_path / 'o').exists()


def test_beam_options_are_still_accepted_and_nonsense_is_not(inputs, tmp_path):
    # a Beam option (the help never lists them) parses; a stray value after a one-value flag does not
    assert build_dataset.parse(_flags(inputs, tmp_path / 'o') + ['--direct_num_workers', '2'])
    with pytest.raises(UsageError, match="unexpected argument 'stray'"):
        build_dataset.parse(_flags(inputs, tmp_path / 'o') + ['--max_bad_fraction', '0.1', 'stray'])
    with pytest.raises(UsageError, match='invalid int value'):
        build_dataset.parse(_flags(inputs, tmp_path / 'o') + ['--keep_runs', 'many'])


@pytest.mark.parametrize('extra,needle', [
    (['--output_dir', ''], '--output_dir: empty path'),
    (['--group_mb', 'nan'], '--group_mb nan: not a finite number'),
    (['--runner', 'NoSuchRunner'], '--runner NoSuchRunner'),
    (['--audio', ''], '--audio: no path'),
])
def test_values_no_later_check_would_catch(extra, needle, inputs, tmp_path):
    with pytest.raises(UsageError, match=needle):
        build_dataset.parse(_flags(inputs, tmp_path / 'o') + extra)


def test_help_lists_flags_and_exit_codes():
    proc = _build('--help')
    assert proc.returncode == 0 and '--features_dir' in proc.stdout and 'Exit status' in proc.stdout
    assert '70' in proc.stdout and '--verbose' in proc.stdout


# -- 2, 5, 6. expected failures: one paragraph, a documented code ------------------------------------------

def test_output_dir_that_is_a_file_fails_before_anything_runs(inputs, tmp_path):
    afile = tmp_path / 'taken'
    afile.write_text('x')
    _error(_build(*_flags(inputs, afile)), EXIT_USAGE, '--output_dir', str(afile), 'is a file')
    _error(_build(*_flags(inputs, None), '--output_root', str(afile / 'below')), EXIT_USAGE,
           '--output_root', 'is a file')


@pytest.mark.parametrize('flag,make,needle', [
    ('features_dir', None, 'no such folder'),
    ('segments_dir', None, 'no such folder'),
    ('segments_dir', 'file', 'is a file'),
    ('class_index', None, 'no such file'),
    ('ontology', 'dir', 'is a folder'),
])
def test_missing_inputs_name_flag_and_path(flag, make, needle, inputs, tmp_path):
    path = tmp_path / 'nope'
    if make == 'file':
        path.write_text('eval_segments.csv is the file, not its folder')
    elif make == 'dir':
        path.mkdir()
    _error(_build(*_flags(inputs, tmp_path / 'o', **{flag: path})), EXIT_INPUT, f'--{flag}', str(path), needle)


def test_an_empty_segments_dir_is_allowed_and_verbose_shows_tracebacks(inputs, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    ok = _build(*_flags(inputs, tmp_path / 'o', segments_dir=empty), '--validate_only')
    assert ok.returncode == 0 and 'validate_only' in ok.stdout, ok.stderr[-3000:]
    verbose = _build(*_flags(inputs, tmp_path / 'o', features_dir=tmp_path / 'nope'), '--verbose')
    assert verbose.returncode == EXIT_INPUT and 'Traceback' in verbose.stderr
    assert sum(line.startswith('error:') for line in verbose.stderr.splitlines()) == 1


def test_a_folder_without_shards(inputs, tmp_path):
    _error(_build(*_flags(inputs, tmp_path / 'o', features_dir=inputs / 'segments')), EXIT_INPUT,
           '--features_dir', 'no shards found')


def _ontology(tmp_path, nodes, name='onto.json') -> pathlib.Path:
    path = tmp_path / name
    path.write_text(json.dumps(nodes))
    return path


def test_ontology_and_class_index_errors_name_file_and_problem(inputs, tmp_path):
    nodes = json.loads((SAMPLE / 'ontology.json').read_text())
    by_id = {n['id']: n for n in nodes}
    music = by_id['/m/04rlf']
    child = by_id[music['child_ids'][0]]
    child['child_ids'] = child['child_ids'] + ['/m/04rlf']     # Music -> its child -> Music
    cycle = _ontology(tmp_path, nodes)
    _error(_build(*_flags(inputs, tmp_path / 'o', ontology=cycle)), EXIT_INPUT,
           '--ontology', str(cycle), 'cycle', '/m/04rlf (Music)', child['id'])
    # the rest in-process: same code path, no interpreter start each
    index = tmp_path / 'idx.csv'
    cases = [
        ('ontology', _ontology(tmp_path, [], '1.json'), 'no classes'),
        ('ontology', _ontology(tmp_path, [{'id': '/m/a'}], '2.json'), 'entry 0: lacks "name"'),
        ('ontology', _ontology(tmp_path, [{'id': '/m/a', 'name': 'A', 'child_ids': '/m/b'}], '3.json'), 'must be a list'),
        ('ontology', _ontology(tmp_path, [{'id': 'a', 'name': 'A'}, {'id': 'a', 'name': 'B'}], '4.json'),
         'a appears twice'),
    ]
    for flag, path, needle in cases:
        with pytest.raises(InputError, match=needle) as e:
            build_dataset.run(_flags(inputs, tmp_path / 'o', **{flag: path}))
        assert str(e.value).startswith(f'--{flag} {path}: ')
    bad_json = tmp_path / 'bad.json'
    bad_json.write_text('[{"id": ')
    for flag, path, text, needle in [
        ('ontology', bad_json, None, 'not valid JSON'),
        ('class_index', index, 'idx,mid,name\n0,/m/09x0r,Speech\n', 'expected the header'),
        ('class_index', index, 'index,mid,display_name\n0,/m/09x0r,Speech\n0,/m/04rlf,Music\n', 'index 0 appears twice'),
        ('class_index', index, 'index,mid,display_name\n0,/m/09x0r,Speech\n1,/m/09x0r,Again\n', '/m/09x0r appears twice'),
        ('class_index', index, 'index,mid,display_name\n0,/m/09x0r\n', 'expected 3 columns'),
        ('class_index', index, b'index,mid,display_name\n0,/m/\xff,X\n', 'not UTF-8'),
    ]:
        if text is not None:
            path.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(InputError, match=needle):
            build_dataset.run(_flags(inputs, tmp_path / 'o', **{flag: path}))
    # MIDs of the class index that the ontology lacks: both files named, a few MIDs listed
    index.write_text('index,mid,display_name\n0,/m/09x0r,Speech\n1,/m/not_in_ontology,X\n')
    with pytest.raises(InputError) as e:
        build_dataset.run(_flags(inputs, tmp_path / 'o', class_index=index))
    for needle in (f'--class_index {index}', f'--ontology {inputs / "ontology.json"}', '/m/not_in_ontology'):
        assert needle in str(e.value)


def test_a_failed_threshold_is_one_paragraph_with_exit_1(tmp_path):
    inputs = copy_sample(tmp_path / 'in', splits=('eval',), shards_per_split=2)
    write_shard(inputs / 'features' / 'eval' / 'zz.tfrecord', [record('zzzzzzzzzzz', 0.0, [9999])])
    # A report and manifest of an earlier build there describe data this run replaces: both go first.
    (tmp_path / 'o').mkdir()
    (tmp_path / 'o' / 'report.html').write_text('<html>old</html>')
    (tmp_path / 'o' / 'manifest.json').write_text('{}')
    proc = _build(*_flags(inputs, tmp_path / 'o'), '--max_bad_fraction', '0')
    paragraph = _error(proc, EXIT_FAILED, 'too much bad input', 'eval: 1 of', 'dead_letters')
    assert "while running" not in paragraph
    assert proc.stderr.count('too much bad input') == 1
    assert not (tmp_path / 'o' / 'report.html').exists() and not (tmp_path / 'o' / 'manifest.json').exists()


def test_validation_comes_before_the_old_manifest_is_deleted(inputs, tmp_path):
    out = tmp_path / 'o'
    out.mkdir()
    (out / 'manifest.json').write_text('{"good": true}')
    with pytest.raises(InputError):
        build_dataset.run(_flags(inputs, out, segments_dir=tmp_path / 'nope'))
    assert (out / 'manifest.json').exists()


# -- 3, 4. several --audio values, values that start with '-' ----------------------------------------------

def test_audio_takes_several_values_and_dash_names(inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in (DASH_CLIP, 'a_1.000_2.000.wav', 'b_1.000_2.000.mp3', 'c_1.000_2.000.ogg', '--4gqARaEJE_0.000_10.000.flac'):
        (tmp_path / name).write_bytes(b'')
    weights = ['--vggish_checkpoint', str(tmp_path / 'a_1.000_2.000.wav'), '--vggish_pca_params',
               str(tmp_path / 'a_1.000_2.000.wav')]
    options = build_dataset.parse(_flags(inputs, tmp_path / 'o') + [
        '--audio', DASH_CLIP, 'a_1.000_2.000.wav', 'b_1.000_2.000.mp3,c_1.000_2.000.ogg',
        '--audio', '--4gqARaEJE_0.000_10.000.flac', *weights])
    assert options.view_as(build_dataset.BuildOptions).audio == [
        DASH_CLIP, 'a_1.000_2.000.wav', 'b_1.000_2.000.mp3', 'c_1.000_2.000.ogg', '--4gqARaEJE_0.000_10.000.flac']
    # a path flag of one value takes a '-' value too
    out = build_dataset.parse(_flags(inputs, None) + ['--output_dir', '-0out']).view_as(build_dataset.BuildOptions)
    assert out.output_dir == '-0out'
    # a bare id-like token still reads as a flag, and the error says how to pass it as a value
    with pytest.raises(UsageError, match='--audio=-abcdefghijk'):
        build_dataset.parse(_flags(inputs, tmp_path / 'o') + ['--audio', '-abcdefghijk', *weights])


def test_a_missing_dash_named_audio_file_is_named(inputs, tmp_path):
    proc = _build(*_flags(inputs, tmp_path / 'o'), '--audio', str(tmp_path / DASH_CLIP))
    _error(proc, EXIT_INPUT, '--audio', DASH_CLIP, 'no such file')


def test_embed_audio_takes_dash_names_and_several_values(tmp_path):
    for name in (DASH_CLIP, 'a_1.000_2.000.wav', 'b_1.000_2.000.wav'):
        (tmp_path / name).write_bytes(b'')
    proc = subprocess.run([sys.executable, '-m', 'pipelines.embed_audio', '--audio', DASH_CLIP, 'a_1.000_2.000.wav',
                           'b_1.000_2.000.wav', '--npz_dir', 'npz', '--vggish_checkpoint', 'missing.ckpt',
                           '--vggish_pca_params', 'missing.npz'], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**ENV, 'PYTHONPATH': str(ROOT)})
    # every file was taken: the run got as far as the weights
    _error(proc, EXIT_USAGE, '--vggish_checkpoint')
    args = embed_audio.parse(['--audio', str(tmp_path / DASH_CLIP), str(tmp_path / 'a_1.000_2.000.wav'),
                              '--audio', str(tmp_path / 'b_1.000_2.000.wav'), '--npz_dir', str(tmp_path / 'n')])
    assert len(args.files) == 3


def test_embed_audio_unknown_flag_and_npz_dir_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        embed_audio.parse(['--audio', 'x.wav', '--npz_dir', str(tmp_path), '--batch_sise', '3'])
    assert e.value.code == EXIT_USAGE and 'did you mean --batch_size?' in capsys.readouterr().err
    (tmp_path / 'x.wav').write_bytes(b'')
    with pytest.raises(SystemExit):
        embed_audio.parse(['--audio', str(tmp_path / 'x.wav'), '--npz_dir', str(tmp_path / 'x.wav')])
    assert '--npz_dir' in capsys.readouterr().err


# -- 7. download_audio --------------------------------------------------------------------------------------

def test_download_rejects_non_http_url_templates(tmp_path):
    proc = _run('pipelines.download_audio', '--audio_dir', str(tmp_path / 'a'), '--segments_csv',
                str(SAMPLE / 'segments' / 'eval_segments.csv'), '--url_template', 'file:///etc/{ytid}')
    _error(proc, EXIT_USAGE, '--url_template', 'http')


def test_download_skips_crafted_missing_features_rows(tmp_path):
    from audioset_beam.schema import MISSING_FEATURES
    part = tmp_path / 'build' / 'missing_features' / 'split=eval' / 'part-00000.parquet'
    part.parent.mkdir(parents=True)
    row = {'segment_id': 'x', 'labels': ['/m/09x0r'], 'csv_file': 'eval_segments.csv', 'line_number': 3}
    pq.write_table(MISSING_FEATURES.from_pylist([
        {**row, 'video_id': '../../etc', 'start_time_seconds': 0.0, 'end_time_seconds': 10.0},
        {**row, 'video_id': 'abcdefghijk', 'start_time_seconds': 10.0, 'end_time_seconds': 5.0},
        {**row, 'video_id': 'abcdefghijk', 'start_time_seconds': float('nan'), 'end_time_seconds': 5.0}]), part)
    proc = _run('pipelines.download_audio', '--audio_dir', str(tmp_path / 'a'), '--missing_features',
                str(tmp_path / 'build'), '--no_progress')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '3 rows skipped' in proc.stderr and 'Traceback' not in proc.stderr
    _error(_run('pipelines.download_audio', '--audio_dir', str(tmp_path / 'a'), '--missing_features',
                str(tmp_path / 'nothing')), EXIT_INPUT, '--missing_features')


# -- 8. Dataflow dry runs -----------------------------------------------------------------------------------

COMMON = ['--project', 'proj-x', '--region', 'us-central1', '--bucket', 'gs://bkt-x']


def _dataflow(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    # timeout: a hang guard (the network is never needed to find these errors), not a timing test
    return subprocess.run(['bash', str(ROOT / 'run_dataflow.sh'), *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def test_dataflow_dry_run_rejects_local_inputs(inputs, tmp_path):
    proc = _dataflow('run', *COMMON, '--dry-run', '--', *_flags(inputs, None), '--output_root', 'gs://bkt-x/o')
    _error(proc, EXIT_USAGE, '--features_dir', '--segments_dir', 'gs://')
    defaults = _dataflow('run', *COMMON, '--dry-run', '--', '--output_root', 'gs://bkt-x/o')
    _error(defaults, EXIT_USAGE, '--features_dir', 'bundled sample')
    local_out = _dataflow('run', *COMMON, '--dry-run', '--', '--features_dir', 'gs://bkt-x/f',
                          '--segments_dir', 'gs://bkt-x/s', '--output_dir', str(tmp_path / 'o'))
    _error(local_out, EXIT_USAGE, '--output_dir')


def test_dataflow_dry_run_with_an_invalid_bucket_fails_fast():
    # Beam would spend minutes on network retries (looking for a default bucket); these need none
    bad = [*COMMON[:4], '--bucket', 'gs://Bad_Bucket!']
    _error(_dataflow('run', *bad, '--dry-run', '--', '--output_root', 'gs://bkt-x/o', timeout=20), EXIT_USAGE,
           '--bucket', 'Bad_Bucket!')
    _error(_dataflow('run', *COMMON, '--dry-run', '--', '--features_dir', 'gs://bkt-x/f', '--segments_dir',
                     'gs://bkt-x/s', '--output_root', 'gs://Bad_Bucket!/o', timeout=20), EXIT_USAGE,
           '--output_root gs://Bad_Bucket!/o')


def test_template_parameters_must_be_gs():
    args = dataflow._parser().parse_args(['template', 'run', *COMMON])
    with pytest.raises(UsageError, match='--features_dir /local'):
        dataflow.template_run_command(args, ['--features_dir', '/local', '--output_root', 'gs://bkt-x/o'])


def test_bucket_names():
    assert bucket_problem('bkt-x') is None and bucket_problem('my.bucket.example.com') is None
    for bad in ('ab', 'Bad', 'bad!', '-bad', 'bad-', '192.168.1.1', 'googlestuff', 'x' * 64):
        assert bucket_problem(bad), bad


# -- 9. the summary's one-liners ----------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['it\'s "odd" $HOME `x` [1] *?!', 'back\\slash'])
def test_summary_queries_work_for_any_path(name, tmp_path):
    out = tmp_path / name
    part = out / 'clips' / 'split=eval' / 'label=%2Fm%2F09x0r' / 'part-00000.parquet'
    part.parent.mkdir(parents=True)
    pq.write_table(pa.table({'is_primary': [True, False, True]}), part)
    commands = summary.query_commands(str(out))
    duck = subprocess.run(['bash', '-c', commands[0].strip()], capture_output=True, text=True, timeout=60)
    assert duck.returncode == 0 and 'eval' in duck.stdout and '3' in duck.stdout, duck.stderr
    arrow = subprocess.run(['bash', '-c', commands[1].strip()], capture_output=True, text=True, timeout=60)
    assert arrow.returncode == 0 and arrow.stdout.strip() == '2', arrow.stderr


# -- the shared pieces --------------------------------------------------------------------------------------

def test_expected_errors_are_found_inside_wrapped_ones():
    """Errors defined where pipelines.errors may not import them carry their exit code themselves."""
    from transforms.core.seal import BuildFailed
    from transforms.core.vggish.weights import WeightsError
    for error, code in ((BuildFailed('counts do not add up'), EXIT_FAILED),
                        (WeightsError('counts do not add up'), EXIT_USAGE)):
        try:
            try:
                raise error
            except type(error) as inner:
                raise RuntimeError('pipeline failed') from inner
        except RuntimeError as e:
            assert expected_error(e) == (code, 'counts do not add up')
    # the class name alone is no longer enough: an error says it is expected with its exit_code
    assert expected_error(type('BuildFailed', (RuntimeError,), {})('x')) is None
    text = RuntimeError("Traceback ...\ntransforms.sinks.BuildFailed: too much bad input\n  eval: 3 of 9 "
                        "[while running 'WriteManifest/VerifyAndSeal']\n\nmore")
    assert expected_error(text) == (EXIT_FAILED, 'too much bad input\n  eval: 3 of 9')
    assert expected_error(KeyError('bug')) is None
    assert format_error('a\nb') == 'error: a\n  b'


def test_normalize_argv():
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument('--one')
    p.add_argument('--many', nargs='+', action='extend')
    p.add_argument('--flag', action='store_true')
    assert normalize_argv(['--one', '-x.wav', '--many', 'a', '-b.wav', '--flag', '--one', 'c'], p) == [
        '--one=-x.wav', '--many=a', '--many=-b.wav', '--flag', '--one', 'c']
    assert normalize_argv(['--one', '--flag'], p) == ['--one', '--flag']
    assert normalize_argv(['--', '--one', '-x'], p) == ['--', '--one', '-x']


def test_download_selection_errors_name_the_flag(tmp_path):
    with pytest.raises(UsageError, match='--labels'):
        download_audio.run(['--audio_dir', str(tmp_path), '--segments_csv',
                            str(SAMPLE / 'segments' / 'eval_segments.csv'), '--labels', 'Nope'])
    with pytest.raises(InputError, match='--segments_csv'):
        download_audio.run(['--audio_dir', str(tmp_path), '--segments_csv', str(tmp_path / 'none.csv')])


def test_relayed_worker_log_lines_show_only_their_message():
    # DirectRunner relays worker records as LogEntry text; the user sees the message, UTF-8 decoded.
    entry = ('Worker: severity: WARN timestamp {   seconds: 1796217030   nanos: 880596399 } message: "dead '
             "letter: /d/caf\\303\\251.tsv:288: join-strong/event-after-segment-end: the segment\\'s end\" "
             'instruction_id: "bundle_12" transform_id: "LabelSegments/JoinLabels" log_location: '
             '"/work/main/transforms/label.py:133" thread: "Thread-13" ')
    record = logging.LogRecord('apache_beam.runners.portability.local_job_service', logging.WARNING, 'x', 1,
                               entry, (), None)
    assert QuietExpectedErrors().filter(record)
    assert record.name == 'worker'
    assert record.getMessage() == ("dead letter: /d/café.tsv:288: join-strong/event-after-segment-end: "
                                   "the segment's end")
    other = logging.LogRecord('transforms.read', logging.WARNING, 'x', 1, 'plain %s', ('text',), None)
    assert QuietExpectedErrors().filter(other) and other.getMessage() == 'plain text'


# -- issue 18.5: every expected failure is one paragraph with a documented status ---------------------------

@pytest.mark.parametrize('flag', ['--output_dir', '--output_root'])
def test_an_output_that_is_a_dangling_link_names_the_flag(flag, inputs, tmp_path):
    link = tmp_path / 'out'
    link.symlink_to(tmp_path / 'gone')
    for value in (link, link / 'below'):
        with pytest.raises(UsageError, match=f'{flag} {value}: .*symbolic link to {tmp_path / "gone"}, '
                                                 'which does not exist'):
            build_dataset.parse(_flags(inputs, None) + [flag, str(value)])
    (tmp_path / 'gone').mkdir()   # a link to a folder is a fine output
    assert build_dataset.parse(_flags(inputs, None) + [flag, str(link)])


@pytest.mark.parametrize('extra,needs', [
    (['--run_id', 'r1'], '--output_root'),
    (['--keep_runs', '5'], '--output_root'),            # given, even at its default value
    (['--vggish_checkpoint', 'x.ckpt'], '--audio or --audio_manifest'),
    (['--vggish_pca_params', 'x.npz'], '--audio or --audio_manifest'),
    (['--embed_batch_clips', '8'], '--audio or --audio_manifest'),
    (['--keep_unlabelled'], '--audio or --audio_manifest'),
    (['--reuse_embeddings_from', 'old'], '--audio or --audio_manifest'),
])
def test_a_flag_without_effect_is_a_usage_error(extra, needs, inputs, tmp_path):
    with pytest.raises(UsageError, match=f'^{extra[0]}: has no effect without {needs} '):
        build_dataset.parse(_flags(inputs, tmp_path / 'o') + extra)


def test_flags_with_effect_and_defaults_are_fine(inputs, tmp_path):
    root = _flags(inputs, None) + ['--output_root', str(tmp_path / 'r')]
    assert build_dataset.parse(root + ['--run_id', 'r1', '--keep_runs', '2'])
    clip = tmp_path / 'a_1.000_2.000.wav'
    clip.write_bytes(b'')
    manifest = tmp_path / 'audio.csv'
    manifest.write_text(f'path,YTID,start,end\n{clip},a,1,2\n')
    for audio in (['--audio', str(clip)], ['--audio_manifest', str(manifest)]):   # the manifest alone is audio
        assert build_dataset.parse(_flags(inputs, tmp_path / 'o') + audio + [
            '--vggish_checkpoint', str(clip), '--vggish_pca_params', str(clip), '--embed_batch_clips', '4',
            '--keep_unlabelled', '--reuse_embeddings_from', str(tmp_path)])


def test_flags_without_effect_exit_2_and_are_all_named(inputs, tmp_path):
    paragraph = _error(_build(*_flags(inputs, tmp_path / 'o'), '--run_id', 'r1', '--keep_unlabelled'),
                       EXIT_USAGE, '2 problems', '--run_id: has no effect without --output_root',
                       '--keep_unlabelled: has no effect without --audio or --audio_manifest')
    assert not (tmp_path / 'o').exists(), paragraph


def test_a_full_disk_is_one_paragraph_naming_the_output(inputs, tmp_path, monkeypatch):
    """ENOSPC where a worker writes (in this process: one worker): exit 74, the output named, the spill gone."""
    from transforms import fileio

    def full(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(fileio, 'create_output', full)
    out = tmp_path / 'o'
    with pytest.raises(UserError) as e:
        build_dataset.run(_flags(inputs, out) + ['--direct_num_workers', '1'])
    code, message = expected_error(e.value)
    assert code == EXIT_NO_SPACE == 74
    assert message.startswith(f'--output_dir {out}: no space left on the device (the disk is full)'), message
    assert 'no manifest.json' in message and not (out / '_spill').exists()


def test_a_full_disk_relayed_by_a_worker_process_is_expected():
    """Workers in other processes relay their error as text: recognized, and their tracebacks and log lines
    about it are not printed (run_cli prints the one paragraph)."""
    relayed = RuntimeError("Pipeline failed: Traceback (most recent call last):\n  File \"w.py\", line 3\n"
                           "OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on "
                           "device [while running 'WriteClips/Write']")
    code, message = expected_error(relayed)
    assert code == EXIT_NO_SPACE and 'no space left on the device (the disk is full)' in message
    quota = OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), '/o/clips/part-00000.parquet')
    assert expected_error(quota) == (EXIT_NO_SPACE, '/o/clips/part-00000.parquet: the disk quota is '
                                     'exceeded; free some space (or write to a larger disk) and run again')
    record = logging.LogRecord('worker', logging.ERROR, 'x', 1, str(relayed), (), None)
    assert not QuietExpectedErrors().filter(record)
    read, write = os.pipe()
    filt = _TracebackFilter(write)
    filt.feed(b'Traceback (most recent call last):\n  File "w.py", line 3\nOSError: [Errno 28] No space left '
              b'on device\nerror: the paragraph\n')
    filt.close()
    os.close(write)
    assert os.read(read, 4096) == b'error: the paragraph\n'
    os.close(read)


def _mount_tmpfs(path: pathlib.Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    return subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)],
                          capture_output=True).returncode == 0


def test_a_really_full_disk_under_worker_processes(tmp_path):
    """The bundled sample built onto a 200 KB tmpfs (where this test may mount one): worker processes hit
    ENOSPC, and the build says so in one paragraph, exit 74."""
    disk = tmp_path / 'small'
    if not _mount_tmpfs(disk, '200k'):
        pytest.skip('cannot mount a tmpfs here (needs root)')
    try:
        proc = _build('--output_dir', str(disk / 'out'), '--direct_num_workers', '2')
        _error(proc, EXIT_NO_SPACE, f'--output_dir {disk / "out"}: no space left on the device '
                                        '(the disk is full)', 'no manifest.json')
        assert proc.stderr.count('No space left') == 0, proc.stderr[-3000:]
        assert not (disk / 'out' / '_spill').exists()
    finally:
        subprocess.run(['umount', str(disk)], check=False)


def _worker_pids(group: int) -> list[int]:
    """Beam's worker processes (sdk_worker_main) in a process group."""
    pids = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/cmdline', 'rb') as f:
                    command = f.read()
                if b'sdk_worker_main' in command and os.getpgid(int(entry)) == group:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


@pytest.mark.skipif(not os.path.isdir('/proc/self'), reason='finds the worker processes in /proc')
def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    """Ctrl-C in a terminal signals the whole foreground process group: the build and its DirectRunner
    worker processes. The build says "error: interrupted" once and exits 130; no process prints a traceback,
    and no worker is left behind."""
    import signal
    import time
    proc = subprocess.Popen([sys.executable, '-m', 'pipelines.build_dataset', '--output_dir', str(tmp_path / 'o'),
                             '--direct_num_workers', '2'], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while len(_worker_pids(proc.pid)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_worker_pids(proc.pid)) >= 2, 'the workers did not start'
        time.sleep(1)   # the workers are at work
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == EXIT_INTERRUPTED == 130, err[-3000:]
    assert 'Traceback' not in err and 'Exception in thread' not in err, err[-3000:]
    assert [line for line in err.splitlines() if line.startswith('error:')] == ['error: interrupted'], err[-3000:]
    assert ' ERROR ' not in err, err[-3000:]
    time.sleep(1)
    assert _worker_pids(proc.pid) == []
    assert not (tmp_path / 'o' / '_spill').exists()
