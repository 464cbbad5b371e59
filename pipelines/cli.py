"""What every command-line entry point shares: exit codes, one-paragraph errors, strict flag parsing.

Each ``main()`` is ``run_cli(run)``: an expected failure (a bad flag, a missing or malformed input, a build
that failed its own checks) prints one ``error:`` paragraph naming the flag or file and exits with its code
(``--verbose`` adds the traceback); anything else is a bug and prints its traceback. Pure Python: no Beam.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import logging
import os
import re
import socket
import sys
import threading
import traceback
import urllib.parse
from typing import Callable, Iterable

EXIT_OK = 0
EXIT_FAILED = 1        # the run finished but failed its own checks
EXIT_USAGE = 2         # flags: unknown, malformed, contradictory; an output that cannot be written
EXIT_RETRYABLE = 3     # download_audio: some segments failed transiently; rerun to retry them
EXIT_INPUT = 4         # an input named by a flag is missing, unreadable or malformed
EXIT_INTERNAL = 70     # a bug or an unexpected failure: the traceback is printed
EXIT_NO_SPACE = 74     # an output could not be written: no space left on its disk (or over quota); sysexits' EX_IOERR
EXIT_INTERRUPTED = 130
# Set once Ctrl-C reached the command: what its threads log about work ended by it is not reported.
INTERRUPTED = threading.Event()

EXIT_CODES_HELP = """\
Exit status:
  0    success
  1    the run finished but failed its own checks (build: output verification, counts, or more than
       --max_bad_fraction rejected; embed_audio: no file could be embedded)
  2    usage: an unknown or malformed flag, contradictory flags, a flag given where it has no effect, an
       output path that is a file or a dangling symbolic link, an output holding a symbolic link where the
       build writes or deletes, a local path under DataflowRunner, an invalid gs:// bucket name, VGGish
       weights that cannot be had
  3    download_audio only: some segments failed transiently; rerun the same command to retry them
  4    bad input: a file or folder named by a flag is missing, unreadable or malformed (class index,
       ontology, shards, segments folder, audio, manifest), or gs:// cannot be reached
  70   internal error (a bug): the traceback is printed
  74   the output could not be written: its disk is full (or over quota); the error names the output
  130  interrupted (Ctrl-C)
