"""Overlapping rebuilds, with real processes: latest.json never goes back, a live run is never pruned, run ids
never collide, and a killed run is pruned once provably dead (locally and on gs://, against the emulator)."""
import datetime
import json
import multiprocessing
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from tests.fixtures import ROOT, build_args, copy_sample
from transforms import publish
from transforms.core import runs

# Workers are forked from a server that imported only this module (not from pytest, which may hold gRPC
# threads by now): a child starts in milliseconds, so racing children really race.
_ctx = multiprocessing.get_context('forkserver')
_ctx.set_forkserver_preload(['tests.test_publish'])

MANIFEST = {'finished': '2026-11-25T04:15:00+00:00', 'splits': {'eval': {'segments_out': 1}}}


def _complete(root, run_id):
    """A complete run on disk (or gs://), as far as publishing and pruning can tell."""
    from transforms import fileio
    fileio.write_bytes(f'{root}/runs/{run_id}/manifest.json', json.dumps(MANIFEST).encode())


def _env(env):
    os.environ.update(env)


def _publish_after_barrier(root, run_id, barrier, env, results):
    _env(env)
    _complete(root, run_id)
    barrier.wait()
    done = publish.Publish(root, run_id, keep_runs=100)(MANIFEST)
    results.put((run_id, done.moved, done.latest))


def _claim_after_barrier(root, run_id, barrier, env, results):
    _env(env)
    barrier.wait()
    run_id = run_id or runs.new_run_id()
    try:
        publish.claim_run(root, run_id)
        results.put((run_id, 'claimed'))
    except publish.RunRefused as e:
        results.put((run_id, str(e)))


def _claim_and_wait(root, run_id, runner, env, ready):
    _env(env)
    publish.claim_run(root, run_id, runner)
    ready.set()
    time.sleep(600)


def _race(target, args_per_child):
    barrier = _ctx.Barrier(len(args_per_child))
    results = _ctx.Queue()
    children = [_ctx.Process(target=target, args=(*a, barrier, dict(os.environ), results)) for a in args_per_child]
    for c in children:
        c.start()
    out = [results.get(timeout=60) for _ in children]
    for c in children:
        c.join(timeout=30)
        assert c.exitcode == 0
    return out


def _hold(root, run_id, runner=None):
    """A live process holding ``run_id`` (as a build would: claimed, then busy)."""
    ready = _ctx.Event()
    child = _ctx.Process(target=_claim_and_wait, args=(root, run_id, runner, dict(os.environ), ready))
    child.start()
    deadline = time.monotonic() + 60
    while not ready.wait(0.1):
        assert child.is_alive() and time.monotonic() < deadline, f'{run_id} was never claimed'
    return child


def _kill(child):
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=30)


def _latest(root):
    return (publish.read_pointer(str(root)) or {}).get('run_id')


def _ids(root):
    return sorted(p.name for p in (pathlib.Path(root) / 'runs').iterdir())


def _dead(child):
    """Liveness as a pruner on this machine sees it, once the child's exit has been noticed."""
    deadline = time.monotonic() + 10
    while publish.pid_running(child.pid, None) and time.monotonic() < deadline:
        time.sleep(0.05)


# -- rules, no processes ------------------------------------------------------------------------------------

def test_liveness_rules():
    now = datetime.datetime(2026, 11, 25, 12, tzinfo=datetime.timezone.utc)
    here = runs.Machine('h', 'boot', 'ns', lambda pid, start: pid == 7 and start in (None, 70))
    old = (now - datetime.timedelta(hours=30)).isoformat()
    young = (now - datetime.timedelta(hours=1)).isoformat()

    def marker(started, pid, pid_start=None, host='h', boot_id='boot', pid_ns='ns', in_process=True):
        return runs.Marker('r', started, host, boot_id, pid, pid_start, pid_ns, in_process)
    # a DirectRunner run this machine can see: its process decides, not its age
    assert runs.is_alive(marker(old, 7, 70), now, here)
    assert not runs.is_alive(marker(young, 8), now, here)        # its process is gone
    assert not runs.is_alive(marker(young, 7, 71), now, here)    # pid 7 is another process now
    # not visible from here (another host, boot or container, or a runner elsewhere): alive until stale
    for elsewhere in (dict(host='other'), dict(boot_id='rebooted'), dict(pid_ns='container'), dict(in_process=False)):
        assert runs.is_alive(marker(young, 8, **elsewhere), now, here)
        assert not runs.is_alive(marker(old, 7, **elsewhere), now, here)
    assert runs.is_alive(runs.Marker('r', ''), now, here)  # unreadable: never guessed dead
    assert publish.runs_in_process(None) and publish.runs_in_process('DirectRunner')
    assert publish.runs_in_process('PrismRunner') and not publish.runs_in_process('DataflowRunner')


