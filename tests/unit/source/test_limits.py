"""archiver/source/limits.py: the rate limiter, adaptive concurrency, backoff and Retry-After, as pure rules."""

from __future__ import annotations

import datetime as dt
import math
import threading
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.source.limits import AdaptiveConcurrency, RateLimiter, backoff_delay, retry_after_seconds
from tests.unit.source.conftest import FakeClock

# -- the rate limiter ----------------------------------------------------------------------------------


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


def test_rate_limiter_ends_its_wait_when_the_clock_moves_exactly_as_asked() -> None:
    """(1 - tokens) / rate * rate may fall short of one token by a rounding error: that is no reason to wait again."""
    clock = FakeClock(max_sleeps=100)
    limiter = RateLimiter(3.0, burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(6):
        limiter.acquire()
    assert clock.now == pytest.approx(5 / 3)
    assert len(clock.slept) == 5


@settings(max_examples=300, deadline=None)
@given(
    rate=st.sampled_from([0.5, 1.0, 2.0, 3.0, 10.0, 40.0, 1000.0]),
    burst=st.floats(min_value=0.0, max_value=8.0),
    calls=st.integers(min_value=1, max_value=60),
)
def test_rate_limiter_spends_its_burst_then_one_token_per_call(rate: float, burst: float, calls: int) -> None:
    """N calls back to back take (N - burst) / rate seconds: never faster than the rate, never slower."""
    clock = FakeClock()
    limiter = RateLimiter(rate, burst=burst, clock=clock, sleep=clock.sleep)
    for _ in range(calls):
        limiter.acquire()
    expected = max(0.0, calls - max(1.0, burst)) / rate
    assert clock.now == pytest.approx(expected, rel=1e-6, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    before=st.floats(min_value=0.0, max_value=100.0),
    pause=st.floats(min_value=0.0, max_value=3600.0),
    shorter=st.floats(min_value=0.0, max_value=3600.0),
)
def test_a_pause_is_never_shortened(before: float, pause: float, shorter: float) -> None:
    """After pause(s), no call goes before s has passed, whatever shorter pause comes next."""
    clock = FakeClock()
    limiter = RateLimiter(1000.0, burst=5, clock=clock, sleep=clock.sleep)
    clock.now = before
    limiter.pause(pause)
    limiter.pause(min(shorter, pause))
    limiter.acquire()
    assert clock.now >= before + pause


def test_the_limiter_is_shared_by_threads() -> None:
    """Tokens are never handed out twice: 40 calls from 4 threads take as long as 40 from one."""
    clock = FakeClock()
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            clock.sleep(seconds)

    limiter = RateLimiter(10.0, burst=1, clock=clock, sleep=sleep)
    errors: list[BaseException] = []

    def ten_calls() -> None:
        try:
            for _ in range(10):
                limiter.acquire()
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    workers = [threading.Thread(target=ten_calls) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert not any(worker.is_alive() for worker in workers)
    assert errors == []
    # 39 calls after the free one, 0.1 s each at least (threads may overlap their waits, never shorten them)
    assert clock.now >= 3.9 - 1e-9


# -- adaptive concurrency ------------------------------------------------------------------------------


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


@settings(max_examples=300, deadline=None)
@given(
    ceiling=st.integers(min_value=1, max_value=64),
    grow_after=st.integers(min_value=1, max_value=25),
    events=st.lists(st.booleans(), max_size=300),
)
def test_adaptive_concurrency_stays_between_one_and_the_ceiling(
    ceiling: int, grow_after: int, events: list[bool]
) -> None:
    """A 429 halves the limit (at least 1); successes add one per run of ``grow_after``, up to the ceiling."""
    limit = AdaptiveConcurrency(ceiling, grow_after=grow_after)
    streak = 0
    for throttled in events:
        before = limit.limit
        if throttled:
            limit.throttled()
            streak = 0
            assert limit.limit == max(1, before // 2)
        else:
            limit.succeeded()
            streak += 1
            grows = streak >= grow_after and before < ceiling
            assert limit.limit == before + (1 if grows else 0)
            if grows:
                streak = 0
        assert 1 <= limit.limit <= ceiling


def test_adaptive_concurrency_lets_no_more_calls_in_than_the_limit() -> None:
    limit = AdaptiveConcurrency(2)
    entered = threading.Event()
    limit.__enter__()
    limit.__enter__()

    def third() -> None:
        with limit:
            entered.set()

    worker = threading.Thread(target=third)
    worker.start()
    assert not entered.wait(timeout=0.3)  # both places are taken
    limit.__exit__(None, None, None)
    assert entered.wait(timeout=10)
    worker.join(timeout=10)
    limit.__exit__(None, None, None)
    assert limit.in_flight == 0


# -- backoff -------------------------------------------------------------------------------------------


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    for attempt in range(12):
        delay = backoff_delay(attempt, None, base=0.5, cap=60)
        assert 0 <= delay <= min(60, 0.5 * 2**attempt)
    assert backoff_delay(0, 7.0) >= 7.0


@settings(max_examples=500, deadline=None)
@given(
    attempt=st.integers(min_value=0, max_value=64),
    retry_after=st.none() | st.floats(min_value=0.0, max_value=86400.0),
    base=st.floats(min_value=0.01, max_value=5.0),
    cap=st.floats(min_value=0.1, max_value=600.0),
)
def test_backoff_is_jittered_within_the_cap_and_never_before_retry_after(
    attempt: int, retry_after: float | None, base: float, cap: float
) -> None:
    delay = backoff_delay(attempt, retry_after, base=base, cap=cap)
    assert delay >= (retry_after or 0.0)
    assert delay <= max(min(cap, base * 2**attempt), retry_after or 0.0)


def test_backoff_is_random_not_fixed() -> None:
    """Full jitter: retries of many clients spread out instead of arriving together."""
    assert len({backoff_delay(5, None) for _ in range(20)}) > 1


# -- Retry-After ---------------------------------------------------------------------------------------

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        ("0", 0.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("soon", None),
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),  # a date already past: no wait
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, now=NOW) == seconds


@pytest.mark.parametrize("value", ["inf", "Infinity", "nan", "-inf", "1e400"])
def test_a_retry_after_that_is_not_a_finite_number_is_ignored(value: str) -> None:
    """An infinite Retry-After would pause every call for ever (and time.sleep(inf) raises)."""
    assert retry_after_seconds(value, now=NOW) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_retry_after_of_any_header_is_none_or_a_finite_wait(value: str) -> None:
    seconds = retry_after_seconds(value, now=NOW)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0.0)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10 * 86400))
def test_retry_after_as_a_date_is_the_time_until_it(seconds: int) -> None:
    header = format_datetime(NOW + dt.timedelta(seconds=seconds), usegmt=True)
    assert retry_after_seconds(header, now=NOW) == pytest.approx(seconds)
