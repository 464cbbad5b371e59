"""Rebuild bookkeeping: run ids, the ``latest.json`` pointer, and which old runs to prune.

Layout under an output root::

    <root>/runs/<run_id>/...     one complete dataset per run (manifest.json written last)
    <root>/latest.json           {"run_id", "run_dir", ...}: replaced atomically after a run verified itself

Readers follow ``latest.json`` and never see a half-written run; a killed run leaves the pointer on the
previous good run.
"""
from __future__ import annotations

import datetime
import re

RUNS_DIR = 'runs'
LATEST_FILE = 'latest.json'
_RUN_ID = re.compile(r'^[0-9A-Za-z_.-]+$')


def new_run_id(now: datetime.datetime | None = None) -> str:
    """A sortable run id: UTC time to the second, e.g. ``20261125T041500Z``."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime('%Y%m%dT%H%M%SZ')


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise ValueError(f'run id {run_id!r} may hold only letters, digits, ".", "_" and "-"')
    return run_id


def run_id_of(path: str, runs_dir: str) -> str | None:
    """The run id of a path below ``runs_dir`` (None if it is not below it)."""
    prefix = runs_dir.rstrip('/') + '/'
    if not path.startswith(prefix):
        return None
    return path[len(prefix):].split('/', 1)[0]


def plan_prune(all_runs: set[str], complete_runs: set[str], current: str, keep: int) -> list[str]:
    """Run ids to delete after ``current`` was published.

    Keeps the ``keep`` newest complete runs (``current`` always among them). Deletes older complete runs
    and incomplete runs older than ``current`` (killed or failed ones); never touches newer runs, which
    may still be running.
    """
    if keep < 1:
        raise ValueError(f'keep must be at least 1, got {keep}')
    complete = sorted((complete_runs | {current}) & {r for r in all_runs | {current} if r <= current})
    kept = set(complete[-keep:]) | {current}
    return sorted(r for r in all_runs if r < current and r not in kept)
