"""Politeness: one token bucket shared by every worker, a global pause after a rate limit, and backoff."""
from __future__ import annotations

import random
import threading
import time


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, bursts of at most ``burst``, across threads.

    ``pause(seconds)`` holds every acquirer until then: a 429 is the server asking all of us to slow
    down, not only the worker that got it. ``stop`` (an Event) ends every wait early; ``acquire`` then
    returns False.
    """

    def __init__(self, rate: float, burst: float = 1.0, stop: threading.Event | None = None,
                 clock=time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError(f'need rate > 0 and burst >= 1, got rate={rate}, burst={burst}')
        self.rate = rate
        self.burst = burst
        self.stop = stop or threading.Event()
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def acquire(self) -> bool:
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if now < self._paused_until:
                    wait = self._paused_until - now
                elif self._tokens >= 1:
                    self._tokens -= 1
                    return True
                else:
                    wait = (1 - self._tokens) / self.rate
            if self.stop.wait(wait):
                return False


def backoff_s(failures: int, base_s: float, max_s: float, retry_after_s: float | None = None,
              rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``failures``-th consecutive failure (1-based): exponential with jitter.

    ``base_s * 2**(failures-1)``, capped at ``max_s``, then scaled by a random factor in [0.5, 1.5) so
    that workers hit by the same outage do not come back in step. A server's Retry-After is a floor
    (still capped at ``max_s``).
    """
    rng = rng or random
    delay = min(max_s, base_s * 2 ** max(0, failures - 1)) * (0.5 + rng.random())
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return min(delay, max_s)
