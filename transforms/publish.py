"""Claiming a run id at start, and publishing a verified run: latest.json moves only forward, and only dead or
surplus runs are pruned. Local paths and gs:// alike; the rules are in ``transforms.core.runs``.

    claim = claim_run(root, run_id, runner)      # before anything is written: refuses a taken or stale id
    with claim, beam.Pipeline(...) as p: ...     # a run that raises releases its marker (it is dead)
    Publish(root, run_id, keep_runs)(manifest)   # after the manifest: compare-and-swap latest.json, prune
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import secrets
import socket

from audioset_beam import layout
from transforms import fileio
from transforms.core import runs

log = logging.getLogger(__name__)

# Runners that execute the pipeline inside the launching process: when that process is gone, so is the run.
_IN_PROCESS_RUNNERS = {'direct', 'bundlebaseddirect', 'switchingdirect', 'fnapi', 'prism'}
_CAS_ATTEMPTS = 50


class RunRefused(SystemExit):
    """The run id cannot be used: it is taken, published, complete, or could never be published. A SystemExit
    with the message, as build_dataset's other flag errors: the command prints one ``error:`` paragraph."""


def runs_in_process(runner) -> bool:
    """Whether a Beam runner (name, class or instance; None is the DirectRunner) runs the pipeline in this
    process, so that the process's end is the run's end."""
    if runner is None:
        return True
    name = runner if isinstance(runner, str) else getattr(runner, '__name__', type(runner).__name__)
    name = name.rsplit('.', 1)[-1].lower()
    return name.removesuffix('runner') in _IN_PROCESS_RUNNERS


# -- this machine, for liveness -------------------------------------------------------------------------------

def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks after boot) of a local process, from /proc; None when absent."""
    stat = _read_text(f'/proc/{pid}/stat')
    if stat is None:
        return None
    fields = stat[stat.rindex(')') + 2:].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[19])


def pid_running(pid: int, start: int | None) -> bool:
    """Whether local process ``pid`` still runs and is the one that started at ``start`` (not a reused pid)."""
    if pid <= 0:
        return False
    if os.path.isdir('/proc/self'):
        stat = _proc_stat(pid)
        return stat is not None and stat[0] not in 'ZX' and (start is None or stat[1] == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def this_machine() -> runs.Machine:
    boot_id = (_read_text('/proc/sys/kernel/random/boot_id') or '').strip()
    try:
        pid_ns = os.readlink('/proc/self/ns/pid')  # containers on one kernel have their own pids
    except OSError:
        pid_ns = ''
    return runs.Machine(socket.gethostname(), boot_id, pid_ns, pid_running)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


# -- paths --------------------------------------------------------------------------------------------------

def _runs_dir(root: str) -> str:
    return layout.join(root, runs.RUNS_DIR)


def _run_dir(root: str, run_id: str) -> str:
    return layout.join(root, runs.RUNS_DIR, run_id)


def _marker_path(root: str, run_id: str) -> str:
    return layout.join(root, runs.RUNS_DIR, run_id, runs.MARKER_FILE)


def _latest_path(root: str) -> str:
    return layout.join(root, runs.LATEST_FILE)


def _lock_path(root: str) -> str:
    return layout.join(root, '.latest.lock')


def _loads(data: bytes | None) -> dict | None:
    if data is None:
        return None
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _read_optional(path: str) -> bytes | None:
    if fileio.is_local(path):
        try:
            return fileio.read_bytes(path)
        except FileNotFoundError:
            return None
    from google.api_core import exceptions
    try:
        return fileio.read_bytes(path)
    except (exceptions.NotFound, FileNotFoundError):
        return None


def _encode(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + '\n').encode()


def read_pointer(output_root: str) -> dict | None:
    """The contents of ``<output_root>/latest.json`` (None when there is none)."""
    return _loads(_read_optional(_latest_path(output_root)))


def read_marker(output_root: str, run_id: str) -> runs.Marker | None:
    """A run's liveness marker; an unreadable one reads as a marker of unknown age (so: alive)."""
    data = _read_optional(_marker_path(output_root, run_id))
    if data is None:
        return None
    try:
        return runs.Marker.from_json(_loads(data) or {})
    except TypeError:
        return runs.Marker(run_id, started='')


def _delete_if_exists(path: str) -> None:
    if fileio.exists(path):
        with contextlib.suppress(FileNotFoundError, OSError):  # gone meanwhile
            fileio.delete([path])


