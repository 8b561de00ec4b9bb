"""How fast and how often we may call OVH: the rate limiter, adaptive concurrency, backoff, Retry-After.

Pure rules and thread-safe counters, no I/O: the clock and the sleep are injected where they matter, so
each rule can be checked on its own.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

__all__ = ["AdaptiveConcurrency", "RateLimiter", "backoff_delay", "retry_after_seconds"]

# After waiting (1 - tokens) / rate, the bucket may hold one token less a rounding error: that is a token
# (else a clock that moves exactly as asked would make us wait again and again for nothing).
_ROUNDING = 1e-9


class RateLimiter:
    """A token bucket shared by every thread: at most ``rate`` calls per second, bursts of ``burst``."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.clock = clock
        self.sleep = sleep
        self.tokens = self.burst
        self.updated = clock()
        self.lock = threading.Lock()
        self.paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` (the server said Retry-After)."""
        with self.lock:
            self.paused_until = max(self.paused_until, self.clock() + seconds)

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                wait_for = max(self.paused_until - now, 0.0)
                if wait_for == 0.0 and self.tokens >= 1.0 - _ROUNDING:
                    self.tokens -= 1.0
                    return
                wait_for = max(wait_for, (1.0 - self.tokens) / self.rate)
            self.sleep(wait_for)


class AdaptiveConcurrency:
    """How many calls may be in flight: halved on a 429, grown by one after a run of successes."""

    def __init__(self, ceiling: int, *, grow_after: int = 20) -> None:
        self.ceiling = ceiling
        self.limit = ceiling
        self.in_flight = 0
        self.successes = 0
        self.grow_after = grow_after
        self.condition = threading.Condition()

    def __enter__(self) -> AdaptiveConcurrency:
        with self.condition:
            self.condition.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self.condition:
            self.in_flight -= 1
            self.condition.notify_all()

    def throttled(self) -> None:
        with self.condition:
            self.limit = max(1, self.limit // 2)
            self.successes = 0

    def succeeded(self) -> None:
        with self.condition:
            self.successes += 1
            if self.successes >= self.grow_after and self.limit < self.ceiling:
                self.limit += 1
                self.successes = 0
                self.condition.notify_all()


def backoff_delay(attempt: int, retry_after: float | None, *, base: float = 0.5, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter; never sooner than the server's Retry-After."""
    delay = random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 - jitter, not cryptography
    return max(delay, retry_after or 0.0)


def retry_after_seconds(value: str | None, *, now: dt.datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay in seconds or an HTTP date); None if absent or unreadable.

    ``now`` (aware) is when the answer came, to turn an HTTP date into a delay; a past date means no wait.
    A number that is not finite (``inf``, ``nan``) is unreadable: it would hold every call back for ever.
    """
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
