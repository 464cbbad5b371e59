"""Rebuild bookkeeping: run ids, their order, liveness markers, and which old runs to prune.

Layout under an output root::

    <root>/runs/<run_id>/...          one dataset per run (manifest.json written last: then it is complete)
    <root>/runs/<run_id>/_RUNNING     liveness marker: created exclusively when the run claims its id,
                                      deleted when it publishes or fails
    <root>/latest.json                {"run_id", "run_dir", ...}: moved only forward, to a newer complete run

The rules (``transforms.publish`` applies them; everything here is pure):

- **Order.** Runs are ordered by run id, as strings. Default ids are the UTC start time to the microsecond
  plus a random suffix (``20261125T041500.123456Z-1a2b3c``), so they sort by start time and never collide.
  A custom ``--run_id`` takes its place in the same order: give it the same time prefix if later default runs
  must be able to pass it. An id that sorts before the published one is refused at start (it could never
  be published), as are the published id, a complete run's id, and one another run holds.
- **Pointer.** ``latest.json`` only ever moves to a newer run id (compare-and-swap). A run that completes
  after a newer one was published keeps its manifest (it is a complete run) but does not move the pointer.
- **Liveness.** A run with a marker is alive unless provably dead: when it runs in the claiming process
  (DirectRunner) and the pruner sees that process (same host, boot and pid namespace), it is dead once that
  process is gone; otherwise (Dataflow, another host or container) it counts as alive until its marker is
  ``STALE_AFTER`` old. A run without a marker (it failed, or predates markers) is dead.
- **Prune.** Only runs older than the published one are deleted: complete runs beyond the ``keep`` newest
  complete runs, and incomplete runs that are not alive. The published run and the pruning run itself are
  never deleted, nor is anything newer than the published run (it may still be running or publishing).
"""
from __future__ import annotations

import dataclasses
import datetime
import re
import secrets
from collections.abc import Callable, Iterable

# Defined with the rest of the output layout, in the reader package: the reader resolves latest.json too.
from audioset_beam.layout import LATEST_FILE, RUNS_DIR  # noqa: F401

MARKER_FILE = '_RUNNING'
# A marker that cannot be checked by pid (another host, or a runner that executes elsewhere) counts as alive
# this long after its run started: generous (a build from the released embeddings takes minutes on Dataflow;
# embedding much new audio on few workers, hours).
STALE_AFTER = datetime.timedelta(hours=24)

_RUN_ID = re.compile(r'^[0-9A-Za-z_-][0-9A-Za-z_.-]{0,127}$')
_TIME_FORMAT = '%Y%m%dT%H%M%S.%fZ'


def new_run_id(now: datetime.datetime | None = None, suffix: str | None = None) -> str:
    """A unique run id that sorts by start time: UTC time to the microsecond and 6 random hex digits.

    >>> new_run_id(datetime.datetime(2026, 11, 25, 4, 15, tzinfo=datetime.timezone.utc), 'abc123')
    '20261125T041500.000000Z-abc123'
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f'{now.astimezone(datetime.timezone.utc).strftime(_TIME_FORMAT)}-{suffix or secrets.token_hex(3)}'


def check_run_id(run_id: str) -> str:
    """``run_id`` if it can name a folder under ``runs/``; ValueError otherwise ('.', '..', '/', ...)."""
    if not _RUN_ID.match(run_id or ''):
        raise ValueError(f'run id {run_id!r} must be 1 to 128 letters, digits, ".", "_" and "-", and must not '
                         'start with "."')
    return run_id


def is_newer(run_id: str, than: str | None) -> bool:
    """Whether ``run_id`` comes after ``than`` in run order (anything comes after None)."""
    return than is None or run_id > than


def run_id_of(path: str, runs_dir: str) -> str | None:
    """The run id of a path below ``runs_dir`` (None if it is not below it)."""
    prefix = runs_dir.rstrip('/') + '/'
    if not path.startswith(prefix):
        return None
    return path[len(prefix):].split('/', 1)[0]


@dataclasses.dataclass(frozen=True)
class Marker:
    """What a running run says about itself in ``runs/<id>/_RUNNING``.

    ``pid`` (with ``pid_start``, the process's start time in clock ticks after boot, against pid reuse) is
    only meaningful on ``host`` in boot ``boot_id`` and pid namespace ``pid_ns``, and only when
    ``in_process``: the runner executes the pipeline in that process, so the run is dead once the process is.
    """
    run_id: str
    started: str              # ISO 8601, UTC
    host: str = ''
    boot_id: str = ''
    pid: int = 0
    pid_start: int | None = None
    pid_ns: str = ''
    in_process: bool = False
    token: str = ''           # random: tells this claim from any later one on the same id

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> Marker:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in fields})


@dataclasses.dataclass(frozen=True)
class Machine:
    """Where a liveness check runs, and how it asks whether a local process is still the same one."""
    host: str
    boot_id: str
    pid_ns: str
    pid_running: Callable[[int, int | None], bool]

    def sees(self, marker: Marker) -> bool:
        """Whether this machine can look up the marker's process: same host, boot and pid namespace."""
        return bool(marker.in_process and self.boot_id and self.pid_ns and marker.host == self.host
                    and marker.boot_id == self.boot_id and marker.pid_ns == self.pid_ns)


def is_alive(marker: Marker, now: datetime.datetime, here: Machine,
             stale_after: datetime.timedelta = STALE_AFTER) -> bool:
    """Whether the run behind ``marker`` may still be running (when in doubt: yes).

    >>> here = Machine('h', 'boot', 'ns', lambda pid, start: pid == 7)
    >>> now = datetime.datetime(2026, 11, 25, 12, tzinfo=datetime.timezone.utc)
    >>> local = dict(host='h', boot_id='boot', pid_ns='ns', in_process=True)
    >>> is_alive(Marker('r', '2026-11-20T00:00:00+00:00', pid=7, **local), now, here)  # running: any age
    True
    >>> is_alive(Marker('r', '2026-11-25T11:00:00+00:00', pid=8, **local), now, here)  # its process is gone
    False
    >>> is_alive(Marker('r', '2026-11-25T11:00:00+00:00', 'other', pid=8, in_process=True), now, here)
    True
    """
    if here.sees(marker):
        return here.pid_running(marker.pid, marker.pid_start)
    try:
        started = datetime.datetime.fromisoformat(marker.started)
    except (TypeError, ValueError):
        return True  # unreadable: never guess dead
    if started.tzinfo is None:
        started = started.replace(tzinfo=datetime.timezone.utc)
    return now - started < stale_after


def plan_prune(all_runs: Iterable[str], complete_runs: Iterable[str], published: str, keep: int,
               alive: Iterable[str] = (), current: str | None = None) -> list[str]:
    """Run ids to delete, given the run ``published`` in latest.json (see the module docstring).

    Deletes runs older than ``published`` only: complete ones beyond the ``keep`` newest complete runs,
    incomplete ones that are not ``alive``. Never ``published`` or ``current``.

    >>> plan_prune({'a', 'b', 'c', 'd', 'e'}, {'a', 'b', 'd'}, 'd', 2, alive={'c'})
    ['a']
    """
    if keep < 1:
        raise ValueError(f'keep must be at least 1, got {keep}')
    all_runs, complete, alive = set(all_runs), set(complete_runs), set(alive)
    kept = set(sorted(complete | {published})[-keep:]) | {published, current}
    return sorted(r for r in all_runs
                  if r < published and r not in kept and (r in complete or r not in alive))
