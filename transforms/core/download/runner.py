"""The download run: skip what the ledger says is finished, fetch the rest on a few polite threads.

Each attempt takes a token from one shared bucket, ends in exactly one fsynced ledger line, and is
followed, when transient and attempts remain, by an exponential backoff with jitter (a rate limit also
pauses every worker). A run can be killed at any moment: the next one skips finished and permanently
failed segments, removes the dead run's temporary files, and adopts a verified clip whose ledger line
was never written.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable

from transforms.core.download import clip, ledger, media, outcome, pacing
from transforms.core.download.fetch import FetchOptions
from transforms.core.download.selection import Segment

log = logging.getLogger(__name__)

TMP_DIR = '_tmp'
PENDING = 'pending'  # in a summary: selected, never attempted


@dataclasses.dataclass(frozen=True)
class Settings:
    fetch: FetchOptions = FetchOptions()
    rate_limit: float = 0.5        # attempts per second, all workers together
    concurrency: int = 2           # worker threads
    max_attempts: int = 4          # per segment and run
    backoff_s: float = 5.0         # first backoff; doubles per failure, with jitter
    backoff_max_s: float = 600.0
    whole: bool = False            # always download whole streams (never read just the segment)
    retry: frozenset[str] = frozenset()  # permanent statuses to try again (e.g. geo, with a new proxy)
    progress: bool = True

    def __post_init__(self):
        if not self.rate_limit > 0:
            raise ValueError(f'rate_limit must be > 0 attempts/s, got {self.rate_limit}')
        if self.concurrency < 1 or self.max_attempts < 1:
            raise ValueError(f'concurrency and max_attempts must be >= 1, got {self.concurrency}, '
                             f'{self.max_attempts}')
        if self.backoff_s < 0 or self.backoff_max_s < self.backoff_s:
            raise ValueError(f'need 0 <= backoff_s <= backoff_max_s, got {self.backoff_s}, {self.backoff_max_s}')
        if not self.fetch.timeout_s > 0:
            raise ValueError(f'timeout must be > 0 s, got {self.fetch.timeout_s}')
        bad = set(self.retry) - outcome.PERMANENT
        if bad:
            raise ValueError(f'only permanent statuses can be retried ({sorted(outcome.PERMANENT)}), got {sorted(bad)}')


@dataclasses.dataclass
class Summary:
    selected: int
    skipped: int                  # finished before this run
    statuses: dict[str, int]      # latest status of every selected segment ('pending': never attempted)
    this_run: dict[str, int]      # status each segment attempted in this run ended in
    attempts: int                 # attempts made in this run
    interrupted: bool
    ledger: str

    @property
    def unfinished(self) -> int:
        """Selected segments a rerun would try again (transient failures and never attempted)."""
        return sum(n for s, n in self.statuses.items() if s in outcome.TRANSIENT or s == PENDING)

    def format(self) -> str:
        def counts(d):
            return ', '.join(f'{s} {d[s]}' for s in (*outcome.STATUSES, PENDING) if d.get(s)) or 'none'
        lines = [f'segments selected: {self.selected} (finished before this run: {self.skipped})',
                 f'this run: {self.attempts} attempts; {counts(self.this_run)}',
                 f'all selected, by latest status: {counts(self.statuses)}',
                 f'ledger: {self.ledger}']
        if self.interrupted:
            lines.append('interrupted: rerun the same command to resume')
        elif self.unfinished:
            lines.append(f'{self.unfinished} segments can be retried: rerun the same command (later)')
        return '\n'.join(lines)


def _is_done(row: dict | None, settings: Settings, clip_dir: str, local: bool) -> bool:
    if row is None or row['status'] not in outcome.FINISHED or row['status'] in settings.retry:
        return False
    if row['status'] == outcome.OK and local:
        # A clip deleted by hand is fetched again.
        return os.path.exists(os.path.join(clip_dir, os.path.basename(row['path'] or '')))
    return True


class _Run:
    def __init__(self, clip_dir: str, settings: Settings, book: ledger.Ledger, publish, ffmpeg: str):
        self.clip_dir = clip_dir
        self.settings = settings
        self.book = book
        self.publish = publish
        self.ffmpeg = ffmpeg
        self.stop = threading.Event()
        self.bucket = pacing.TokenBucket(settings.rate_limit, stop=self.stop)
        self.lock = threading.Lock()
        self.this_run: collections.Counter = collections.Counter()
        self.attempts = 0
        self.error: BaseException | None = None
        self.bar = None

    def _write(self, segment: Segment, status: str, message: str, attempts: int, started: str, **extra) -> None:
        self.book.append(ledger.record(
            segment_id=segment.segment_id, ytid=segment.ytid, start=segment.start, end=segment.end,
            split=segment.split, status=status, message=message, attempts=attempts, started=started,
            finished=ledger.now(), **extra))

    def _ok(self, segment: Segment, made_info: media.ClipInfo, attempts: int, started: str, mode: str,
            message: str) -> None:
        final = os.path.join(self.clip_dir, segment.clip_name)
        if self.publish:
            try:
                path = self.publish(final, segment.clip_name)
            except Exception as e:  # the destination was checked at start: a failure here is transient
                raise outcome.FetchError(outcome.ERROR, f'publishing the clip failed: {e!r}'[:600]) from None
        else:
            path = os.path.abspath(final)
        self._write(segment, outcome.OK, message, attempts, started, path=path, sha256=made_info.sha256,
                    sample_rate=made_info.sample_rate, num_samples=made_info.num_samples, fetch=mode)

    def _adopt(self, segment: Segment, attempts: int) -> bool:
        """A clip already at its final name (a run died before its ledger line, or before its upload) is
        verified and kept."""
        final = os.path.join(self.clip_dir, segment.clip_name)
        if not os.path.exists(final):
            return False
        started = ledger.now()
        try:
            info = media.inspect_clip(final)
            media.verify_clip(info, segment.start_ms, segment.end_ms)
            self._ok(segment, info, attempts, started, 'existing', 'verified clip found at its final name')
        except outcome.FetchError:
            os.remove(final)  # not ours, damaged, or not uploadable now: fetch it again
            return False
        return True

    def _attempt(self, segment: Segment, attempts: int) -> None:
        """One attempt in a fresh temporary folder, removed afterwards whatever happens."""
        started = ledger.now()
        workdir = tempfile.mkdtemp(prefix='attempt-', dir=os.path.join(self.clip_dir, TMP_DIR))
        try:
            made = clip.make_clip(segment, self.settings.fetch, self.ffmpeg, workdir,
                                  os.path.join(self.clip_dir, segment.clip_name), whole=self.settings.whole)
            self._ok(segment, made.info, attempts, started, made.fetch, made.message)
        except outcome.FetchError as e:
            self._write(segment, e.status, e.message, attempts, started)
            log.debug('%s attempt %d: %s: %s', segment.segment_id, attempts, e.status, e.message)
            raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def process(self, segment: Segment) -> str | None:
        """All attempts at one segment; returns the status it ended in (None if the run stopped first)."""
        s = self.settings
        attempts = (self.book.latest.get(segment.segment_id) or {}).get('attempts') or 0
        if self._adopt(segment, attempts):
            return outcome.OK
        status = None
        for i in range(1, s.max_attempts + 1):
            if not self.bucket.acquire():
                return status
            attempts += 1
            with self.lock:
                self.attempts += 1
            try:
                self._attempt(segment, attempts)
                return outcome.OK
            except outcome.FetchError as e:
                status = e.status
                if e.permanent or i == s.max_attempts:
                    return status
                delay = pacing.backoff_s(i, s.backoff_s, s.backoff_max_s, e.retry_after_s)
                if e.status == outcome.RATE_LIMITED:
                    self.bucket.pause(delay)  # the server asked all of us to slow down
                if self.stop.wait(delay):
                    return status
        return status

    def worker(self, todo) -> None:
        try:
            while not self.stop.is_set():
                with self.lock:
                    segment = next(todo, None)
                if segment is None:
                    return
                status = self.process(segment)
                with self.lock:
                    if status is not None:
                        self.this_run[status] += 1
                    if self.bar is not None:
                        self.bar.update(1)
                        self.bar.set_postfix({k: v for k, v in sorted(self.this_run.items())}, refresh=False)
        except BaseException as e:  # a bug, not a download failure: stop everyone and re-raise in the caller
            with self.lock:
                self.error = self.error or e
            self.stop.set()


def run(segments: list[Segment], clip_dir: str, settings: Settings,
        publish: Callable[[str, str], str] | None = None, ffmpeg: str | None = None) -> Summary:
    """Fetches every selected segment not yet finished into ``clip_dir`` (local), ledger included.

    ``publish(local_path, name) -> location``, when given, moves each finished clip to its final home
    (e.g. a bucket) before its ledger line is written; the ledger then records that location.
    Returns the summary; raises whatever is not a download failure (bugs, a full disk).
    """
    os.makedirs(clip_dir, exist_ok=True)
    ffmpeg = ffmpeg or media.find_ffmpeg()
    with ledger.Ledger(os.path.join(clip_dir, ledger.FILE_NAME)) as book:
        # We hold the ledger lock: whatever is in the temporary folder belongs to a dead run.
        shutil.rmtree(os.path.join(clip_dir, TMP_DIR), ignore_errors=True)
        os.makedirs(os.path.join(clip_dir, TMP_DIR))
        todo = [s for s in segments if not _is_done(book.latest.get(s.segment_id), settings, clip_dir, not publish)]
        state = _Run(clip_dir, settings, book, publish, ffmpeg)
        interrupted = False
        if todo:
            log.info('%d of %d selected segments to fetch (%d finished before)', len(todo), len(segments),
                     len(segments) - len(todo))
            if settings.progress:
                from tqdm import tqdm
                state.bar = tqdm(total=len(todo), unit='clip', dynamic_ncols=True, disable=None)  # off when not a TTY
            iterator = iter(todo)
            threads = [threading.Thread(target=state.worker, args=(iterator,), name=f'download-{i}', daemon=True)
                       for i in range(min(settings.concurrency, len(todo)))]
            for t in threads:
                t.start()
            try:
                for t in threads:
                    while t.is_alive():
                        t.join(0.2)  # short joins keep Ctrl-C responsive
            except KeyboardInterrupt:
                interrupted = True
                state.stop.set()
                for t in threads:
                    t.join()
            finally:
                if state.bar is not None:
                    state.bar.close()
        shutil.rmtree(os.path.join(clip_dir, TMP_DIR), ignore_errors=True)
        if state.error is not None:
            raise state.error
        interrupted = interrupted or state.stop.is_set()
        statuses = collections.Counter((book.latest.get(s.segment_id) or {}).get('status', PENDING) for s in segments)
        return Summary(len(segments), len(segments) - len(todo), dict(statuses), dict(state.this_run),
                       state.attempts, interrupted, book.path)
