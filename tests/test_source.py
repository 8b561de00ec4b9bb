from __future__ import annotations

import pytest

from archiver.source import AdaptiveConcurrency, RateLimiter, _access_rule, backoff_delay


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_paces_calls_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(11):
        limiter.acquire()
    # the first call is free (a full bucket), the next ten take 0.5 s each
    assert clock.now == pytest.approx(5.0)


def test_rate_limiter_pause_holds_everyone_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100.0, burst=1, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.pause(3.0)
    limiter.acquire()
    assert clock.now >= 3.0


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    for attempt in range(12):
        delay = backoff_delay(attempt, None, base=0.5, cap=60)
        assert 0 <= delay <= min(60, 0.5 * 2**attempt)
    assert backoff_delay(0, 7.0) >= 7.0


def test_adaptive_concurrency_halves_and_grows_back() -> None:
    limit = AdaptiveConcurrency(8, grow_after=2)
    limit.throttled()
    assert limit.limit == 4
    limit.throttled()
    limit.throttled()
    limit.throttled()
    assert limit.limit == 1
    for _ in range(4):
        limit.succeeded()
    assert limit.limit == 3
    for _ in range(100):
        limit.succeeded()
    assert limit.limit == 8


@pytest.mark.parametrize(
    ("method", "path", "rule"),
    [
        ("GET", "/sms", "GET /sms"),
        ("GET", "/sms/sn-1/outgoing/12", "GET /sms/*"),
        ("DELETE", "/sms/x/incoming/1", "DELETE /sms/*"),
    ],
)
def test_access_rule_named_in_403_messages(method: str, path: str, rule: str) -> None:
    assert _access_rule(method, path) == rule