Expected errors print one "error:" paragraph naming the flag or file; --verbose adds the traceback."""


class UserError(Exception):
    """An error the person running the command can fix; ``run_cli`` prints it as one paragraph."""
    exit_code = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(UserError):
    """A bad flag, flag value or combination of flags (exit 2)."""
    exit_code = EXIT_USAGE


class InputError(UserError, ValueError):
    """An input named by a flag is missing, unreadable or malformed (exit 4). Also a ValueError, which is
    what input planning raised before."""
    exit_code = EXIT_INPUT


# ValueErrors that input planning raises about the inputs themselves (the text says which flag/file).
KNOWN_INPUT_ERRORS = ('no shards found', 'no audio files found')
_BEAM_SUFFIX = re.compile(r" \[while running '[^']*'\]")
_BUILD_FAILED_TEXT = re.compile(r'BuildFailed: (.+?)(?:\n\n|\nTraceback|\Z)', re.S)
# A worker's OSError as the runner relays it, as text: Python's "[Errno 28] No space left on device", Arrow's
# "[errno 28] No space left on device", and the quota's "[Errno 122] Disk quota exceeded".
_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_NO_SPACE_TEXT = re.compile('|'.join(re.escape(os.strerror(n)) for n in _NO_SPACE_ERRNOS))


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes/contexts, outermost first (Beam re-raises worker errors wrapped)."""
    seen, out, todo = set(), [], [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        out.append(e)
        todo += [e.__cause__, e.__context__]
    return out


def _class_names(e: BaseException) -> set[str]:
    return {c.__name__ for c in type(e).__mro__}


def no_space(exc: BaseException) -> OSError | bool:
    """Whether ``exc`` is, or wraps, a write that found no space left on its device (ENOSPC) or over quota
    (EDQUOT): the OSError itself when it is in the chain (in-process runners), True when only its text is
    (a worker process's error relayed by the runner), else False."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in _NO_SPACE_ERRNOS:
            return e
    return any(_NO_SPACE_TEXT.search(str(e)) for e in _chain(exc))


def no_space_message(exc: BaseException, where: str | None = None) -> str:
    """One paragraph for a disk-full failure: ``<where>: no space left on the device (the disk is full)``,
    ``where`` being the output (a flag and its path) or else the file the OSError names."""
    found = no_space(exc)
    name = found.filename if isinstance(found, OSError) and found.filename else None
    quota = found.errno == errno.EDQUOT if isinstance(found, OSError) else os.strerror(errno.EDQUOT) in str(exc)
    what = 'the disk quota is exceeded' if quota else 'no space left on the device (the disk is full)'
    detail = f' (writing {name})' if where and name else ''
    return f'{where or name or "an output"}: {what}{detail}; free some space (or write to a larger disk) and ' \
           'run again'


def expected_error(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, message) when ``exc`` is an expected failure, else None (a bug: show the traceback).

    Classes are matched by name where they live in modules this one must not import (Beam's sinks)."""
    for e in _chain(exc):
        names = _class_names(e)
        if isinstance(e, UserError):
            return e.exit_code, str(e)
        if 'BuildFailed' in names:
            return EXIT_FAILED, _BEAM_SUFFIX.sub('', str(e))
        if 'WeightsError' in names:
            return EXIT_USAGE, str(e)
        if isinstance(e, (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)):
            what = {FileNotFoundError: 'no such file or folder', NotADirectoryError: 'not a folder',
                    IsADirectoryError: 'a folder, not a file', PermissionError: 'permission denied'}
            reason = next((v for k, v in what.items() if isinstance(e, k)), e.strerror)
            return EXIT_INPUT, f'{e.filename}: {reason}' if e.filename else str(e)
        if isinstance(e, ValueError) and any(k in str(e) for k in KNOWN_INPUT_ERRORS):
            return EXIT_INPUT, _BEAM_SUFFIX.sub('', str(e))
    # A runner that reports a worker's failure only as text (Dataflow) still names the class.
    m = _BUILD_FAILED_TEXT.search(str(exc))
    if m:
        return EXIT_FAILED, _BEAM_SUFFIX.sub('', m.group(1)).strip()
    if no_space(exc):
        return EXIT_NO_SPACE, no_space_message(exc)
    return None


def _expected_text(text: str) -> bool:
    """Whether a log message or a printed traceback is about an expected error ``run_cli`` reports itself."""
    return bool(_BUILD_FAILED_TEXT.search(text) or _NO_SPACE_TEXT.search(text))


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
        return not _expected_text(record.getMessage())


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
            if not _expected_text(text):
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


# -- strict flags ------------------------------------------------------------------------------------------

class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-paragraph errors (``error: ...``, exit 2) instead of a usage dump, and
    ``parse_strict``: values may start with '-', and an unknown flag gets a did-you-mean."""
    _argv: list[str] = []

    def error(self, message: str):
        print(format_error(f'{dash_value_hint(message, self._argv)} (see {self.prog} --help)'), file=sys.stderr)
        raise SystemExit(EXIT_USAGE)

    def parse_strict(self, argv: list[str] | None) -> argparse.Namespace:
        self._argv = argv = normalize_argv(list(sys.argv[1:] if argv is None else argv), self)
        args, unknown = self.parse_known_args(argv)
        if unknown:
            self.error(describe_unknown(unknown, argv, self, ''))
        return args


_NO_VALUE = re.compile(r'argument (-[^\s:/]+)(?:/\S+)?: expected (?:one|at least one) argument')


def dash_value_hint(message: str, argv: list[str]) -> str:
    """argparse's "expected one argument" where the value started with '-': say how to give it."""
    m = _NO_VALUE.match(message)
    if m:
        flag = m.group(1)
        for i, token in enumerate(argv[:-1]):
            if token == flag and argv[i + 1].startswith('-') and argv[i + 1] != '--':
                return f'{message}: {argv[i + 1]} reads as a flag; a value that starts with "-" goes after "=": ' \
                       f'{flag}={argv[i + 1]}'
    return message


_FLAG_LIKE = re.compile(r'--?[A-Za-z][A-Za-z0-9_-]*(=.*)?', re.S)


def _is_flag(token: str, actions: dict) -> bool:
    """Whether ``token`` is meant as a flag rather than a value: a known flag, or a name of flag shape.
    A value such as ``-0BIyqJj9ZU_30.000_40.000.flac`` (a YouTube id) is neither."""
    return token == '--' or token.split('=', 1)[0] in actions or bool(_FLAG_LIKE.fullmatch(token))


def _takes_values(action: argparse.Action) -> bool:
    return action.nargs is None or action.nargs in ('+', '*') or (isinstance(action.nargs, int) and action.nargs > 0)


def normalize_argv(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Rewrites ``--flag VALUE`` as ``--flag=VALUE`` where VALUE starts with '-' but is no flag (argparse
    would take it for one), and spreads the values of a several-values flag (``action='extend'``) as
    ``--flag=V`` each, so that '-' values work there too. Everything else is left as it is."""
    actions = parser._option_string_actions  # noqa: SLF001 -- the one map of flag -> action argparse has
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == '--':
            out += argv[i - 1:]
            break
        action = actions.get(token)
        if action is None or not _takes_values(action):
            out.append(token)
            continue
        if isinstance(action, argparse._ExtendAction):  # noqa: SLF001
            values = []
            while i < len(argv) and not (argv[i].startswith('-') and _is_flag(argv[i], actions)):
                values.append(argv[i])
                i += 1
            out += [f'{token}={v}' for v in values] if values else [token]
        elif action.nargs is None and i < len(argv) and argv[i].startswith('-') and not _is_flag(argv[i], actions):
            out.append(f'{token}={argv[i]}')
            i += 1
        else:
            out.append(token)
    return out


def _flag_before(argv: list[str], pos: int, actions: dict) -> str | None:
    """The flag whose value(s) the token at ``pos`` may have been meant as."""
    j = pos - 1
    while j >= 0 and not argv[j].startswith('-'):
        j -= 1
    if j < 0 or argv[j] not in actions or not _takes_values(actions[argv[j]]):
        return None
    several = isinstance(actions[argv[j]], argparse._ExtendAction)  # noqa: SLF001
    return argv[j] if several or j == pos - 1 else None


def describe_unknown(unknown: list[str], argv: list[str], parser: argparse.ArgumentParser,
                     help_hint: str) -> str:
    """One paragraph about flags no parser knows, each with its closest known flag."""
    actions = parser._option_string_actions  # noqa: SLF001
    known = sorted(a for a in actions if a.startswith('--'))
    flags, extra = [], []
    skip = False
    for k, token in enumerate(unknown):
        if skip:
            skip = False
            continue
        pos = argv.index(token) if token in argv else -1
        if token.startswith('-') and token != '-':
            name = token.split('=', 1)[0]
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            note = f' (did you mean {close[0]}?)' if close else ''
            flag_before = _flag_before(argv, pos, actions)
            if flag_before and not close:
                note = f' (if it is a value of {flag_before}, write {flag_before}={token})'
            flags.append(name + note)
            # its value, if it has one, is no separate problem
            nxt = unknown[k + 1] if k + 1 < len(unknown) else None
            skip = ('=' not in token and nxt is not None and not nxt.startswith('-') and pos >= 0
                    and pos + 1 < len(argv) and argv[pos + 1] == nxt)
        else:
            extra.append(token)
    parts = []
    if flags:
        parts.append(('unknown flag ' if len(flags) == 1 else 'unknown flags: ') + ', '.join(flags))
    if extra:
        parts.append(f'unexpected argument{"s" if len(extra) > 1 else ""} {" ".join(map(repr, extra))} '
                     '(a flag takes one value unless its help says several; quote a glob so the shell does '
                     'not expand it)')
    return '; '.join(parts) + (f'. {help_hint}' if help_hint else '')


def check_flags(argv: list[str], parser: argparse.ArgumentParser, help_hint: str) -> argparse.Namespace:
    """Parses ``argv`` with ``parser`` (which should raise on errors); anything it does not know is a
    UsageError with a did-you-mean."""
    try:
        namespace, unknown = parser.parse_known_args(argv)
    except UsageError as e:
        raise UsageError(f'{dash_value_hint(str(e), argv)}. {help_hint}') from None
    if unknown:
        raise UsageError(describe_unknown(unknown, argv, parser, help_hint))
    return namespace


# -- paths --------------------------------------------------------------------------------------------------

_BUCKET_CHARS = re.compile(r'[a-z0-9][a-z0-9._-]*[a-z0-9]')
_IPV4 = re.compile(r'\d{1,3}(\.\d{1,3}){3}')


def bucket_problem(bucket: str) -> str | None:
    """Why ``bucket`` cannot be a Cloud Storage bucket name, or None (the documented naming rules:
    https://cloud.google.com/storage/docs/buckets#naming). Checked offline, before any request."""
    if not 3 <= len(bucket) <= 222:
        return 'a bucket name has 3 to 222 characters'
    if not _BUCKET_CHARS.fullmatch(bucket):
        return ('a bucket name has only lowercase letters, digits, dashes, underscores and dots, and starts '
                'and ends with a letter or digit')
    if '.' not in bucket and len(bucket) > 63:
        return 'a bucket name without dots has at most 63 characters'
    if any(not 1 <= len(part) <= 63 for part in bucket.split('.')):
        return 'each dot-separated part of a bucket name has 1 to 63 characters'
    if _IPV4.fullmatch(bucket):
        return 'a bucket name cannot be an IP address'
    if bucket.startswith('goog') or 'google' in bucket or 'g00gle' in bucket:
        return 'a bucket name cannot start with "goog" or contain "google"'
    return None


def gcs_path_problem(path: str, schemes: tuple[str, ...] = ('gs',)) -> str | None:
    """Why ``path`` is not a usable local path or gs:// URL (or another of ``schemes``), or None."""
    scheme = path.split('://', 1)[0] if '://' in path else None
    if scheme is not None and scheme not in schemes:
        return f'only local paths and {", ".join(s + "://" for s in schemes)} URLs are supported here'
    if scheme != 'gs':
        return None
    bucket = path[len('gs://'):].split('/', 1)[0]
    if not bucket:
        return 'no bucket name after gs://'
    return bucket_problem(bucket)


def is_remote(path: str) -> bool:
    return '://' in path


def first_existing_ancestor(path: str) -> str:
    p = os.path.abspath(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def dangling_link(path: str) -> str | None:
    """``path`` or the nearest of its parents that does not exist, when that is a symbolic link to nothing
    (``os.makedirs`` cannot go through it), else None."""
    p = os.path.abspath(path)
    while not os.path.exists(p):
        if os.path.islink(p):
            return p
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return None


def output_dir_problem(path: str) -> str | None:
    """Why a local output folder cannot be created/used, or None (no side effects)."""
    if is_remote(path):
        return gcs_path_problem(path)
    if (link := dangling_link(path)) is not None:
        where = '' if link == os.path.abspath(path) else f'{link} '
        return f'{where}is a symbolic link to {os.readlink(link)}, which does not exist (create its target, ' \
               'or remove the link)'
    if os.path.exists(path) and not os.path.isdir(path):
        return 'exists and is a file, not a folder'
    ancestor = first_existing_ancestor(path)
    if not os.path.isdir(ancestor):
        return f'{ancestor} is a file, so no folder can be made below it'
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f'{ancestor} is not writable'
    return None


def gcs_endpoint() -> tuple[str, int]:
    """Host and port the Cloud Storage client talks to (the emulator when STORAGE_EMULATOR_HOST is set)."""
    emulator = os.environ.get('STORAGE_EMULATOR_HOST')
    if emulator:
        u = urllib.parse.urlsplit(emulator if '://' in emulator else 'http://' + emulator)
        return u.hostname or 'localhost', u.port or (443 if u.scheme == 'https' else 80)
    return 'storage.googleapis.com', 443


def check_gcs_reachable(flag: str, path: str, timeout_s: float = 3.0) -> None:
    """Fails in a few seconds, naming the flag, when Cloud Storage cannot be reached at all (the client
    itself retries for minutes). Skipped behind a proxy, which a direct connection cannot judge."""
    if any(os.environ.get(k) for k in ('HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy')):
        return
    host, port = gcs_endpoint()
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as e:
        raise InputError(f'{flag} {path}: cannot reach {host}:{port} to read it ({e}); check the network '
                         '(every gs:// input is listed or read before anything runs)') from None


# -- class index + ontology ---------------------------------------------------------------------------------

def load_vocabulary(class_index: str, ontology: str, read_bytes: Callable[[str], bytes]):
    """Reads, parses and cross-checks ``--class_index`` and ``--ontology``; every problem is an InputError
    naming the flag, the file and what is wrong (the line, the entry, the MIDs of a cycle, ...)."""
    from transforms.core.ontology import ClassIndex, Ontology, Vocabulary
    parsed = []
    for flag, path, parse in (('--class_index', class_index, ClassIndex.from_csv),
                              ('--ontology', ontology, Ontology.from_json)):
        try:
            data = read_bytes(path)
        except Exception as e:  # noqa: BLE001 -- local or gs://: each filesystem raises its own
            reason = 'no such file' if isinstance(e, FileNotFoundError) else f'cannot be read ({e})'
            raise InputError(f'{flag} {path}: {reason}') from e
        try:
            parsed.append(parse(data, path))
        except ValueError as e:
            raise InputError(f'{flag} {e}') from e
    vocab = Vocabulary(*parsed)
    unknown = [m for m in vocab.class_index.mids if m not in vocab.ontology.order]
    if unknown:
        raise InputError(f'--class_index {class_index}: {len(unknown)} of its {len(vocab.class_index)} MIDs are '
                         f'not classes of --ontology {ontology} (first: {", ".join(unknown[:5])}); give the '
                         'class index and ontology of the same AudioSet release')
    return vocab


def load_label_quality(path: str, vocab, read_bytes: Callable[[str], bytes]):
    """Reads and checks ``--label_quality`` (qa_true_counts.csv); problems are InputErrors naming the flag."""
    from transforms.core.label_quality import parse_label_quality
    try:
        data = read_bytes(path)
    except Exception as e:  # noqa: BLE001 -- local, gs:// or https://: each raises its own
        reason = 'no such file' if isinstance(e, FileNotFoundError) else f'cannot be read ({e})'
        raise InputError(f'--label_quality {path}: {reason}') from e
    try:
        return parse_label_quality(data, path, vocab.class_index.mids)
    except ValueError as e:
        raise InputError(f'--label_quality {e} (expected Google\'s qa_true_counts.csv)') from e
