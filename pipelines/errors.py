"""Exit codes, the errors the commands raise for expected failures, and the mapping from an exception to
(exit code, one-paragraph message).

Every expected failure carries its own exit code as an ``exit_code`` attribute: the ``UserError`` classes
here, and errors defined where this module may not import them (``BuildFailed`` in transforms/core/seal.py,
``WeightsError`` in transforms/core/vggish/weights.py), so ``expected_error`` asks the exception, not its
class name. Pure Python: no Beam.
"""
from __future__ import annotations

import errno
import os
import re

EXIT_OK = 0
EXIT_FAILED = 1        # the run finished but failed its own checks
EXIT_USAGE = 2         # flags: unknown, malformed, contradictory; an output that cannot be written
EXIT_RETRYABLE = 3     # download_audio: some segments failed transiently; rerun to retry them
EXIT_INPUT = 4         # an input named by a flag is missing, unreadable or malformed
EXIT_INTERNAL = 70     # a bug or an unexpected failure: the traceback is printed
EXIT_NO_SPACE = 74     # an output could not be written: no space left on its disk (or over quota); sysexits' EX_IOERR
EXIT_INTERRUPTED = 130

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


# What Beam appends to the message of an error it re-raises from a step.
_BEAM_SUFFIX = re.compile(r" \[while running '[^']*'\]")
# A text match that cannot go: an error raised in a Beam step reaches the launcher only as text when
# the runner relays it so (Dataflow; DirectRunner's worker processes), with no object to carry an exit code.
# BuildFailed (transforms/core/seal.py; the seal runs in a step) is the expected one: matched by its name in
# the text, with its class's exit code, EXIT_FAILED.
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

    An expected error says so with its ``exit_code`` (UserError here; BuildFailed, WeightsError where they
    are defined), looked up on every exception in the chain, since Beam re-raises a step's error wrapped."""
    for e in _chain(exc):
        code = getattr(e, 'exit_code', None)
        if isinstance(code, int) and not isinstance(code, bool):
            return code, _BEAM_SUFFIX.sub('', str(e))
        if isinstance(e, (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)):
            what = {FileNotFoundError: 'no such file or folder', NotADirectoryError: 'not a folder',
                    IsADirectoryError: 'a folder, not a file', PermissionError: 'permission denied'}
            reason = next((v for k, v in what.items() if isinstance(e, k)), e.strerror)
            return EXIT_INPUT, f'{e.filename}: {reason}' if e.filename else str(e)
    # Text only (see _BUILD_FAILED_TEXT): a runner that reports a worker's failure as text names the class.
    m = _BUILD_FAILED_TEXT.search(str(exc))
    if m:
        return EXIT_FAILED, _BEAM_SUFFIX.sub('', m.group(1)).strip()
    if no_space(exc):
        return EXIT_NO_SPACE, no_space_message(exc)
    return None


def expected_text(text: str) -> bool:
    """Whether a log message or a printed traceback is about an expected error ``run_cli`` reports itself."""
    return bool(_BUILD_FAILED_TEXT.search(text) or _NO_SPACE_TEXT.search(text))