def test_claim_refusals(tmp_path):
    root = str(tmp_path)
    for bad in ('..', '.', 'a/b', ''):
        with pytest.raises(publish.RunRefused, match='--run_id'):
            publish.claim_run(root, bad)
    assert not (tmp_path / 'runs').exists()  # refused before writing anything
    _complete(root, 'b')
    publish.Publish(root, 'b', 5)(MANIFEST)
    manifest = (tmp_path / 'runs' / 'b' / 'manifest.json').read_bytes()
    with pytest.raises(publish.RunRefused, match='is the published run'):
        publish.claim_run(root, 'b')
    with pytest.raises(publish.RunRefused, match='sorts before the published run b'):
        publish.claim_run(root, 'a')
    _complete(root, 'c')
    with pytest.raises(publish.RunRefused, match='complete run already'):
        publish.claim_run(root, 'c')
    assert (tmp_path / 'runs' / 'b' / 'manifest.json').read_bytes() == manifest
    assert _ids(root) == ['b', 'c'] and not list(tmp_path.glob('runs/*/_RUNNING'))
    # a claim that fails its run releases the marker; a run that returns leaves it to Publish
    with pytest.raises(ZeroDivisionError), publish.claim_run(root, 'd'):
        assert (tmp_path / 'runs' / 'd' / '_RUNNING').exists()
        1 / 0
    assert not (tmp_path / 'runs' / 'd' / '_RUNNING').exists()
    with publish.claim_run(root, 'e'):
        pass
    assert (tmp_path / 'runs' / 'e' / '_RUNNING').exists()
    _complete(root, 'e')
    assert publish.Publish(root, 'e', 1)(MANIFEST) == publish.Published('e', True, 'e', ['b', 'c', 'd'])
    assert _ids(root) == ['e'] and not (tmp_path / 'runs' / 'e' / '_RUNNING').exists()


# -- real processes, local ---------------------------------------------------------------------------------

def test_pointer_never_goes_backwards(tmp_path):
    root = str(tmp_path)
    ids = [runs.new_run_id() for _ in range(6)]
    results = _race(_publish_after_barrier, [(root, i) for i in reversed(ids)])
    newest = max(ids)
    assert _latest(root) == newest and (newest, True, newest) in results
    assert all(latest >= run_id for run_id, _, latest in results)
    # a run that finishes after a newer one was published completes but does not move the pointer
    late = runs.new_run_id(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
    _complete(root, late)
    done = publish.Publish(root, late, keep_runs=100)(MANIFEST)
    assert done == publish.Published(late, False, newest, [])
    assert _latest(root) == newest and (tmp_path / 'runs' / late / 'manifest.json').exists()
    assert publish.Publish(root, newest, keep_runs=100)(MANIFEST).moved  # idempotent (a retried bundle)


def test_same_instant_claims_get_distinct_runs(tmp_path):
    root = str(tmp_path)
    results = _race(_claim_after_barrier, [(root, None)] * 4)
    assert all(outcome == 'claimed' for _, outcome in results)
    assert len({run_id for run_id, _ in results}) == 4 == len(list(tmp_path.glob('runs/*/_RUNNING')))
    # one id wanted by four runs at once: exactly one gets it, the others are told why
    results = _race(_claim_after_barrier, [(root, 'zz-manual')] * 4)
    outcomes = [outcome for _, outcome in results]
    assert outcomes.count('claimed') == 1 and sum('another run holds' in o for o in outcomes) == 3


def test_live_runs_are_never_pruned_and_killed_ones_are_once_dead(tmp_path):
    root = str(tmp_path)
    local = _hold(root, 'a-local')                         # DirectRunner on this machine: its pid decides
    remote = _hold(root, 'b-remote', 'DataflowRunner')     # runs elsewhere: alive until its marker is stale
    try:
        for run_id in 'cdef':
            _complete(root, run_id)
        assert publish.Publish(root, 'c', keep_runs=1, stale_after_s=3600)(MANIFEST).pruned == []
        _kill(remote)
        assert publish.Publish(root, 'd', keep_runs=1, stale_after_s=3600)(MANIFEST).pruned == ['c']
        # stale now: the killed remote run goes; the live local one stays, however old its marker
        assert publish.Publish(root, 'e', keep_runs=1, stale_after_s=0)(MANIFEST).pruned == ['b-remote', 'd']
        assert (tmp_path / 'runs' / 'a-local' / '_RUNNING').exists()
        _kill(local)
        _dead(local)
        assert publish.Publish(root, 'f', keep_runs=1, stale_after_s=3600)(MANIFEST).pruned == ['a-local', 'e']
        assert _ids(root) == ['f']
    finally:
        for child in (local, remote):
            if child.is_alive():
                _kill(child)


def _start_build(inputs, root, log):
    args = build_args(inputs, root, '--keep_runs', '1')
    args[args.index('--output_dir')] = '--output_root'
    with open(log, 'w') as out:
        return subprocess.Popen([sys.executable, '-m', 'pipelines.build_dataset', *args], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})


