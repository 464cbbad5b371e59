"""Fixtures of the downloader tests: media made once per session, a loopback server per test, and a check
that no thread a test started outlives it."""
from __future__ import annotations

import threading
import time

import pytest

from tests.download import media_files
from tests.download.server import MediaServer


@pytest.fixture(scope='session')
def sources(tmp_path_factory) -> dict[str, bytes]:
    """Stepped-tone sources: 30 s webm/Opus 48 kHz, m4a/AAC 44.1 kHz, mp3 22.05 kHz; 'short' is 5 s of webm."""
    d = tmp_path_factory.mktemp('media')
    files = {fmt: media_files.make(d / f'tone.{fmt}', fmt) for fmt in media_files.FORMATS}
    files['short'] = media_files.make(d / 'short.webm', 'webm', seconds=5)
    return files


@pytest.fixture
def server():
    with MediaServer() as s:
        yield s


@pytest.fixture(autouse=True)
def no_leftover_threads():
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        # Beam's shared, daemon thread pool (used by a build run in the test) outlives runs by design.
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()
                 and type(t).__module__ != 'apache_beam.utils.thread_pool_executor']
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not extra, f'threads outlived the test: {extra}'
