"""The shared token bucket and the backoff schedule."""
import random
import threading
import time

import pytest

from transforms.core.download.pacing import TokenBucket, backoff_s


def test_rate_holds_across_threads():
    bucket = TokenBucket(rate=40, burst=1)
    stamps = []
    lock = threading.Lock()

    def take(n):
        for _ in range(n):
            assert bucket.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=take, args=(5,)) for _ in range(4)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 20 tokens at 40/s with a burst of 1: the first is free, the other 19 take at least 19/40 s.
    assert len(stamps) == 20
    assert max(stamps) - t0 >= 19 / 40 - 0.02


def test_pause_holds_everyone_and_stop_releases():
    stop = threading.Event()
    bucket = TokenBucket(rate=1000, stop=stop)
    bucket.pause(0.3)
    t0 = time.monotonic()
    assert bucket.acquire()
    assert time.monotonic() - t0 >= 0.28
    bucket.pause(60)
    threading.Timer(0.1, stop.set).start()
    t0 = time.monotonic()
    assert bucket.acquire() is False
    assert time.monotonic() - t0 < 5


def test_backoff_doubles_with_jitter_and_caps():
    rng = random.Random(0)
    for failures, nominal in [(1, 2.0), (2, 4.0), (3, 8.0)]:
        for _ in range(50):
            assert 0.5 * nominal <= backoff_s(failures, 2.0, 100.0, rng=rng) < 1.5 * nominal
    assert backoff_s(30, 2.0, 100.0, rng=rng) <= 100.0
    assert backoff_s(1, 0.01, 100.0, retry_after_s=7, rng=rng) == 7  # Retry-After is a floor...
    assert backoff_s(1, 0.01, 5.0, retry_after_s=700, rng=rng) == 5.0  # ...under the cap


def test_validation():
    with pytest.raises(ValueError):
        TokenBucket(rate=0)
