"""Strict flags: argparse with one-paragraph errors and a did-you-mean for unknown flags, and the checks of
what a flag's value names (a local path or gs:// URL, a bucket name, an output folder, Cloud Storage being
reachable, the class index, ontology and label quality files), each failing as a UsageError or InputError
naming the flag. Pure Python: no Beam.
"""
from __future__ import annotations

import argparse
import difflib
import os
import re
import socket
import sys
import urllib.parse
from typing import Callable, Iterator

from pipelines.console import format_error
from pipelines.errors import EXIT_USAGE, InputError, UsageError


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


def _up_to_existing(path: str) -> Iterator[str]:
    """``path`` made absolute, then its parents, up to the first that exists (or the root)."""
    p = os.path.abspath(path)
    yield p
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
        yield p


def first_existing_ancestor(path: str) -> str:
    *_, found = _up_to_existing(path)
    return found


def dangling_link(path: str) -> str | None:
    """``path`` or the nearest of its parents that does not exist, when that is a symbolic link to nothing
    (``os.makedirs`` cannot go through it), else None."""
    return next((p for p in _up_to_existing(path) if not os.path.exists(p) and os.path.islink(p)), None)


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
