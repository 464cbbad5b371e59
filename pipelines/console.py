"""What a command prints: ``run_cli`` (exit status, one ``error:`` paragraph per expected failure), logging
set-up, and the filters that keep Beam's and its workers' copies of an expected error out of the terminal.

Each ``main()`` is ``run_cli(run)``: an expected failure (a bad flag, a missing or malformed input, a build
that failed its own checks; see pipelines.errors) prints one ``error:`` paragraph naming the flag or file and
exits with its code (``--verbose`` adds the traceback); anything else is a bug and prints its traceback.
Ctrl-C prints ``error: interrupted`` (exit 130) and sets ``INTERRUPTED``. Pure Python: no Beam.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import traceback
from typing import Callable, Iterable

from pipelines.errors import (EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, expected_error,
                              expected_text)

# Set once Ctrl-C reached the command: what its threads log about work ended by it is not reported.
INTERRUPTED = threading.Event()


def format_error(message: str) -> str:
    """``error: <message>``, continuation lines indented: one paragraph, one line starting ``error:``."""
    lines = message.strip().splitlines() or ['(no message)']
    if lines[0].startswith('error: '):
        lines[0] = lines[0][len('error: '):]
    return '\n'.join(['error: ' + lines[0]] + ['  ' + ln for ln in lines[1:]])


# Warnings every DirectRunner worker process logs at start-up that say nothing about this run: the build's
# own flags, unknown to workers (checked strictly before the run), and a staging folder local runs never use.
_WORKER_NOISE = ('Discarding unparseable args', 'No semi_persistent_directory found')


# DirectRunner relays a worker process's log records as the text of a LogEntry proto ("Worker: severity: WARN
# timestamp { ... } message: \"...\" instruction_id: ... log_location: ..."): only the message is for people.
_WORKER_ENTRY = re.compile(r'^Worker: severity: \w+ timestamp \{[^}]*\} message: "(?P<message>(?:[^"\\]|\\.)*)"'
                           r'(?:.*?log_location: "(?P<where>[^"]*)")?', re.S)


def _plain_worker_message(record: logging.LogRecord) -> None:
    """Rewrites a relayed worker record to its message, from logger ``worker`` (no-op for any other)."""
    if not record.name.startswith('apache_beam.runners.portability'):
        return
    m = _WORKER_ENTRY.match(record.getMessage())
    if m is None:
        return
    message = m.group('message')
    try:  # text-format escapes: \' \" \n and octal bytes of UTF-8
        message = message.encode('latin-1', 'backslashreplace').decode('unicode_escape')
        message = message.encode('latin-1').decode('utf-8')
    except (UnicodeDecodeError, UnicodeEncodeError):
        pass
    record.msg, record.args, record.name = message, (), 'worker'


class QuietExpectedErrors(logging.Filter):
    """Drops log records about an expected error: Beam logs a failing DoFn's exception (with its traceback,
    and from worker processes as text) before re-raising it, and ``run_cli`` prints that error once, as one
    paragraph. Also drops the worker start-up warnings in ``_WORKER_NOISE``."""

    def __init__(self, drop_errors: bool = True):
        super().__init__()
        self.drop_errors = drop_errors

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and any(text in record.getMessage() for text in _WORKER_NOISE):
            return False
        _plain_worker_message(record)
        if not self.drop_errors or record.levelno < logging.ERROR:
            return True
        if INTERRUPTED.is_set() and record.name.startswith(('apache_beam', 'worker')):
            return False   # a runner's thread about workers that Ctrl-C ended: "error: interrupted" says it
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and expected_error(exc) is not None:
            return False
        return not expected_text(record.getMessage())


def setup_logging(argv: Iterable[str], noisy: Iterable[str] = ('apache_beam', 'absl', 'tensorflow')) -> None:
    """INFO logs with timestamps; chatty libraries at WARNING; expected errors not logged twice."""
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    for name in noisy:
        logging.getLogger(name).setLevel(logging.WARNING)
    quiet = QuietExpectedErrors(drop_errors='--verbose' not in argv)
    for handler in logging.getLogger().handlers:
        handler.addFilter(quiet)


_STDERR_RECORD_START = re.compile(r'(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|error:|[IWEF]\d{4} |WARNING:|INFO:|ERROR:)')


class _TracebackFilter:
    """Copies a byte stream line by line, holding back each block that starts with "Traceback (most recent
    call last):" until it ends (a log line starts, the stream is quiet for a moment, or it ends), and
    dropping the block when it is about an expected error."""

    def __init__(self, out_fd: int):
        self.out_fd, self.block, self.partial = out_fd, None, b''

    def _emit(self, data: bytes) -> None:
        while data:
            data = data[os.write(self.out_fd, data):]

    def end_block(self) -> None:
        if self.block is not None:
            text = b''.join(self.block).decode('utf-8', 'replace')
            if not expected_text(text):
                self._emit(b''.join(self.block))
            self.block = None

    def feed(self, data: bytes) -> None:
        lines = (self.partial + data).split(b'\n')
        self.partial = lines.pop()
        for raw in lines:
            line = raw + b'\n'
            if self.block is not None and _STDERR_RECORD_START.match(raw.decode('utf-8', 'replace')):
                self.end_block()
            if self.block is None and raw.startswith(b'Traceback (most recent call last):'):
                self.block = [line]
            elif self.block is not None:
                self.block.append(line)
            else:
                self._emit(line)

    def close(self) -> None:
        self.end_block()
        self._emit(self.partial)
        self.partial = b''


@contextlib.contextmanager
def quiet_worker_tracebacks(argv: Iterable[str]):
    """Within the block, file descriptor 2 (this process's and that of every process it starts, such as
    Beam's DirectRunner workers, which print each failing bundle's traceback) goes through a filter that
    drops tracebacks of expected errors: ``run_cli`` reports those once, as one paragraph. Everything else
    passes unchanged. Off with --verbose."""
    if '--verbose' in argv:
        yield
        return
    import select
    import threading
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    filt = _TracebackFilter(saved)

    def pump():
        try:
            while True:
                ready, _, _ = select.select([read_end], [], [], 0.5)
                if not ready:
                    filt.end_block()    # quiet for a while: the block is complete
                    continue
                data = os.read(read_end, 65536)
                if not data:
                    break
                filt.feed(data)
        except Exception:  # noqa: BLE001 -- never block the writers: copy the rest as it is
            while data := os.read(read_end, 65536):
                os.write(saved, data)
        finally:
            filt.close()

    thread = threading.Thread(target=pump, name='stderr-filter', daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)        # the pipe's last writer here is gone; workers still running keep it open
        thread.join(timeout=5)
        os.close(saved) if not thread.is_alive() else None


def exit_now(code: int) -> None:
    """Ends the process once the work is done and flushed, skipping interpreter teardown: TensorFlow's and
    gRPC's native threads occasionally abort the process while it exits ("terminate called without an
    active exception"), turning a finished run into exit code 134."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_cli(run: Callable[[list[str]], int | None], argv: list[str] | None = None) -> None:
    """Runs ``run(argv)`` and ends the process with its exit status (see EXIT_CODES_HELP)."""
    exit_now(cli_status(run, argv))


def cli_status(run: Callable[[list[str]], int | None], argv: list[str] | None = None) -> int:
    """Runs ``run(argv)`` as the command line does: an expected failure prints one ``error:`` paragraph,
    anything else its traceback; returns the exit status (the process goes on: tests call this)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = '--verbose' in argv
    try:
        code = run(argv) or EXIT_OK
    except SystemExit as e:          # argparse: --help, or a usage error it already printed
        if isinstance(e.code, str):  # raise SystemExit('error: ...')
            print(format_error(e.code), file=sys.stderr)
            code = EXIT_USAGE
        else:
            code = e.code or EXIT_OK
    except KeyboardInterrupt:
        INTERRUPTED.set()
        print('error: interrupted', file=sys.stderr)
        code = EXIT_INTERRUPTED
    except BaseException as e:  # noqa: BLE001 -- every failure ends here, as a message or a traceback
        known = expected_error(e)
        if known is None or verbose:
            traceback.print_exc()
        if known is None:
            print(f'internal error (a bug, or a failure this tool does not expect): {type(e).__name__}; '
                  'the traceback above says where', file=sys.stderr)
            code = EXIT_INTERNAL
        else:
            code, message = known
            print(format_error(message), file=sys.stderr)
    return code