# -- claiming a run id ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Claim:
    """A run id held by this process through ``runs/<run_id>/_RUNNING``.

    As a context manager around the pipeline: a run that raises releases its marker (it is dead, and may be
    pruned); one that returns leaves it to ``Publish``, which releases it after the manifest is written (on
    Dataflow the launcher may return before the job ends).
    """
    output_root: str
    run_id: str
    marker: runs.Marker

    @property
    def run_dir(self) -> str:
        return _run_dir(self.output_root, self.run_id)

    def release(self) -> None:
        """Deletes the marker if it is still this claim's."""
        path = _marker_path(self.output_root, self.run_id)
        if fileio.is_local(path):
            current = read_marker(self.output_root, self.run_id)
            if current is not None and current.token == self.marker.token:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            return
        found = fileio.read_generation(path)
        if found is not None and (_loads(found[0]) or {}).get('token') == self.marker.token:
            fileio.delete_if_generation(path, found[1])

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            log.info('run %s failed: releasing %s', self.run_id, _marker_path(self.output_root, self.run_id))
            self.release()
        return False


def _check_against(root: str, run_id: str) -> None:
    """Refuses ``run_id`` when it is complete, published, or sorts before the published run."""
    run_dir = _run_dir(root, run_id)
    pointer = read_pointer(root) or {}
    published = pointer.get('run_id')
    if published == run_id:
        raise RunRefused(f'--run_id {run_id}: that is the published run ({_latest_path(root)} points at '
                         f'{run_dir}); rebuilding it in place would leave readers on a run with no manifest. '
                         'Omit --run_id (the default is new every time) or choose a new one.')
    if fileio.exists(layout.join(run_dir, layout.MANIFEST_FILE)):
        raise RunRefused(f'--run_id {run_id}: {run_dir} is a complete run already; run ids are never reused. '
                         'Omit --run_id (the default is new every time) or choose a new one.')
    if published is not None and not runs.is_newer(run_id, published):
        raise RunRefused(f'--run_id {run_id}: sorts before the published run {published} (run ids are ordered as '
                         'strings; the default ids, UTC start times, sort by time), so this run could never be '
                         'published. Omit --run_id or choose one that sorts after it.')


def claim_run(output_root: str, run_id: str, runner=None) -> Claim:
    """Claims ``<output_root>/runs/<run_id>/`` for this run, before anything is written or deleted there.

    Creates the liveness marker exclusively (of two runs with one id, exactly one gets it) and refuses, with
    ``RunRefused``, an id that is malformed, held by another run (running, or killed and not pruned yet),
    complete already, the published one, or one that sorts before the published run. ``runner`` (the Beam
    runner's name; None is the DirectRunner) says whether this process's end is the run's end.
    """
    try:
        runs.check_run_id(run_id)
    except ValueError as e:
        raise RunRefused(f'--run_id: {e}') from None
    _check_against(output_root, run_id)
    in_process = runs_in_process(runner)
    here = this_machine()
    stat = _proc_stat(os.getpid())
    marker = runs.Marker(run_id=run_id, started=_now().isoformat(), host=here.host, boot_id=here.boot_id,
                         pid=os.getpid(), pid_start=stat[1] if stat else None, pid_ns=here.pid_ns,
                         in_process=in_process, token=secrets.token_hex(8))
    path = _marker_path(output_root, run_id)
    if not fileio.create_exclusive(path, _encode(marker.to_json())):
        other = read_marker(output_root, run_id)
        held = f' (host {other.host}, pid {other.pid}, since {other.started})' if other else ''
        raise RunRefused(f'--run_id {run_id}: another run holds {path}{held}: it is running, or it was killed '
                         'and its folder waits to be pruned. Omit --run_id (the default is new every time) or '
                         'choose a new one.')
    claim = Claim(output_root, run_id, marker)
    try:
        # Again, now that the marker exists: a prune that saw no marker here read a pointer at least as new
        # as this one, and this check then refuses the run (so a prune never deletes a run being claimed).
        _check_against(output_root, run_id)
    except BaseException:
        claim.release()
        raise
    log.info('claimed %s', claim.run_dir)
    return claim


# -- the pointer ---------------------------------------------------------------------------------------------

def swap_pointer(output_root: str, pointer: dict) -> tuple[bool, str]:
    """Points latest.json at ``pointer['run_id']`` unless it points at a newer run already (compare-and-swap:
    locally under a lock file, on gs:// with generation preconditions). Returns (whether latest.json now
    points at this run, the run it points at)."""
    path, run_id = _latest_path(output_root), pointer['run_id']
    data = _encode(pointer)
    if fileio.is_local(path):
        with fileio.local_lock(_lock_path(output_root)):
            current = (read_pointer(output_root) or {}).get('run_id')
            if not runs.is_newer(run_id, current):
                return current == run_id, current
            fileio.replace_durably(path, data)
            return True, run_id
    for _ in range(_CAS_ATTEMPTS):
        found = fileio.read_generation(path)
        current = (_loads(found[0]) or {}).get('run_id') if found else None
        if not runs.is_newer(run_id, current):
            return current == run_id, current
        if fileio.write_if_generation(path, data, found[1] if found else 0):
            return True, run_id
    raise RuntimeError(f'{path}: gave up after {_CAS_ATTEMPTS} concurrent replacements')