def _wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_overlapping_builds(tmp_path):
    """The hostile schedule: a slow run starts, a newer one starts, finishes and prunes (keep_runs 1) while
    the slow one is stopped mid-build; then the slow one finishes. It must succeed, and not publish."""
    root = tmp_path / 'root'
    big = copy_sample(tmp_path / 'big', splits=('eval', 'bal_train', 'unbal_train'))
    small = copy_sample(tmp_path / 'small', splits=('eval',), shards_per_split=5)
    (root / 'runs' / '20000101T000000.000000Z-dead00' / 'clips').mkdir(parents=True)  # debris of a killed run
    _complete(str(root), '20000101T000000.000000Z-old000')
    slow = _start_build(big, root, tmp_path / 'slow.log')
    try:
        def started():
            return [p for p in (root / 'runs').glob('*/_RUNNING')]
        _wait_for(started, 60, 'the slow run never claimed its id')
        slow_dir = started()[0].parent
        _wait_for(lambda: len(list(slow_dir.rglob('*'))) > 2 or slow.poll() is not None, 60, 'no output')
        os.killpg(slow.pid, signal.SIGSTOP)
        assert slow.poll() is None, 'the slow run finished before it could be stopped mid-build'
        fast = _start_build(small, root, tmp_path / 'fast.log')
        assert fast.wait(timeout=120) == 0, (tmp_path / 'fast.log').read_text()
        fast_id = _latest(root)
        assert fast_id > slow_dir.name  # started later: the newer run
        # keep_runs 1 pruned the old complete run and the debris, but not the stopped (live) slow run
        assert _ids(root) == sorted([slow_dir.name, fast_id]) and (slow_dir / '_RUNNING').exists()
    finally:
        os.killpg(slow.pid, signal.SIGCONT)
    assert slow.wait(timeout=180) == 0, (tmp_path / 'slow.log').read_text()
    out = (tmp_path / 'slow.log').read_text()
    assert 'NOT published' in out and f'points at the newer run {fast_id}' in out
    assert (slow_dir / 'manifest.json').exists() and not (slow_dir / '_RUNNING').exists()
    assert _latest(root) == fast_id  # never went back
    assert _ids(root) == sorted([slow_dir.name, fast_id])


# -- gs://, against the emulator ----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def gcs(tmp_path_factory):
    from tests.gcs import gcs_emulator
    with gcs_emulator(tmp_path_factory.mktemp('gcs')) as client:
        client.create_bucket('rebuilds')
        yield client


def test_gcs_compare_and_swap(gcs):
    for attempt in range(2):  # races: twice, to make a lost update likely to show if CAS were broken
        root = f'gs://rebuilds/cas{attempt}'
        ids = [runs.new_run_id() for _ in range(5)]
        results = _race(_publish_after_barrier, [(root, i) for i in reversed(ids)])
        newest, oldest = max(ids), min(ids)
        assert _latest(root) == newest and all(latest >= run_id for run_id, _, latest in results)
    assert publish.Publish(root, oldest, keep_runs=100)(MANIFEST) == publish.Published(oldest, False, newest, [])
    results = _race(_claim_after_barrier, [(root, 'zz-manual')] * 3)
    assert [o for _, o in results].count('claimed') == 1
    with pytest.raises(publish.RunRefused, match='is the published run'):
        publish.claim_run(root, newest)
    with pytest.raises(publish.RunRefused, match='complete run already'):
        publish.claim_run(root, oldest)
    with pytest.raises(publish.RunRefused, match='sorts before'):
        publish.claim_run(root, runs.new_run_id(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)))


def test_gcs_live_run_is_not_pruned(gcs):
    root = 'gs://rebuilds/live'
    alive = _hold(root, 'a')
    try:
        _complete(root, 'b')
        assert publish.Publish(root, 'b', keep_runs=1, stale_after_s=0.0)(MANIFEST).pruned == []
        _kill(alive)
        _dead(alive)
        _complete(root, 'c')
        assert publish.Publish(root, 'c', keep_runs=1)(MANIFEST).pruned == ['a', 'b']
    finally:
        if alive.is_alive():
            _kill(alive)
    names = {b.name for b in gcs.list_blobs('rebuilds', prefix='live/runs/')}
    assert names == {'live/runs/c/manifest.json'}


def test_a_run_without_its_manifest_is_never_published(tmp_path):
    root = str(tmp_path)
    _complete(root, 'a')
    publish.Publish(root, 'a', keep_runs=5)(MANIFEST)
    with pytest.raises(RuntimeError, match='manifest.json: missing'):
        publish.Publish(root, 'b', keep_runs=5)(MANIFEST)
    assert publish.read_pointer(root)['run_id'] == 'a'
