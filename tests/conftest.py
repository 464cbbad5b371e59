"""Test-session settings."""
import os
import sys

import pytest

_status = {}


def pytest_sessionfinish(session, exitstatus):
    _status['code'] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # TensorFlow's and gRPC's native threads occasionally abort a process while the interpreter tears down
    # ("terminate called without an active exception"). The summary is printed by now: leave with pytest's
    # own status instead of risking that (the CLIs do the same, see pipelines.build_dataset.exit_now).
    if 'code' in _status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_status['code'])
