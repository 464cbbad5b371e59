"""Scheduled rebuilds: runs/<run_id>/ + an atomically replaced latest.json, reruns, pruning, failures."""
import hashlib
import json
import pathlib

import pytest

from pipelines import build_dataset
from tests.fixtures import build_args, copy_sample
from transforms.core import runs


def test_plan_prune():
    assert runs.plan_prune({'a', 'b', 'c', 'd'}, {'a', 'b', 'd'}, 'd', 2) == ['a', 'c']
    assert runs.plan_prune({'a', 'b', 'e'}, {'a', 'e'}, 'b', 1) == ['a']  # 'e' is newer: maybe running
    assert runs.plan_prune(set(), set(), 'a', 3) == []
    # an incomplete run that may be alive is kept, however old; a dead one goes
    assert runs.plan_prune({'a', 'b', 'c'}, {'c'}, 'c', 1, alive={'a'}) == ['b']
    # the pruning run itself stays, even when it lost the race to a newer published run
    assert runs.plan_prune({'a', 'b', 'c'}, {'a', 'b', 'c'}, 'c', 1, current='b') == ['a']
    with pytest.raises(ValueError):
        runs.plan_prune(set(), set(), 'a', 0)


def test_run_ids():
    import datetime
    t = datetime.datetime(2026, 11, 25, 4, 15, tzinfo=datetime.timezone.utc)
    assert runs.new_run_id(t, 'abc123') == '20261125T041500.000000Z-abc123'
    assert runs.new_run_id(t + datetime.timedelta(microseconds=1)) > runs.new_run_id(t, 'ffffff')
    assert len({runs.new_run_id(t) for _ in range(200)}) == 200  # one instant, still distinct
    assert runs.check_run_id(runs.new_run_id()) and runs.check_run_id('20261125T041500Z') and runs.check_run_id('r1')
    for bad in ('../x', '..', '.', '', 'a/b', '.hidden', 'a b', 'x' * 129):
        with pytest.raises(ValueError):
            runs.check_run_id(bad)


def _hashes(run_dir: pathlib.Path) -> dict:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob('*.parquet'))}


def _rebuild(inputs, root, run_id, *extra):
    args = build_args(inputs, root, '--keep_runs', '2', '--run_id', run_id, *extra)
    args[args.index('--output_dir')] = '--output_root'
    return build_dataset.run(args)


def test_rebuilds_publish_prune_and_survive_failures(tmp_path):
    inputs = copy_sample(tmp_path / 'in', splits=('eval',), shards_per_split=20)
    root = tmp_path / 'root'
    latest = root / 'latest.json'
    m1 = _rebuild(inputs, root, 'r1')
    assert json.loads(latest.read_text())['run_id'] == 'r1' and m1['run_id'] == 'r1'
    _rebuild(inputs, root, 'r2')
    pointer = json.loads(latest.read_text())
    assert pointer['run_id'] == 'r2' and pointer['run_dir'] == str(root / 'runs' / 'r2')
    # unchanged inputs, same rows: the two runs' files are byte-identical
    assert _hashes(root / 'runs' / 'r1') == _hashes(root / 'runs' / 'r2') != {}

    # a run that fails midway (too much bad input) leaves latest.json on the last good run
    csv = inputs / 'segments' / 'eval_segments.csv'
    good_csv = csv.read_bytes()
    csv.write_bytes(good_csv + b'garbage line\n' * 2000)
    with pytest.raises(Exception, match='too much bad input'):
        _rebuild(inputs, root, 'r3')
    assert json.loads(latest.read_text())['run_id'] == 'r2'
    assert (root / 'runs' / 'r3').exists() and not (root / 'runs' / 'r3' / 'manifest.json').exists()
    # as does a run killed before it wrote anything but part of its files
    (root / 'runs' / 'r4' / 'clips').mkdir(parents=True)
    (root / 'runs' / 'r4' / 'clips' / 'part-00000.parquet').write_bytes(b'half')

    csv.write_bytes(good_csv)
    _rebuild(inputs, root, 'r5')
    assert json.loads(latest.read_text())['run_id'] == 'r5'
    # keep_runs=2: r2 and r5 stay; r1 (old), r3 (failed) and r4 (killed) are pruned
    assert sorted(p.name for p in (root / 'runs').iterdir()) == ['r2', 'r5']

    # the published run, a complete one, and ids outside runs/ are refused before anything is touched
    manifest = (root / 'runs' / 'r5' / 'manifest.json').read_bytes()
    for run_id, reason in (('r5', 'is the published run'), ('r2', 'complete run already'), ('r0', 'sorts before'),
                           ('..', 'must not start'), ('a/b', 'letters, digits')):
        with pytest.raises(SystemExit, match=reason):
            _rebuild(inputs, root, run_id)
    assert (root / 'runs' / 'r5' / 'manifest.json').read_bytes() == manifest
    assert sorted(p.name for p in (root / 'runs').iterdir()) == ['r2', 'r5']


def test_output_flags_are_exclusive(tmp_path):
    with pytest.raises(SystemExit, match='exactly one'):
        build_dataset.run(['--output_dir', str(tmp_path), '--output_root', str(tmp_path)])


def test_latest_json_moves_only_after_the_manifest_is_complete(tmp_path, monkeypatch):
    """Watched at the file system: whenever a file is renamed onto latest.json (how it is replaced, atomically),
    the manifest it points at must already be on disk, complete, and final; and it must be renamed there at
    least once. In-process (one worker), so the watch sees the seal."""
    import os
    inputs = copy_sample(tmp_path / 'in', splits=('eval',), shards_per_split=10)
    root = tmp_path / 'root'
    seen = []

    def watch(real):
        def renamed(src, dst, *args, **kwargs):
            if os.path.basename(os.fspath(dst)) == 'latest.json':
                pointer = json.loads(pathlib.Path(src).read_bytes())
                manifest = pathlib.Path(pointer['manifest'])
                assert manifest.is_file(), f'latest.json moved to {pointer["run_id"]} before {manifest} existed'
                seen.append((pointer, manifest.read_bytes()))
            return real(src, dst, *args, **kwargs)
        return renamed
    monkeypatch.setattr(os, 'replace', watch(os.replace))
    monkeypatch.setattr(os, 'rename', watch(os.rename))
    manifest = _rebuild(inputs, root, 'r1', '--direct_num_workers', '1')
    monkeypatch.undo()
    assert len(seen) == 1, 'latest.json was never replaced by a rename (or more than once)'
    pointer, at_the_time = seen[0]
    assert pointer['run_id'] == 'r1' and pointer['manifest'] == str(root / 'runs' / 'r1' / 'manifest.json')
    assert json.loads((root / 'latest.json').read_text()) == pointer
    on_disk = (root / 'runs' / 'r1' / 'manifest.json').read_bytes()
    assert at_the_time == on_disk   # the manifest was final when the pointer moved: not rewritten after
    body = json.loads(at_the_time)
    assert body['status'] == 'complete' and body['run_id'] == 'r1' and body['finished'] == pointer['finished']
    assert body['splits']['eval']['segments_out'] == manifest['splits']['eval']['segments_out'] > 0