# -- publishing and pruning ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Published:
    """What ``Publish`` did: whether latest.json moved to this run, where it points, which runs it pruned."""
    run_id: str
    moved: bool
    latest: str
    pruned: list[str]


def run_states(output_root: str) -> tuple[set[str], set[str], dict[str, bool]]:
    """(every run id, the complete ones, whether each incomplete run has a marker) under ``runs/``."""
    runs_dir = _runs_dir(output_root)
    prefix = runs_dir.rstrip('/') + '/'
    all_runs, complete, marked = set(), set(), set()
    for path, _ in fileio.list_files(runs_dir):
        run_id = runs.run_id_of(path, runs_dir)
        if not run_id:
            continue
        all_runs.add(run_id)
        rest = path[len(prefix) + len(run_id) + 1:]
        if rest == layout.MANIFEST_FILE:
            complete.add(run_id)
        elif rest == runs.MARKER_FILE:
            marked.add(run_id)
    if fileio.is_local(runs_dir) and os.path.isdir(runs_dir):
        all_runs |= {n for n in os.listdir(runs_dir) if os.path.isdir(os.path.join(runs_dir, n))}
    return all_runs, complete, {r: r in marked for r in all_runs - complete}


def prune(output_root: str, published: str, keep: int, current: str | None = None,
          stale_after: datetime.timedelta = runs.STALE_AFTER) -> list[str]:
    """Deletes the runs ``runs.plan_prune`` names, given the run latest.json points at (read after it was
    last moved, and before the runs are listed); returns their ids."""
    all_runs, complete, marked = run_states(output_root)
    here, now = this_machine(), _now()
    alive = set()
    for run_id, has_marker in marked.items():
        marker = read_marker(output_root, run_id) if has_marker else None
        if marker is not None and runs.is_alive(marker, now, here, stale_after):
            alive.add(run_id)
    doomed = runs.plan_prune(all_runs, complete, published, keep, alive, current)
    for run_id in doomed:
        run_dir = _run_dir(output_root, run_id)
        if run_id in complete:
            # The manifest goes first: a prune cut short leaves an incomplete, unmarked run, pruned next time.
            _delete_if_exists(layout.join(run_dir, layout.MANIFEST_FILE))
        fileio.delete_tree(run_dir)
    if doomed:
        log.info('pruned runs %s', ', '.join(doomed))
    spared = sorted(r for r in alive if r < published)
    if spared:
        log.info('kept runs that may still be running: %s', ', '.join(spared))
    return doomed


@dataclasses.dataclass(frozen=True)
class Publish:
    """Publishes a verified run: ``<output_root>/latest.json`` -> this run unless a newer run is published
    already, then releases the run's marker and prunes (keeping ``keep_runs`` complete runs). Idempotent, so a
    retried bundle may call it again."""
    output_root: str
    run_id: str
    keep_runs: int
    stale_after_s: float = runs.STALE_AFTER.total_seconds()

    def __call__(self, manifest: dict) -> Published:
        run_dir = _run_dir(self.output_root, self.run_id)
        if not fileio.exists(layout.join(run_dir, layout.MANIFEST_FILE)):
            # latest.json must never point at a run without its manifest (readers trust the pointer).
            raise RuntimeError(f'{layout.join(run_dir, layout.MANIFEST_FILE)}: missing; refusing to publish {run_dir}')
        moved, latest = swap_pointer(self.output_root, {
            'run_id': self.run_id, 'run_dir': run_dir, 'manifest': layout.join(run_dir, layout.MANIFEST_FILE),
            'finished': manifest['finished'], 'segments': {k: v['segments_out'] for k, v in manifest['splits'].items()},
        })
        if moved:
            log.info('%s -> %s', _latest_path(self.output_root), run_dir)
        else:
            log.warning('run %s is complete but NOT published: %s points at the newer run %s already '
                        '(latest.json never goes back)', self.run_id, _latest_path(self.output_root), latest)
        _delete_if_exists(_marker_path(self.output_root, self.run_id))
        pruned = prune(self.output_root, latest, self.keep_runs, self.run_id,
                       datetime.timedelta(seconds=self.stale_after_s))
        return Published(self.run_id, moved, latest, pruned)
