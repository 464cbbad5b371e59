"""What every command-line entry point shares."""
from __future__ import annotations

import logging
import os
import sys


def exit_now(code: int) -> None:
    """Ends the process once the work is done and flushed, skipping interpreter teardown: TensorFlow's and
    gRPC's native threads occasionally abort the process while it exits ("terminate called without an
    active exception"), turning a finished run into exit code 134."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
